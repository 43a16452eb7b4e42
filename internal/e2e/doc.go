// Package e2e holds end-to-end tests of pipelines on shared storage: many
// runners on one prefix on local disk, an S3 server and a GCS emulator
// (with one runner killed mid-run), pipelines run through a proxy that
// injects faults, and the cost of a fully cached re-run on object storage.
//
// The tests need the loopback servers that scripts/services.sh starts; they
// skip, saying so, when the CAIRN_TEST_* variables it writes are absent.
// Local-disk cases always run. -short shrinks the pipelines.
package e2e
