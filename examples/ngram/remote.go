package main

import (
	"context"
	"iter"

	"example.com/cairn"
	"example.com/cairn/cluster"
)

// trainStepName is the step that runs as a cluster job.
const trainStepName = "ngram/train"

// trainRemote is the job request of the train step: it runs as a cluster
// job — a local subprocess by default, a Slurm job with CAIRN_CLUSTER=slurm
// — while the other steps run in the runner's process.
func trainRemote() *cairn.RemoteSpec {
	return &cairn.RemoteSpec{Resources: cluster.Resources{CPUs: 1, Memory: 512 * cluster.MiB}}
}

// withRemoteTrain wraps a cli Prepare function so that the resolved train
// step is remote. Marking is by step name on the resolved cairn steps, so it
// does not depend on how package recipe builds them.
//
// TODO(#3): set recipe.StepOptions.Remote on the train step instead, once
// package recipe copies it onto the resolved step.
func withRemoteTrain(prepare func(context.Context, *cairn.RunOptions) (iter.Seq[*cairn.Step], error)) func(context.Context, *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
	return func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
		steps, err := prepare(ctx, opts)
		if err != nil {
			return nil, err
		}
		return func(yield func(*cairn.Step) bool) {
			seen := map[*cairn.Step]bool{}
			var mark func(s *cairn.Step)
			mark = func(s *cairn.Step) {
				if s == nil || seen[s] {
					return
				}
				seen[s] = true
				if s.Name == trainStepName && s.Remote == nil {
					s.Remote = trainRemote()
				}
				for _, d := range s.Deps {
					mark(d)
				}
			}
			for s := range steps {
				mark(s)
				if !yield(s) {
					return
				}
			}
		}, nil
	}
}
