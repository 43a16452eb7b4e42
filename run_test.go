package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

func run(t *testing.T, st *cairntest.Storage, opts *cairn.RunOptions, steps ...*cairn.Step) (*cairn.Report, error) {
	t.Helper()
	if opts == nil {
		opts = st.Options()
	}
	return cairn.Run(t.Context(), cairn.Steps(steps...), opts)
}

func mustRun(t *testing.T, st *cairntest.Storage, opts *cairn.RunOptions, steps ...*cairn.Step) *cairn.Report {
	t.Helper()
	r, err := run(t, st, opts, steps...)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return r
}

func readStatus(t *testing.T, st *cairntest.Storage, s *cairn.Step) string {
	t.Helper()
	token, err := statusfile.ReadStatus(t.Context(), st.StepBucket(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func outcomes(r *cairn.Report) map[string]cairn.Outcome {
	m := map[string]cairn.Outcome{}
	for _, s := range r.Steps {
		m[s.Name] = s.Outcome
	}
	return m
}

// Scenario 9/10/12/14: a pipeline given only its terminal step runs its
// transitive deps first, in order; a second run runs nothing.
func TestRunWalksDepsInOrderAndCaches(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	dep := &cairn.Step{Name: "dep", Func: rec.Func("dep", nil)}
	mid := &cairn.Step{Name: "mid", Deps: []*cairn.Step{dep}, Func: rec.Func("mid", nil)}
	term := &cairn.Step{Name: "terminal", Deps: []*cairn.Step{mid}, Func: rec.Func("terminal", nil)}

	r := mustRun(t, st, nil, term)
	if got, want := rec.Executed(), []string{"dep", "mid", "terminal"}; !slices.Equal(got, want) {
		t.Errorf("executed %v, want %v", got, want)
	}
	if r.Count(cairn.Ran) != 3 {
		t.Errorf("first run: %d ran, want 3 (%v)", r.Count(cairn.Ran), outcomes(r))
	}
	for _, s := range []*cairn.Step{dep, mid, term} {
		if got := readStatus(t, st, s); got != "SUCCESS" {
			t.Errorf("status of %s = %q, want SUCCESS", s, got)
		}
		b := st.StepBucket(t, s)
		if ok, _ := b.Exists(t.Context(), statusfile.LockKey); ok {
			t.Errorf("%s: lease still present after success", s)
		}
		if _, ok, err := statusfile.ReadInfo(t.Context(), b); !ok || err != nil {
			t.Errorf("%s: .executor_info missing (%v)", s, err)
		}
	}

	// Reverse order, all given: still fine, and everything is cached.
	r = mustRun(t, st, nil, term, mid, dep)
	if n := len(rec.Executed()); n != 3 {
		t.Errorf("second run executed %d more steps", n-3)
	}
	if r.Count(cairn.Cached) != 3 {
		t.Errorf("second run: %v, want 3 cached", outcomes(r))
	}
}

// Scenario 15/17: a shared dependency runs once; a cached dep is recognised.
func TestSharedDependencyRunsOnce(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	dep := &cairn.Step{Name: "dep", Func: rec.Func("dep", nil)}
	a := &cairn.Step{Name: "a", Deps: []*cairn.Step{dep}, Func: rec.Func("a", nil)}
	b := &cairn.Step{Name: "b", Deps: []*cairn.Step{dep}, Func: rec.Func("b", nil)}
	// A second Step value with the same identity is the same step.
	depTwin := &cairn.Step{Name: "dep", Func: rec.Func("dep-twin", nil)}
	c := &cairn.Step{Name: "c", Deps: []*cairn.Step{depTwin, dep}, Func: rec.Func("c", nil)}
	mustRun(t, st, nil, a, b, c)
	if n := rec.Count("dep") + rec.Count("dep-twin"); n != 1 {
		t.Errorf("shared dep executed %d times, want 1", n)
	}
	down := &cairn.Step{Name: "down", Deps: []*cairn.Step{dep}, Func: rec.Func("down", nil)}
	r := mustRun(t, st, nil, down)
	if rec.Count("dep") != 1 || rec.Count("down") != 1 {
		t.Errorf("executed %v", rec.Executed())
	}
	if outcomes(r)["dep"] != cairn.Cached {
		t.Errorf("dep outcome %v, want cached", outcomes(r)["dep"])
	}
}

// Scenario 16: an unbounded generator is consumed lazily.
func TestUnboundedGenerator(t *testing.T) {
	st := cairntest.NewStorage(t)
	var ran atomic.Int32
	var depRan atomic.Int32
	dep := &cairn.Step{Name: "shared", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		depRan.Add(1)
		return nil, nil
	}}
	gen := func(yield func(*cairn.Step) bool) {
		for i := 0; ran.Load() < 3; i++ {
			s := &cairn.Step{Name: fmt.Sprintf("term%d", i), Deps: []*cairn.Step{dep}, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
				ran.Add(1)
				return nil, nil
			}}
			if !yield(s) {
				return
			}
			if i > 1_000_000 {
				panic("generator was drained without running steps")
			}
		}
	}
	if _, err := cairn.Run(t.Context(), gen, st.Options()); err != nil {
		t.Fatal(err)
	}
	if depRan.Load() != 1 || ran.Load() < 3 {
		t.Errorf("dep ran %d times, terminals %d; want 1 and >= 3", depRan.Load(), ran.Load())
	}
}

// Scenario 18 and §7: failures aggregate with the root cause reachable;
// dependents are skipped; independent branches continue.
func TestFailureChainingAndSkips(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	sentinel := errors.New("sentinel step failure")
	bad := &cairn.Step{Name: "failing_step", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		return nil, sentinel
	}}
	child := &cairn.Step{Name: "child", Deps: []*cairn.Step{bad}, Func: rec.Func("child", nil)}
	grandchild := &cairn.Step{Name: "grandchild", Deps: []*cairn.Step{child}, Func: rec.Func("grandchild", nil)}
	indep := &cairn.Step{Name: "independent", Func: rec.Func("independent", nil)}

	r, err := run(t, st, nil, grandchild, indep)
	if !errors.Is(err, sentinel) {
		t.Fatalf("Run error %v does not wrap the root cause", err)
	}
	var re *cairn.RunError
	if !errors.As(err, &re) || len(re.Failed) != 1 || !strings.HasPrefix(err.Error(), "1 step(s) failed") {
		t.Fatalf("Run error = %v, want a RunError with 1 failure", err)
	}
	var se *cairn.StepError
	if !errors.As(err, &se) || !strings.HasPrefix(se.Step, "failing_step_") {
		t.Errorf("StepError = %+v", se)
	}
	if len(re.Skipped) != 2 {
		t.Errorf("Skipped = %v, want child and grandchild", re.Skipped)
	}
	o := outcomes(r)
	if o["child"] != cairn.Skipped || o["grandchild"] != cairn.Skipped || o["independent"] != cairn.Ran || o["failing_step"] != cairn.Failed {
		t.Errorf("outcomes %v", o)
	}
	if got := rec.Executed(); !slices.Equal(got, []string{"independent"}) {
		t.Errorf("executed %v, want only independent", got)
	}
	if got := readStatus(t, st, bad); got != "FAILED" {
		t.Errorf("status %q, want FAILED", got)
	}
	f, ok, _ := statusfile.ReadFailure(t.Context(), st.StepBucket(t, bad))
	if !ok || !strings.Contains(f.Error, "sentinel") {
		t.Errorf("failure record = %+v, %v", f, ok)
	}
	if ok, _ := st.StepBucket(t, bad).Exists(t.Context(), statusfile.LockKey); ok {
		t.Error("lease left behind by a failed step")
	}
}

