// Command ngram is an example cairn pipeline that trains and evaluates an
// n-gram language model on a small corpus shipped with it:
//
//	ingest -> clean -> tokenize -> train -> evaluate -> report
//
// Run it with
//
//	go run ./examples/ngram
//
// It writes under ./cairn-out (see --help for the flags of package cli); a
// second run finds every step cached. The report is report.md in the
// output of the ngram/report step.
package main

import (
	"fmt"
	"os"

	"example.com/cairn"
	"example.com/cairn/cli"
)

func main() {
	p, err := newPipeline(defaultConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(cli.ExitInvalid)
	}
	os.Exit(cli.Main(cairn.Steps(p.Steps()...), nil))
}
