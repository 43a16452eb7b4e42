// Command cairn inspects pipelines on shared storage: where a step writes
// (cairn path) and the state of every step under a prefix (cairn status).
//
// It is the composition root that wires the storage backends: local paths
// and file:// URLs, gs://BUCKET/PREFIX (Google Cloud Storage: Application
// Default Credentials, or STORAGE_EMULATOR_HOST) and s3://BUCKET/PREFIX
// (S3 and S3-compatible stores: the AWS SDK's credential chain,
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for other endpoints). Pipeline
// programs get their own command line from package cli, and register the
// same openers in cli.Options.Storage to use these prefixes.
package main

import (
	"os"

	"example.com/cairn/cli"
	"example.com/cairn/store/gcsstore"
	"example.com/cairn/store/s3store"
)

func main() {
	storage := cli.DefaultStorage()
	storage.Register("gs", &gcsstore.URLOpener{})
	storage.Register("s3", &s3store.URLOpener{})
	os.Exit(cli.Tool(&cli.Options{Storage: storage}))
}
