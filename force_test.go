package cairn_test

import (
	"context"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/lease"
)

// Issue 9: --force re-runs a cached step under the lease, as any run does:
// a forced run finding the step held waits for the holder and takes its
// result, instead of running beside it.
func TestForceRunsUnderTheLease(t *testing.T) {
	st := cairntest.NewStorage(t)
	var runs atomic.Int32
	step := &cairn.Step{Name: "s", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		return map[string]int32{"run": runs.Add(1)}, nil
	}}
	dep := &cairn.Step{Name: "d", Deps: []*cairn.Step{step}, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		return cairn.Load[map[string]int32](ctx, out, step)
	}}
	run := func(force bool, onEvent func(cairn.Event)) *cairn.Report {
		t.Helper()
		opts := st.Options()
		opts.PollInterval = 10 * time.Millisecond
		opts.OnEvent = onEvent
		if force {
			opts.Force = []*regexp.Regexp{regexp.MustCompile("^s$")}
		}
		r, err := cairn.Run(t.Context(), cairn.Steps(dep), opts)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	run(false, nil)
	r := run(true, nil)
	if got, _ := r.Lookup(step.String()); got.Outcome != cairn.Ran {
		t.Errorf("forced step: %v, want ran", got.Outcome)
	}
	if got, _ := r.Lookup(dep.String()); got.Outcome != cairn.Cached {
		t.Errorf("its dependent: %v, want cached (same identity)", got.Outcome)
	}
	v, err := cairn.LoadArtifact[map[string]int32](t.Context(), st.Options().Storage, st.Options().Prefix, step)
	if err != nil || v["run"] != 2 {
		t.Errorf("artifact after the forced run: %v, %v; want run 2", v, err)
	}

	// Another worker holds the step: the forced run waits, then accepts
	// what the holder left.
	b := st.StepBucket(t, step)
	l, err := lease.Acquire(t.Context(), b, ".executor_status.lock", "other-1-abcdef.1", nil)
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	var once sync.Once // StepWaiting comes at every poll
	done := make(chan *cairn.Report)
	go func() {
		done <- run(true, func(e cairn.Event) {
			if e.Kind == cairn.StepWaiting {
				once.Do(func() { close(waiting) })
			}
		})
	}()
	<-waiting
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	r = <-done
	if got, _ := r.Lookup(step.String()); got.Outcome != cairn.CompletedElsewhere {
		t.Errorf("forced step held elsewhere: %v, want completed by another worker", got.Outcome)
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("the step ran %d times, want 2", n)
	}
}