// Scenario 61: force_run_failed.
func TestRejectPreviouslyFailed(t *testing.T) {
	st := cairntest.NewStorage(t)
	fail := true
	step := &cairn.Step{Name: "flaky", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		if fail {
			return nil, errors.New("boom")
		}
		return nil, nil
	}}
	if _, err := run(t, st, nil, step); err == nil {
		t.Fatal("first run succeeded")
	}
	fail = false
	opts := st.Options()
	opts.RejectPreviouslyFailed = true
	if _, err := run(t, st, opts, step); !errors.Is(err, cairn.ErrPreviouslyFailed) {
		t.Fatalf("with RejectPreviouslyFailed: err = %v, want ErrPreviouslyFailed", err)
	}
	r := mustRun(t, st, nil, step)
	if outcomes(r)["flaky"] != cairn.Ran {
		t.Errorf("outcome %v, want ran", outcomes(r))
	}
}

func TestMaxConcurrentBoundsExecution(t *testing.T) {
	st := cairntest.NewStorage(t)
	const limit, n = 3, 12
	var cur, peak atomic.Int32
	started := make(chan struct{})
	release := make(chan struct{})
	var steps []*cairn.Step
	for i := range n {
		steps = append(steps, &cairn.Step{Name: fmt.Sprintf("s%d", i), Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			c := cur.Add(1)
			for {
				p := peak.Load()
				if c <= p || peak.CompareAndSwap(p, c) {
					break
				}
			}
			started <- struct{}{}
			<-release
			cur.Add(-1)
			return nil, nil
		}})
	}
	opts := st.Options()
	opts.MaxConcurrent = limit
	done := make(chan error)
	go func() { _, err := run(t, st, opts, steps...); done <- err }()
	// Fill every slot, then keep them full: each release lets exactly one
	// more step start.
	for range limit {
		<-started
	}
	if got := cur.Load(); got != limit {
		t.Errorf("%d steps running with all slots full, want %d", got, limit)
	}
	for range n - limit {
		release <- struct{}{}
		<-started
	}
	for range limit {
		release <- struct{}{}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if peak.Load() != limit {
		t.Errorf("peak concurrency %d, want %d", peak.Load(), limit)
	}
	opts.MaxConcurrent = -1
	if _, err := run(t, st, opts, steps...); !errors.Is(err, cairn.ErrInvalidPipeline) || !strings.Contains(err.Error(), "max_concurrent") {
		t.Errorf("MaxConcurrent -1: err = %v", err)
	}
}

