//go:build objstore

package main

import (
	"example.com/cairn/cli"
	"example.com/cairn/store"
	"example.com/cairn/store/gcsstore"
	"example.com/cairn/store/s3store"
)

// childStorage is the storage a pipeline program wires: local disk and the
// object stores, configured by the standard environment variables.
func childStorage() *store.URLMux {
	mux := cli.DefaultStorage()
	mux.Register("s3", &s3store.URLOpener{})
	mux.Register("gs", &gcsstore.URLOpener{})
	return mux
}

// objectStores reports whether this binary can open s3:// and gs://.
const objectStores = true
