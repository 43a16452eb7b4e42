package cairn_test

import (
	"context"
	"fmt"
	"os"

	"example.com/cairn"
	"example.com/cairn/cluster"
	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
)

// A remote step: its function keeps its typed signature, and the step runs
// it as a cluster job when the run has a cluster (package cli always gives
// one: subprocesses by default, Slurm with CAIRN_CLUSTER=slurm). This run
// has none, so the function runs in this process.
func ExampleRemote() {
	type model struct {
		Weights []float64 `json:"weights"`
	}
	train := cairn.Remote(func(ctx context.Context, out *cairn.Output) (*model, error) {
		return &model{Weights: []float64{0.5, 0.25}}, nil
	}, &cairn.RemoteSpec{
		Resources: cluster.Resources{CPUs: 8, Memory: 32 * cluster.GiB, Device: cluster.GPU("", 1)},
	})
	step := &cairn.Step{Name: "train", Attrs: map[string]int{"epochs": 3}, Func: train.Func()}

	dir, _ := os.MkdirTemp("", "cairn-example-")
	defer os.RemoveAll(dir)
	storage := new(store.URLMux)
	storage.Register("file", filestore.URLOpener{})
	ctx := context.Background()
	if _, err := cairn.Run(ctx, cairn.Steps(step), &cairn.RunOptions{Prefix: dir, Storage: storage, Logger: discardLogger()}); err != nil {
		fmt.Println(err)
		return
	}
	m, err := cairn.LoadArtifact[model](ctx, storage, dir, step)
	fmt.Println(m.Weights, err)
	// Output: [0.5 0.25] <nil>
}