func TestInvalidPipelines(t *testing.T) {
	st := cairntest.NewStorage(t)
	c1 := &cairn.Step{Name: "c1", Func: func(context.Context, *cairn.Output) (any, error) { return nil, nil }}
	c2 := &cairn.Step{Name: "c2", Deps: []*cairn.Step{c1}}
	c1.Deps = []*cairn.Step{c2}
	dupA := &cairn.Step{Name: "a", OverridePath: "same"}
	dupB := &cairn.Step{Name: "b", OverridePath: "same"}
	for _, tc := range []struct {
		name  string
		steps []*cairn.Step
		want  string
	}{
		{"cycle", []*cairn.Step{c2}, "cycle"},
		{"duplicate output", []*cairn.Step{dupA, dupB}, "both write to"},
		{"nil step", []*cairn.Step{nil}, "nil step"},
		{"bad name", []*cairn.Step{{Name: "../x"}}, "invalid step name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, st, nil, tc.steps...)
			if !errors.Is(err, cairn.ErrInvalidPipeline) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalidPipeline mentioning %q", err, tc.want)
			}
		})
	}
	if keys := st.Keys(t); len(keys) != 0 {
		t.Errorf("invalid pipelines wrote %v", keys)
	}
}

func TestNoFuncIsAClearError(t *testing.T) {
	st := cairntest.NewStorage(t)
	_, err := run(t, st, nil, &cairn.Step{Name: "empty"})
	if !errors.Is(err, cairn.ErrInvalidPipeline) || !strings.Contains(err.Error(), "no Func") {
		t.Errorf("err = %v", err)
	}
}

