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
//
// Its steps are typed (package recipe): each has a config struct whose
// versioned fields, with the versions of the steps it reads, make up its
// output path, so changing one (say Order in defaultConfig) re-runs exactly
// the steps it affects.
package main

import (
	"fmt"
	"os"

	"example.com/cairn/cli"
	"example.com/cairn/cluster/k8scluster"
	"example.com/cairn/recipe/recipecli"
)

func main() {
	p, err := newPipeline(defaultConfig())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(cli.ExitInvalid)
	}
	// The train step runs as a cluster job (see trainRemote): a local
	// subprocess by default, a Slurm job with CAIRN_CLUSTER=slurm, a
	// Kubernetes Job with CAIRN_CLUSTER=k8s. Backends beyond cli's default
	// ones are linked only into programs that register them.
	clusters := cli.DefaultClusters()
	clusters.Register("k8s", &k8scluster.Opener{})
	os.Exit(recipecli.Main(p.Steps(), &recipecli.Options{CLI: &cli.Options{Clusters: clusters}}))
}
