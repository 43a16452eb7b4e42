// Command watch is a small pipeline to watch cairn at work: a data step, a
// remote training step that runs for a while and logs its progress, and an
// evaluation step that panics. Run it on a terminal to see the live view;
// at the end the failed step's error, log tail and stack are printed.
//
//	go run ./examples/watch                          # train runs 20 s
//	WATCH_TRAIN_SECONDS=120 go run ./examples/watch  # a 2-minute step
//	go run ./examples/watch logs train -f            # follow its log
//	go run ./examples/watch report                   # HTML report of the run
//
// The train step runs as a job on the local cluster (subprocesses of this
// machine), or on Slurm with CAIRN_CLUSTER=slurm.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/cluster"
)

func main() {
	seconds := 20
	if s, err := strconv.Atoi(os.Getenv("WATCH_TRAIN_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	data := &cairn.Step{
		Name: "watch/data",
		Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			out.Logger.Info("writing shards", "shards", 4)
			for i := range 4 {
				if _, err := out.Bucket.Write(ctx, fmt.Sprintf("shard-%d.txt", i), []byte("some text\n")); err != nil {
					return nil, err
				}
			}
			return map[string]int{"shards": 4}, nil
		},
	}
	train := &cairn.Step{
		Name:   "watch/train",
		Attrs:  map[string]any{"epochs": seconds}, // part of the identity
		Deps:   []*cairn.Step{data},
		Remote: &cairn.RemoteSpec{Resources: cluster.Resources{CPUs: 1, Memory: 256 * cluster.MiB}},
		Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			for epoch := 1; epoch <= seconds; epoch++ {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(time.Second):
				}
				fmt.Printf("epoch %d/%d loss %.3f\n", epoch, seconds, 2.0/float64(epoch+1))
			}
			return map[string]float64{"loss": 2.0 / float64(seconds+1)}, nil
		},
	}
	evaluate := &cairn.Step{
		Name: "watch/evaluate",
		Deps: []*cairn.Step{data},
		Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			out.Logger.Info("loading the metrics file", "file", "metrics.json")
			var metrics []float64
			return metrics[0], nil // a bug: index out of range
		},
	}
	os.Exit(cli.Main(cairn.Steps(train, evaluate), nil))
}
