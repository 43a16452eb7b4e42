package s3store_test

import (
	"context"
	"log"

	"example.com/cairn/store"
	"example.com/cairn/store/s3store"
)

// A pipeline program registers the opener, and then any s3:// prefix
// works; credentials and endpoint come from the AWS environment.
func ExampleURLOpener() {
	mux := new(store.URLMux)
	mux.Register("s3", &s3store.URLOpener{})
	b, err := mux.OpenBucket(context.Background(), "s3://my-bucket/pipelines?region=eu-west-1")
	if err != nil {
		log.Fatal(err)
	}
	_ = b // b.Read, b.WriteIf(..., store.IfAbsent()), ...
}

// An S3-compatible store on another endpoint, with explicit options.
func ExampleOpen() {
	b, err := s3store.Open(context.Background(), "my-bucket", "pipelines", &s3store.Options{
		Endpoint: "https://ACCOUNT.r2.cloudflarestorage.com",
		Region:   "auto",
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = b
}
