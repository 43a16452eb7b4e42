package gcsstore_test

import (
	"context"
	"log"

	"example.com/cairn/store"
	"example.com/cairn/store/gcsstore"
)

// A pipeline program registers the opener, and then any gs:// prefix
// works, with Application Default Credentials (or STORAGE_EMULATOR_HOST).
func ExampleURLOpener() {
	mux := new(store.URLMux)
	mux.Register("gs", &gcsstore.URLOpener{})
	b, err := mux.OpenBucket(context.Background(), "gs://my-bucket/pipelines")
	if err != nil {
		log.Fatal(err)
	}
	_ = b // b.Read, b.WriteIf(..., store.IfAbsent()), ...
}
