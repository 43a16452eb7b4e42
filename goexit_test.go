package cairn_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/internal/statusfile"
)

// exitGoroutine stands in for a test helper that calls t.FailNow.
func exitGoroutine() { runtime.Goexit() }

// within fails the test if f does not return within a generous bound: the
// bug under test is a hang.
func within(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("hung: a step that called runtime.Goexit never finished")
	}
}

// Issue 8: a step function that ends its goroutine with runtime.Goexit (for
// example t.FailNow in a helper) fails the step with a *GoexitError naming
// the caller, releases its lease and leaves independent steps alone,
// instead of hanging the run forever.
func TestGoexitFailsStep(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	g := &cairn.Step{Name: "goexits", Func: func(context.Context, *cairn.Output) (any, error) {
		exitGoroutine()
		return "unreachable", nil
	}}
	ok := &cairn.Step{Name: "ok", Func: rec.Func("ok", nil)}
	var err error
	within(t, func() { _, err = run(t, st, nil, g, ok) })
	var ge *cairn.GoexitError
	if !errors.As(err, &ge) || len(ge.Stack) == 0 {
		t.Fatalf("err = %v, want a GoexitError with a stack", err)
	}
	if !strings.Contains(ge.Caller, "exitGoroutine") || !strings.Contains(ge.Caller, "goexit_test.go") {
		t.Errorf("GoexitError.Caller = %q, want exitGoroutine in goexit_test.go", ge.Caller)
	}
	if !strings.Contains(err.Error(), "runtime.Goexit") {
		t.Errorf("error %q does not say what happened", err)
	}
	if rec.Count("ok") != 1 {
		t.Error("independent step did not run")
	}
	if s := readStatus(t, st, g); s != statusfile.Failed {
		t.Errorf("status = %q, want FAILED", s)
	}
	if held, _ := st.StepBucket(t, g).Exists(t.Context(), statusfile.LockKey); held {
		t.Error("step kept its lease")
	}
}

// The worker side of a remote step calls user code too.
func TestGoexitFailsWorker(t *testing.T) {
	st := cairntest.NewStorage(t)
	g := &cairn.Step{Name: "goexits", Func: func(context.Context, *cairn.Output) (any, error) {
		exitGoroutine()
		return nil, nil
	}}
	id, _ := g.ID()
	var err error
	within(t, func() {
		err = cairn.RunWorker(t.Context(), cairn.Steps(g), &cairn.WorkerOptions{Step: id, Prefix: st.Prefix, Storage: st.Mux})
	})
	if _, ok := errors.AsType[*cairn.GoexitError](err); !ok {
		t.Fatalf("RunWorker = %v, want a GoexitError", err)
	}
}

// A panic still reads as a panic, including panic(nil), through the new
// goroutine.
func TestPanicNilIsPanic(t *testing.T) {
	st := cairntest.NewStorage(t)
	p := &cairn.Step{Name: "panics", Func: func(context.Context, *cairn.Output) (any, error) { panic(nil) }}
	_, err := run(t, st, nil, p)
	if _, ok := errors.AsType[*cairn.PanicError](err); !ok {
		t.Fatalf("err = %v, want a PanicError", err)
	}
}