// Scenario 11 and the dry-run plan.
func TestDryRunWritesNothingAndPlans(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	cached := &cairn.Step{Name: "cached", Func: rec.Func("cached", nil)}
	mustRun(t, st, nil, cached)
	busy := &cairn.Step{Name: "busy", Func: rec.Func("busy", nil)}
	failedBefore := &cairn.Step{Name: "failed", Func: rec.Func("failed", nil)}
	fresh := &cairn.Step{Name: "fresh", Deps: []*cairn.Step{cached, busy, failedBefore}, Func: rec.Func("fresh", nil)}

	// Another worker holds busy; failed has a FAILED status.
	bb := st.StepBucket(t, busy)
	l, err := lease.Acquire(t.Context(), bb, statusfile.LockKey, "other-host-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	if err := statusfile.WriteStatus(t.Context(), bb, "RUNNING"); err != nil {
		t.Fatal(err)
	}
	if err := statusfile.WriteStatus(t.Context(), st.StepBucket(t, failedBefore), "FAILED"); err != nil {
		t.Fatal(err)
	}
	before := st.Keys(t)
	opts := st.Options()
	opts.DryRun = true
	r := mustRun(t, st, opts, fresh)
	if after := st.Keys(t); !slices.Equal(before, after) {
		t.Errorf("dry run changed storage:\nbefore %v\nafter  %v", before, after)
	}
	if n := len(rec.Executed()); n != 1 {
		t.Errorf("dry run executed steps: %v", rec.Executed())
	}
	want := map[string]cairn.Outcome{"cached": cairn.Cached, "busy": cairn.RunningElsewhere, "failed": cairn.FailedBefore, "fresh": cairn.WouldRun}
	if got := outcomes(r); !mapsEqual(got, want) {
		t.Errorf("plan %v, want %v", got, want)
	}
	res, _ := r.Lookup(mustID(t, busy))
	if res.Holder != "other-host-1" {
		t.Errorf("busy holder %q", res.Holder)
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func mustID(t *testing.T, s *cairn.Step) string {
	t.Helper()
	id, err := s.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Scenario 67 and --run-only: matching steps plus their unfinished deps.
func TestRunOnly(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	a := &cairn.Step{Name: "a", Func: rec.Func("a", nil)}
	b := &cairn.Step{Name: "b", Deps: []*cairn.Step{a}, Func: rec.Func("b", nil)}
	c := &cairn.Step{Name: "c", Deps: []*cairn.Step{a}, Func: rec.Func("c", nil)}
	d := &cairn.Step{Name: "d", Func: rec.Func("d", nil)}
	opts := st.Options()
	opts.RunOnly = []*regexp.Regexp{regexp.MustCompile(`^b$`)}
	mustRun(t, st, opts, b, c, d)
	if got := rec.Executed(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("executed %v, want [a b]", got)
	}
	opts.RunOnly = []*regexp.Regexp{regexp.MustCompile(`^nothing$`)}
	if _, err := run(t, st, opts, b, c); !errors.Is(err, cairn.ErrInvalidPipeline) || !strings.Contains(err.Error(), "matched no step") {
		t.Errorf("unmatched --run-only: err = %v", err)
	}
}

// Typed artifacts: saved as JSON, loaded typed by dependents and after runs.
func TestTypedArtifacts(t *testing.T) {
	st := cairntest.NewStorage(t)
	type Shards struct {
		Paths []string `json:"paths"`
		Docs  int      `json:"docs"`
	}
	type Tokens struct {
		Count int `json:"count"`
	}
	download := &cairn.Step{Name: "download", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		var paths []string
		for i := range 3 {
			key := fmt.Sprintf("shard-%d.txt", i)
			if _, err := out.Bucket.Write(ctx, key, []byte(strings.Repeat("word ", 10))); err != nil {
				return nil, err
			}
			paths = append(paths, key)
		}
		return Shards{Paths: paths, Docs: 30}, nil
	}}
	tokenize := &cairn.Step{Name: "tokenize", Deps: []*cairn.Step{download}, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		shards, err := cairn.Load[Shards](ctx, out, download)
		if err != nil {
			return nil, err
		}
		in, err := out.OpenDep(ctx, download)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, p := range shards.Paths {
			data, _, err := in.Read(ctx, p)
			if err != nil {
				return nil, err
			}
			n += len(strings.Fields(string(data)))
		}
		return &Tokens{Count: n}, nil
	}}
	nothing := &cairn.Step{Name: "nothing", Func: func(context.Context, *cairn.Output) (any, error) { return (*Tokens)(nil), nil }}
	mustRun(t, st, nil, tokenize, nothing)
	tok, err := cairn.LoadArtifact[Tokens](t.Context(), st.Mux, st.Prefix, tokenize)
	if err != nil || tok.Count != 30 {
		t.Errorf("tokenize artifact = %+v, %v; want 30 tokens", tok, err)
	}
	sh, err := cairn.LoadArtifact[map[string]any](t.Context(), st.Mux, st.Prefix, download)
	if err != nil || sh["docs"] != float64(30) {
		t.Errorf("untyped download artifact = %v, %v", sh, err)
	}
	if _, err := cairn.LoadArtifact[Tokens](t.Context(), st.Mux, st.Prefix, nothing); !errors.Is(err, cairn.ErrNoArtifact) {
		t.Errorf("nil artifact: err = %v, want ErrNoArtifact", err)
	}
}

// A panicking step fails with a *PanicError, its lease is released and other
// steps are unaffected.
func TestPanicIsRecovered(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	p := &cairn.Step{Name: "panics", Func: func(context.Context, *cairn.Output) (any, error) { panic("kaboom") }}
	ok := &cairn.Step{Name: "ok", Func: rec.Func("ok", nil)}
	_, err := run(t, st, nil, p, ok)
	var pe *cairn.PanicError
	if !errors.As(err, &pe) || pe.Value != "kaboom" || len(pe.Stack) == 0 {
		t.Fatalf("err = %v, want a PanicError with a stack", err)
	}
	if rec.Count("ok") != 1 {
		t.Error("independent step did not run")
	}
	if readStatus(t, st, p) != "FAILED" {
		t.Error("panicked step not FAILED")
	}
	if ok, _ := st.StepBucket(t, p).Exists(t.Context(), statusfile.LockKey); ok {
		t.Error("panicked step kept its lease")
	}
	f, _, _ := statusfile.ReadFailure(t.Context(), st.StepBucket(t, p))
	if !strings.Contains(f.Stack, "run_test.go") {
		t.Errorf("failure record has no stack: %+v", f)
	}
}

// Interrupting a run releases leases at once and restores the status, so the
// next run starts the step without waiting for a stale lease.
func TestInterruptReleasesLease(t *testing.T) {
	st := cairntest.NewStorage(t)
	gate := cairntest.NewGate()
	s := &cairn.Step{Name: "long", Func: gate.Func()}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	var report *cairn.Report
	go func() {
		var err error
		report, err = cairn.Run(ctx, cairn.Steps(s), st.Options())
		done <- err
	}()
	<-gate.Started
	if got := readStatus(t, st, s); got != "RUNNING" {
		t.Errorf("status while running = %q", got)
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if outcomes(report)["long"] != cairn.Interrupted {
		t.Errorf("outcome %v", outcomes(report))
	}
	b := st.StepBucket(t, s)
	if ok, _ := b.Exists(t.Context(), statusfile.LockKey); ok {
		t.Error("lease not released on interrupt")
	}
	if got := readStatus(t, st, s); got != "" {
		t.Errorf("status after interrupt = %q, want none", got)
	}
	// The next run starts at once.
	go func() { _, err := cairn.Run(t.Context(), cairn.Steps(s), st.Options()); done <- err }()
	<-gate.Started
	gate.Release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A run whose last step ends because the run was cancelled returns the
// cancellation even when the step's completion and the cancellation reach
// the scheduler together: a select between them used to take the
// completion and drop the cancellation about one time in two, and the
// interrupted run returned no error (exit 0 from the CLI). The steps'
// sequence, which the scheduler pulls on its own goroutine, holds it until
// the attempt has cleaned up, so that both are ready when it selects.
func TestInterruptedLastStepReturnsCause(t *testing.T) {
	for i := range 20 {
		st := cairntest.NewStorage(t)
		ctx, cancel := context.WithCancel(t.Context())
		returned := make(chan struct{})
		s := &cairn.Step{Name: "last", Func: func(ctx context.Context, _ *cairn.Output) (any, error) {
			defer close(returned)
			cancel()
			<-ctx.Done()
			return nil, ctx.Err()
		}}
		steps := func(yield func(*cairn.Step) bool) {
			if !yield(s) {
				return
			}
			<-returned
			b := st.StepBucket(t, s)
			for {
				if ok, err := b.Exists(t.Context(), statusfile.LockKey); err == nil && !ok {
					break
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(5 * time.Millisecond) // the completion's send follows the release
		}
		report, err := cairn.Run(ctx, steps, st.Options())
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("run %d: err = %v, want context.Canceled (outcomes %v)", i, err, outcomes(report))
		}
	}
}

// A step held by another live worker is waited for; when that worker
// finishes, the step counts as completed elsewhere and is not re-run.
func TestWaitsForAnotherWorker(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	s := &cairn.Step{Name: "shared", Func: rec.Func("shared", nil)}
	after := &cairn.Step{Name: "after", Deps: []*cairn.Step{s}, Func: rec.Func("after", nil)}
	b := st.StepBucket(t, s)
	l, err := lease.Acquire(t.Context(), b, statusfile.LockKey, "elsewhere-7", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := statusfile.WriteStatus(t.Context(), b, "RUNNING"); err != nil {
		t.Fatal(err)
	}
	opts := st.Options()
	opts.PollInterval = time.Millisecond
	waiting := make(chan struct{})
	var once sync.Once
	opts.OnEvent = func(e cairn.Event) {
		if e.Kind == cairn.StepWaiting && e.Holder == "elsewhere-7" {
			once.Do(func() { close(waiting) })
		}
	}
	done := make(chan *cairn.Report)
	go func() { r, _ := run(t, st, opts, after); done <- r }()
	<-waiting
	// The other worker finishes: terminal status under the lease, then release.
	if err := statusfile.WriteStatus(t.Context(), b, "SUCCESS"); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if got := outcomes(r); got["shared"] != cairn.CompletedElsewhere || got["after"] != cairn.Ran {
		t.Errorf("outcomes %v", got)
	}
	if rec.Count("shared") != 0 {
		t.Error("step held elsewhere was re-run")
	}
}

// Scenario 46/51: a stale lease is taken over and the step runs. Staleness
// is observed, not computed from the dead holder's timestamp: the runner
// takes over once it has watched the record unchanged for StaleAfter.
func TestStaleLeaseTakenOver(t *testing.T) {
	for name, stamp := range map[string]time.Time{
		"recent":  time.Now(),
		"future":  time.Now().Add(time.Hour),
		"ancient": time.Now().Add(-lease.DefaultAncientAfter - time.Minute),
	} {
		t.Run(name, func(t *testing.T) {
			st := cairntest.NewStorage(t)
			var rec cairntest.Recorder
			s := &cairn.Step{Name: "orphan", Func: rec.Func("orphan", nil)}
			b := st.StepBucket(t, s)
			dead := lease.Record{WorkerID: "dead-host-1", Timestamp: stamp}
			if _, err := b.Write(t.Context(), statusfile.LockKey, dead.Marshal()); err != nil {
				t.Fatal(err)
			}
			if err := statusfile.WriteStatus(t.Context(), b, "RUNNING"); err != nil {
				t.Fatal(err)
			}
			opts := st.Options()
			opts.Lease = &lease.Options{Interval: 20 * time.Millisecond, StaleAfter: 100 * time.Millisecond}
			opts.PollInterval = 10 * time.Millisecond
			r := mustRun(t, st, opts, s)
			res := r.Steps[0]
			if res.Outcome != cairn.TookOver || res.Holder != "dead-host-1" {
				t.Errorf("result %+v, want took over from dead-host-1", res)
			}
			if rec.Count("orphan") != 1 || readStatus(t, st, s) != "SUCCESS" {
				t.Error("orphan did not run to success")
			}
		})
	}
}

// Corrupt and foreign control files give clear errors and lose nothing.
func TestCorruptControlFiles(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	badStatus := &cairn.Step{Name: "badstatus", Func: rec.Func("badstatus", nil)}
	badLease := &cairn.Step{Name: "badlease", Func: rec.Func("badlease", nil)}
	legacy := &cairn.Step{Name: "legacy", Func: rec.Func("legacy", nil)}
	if _, err := st.StepBucket(t, badStatus).Write(t.Context(), statusfile.StatusKey, []byte("GARBAGE")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StepBucket(t, badLease).Write(t.Context(), statusfile.LockKey, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	legacyLog := `{"date": "2025-01-01", "status": "WAITING", "message": null}
{"date": "2025-01-01", "status": "RUNNING", "message": null}
{"date": "2025-01-02", "status": "SUCCESS", "message": null}
`
	if _, err := st.StepBucket(t, legacy).Write(t.Context(), statusfile.StatusKey, []byte(legacyLog)); err != nil {
		t.Fatal(err)
	}
	r, err := run(t, st, nil, badStatus, badLease, legacy)
	if err == nil {
		t.Fatal("corrupt files did not fail the run")
	}
	for _, want := range []string{`unknown status "GARBAGE"`, "delete the file", "corrupt lease record"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if o := outcomes(r); o["legacy"] != cairn.Cached {
		t.Errorf("legacy JSON-lines SUCCESS status: outcome %v, want cached", o["legacy"])
	}
	if len(rec.Executed()) != 0 {
		t.Errorf("executed %v", rec.Executed())
	}
	data, _, _ := st.StepBucket(t, badStatus).Read(t.Context(), statusfile.StatusKey)
	if string(data) != "GARBAGE" {
		t.Error("corrupt status file was modified")
	}
}

// A lost lease cancels the step's context with ErrLeaseLost. It is not a
// failure of the step: the run goes back to waiting for the new holder,
// never overwrites what that holder writes, and reports the step completed
// by it.
func TestLeaseLossCancelsStepAndWaits(t *testing.T) {
	st := cairntest.NewStorage(t)
	started := make(chan *cairn.Output, 1)
	causes := make(chan error, 1)
	runs := 0
	s := &cairn.Step{Name: "victim", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		runs++
		started <- out
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return "loser's artifact", context.Cause(ctx)
	}}
	opts := st.Options()
	opts.Lease = &lease.Options{Interval: time.Millisecond, StaleAfter: time.Hour}
	opts.PollInterval = 5 * time.Millisecond
	done := make(chan error)
	var report *cairn.Report
	go func() { r, err := run(t, st, opts, s); report = r; done <- err }()
	<-started
	// Another worker takes the lease over (as if ours had gone stale). It
	// writes through the runner's bucket: the step's own Output.Bucket
	// cannot write control files.
	b := st.StepBucket(t, s)
	usurper := lease.Record{WorkerID: "usurper-1", Timestamp: time.Now()}
	if _, err := b.Write(t.Context(), statusfile.LockKey, usurper.Marshal()); err != nil {
		t.Fatal(err)
	}
	if err := statusfile.WriteStatus(t.Context(), b, "RUNNING"); err != nil {
		t.Fatal(err)
	}
	if cause := <-causes; !errors.Is(cause, cairn.ErrLeaseLost) || !strings.Contains(cause.Error(), "usurper-1") {
		t.Fatalf("cause = %v; want ErrLeaseLost naming usurper-1", cause)
	}
	select {
	case err := <-done:
		t.Fatalf("the run ended (%v) while the new holder still runs the step", err)
	case <-time.After(50 * time.Millisecond):
	}
	if got := readStatus(t, st, s); got != "RUNNING" {
		t.Errorf("status %q: the loser overwrote the new holder's status", got)
	}
	// The new holder finishes.
	if err := statusfile.WriteArtifact(t.Context(), b, "usurper's artifact"); err != nil {
		t.Fatal(err)
	}
	if err := statusfile.WriteStatus(t.Context(), b, "SUCCESS"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(t.Context(), statusfile.LockKey); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run = %v, want success: the new holder completed the step", err)
	}
	if o := outcomes(report); o["victim"] != cairn.CompletedElsewhere {
		t.Errorf("outcome %v, want completed by another worker", o["victim"])
	}
	if got, err := cairn.LoadArtifact[string](t.Context(), st.Mux, st.Prefix, s); err != nil || got != "usurper's artifact" {
		t.Errorf("artifact %q, %v; want the usurper's", got, err)
	}
	if runs != 1 {
		t.Errorf("step ran %d times", runs)
	}
}

// Scenario 62/63: runners in one process share steps; each step runs once.
func TestConcurrentRunnersRunEachStepOnce(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	slow := func(name string) cairn.Func {
		return func(ctx context.Context, out *cairn.Output) (any, error) {
			rec.Record(name)
			time.Sleep(5 * time.Millisecond) // widen the window for a duplicate
			return nil, nil
		}
	}
	var steps []*cairn.Step
	for i := range 20 {
		steps = append(steps, &cairn.Step{Name: fmt.Sprintf("s%d", i%10), Attrs: map[string]int{"i": i % 10}, Func: slow(fmt.Sprintf("s%d", i%10))})
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			opts := st.Options()
			opts.PollInterval = time.Millisecond
			if _, err := run(t, st, opts, steps...); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range 10 {
		if n := rec.Count(fmt.Sprintf("s%d", i)); n != 1 {
			t.Errorf("s%d executed %d times", i, n)
		}
	}
}

func TestRunStep(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	s := &cairn.Step{Name: "single", Func: rec.Func("single", map[string]int{"n": 1})}
	r, err := cairn.RunStep(t.Context(), s, st.Options())
	if err != nil || r.Outcome != cairn.Ran {
		t.Fatalf("RunStep = %+v, %v", r, err)
	}
	r, err = cairn.RunStep(t.Context(), s, st.Options())
	if err != nil || r.Outcome != cairn.Cached {
		t.Fatalf("second RunStep = %+v, %v", r, err)
	}
}

// Events arrive in order from one goroutine, and every step finishes once.
func TestEvents(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	steps := cairntest.Chain("c", 5, func(i int) cairn.Func { return rec.Func("x", nil) })
	opts := st.Options()
	opts.OnEvent = rec.OnEvent
	mustRun(t, st, opts, steps[4])
	var finished []string
	for _, e := range rec.Events() {
		if e.Kind == cairn.StepFinished {
			finished = append(finished, e.Step)
		}
	}
	var want []string
	for _, s := range steps {
		want = append(want, mustID(t, s))
	}
	if !slices.Equal(finished, want) {
		t.Errorf("finished %v, want %v", finished, want)
	}
}

// Storage errors surface as step failures naming the location.
func TestStorageFaultsFailTheStepCleanly(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	s := &cairn.Step{Name: "s", Func: rec.Func("s", nil)}
	st.NS.SetFaults(memstoreFaultsOnStatusWrite())
	_, err := run(t, st, nil, s)
	if !errors.Is(err, store.ErrPermission) {
		t.Fatalf("err = %v, want a permission error", err)
	}
	if ok, _ := st.StepBucket(t, s).Exists(t.Context(), statusfile.LockKey); ok {
		t.Error("lease left behind after a storage failure")
	}
}

var _ iter.Seq[*cairn.Step] = cairn.Steps()

// memstoreFaultsOnStatusWrite denies every write of a status file.
func memstoreFaultsOnStatusWrite() memstore.Faults {
	return memstore.Faults{BeforeOp: func(op, key string) error {
		if op == "write" && strings.HasSuffix(key, statusfile.StatusKey) {
			return fmt.Errorf("injected: %w", store.ErrPermission)
		}
		return nil
	}}
}
