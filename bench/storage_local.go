//go:build !objstore

package main

import (
	"context"
	"errors"
	"io"

	"example.com/cairn/cli"
	"example.com/cairn/store"
)

// childStorage is the storage of a cairn child: the local disk only.
//
// The object-store backends are linked only into a bench built with
// -tags objstore (storage_objstore.go): their SDKs initialise some 25 MB
// of package state at start-up, which would otherwise be counted in every
// local-disk shape's peak RSS and make the comparison with ninja and make
// unfair.
func childStorage() *store.URLMux { return cli.DefaultStorage() }

// objectStores reports whether this binary can open s3:// and gs://.
const objectStores = false

// runStream is the streaming benchmark, which needs the object stores
// (stream_objstore.go); parseFlags refuses -stream without them.
func runStream(context.Context, config, io.Writer, io.Writer) error {
	return errors.New("-stream needs -tags objstore")
}
