package cairn_test

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"example.com/cairn"
	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

// A step that runs (or, remote, waits in a cluster's queue) for longer than
// the bound on the writes after it still commits: the bound runs from the
// moment those writes start, not from the attempt's start.
func TestLongStepCommits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		storage := new(store.URLMux)
		storage.Register("mem", memstore.New())
		step := &cairn.Step{Name: "long", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			select {
			case <-time.After(2 * time.Minute):
				return "done", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}}
		rep, err := cairn.Run(t.Context(), cairn.Steps(step), &cairn.RunOptions{
			Prefix: "mem://p", Storage: storage, Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil || rep.Count(cairn.Ran) != 1 {
			t.Fatalf("Run = %v; want the step to run and commit", err)
		}
	})
}
