// Command cairn inspects pipelines on shared storage: where a step writes
// (cairn path) and the state of every step under a prefix (cairn status).
//
// It is the composition root that wires the storage backends; pipeline
// programs get their own command line from package cli.
package main

import (
	"os"

	"example.com/cairn/cli"
)

func main() {
	os.Exit(cli.Tool(&cli.Options{Storage: cli.DefaultStorage()}))
}
