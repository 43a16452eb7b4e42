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
// output path, so changing one re-runs exactly the steps it affects. The
// parameters (type config) come from defaultConfig, then from YAML or JSON
// files and overrides on the command line:
//
//	go run ./examples/ngram --set train.order=4
//	go run ./examples/ngram --config examples/ngram/bigram.yaml --set report.samples=2
//
// re-run train, evaluate and report only. The train step runs as a
// cluster job (a local subprocess by default, a Slurm job with
// --cluster slurm or CAIRN_CLUSTER=slurm), with the same parameters.
package main

import (
	"os"

	"example.com/cairn/cli"
	"example.com/cairn/cluster/k8scluster"
	"example.com/cairn/recipe"
	"example.com/cairn/recipe/recipecli"
)

func main() {
	// The train step runs as a cluster job (see trainRemote): a local
	// subprocess by default, a Slurm job with CAIRN_CLUSTER=slurm, a
	// Kubernetes Job with CAIRN_CLUSTER=k8s. Backends beyond cli's default
	// ones are linked only into programs that register them.
	clusters := cli.DefaultClusters()
	clusters.Register("k8s", &k8scluster.Opener{})
	os.Exit(recipecli.MainConfig(defaultConfig(), build, &recipecli.Options{CLI: &cli.Options{Clusters: clusters}}))
}

// build returns the steps of the pipeline for cfg.
func build(cfg config) ([]recipe.Node, error) {
	p, err := newPipeline(cfg)
	if err != nil {
		return nil, err
	}
	return p.Steps(), nil
}
