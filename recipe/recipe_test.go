package recipe_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/recipe"
)

// env is in-memory storage plus run options suited to tests: a short poll
// interval so that a runner waiting for another notices its end at once.
type env struct {
	st *cairntest.Storage
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{st: cairntest.NewStorage(t)}
}

func (e *env) opts() *cairn.RunOptions {
	o := e.st.Options()
	o.PollInterval = 2 * time.Millisecond
	return o
}

func (e *env) run(t *testing.T, steps ...recipe.Node) *cairn.Report {
	t.Helper()
	rep, err := recipe.Run(t.Context(), steps, e.opts(), nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rep
}

func (e *env) plan(t *testing.T, steps ...recipe.Node) *recipe.Plan {
	t.Helper()
	pl, err := recipe.Resolve(e.st.Prefix, steps...)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// read returns the content of key under location.
func (e *env) read(t *testing.T, location, key string) []byte {
	t.Helper()
	data, _, err := e.st.Bucket(t, location).Read(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func (e *env) status(t *testing.T, location string) string {
	t.Helper()
	s, err := statusfile.ReadStatus(t.Context(), e.st.Bucket(t, location))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// outcomes maps step names to outcomes.
func outcomes(r *cairn.Report) map[string]cairn.Outcome {
	m := make(map[string]cairn.Outcome)
	for _, s := range r.Steps {
		m[s.Name] = s.Outcome
	}
	return m
}

// log records lines from step functions.
type log struct {
	mu    sync.Mutex // guards lines
	lines []string
}

func (l *log) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *log) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// Scenario 60: a -> b with a sub-path input, an own output, a versioned and
// an unversioned field; records and statuses.
func TestBasic(t *testing.T) {
	e := newEnv(t)
	var l log
	a := recipe.New("a", func(ctx context.Context, _ empty) error {
		l.add("a")
		return nil
	}, empty{}, nil)
	type aConfig struct {
		Out recipe.Output `json:"out"`
	}
	// a2 writes a file under its sub-path "sub" for b to read.
	a2 := recipe.New("a2", func(ctx context.Context, c aConfig) error {
		b, err := c.Out.Open(ctx)
		if err != nil {
			return err
		}
		_, err = b.Write(ctx, "sub/data.txt", []byte("hello"))
		return err
	}, aConfig{}, nil)
	b := recipe.New("b", func(ctx context.Context, c bConfig) error {
		l.add("b in=%s out=%s n=%d m=%d", c.InputPath.Path(), c.OutputPath.Path(), c.N.Value(), c.M)
		return nil
	}, bConfig{InputPath: recipe.OutputOf(a, "sub"), N: recipe.V(3), M: 4}, nil)
	type readConfig struct {
		In recipe.Input `json:"in"`
	}
	reader := recipe.New("reader", func(ctx context.Context, c readConfig) error {
		bk, err := c.In.Open(ctx)
		if err != nil {
			return err
		}
		data, _, err := bk.Read(ctx, "data.txt")
		l.add("reader read %q", data)
		return err
	}, readConfig{In: recipe.OutputOf(a2, "sub")}, nil)

	rep := e.run(t, b, reader)
	if got := rep.Count(cairn.Ran); got != 4 {
		t.Errorf("%d steps ran, want 4: %v", got, outcomes(rep))
	}
	prefix := e.st.Prefix
	pathA, pathB := prefix+"/a-d85366", prefix+"/b-c5c1bd" // hashes of testdata/versions/basic.json
	want := []string{"a", fmt.Sprintf("b in=%s/sub out=%s n=3 m=4", pathA, pathB)}
	got := l.get()
	ia, ib := slices.Index(got, want[0]), slices.Index(got, want[1])
	if ia < 0 || ib < ia || !slices.Contains(got, `reader read "hello"`) {
		t.Errorf("step log %q, want %q (in this order) and the reader's line", got, want)
	}

	pl := e.plan(t, b, reader)
	for _, s := range []recipe.Node{a, b, a2, reader} {
		p, err := pl.OutputPath(s)
		if err != nil {
			t.Fatal(err)
		}
		if st := e.status(t, p); st != statusfile.Success {
			t.Errorf("%s: status %q, want SUCCESS", s.Name(), st)
		}
		info, err := pl.Info(s)
		if err != nil {
			t.Fatal(err)
		}
		var got, wantInfo map[string]any
		mustUnmarshal(t, e.read(t, p, statusfile.InfoKey), &got)
		mustUnmarshal(t, mustMarshal(t, info), &wantInfo)
		if diff := cmp.Diff(wantInfo, got); diff != "" {
			t.Errorf("%s: .executor_info (-want +got):\n%s", s.Name(), diff)
		}
	}
	info, _ := pl.Info(b)
	var cfg map[string]any
	mustUnmarshal(t, info.Config, &cfg)
	wantCfg := map[string]any{"input_path": pathA + "/sub", "output_path": pathB, "n": 3.0, "m": 4.0}
	if diff := cmp.Diff(wantCfg, cfg); diff != "" {
		t.Errorf("b's recorded config (-want +got):\n%s", diff)
	}
	if got, want := info.Dependencies, []string{pathA}; !slices.Equal(got, want) {
		t.Errorf("b's dependencies %q, want %q", got, want)
	}

	// The experiment record: prefix and the step infos.
	expPath := pl.ExperimentPath(nil)
	if !strings.HasPrefix(expPath, prefix+"/experiments/recipe-") {
		t.Errorf("experiment path %s, want %s/experiments/recipe-HASH6.json", expPath, prefix)
	}
	var exp recipe.Experiment
	mustUnmarshal(t, e.read(t, prefix, strings.TrimPrefix(expPath, prefix+"/")), &exp)
	if exp.Prefix != prefix || exp.GitCommit != nil || exp.User != nil || exp.WorkerID == "" || exp.CreatedDate == "" {
		t.Errorf("experiment header %+v", exp)
	}
	var gotSteps, wantSteps []map[string]any
	mustUnmarshal(t, mustMarshal(t, exp.Steps), &gotSteps)
	mustUnmarshal(t, mustMarshal(t, pl.Infos()), &wantSteps)
	if diff := cmp.Diff(wantSteps, gotSteps); diff != "" {
		t.Errorf("experiment steps (-want +got):\n%s", diff)
	}

	// A second run finds everything cached.
	rep = e.run(t, b, reader)
	if got := rep.Count(cairn.Cached); got != 4 {
		t.Errorf("second run: %d cached, want 4: %v", got, outcomes(rep))
	}
}

func mustResolve(t *testing.T, prefix string, steps ...recipe.Node) *recipe.Plan {
	t.Helper()
	pl, err := recipe.Resolve(prefix, steps...)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
}

// Scenario 61: a failed step fails the run; without force-run-failed it is
// an error the next time; with it, it and its dependent run.
func TestForceRunFailed(t *testing.T) {
	e := newEnv(t)
	var l log
	var fail atomic.Bool
	fail.Store(true)
	type dep struct {
		In recipe.Input `json:"in"`
	}
	a := recipe.New("a", func(context.Context, empty) error { l.add("a"); return nil }, empty{}, nil)
	b := recipe.New("b", func(context.Context, dep) error {
		if fail.Load() {
			return errors.New("boom")
		}
		l.add("b")
		return nil
	}, dep{In: recipe.OutputOf(a, "")}, nil)
	c := recipe.New("c", func(context.Context, dep) error { l.add("c"); return nil }, dep{In: recipe.OutputOf(b, "")}, nil)

	_, err := recipe.Run(t.Context(), []recipe.Node{c}, e.opts(), nil)
	if err == nil || !strings.Contains(err.Error(), "1 step(s) failed") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("first run: %v, want 1 step(s) failed ... boom", err)
	}
	if got := l.get(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("first run log %q, want [a]", got)
	}

	fail.Store(false)
	o := e.opts()
	o.RejectPreviouslyFailed = true
	_, err = recipe.Run(t.Context(), []recipe.Node{c}, o, nil)
	if !errors.Is(err, cairn.ErrPreviouslyFailed) {
		t.Fatalf("run without force-run-failed: %v, want ErrPreviouslyFailed", err)
	}

	rep := e.run(t, c)
	want := map[string]cairn.Outcome{"a": cairn.Cached, "b": cairn.Ran, "c": cairn.Ran}
	if got := outcomes(rep); !maps.Equal(got, want) {
		t.Errorf("forced run: %v, want %v", got, want)
	}
}

// Scenario 62: two runners share a step; it runs once, and the second
// runner's dependent step waits for it.
func TestTwoRunnersShareAStep(t *testing.T) {
	e := newEnv(t)
	var counter atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	a := recipe.New("a", func(ctx context.Context, _ empty) error {
		started <- struct{}{}
		<-release
		counter.Add(1)
		return nil
	}, empty{}, nil)
	type dep struct {
		In recipe.Input `json:"in"`
	}
	b := recipe.New("b", func(context.Context, dep) error {
		counter.Add(2)
		return nil
	}, dep{In: recipe.OutputOf(a, "")}, nil)

	waiting := make(chan struct{})
	var once sync.Once
	o2 := e.opts()
	o2.OnEvent = func(ev cairn.Event) {
		if ev.Kind == cairn.StepWaiting {
			once.Do(func() { close(waiting) })
		}
	}
	var wg sync.WaitGroup
	var rep1, rep2 *cairn.Report
	var err1, err2 error
	wg.Go(func() { rep1, err1 = recipe.Run(t.Context(), []recipe.Node{a}, e.opts(), nil) })
	<-started // runner 1 holds a
	wg.Go(func() { rep2, err2 = recipe.Run(t.Context(), []recipe.Node{a, b}, o2, nil) })
	<-waiting // runner 2 waits for a
	close(release)
	wg.Wait()
	if err1 != nil || err2 != nil {
		t.Fatalf("runs: %v, %v", err1, err2)
	}
	if got := counter.Load(); got != 3 {
		t.Errorf("counter %d, want 3 (a once, then b)", got)
	}
	if got := outcomes(rep1)["a"]; got != cairn.Ran {
		t.Errorf("runner 1: a %v, want ran", got)
	}
	want := map[string]cairn.Outcome{"a": cairn.CompletedElsewhere, "b": cairn.Ran}
	if got := outcomes(rep2); !maps.Equal(got, want) {
		t.Errorf("runner 2: %v, want %v", got, want)
	}
}

// Scenario 63: ten runners, each with its own identical step, race; the
// step executes exactly once and writes exactly one file.
func TestTenRacingRunners(t *testing.T) {
	e := newEnv(t)
	const runners = 10
	var execs atomic.Int64
	release := make(chan struct{})
	waiting := make(chan struct{}, runners)
	type cfg struct {
		Out   recipe.Output            `json:"out"`
		Token recipe.Versioned[string] `json:"token"`
	}
	build := func() recipe.Node {
		return recipe.New("race", func(ctx context.Context, c cfg) error {
			execs.Add(1)
			<-release
			b, err := c.Out.Open(ctx)
			if err != nil {
				return err
			}
			_, err = b.Write(ctx, fmt.Sprintf("file-%d", time.Now().UnixNano()), []byte("x"))
			return err
		}, cfg{Token: recipe.V("same")}, nil)
	}
	var wg sync.WaitGroup
	errs := make([]error, runners)
	reps := make([]*cairn.Report, runners)
	for i := range runners {
		o := e.opts()
		var once sync.Once // StepWaiting comes at every poll: count each runner once
		o.OnEvent = func(ev cairn.Event) {
			if ev.Kind == cairn.StepWaiting {
				once.Do(func() { waiting <- struct{}{} })
			}
		}
		step := build()
		wg.Go(func() { reps[i], errs[i] = recipe.Run(t.Context(), []recipe.Node{step}, o, nil) })
	}
	// Exactly one runner holds the step; the nine others wait for it.
	for range runners - 1 {
		<-waiting
	}
	close(release)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := execs.Load(); got != 1 {
		t.Errorf("%d executions, want 1", got)
	}
	ran := 0
	for _, r := range reps {
		ran += r.Count(cairn.Ran)
	}
	if ran != 1 {
		t.Errorf("%d runners report the step as ran, want 1", ran)
	}
	step := build()
	path, err := e.plan(t, step).OutputPath(step)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for k, err := range e.st.Bucket(t, path).List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(k, "file-") {
			files = append(files, k)
		}
	}
	if len(files) != 1 {
		t.Errorf("files %q, want exactly one", files)
	}
}

// Scenario 64: independent steps run concurrently: each waits until all
// have started.
func TestIndependentStepsRunInParallel(t *testing.T) {
	e := newEnv(t)
	const n = 6
	var started sync.WaitGroup
	started.Add(n)
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	type cfg struct {
		I recipe.Versioned[int] `json:"i"`
	}
	var steps []recipe.Node
	for i := range n {
		steps = append(steps, recipe.New("p", func(ctx context.Context, _ cfg) error {
			started.Done()
			select {
			case <-all:
				return nil
			case <-time.After(10 * time.Second):
				return errors.New("steps did not run in parallel")
			}
		}, cfg{I: recipe.V(i)}, nil))
	}
	if rep := e.run(t, steps...); rep.Count(cairn.Ran) != n {
		t.Errorf("%d ran, want %d", rep.Count(cairn.Ran), n)
	}
}

// Scenario 65: what changes b's output path.
func TestVersioning(t *testing.T) {
	type aCfg struct {
		InputPath recipe.Versioned[string] `json:"input_path"`
		N         recipe.Versioned[int]    `json:"n"`
		M         int                      `json:"m"`
	}
	type bCfg struct {
		Input recipe.Input          `json:"input"`
		N     recipe.Versioned[int] `json:"n"`
		M     int                   `json:"m"`
	}
	type params struct {
		aInput string
		aN, aM int
		name   string
		bN, bM int
	}
	base := params{aInput: "raw/x", aN: 1, aM: 10, name: "sub", bN: 3, bM: 20}
	pathOf := func(t *testing.T, p params) string {
		a := recipe.New("a", nop[aCfg], aCfg{InputPath: recipe.V(p.aInput), N: recipe.V(p.aN), M: p.aM}, nil)
		b := recipe.New("b", nop[bCfg], bCfg{Input: recipe.OutputOf(a, p.name), N: recipe.V(p.bN), M: p.bM}, nil)
		pl, err := recipe.Resolve("mem://p", b)
		if err != nil {
			t.Fatal(err)
		}
		path, _ := pl.OutputPath(b)
		return path
	}
	basePath := pathOf(t, base)
	for _, tc := range []struct {
		name    string
		mutate  func(*params)
		changes bool
	}{
		{"a's versioned input path", func(p *params) { p.aInput = "raw/y" }, true},
		{"a's versioned n", func(p *params) { p.aN = 2 }, true},
		{"the sub-path b reads", func(p *params) { p.name = "other" }, true},
		{"b's versioned n", func(p *params) { p.bN = 4 }, true},
		{"a's unversioned m", func(p *params) { p.aM = 11 }, false},
		{"b's unversioned m", func(p *params) { p.bM = 21 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			tc.mutate(&p)
			got := pathOf(t, p)
			if (got != basePath) != tc.changes {
				t.Errorf("b's path %s, base %s: changed = %v, want %v", got, basePath, got != basePath, tc.changes)
			}
		})
	}
}

// Scenario 74: a tokenizer change in a derived step's config changes its
// output path and its dependents', not its inputs'.
func TestTokenizerChange(t *testing.T) {
	paths := func(tokenizer string) (src, tok, merge string) {
		nodes := chainCaseWith(tokenizer)
		pl, err := recipe.Resolve("mem://p", nodes...)
		if err != nil {
			t.Fatal(err)
		}
		infos := pl.Infos()
		return infos[0].OutputPath, infos[1].OutputPath, infos[2].OutputPath
	}
	s1, t1, m1 := paths("gpt2")
	s2, t2, m2 := paths("llama3")
	if s1 != s2 || t1 == t2 || m1 == m2 {
		t.Errorf("gpt2: %s %s %s; llama3: %s %s %s; want the same source, different tokenize and merge", s1, t1, m1, s2, t2, m2)
	}
}

func chainCaseWith(tokenizer string) []recipe.Node {
	src := recipe.New("chain/src", nop[map[string]any], map[string]any{"url": recipe.V("s3://bucket/src")}, nil)
	tok := recipe.New("chain/tok", nop[tokConfig], tokConfig{Input: recipe.OutputOf(src, "docs"), Tokenizer: recipe.V(tokenizer), Workers: 8}, nil)
	merge := recipe.New("chain/merge", nop[[]any], []any{recipe.OutputOf(tok, "train"), recipe.OutputOf(tok, "valid"), recipe.V(2)}, nil)
	return []recipe.Node{merge}
}

// Scenario 66: identical steps built twice are one step.
func TestDedup(t *testing.T) {
	e := newEnv(t)
	var l log
	build := func() recipe.Node {
		a := recipe.New("a", func(context.Context, empty) error { l.add("a"); return nil }, empty{}, nil)
		return recipe.New("b", func(context.Context, bConfig) error { l.add("b"); return nil },
			bConfig{InputPath: recipe.OutputOf(a, "sub"), N: recipe.V(3), M: 4}, nil)
	}
	b1, b2 := build(), build()
	pl := e.plan(t, b1, b2)
	if got := len(pl.Infos()); got != 2 {
		t.Errorf("plan has %d steps, want 2", got)
	}
	p1, _ := pl.OutputPath(b1)
	p2, _ := pl.OutputPath(b2)
	if p1 != p2 {
		t.Errorf("identical steps have paths %s and %s", p1, p2)
	}
	e.run(t, b1, b2)
	if got := l.get(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("executions %q, want [a b]", got)
	}
	// Plans know steps by identity: an identical step that was not
	// resolved is not part of the plan.
	if path, err := pl.OutputPath(build()); err == nil {
		t.Errorf("a step that is not part of the plan has output path %s", path)
	}
}

// Scenario 67: --run-only selects matching steps and the dependencies they
// need.
func TestRunOnly(t *testing.T) {
	type dep struct {
		In recipe.Input `json:"in"`
	}
	for _, tc := range []struct {
		name     string
		patterns []string
		roots    string // "b,c" = the steps given to Run
		prerun   string // steps run before, with --run-only
		want     []string
		wantErr  string
	}{
		// a <- b <- d, and a <- c.
		{name: "^b$ of b and c", patterns: []string{"^b$"}, roots: "b,c", want: []string{"a", "b"}},
		{name: "a and c of a, b, c", patterns: []string{"a", "c"}, roots: "a,b,c", want: []string{"a", "c"}},
		{name: "deps of a succeeded step are not run", patterns: []string{"^d$"}, roots: "d", prerun: "^b$", want: []string{"d"}},
		{name: "a succeeded match is skipped", patterns: []string{"^b$"}, roots: "d", prerun: "^b$", want: nil},
		{name: "a non-root step", patterns: []string{"^b$"}, roots: "d", want: []string{"a", "b"}},
		{name: "one pattern matches nothing", patterns: []string{"^b$", "nomatch"}, roots: "d", want: []string{"a", "b"}},
		{name: "no pattern matches", patterns: []string{"nomatch", "x"}, roots: "d", wantErr: `--run-only "nomatch", "x" matched no step`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var l log
			fn := func(name string) func(context.Context, dep) error {
				return func(context.Context, dep) error { l.add("%s", name); return nil }
			}
			a := recipe.New("a", func(context.Context, empty) error { l.add("a"); return nil }, empty{}, nil)
			b := recipe.New("b", fn("b"), dep{In: recipe.OutputOf(a, "")}, nil)
			c := recipe.New("c", fn("c"), dep{In: recipe.OutputOf(a, "")}, nil)
			d := recipe.New("d", fn("d"), dep{In: recipe.OutputOf(b, "")}, nil)
			byName := map[string]recipe.Node{"a": a, "b": b, "c": c, "d": d}
			var roots []recipe.Node
			for n := range strings.SplitSeq(tc.roots, ",") {
				roots = append(roots, byName[n])
			}
			if tc.prerun != "" {
				o := e.opts()
				o.RunOnly = []*regexp.Regexp{regexp.MustCompile(tc.prerun)}
				if _, err := recipe.Run(t.Context(), roots, o, nil); err != nil {
					t.Fatal(err)
				}
				// a's output disappears: Marin's run_only does not look
				// at the dependencies of a step that succeeded (the
				// core's RunOnly would run a again).
				pa, _ := e.plan(t, a).OutputPath(a)
				if err := statusfile.DeleteStatus(t.Context(), e.st.Bucket(t, pa)); err != nil {
					t.Fatal(err)
				}
				l = log{}
			}
			o := e.opts()
			for _, p := range tc.patterns {
				o.RunOnly = append(o.RunOnly, regexp.MustCompile(p))
			}
			_, err := recipe.Run(t.Context(), roots, o, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, cairn.ErrInvalidPipeline) {
					t.Fatalf("error %v, want %q satisfying ErrInvalidPipeline", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := l.get()
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("ran %q, want %q", got, tc.want)
			}
			if len(o.RunOnly) != len(tc.patterns) {
				t.Errorf("Run modified the caller's RunOnly")
			}
		})
	}
}

// Scenarios 68-72: non-blocking references.
func TestNonblocking(t *testing.T) {
	type ckpt struct {
		Ckpt recipe.Input `json:"ckpt"`
	}
	parentFn := func(l *log, fail bool) func(context.Context, recipe.Versioned[string]) error {
		return func(context.Context, recipe.Versioned[string]) error {
			if fail {
				return errors.New("the parent must not run")
			}
			l.add("parent")
			return nil
		}
	}

	t.Run("68 collect", func(t *testing.T) {
		parent := recipe.New("parent", nop[recipe.Versioned[string]], recipe.V("p"), nil)
		for _, blocking := range []bool{false, true} {
			in := recipe.OutputOf(parent, "ckpt.pt")
			if !blocking {
				in = in.Nonblocking()
			}
			child := recipe.New("child", nop[recipe.Input], in, nil)
			info, err := mustResolve(t, "mem://p", child).Info(child)
			if err != nil {
				t.Fatal(err)
			}
			var v struct {
				Config map[string]string `json:"config"`
				Deps   []any             `json:"dependencies"`
				Pseudo []any             `json:"pseudo_dependencies"`
			}
			mustUnmarshal(t, info.Version, &v)
			if v.Config[""] != "DEP[0]/ckpt.pt" {
				t.Errorf("blocking=%v: version config %v, want {\"\": \"DEP[0]/ckpt.pt\"}", blocking, v.Config)
			}
			if blocking && (len(v.Deps) != 1 || v.Pseudo != nil) || !blocking && (len(v.Deps) != 0 || len(v.Pseudo) != 1) {
				t.Errorf("blocking=%v: %d dependencies, %d pseudo-dependencies", blocking, len(v.Deps), len(v.Pseudo))
			}
			if got := len(info.Dependencies); got != map[bool]int{true: 1, false: 0}[blocking] {
				t.Errorf("blocking=%v: recorded dependencies %q", blocking, info.Dependencies)
			}
		}
	})

	t.Run("69 parent version changes child version", func(t *testing.T) {
		childPath := func(p string) string {
			parent := recipe.New("parent", nop[recipe.Versioned[string]], recipe.V(p), nil)
			child := recipe.New("child", nop[ckpt], ckpt{Ckpt: recipe.OutputOf(parent, "c").Nonblocking()}, nil)
			path, _ := mustResolve(t, "mem://p", child).OutputPath(child)
			return path
		}
		if childPath("p1") == childPath("p2") {
			t.Error("the child's path ignores its non-blocking parent's version")
		}
	})

	t.Run("70 parent not run", func(t *testing.T) {
		e := newEnv(t)
		var l log
		parent := recipe.New("parent", parentFn(&l, true), recipe.V("p"), nil)
		child := recipe.New("child", func(ctx context.Context, c ckpt) error {
			l.add("child reads %s", strings.TrimPrefix(c.Ckpt.Path(), e.st.Prefix))
			return nil
		}, ckpt{Ckpt: recipe.OutputOf(parent, "ckpt").Nonblocking()}, nil)
		e.run(t, child)
		pl := e.plan(t, child)
		pp, _ := pl.OutputPath(parent)
		if got, want := l.get(), []string{"child reads " + strings.TrimPrefix(pp, e.st.Prefix) + "/ckpt"}; !slices.Equal(got, want) {
			t.Errorf("log %q, want %q", got, want)
		}
		if got := len(pl.Steps()); got != 1 {
			t.Errorf("Plan.Steps has %d steps, want 1 (the parent is not runnable)", got)
		}
		// Its record is written all the same, as Marin does.
		e.read(t, pp, statusfile.InfoKey)
		if st := e.status(t, pp); st != "" {
			t.Errorf("parent status %q, want none", st)
		}
	})

	t.Run("71 parent runs when named by run-only", func(t *testing.T) {
		e := newEnv(t)
		var l log
		parent := recipe.New("parent", parentFn(&l, false), recipe.V("p"), nil)
		child := recipe.New("child", func(context.Context, ckpt) error { l.add("child"); return nil },
			ckpt{Ckpt: recipe.OutputOf(parent, "").Nonblocking()}, nil)
		o := e.opts()
		o.RunOnly = []*regexp.Regexp{regexp.MustCompile("^parent$")}
		if _, err := recipe.Run(t.Context(), []recipe.Node{child}, o, nil); err != nil {
			t.Fatal(err)
		}
		if got := l.get(); !slices.Equal(got, []string{"parent"}) {
			t.Errorf("log %q, want [parent]", got)
		}
	})

	t.Run("72 parent runs if another child blocks on it", func(t *testing.T) {
		e := newEnv(t)
		var l log
		parent := recipe.New("parent", parentFn(&l, false), recipe.V("p"), nil)
		child := recipe.New("child", func(context.Context, ckpt) error { l.add("child"); return nil },
			ckpt{Ckpt: recipe.OutputOf(parent, "").Nonblocking()}, nil)
		blocker := recipe.New("blocker", func(context.Context, ckpt) error { l.add("blocker"); return nil },
			ckpt{Ckpt: recipe.OutputOf(parent, "")}, nil)
		e.run(t, child, blocker)
		got := l.get()
		if len(got) != 3 || slices.Index(got, "parent") > slices.Index(got, "blocker") {
			t.Errorf("log %q, want parent before blocker, and child", got)
		}
	})
}

// Typed artifacts: a producer's return value, loaded by a consumer.
func TestArtifacts(t *testing.T) {
	e := newEnv(t)
	type Stats struct {
		Docs int `json:"docs"`
	}
	produce := recipe.NewWithArtifact("produce", func(context.Context, recipe.Versioned[int]) (*Stats, error) {
		return &Stats{Docs: 42}, nil
	}, recipe.V(1), nil)
	none := recipe.New("none", nop[empty], empty{}, nil)
	type cfg struct {
		Stats recipe.Artifact[*Stats] `json:"stats"`
		None  recipe.Artifact[recipe.None]
	}
	var got int
	var noneErr error
	consume := recipe.NewWithArtifact("consume", func(ctx context.Context, c cfg) (int, error) {
		s, err := c.Stats.Load(ctx)
		if err != nil {
			return 0, err
		}
		got = s.Docs
		_, noneErr = c.None.Load(ctx)
		return s.Docs * 2, nil
	}, cfg{Stats: recipe.ArtifactOf(produce), None: recipe.ArtifactOf(none)}, nil)
	e.run(t, consume)
	if got != 42 {
		t.Errorf("loaded %d docs, want 42", got)
	}
	if !errors.Is(noneErr, cairn.ErrNoArtifact) {
		t.Errorf("loading the artifact of a step without one: %v, want ErrNoArtifact", noneErr)
	}
	pl := e.plan(t, consume)
	info, _ := pl.Info(consume)
	if !strings.Contains(string(info.Version), `"stats": "DEP[0]"`) {
		t.Errorf("an artifact reference versions as %s, want DEP[0]", info.Version)
	}
	path, _ := pl.OutputPath(consume)
	if got := string(e.read(t, path, statusfile.ArtifactKey)); got != "84" {
		t.Errorf("consume's artifact %s, want 84", got)
	}
}

// The function receives a resolved copy; the step's config is untouched,
// so a step can run again, and concurrently.
func TestConfigIsCopied(t *testing.T) {
	e := newEnv(t)
	a := recipe.New("a", nop[empty], empty{}, nil)
	type cfg struct {
		Ins  []recipe.Input          `json:"ins"`
		ByID map[string]recipe.Input `json:"by_id"`
		Ptr  *recipe.Input           `json:"ptr"`
		Any  any                     `json:"any"`
		Nil  *recipe.Input           `json:"nil"`
		Data []float64               `json:"data"`
	}
	ptr := recipe.OutputOf(a, "p")
	c := cfg{
		Ins:  []recipe.Input{recipe.OutputOf(a, "x")},
		ByID: map[string]recipe.Input{"k": recipe.Path("raw")},
		Ptr:  &ptr,
		Any:  recipe.ThisOutput("o"),
		Data: []float64{1, 2},
	}
	var seen []string
	s := recipe.New("s", func(ctx context.Context, c cfg) error {
		if _, err := c.ByID["k"].Open(ctx); err != nil {
			return err
		}
		seen = []string{c.Ins[0].Path(), c.ByID["k"].Path(), c.Ptr.Path(), c.Any.(recipe.Output).Path(), c.Ins[0].Join("y/z").Path()}
		return nil
	}, c, nil)
	e.run(t, s)
	pl := e.plan(t, s)
	pa, _ := pl.OutputPath(a)
	ps, _ := pl.OutputPath(s)
	want := []string{pa + "/x", e.st.Prefix + "/raw", pa + "/p", ps + "/o", pa + "/x/y/z"}
	if !slices.Equal(seen, want) {
		t.Errorf("resolved paths %q, want %q", seen, want)
	}
	orig := s.Config()
	for name, f := range map[string]func(){
		"slice": func() { _ = orig.Ins[0].Path() },
		"map":   func() { _ = orig.ByID["k"].Path() },
		"ptr":   func() { _ = orig.Ptr.Path() },
		"any":   func() { _ = orig.Any.(recipe.Output).Path() },
	} {
		if !panics(f) {
			t.Errorf("%s: the step's own config was resolved in place", name)
		}
	}
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}

// A dry run writes nothing.
func TestDryRunWritesNothing(t *testing.T) {
	e := newEnv(t)
	var l log
	a := recipe.New("a", func(context.Context, empty) error { l.add("a"); return nil }, empty{}, nil)
	o := e.opts()
	o.DryRun = true
	rep, err := recipe.Run(t.Context(), []recipe.Node{a}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Count(cairn.WouldRun); got != 1 {
		t.Errorf("dry run: %v", outcomes(rep))
	}
	if keys := e.st.Keys(t); len(keys) != 0 || len(l.get()) != 0 {
		t.Errorf("dry run wrote %q and ran %q", keys, l.get())
	}
}

// RecordOptions fill the experiment record.
func TestRecordOptions(t *testing.T) {
	e := newEnv(t)
	a := recipe.New("a", nop[empty], empty{}, nil)
	when := time.Date(2026, 3, 4, 5, 6, 7, 8000, time.Local)
	rec := &recipe.RecordOptions{Program: "/x/train.go", User: "ada", GitCommit: "abc", ExperimentsDir: e.st.Prefix + "/exps", Now: func() time.Time { return when }}
	o := e.opts()
	o.WorkerID = "w1"
	pl := e.plan(t, a)
	if _, err := pl.Run(t.Context(), o, rec); err != nil {
		t.Fatal(err)
	}
	path := pl.ExperimentPath(rec)
	if !strings.HasPrefix(path, e.st.Prefix+"/exps/train.go-") {
		t.Errorf("experiment path %s", path)
	}
	var got map[string]any
	mustUnmarshal(t, e.read(t, e.st.Prefix+"/exps", strings.TrimPrefix(path, e.st.Prefix+"/exps/")), &got)
	delete(got, "steps")
	want := map[string]any{"worker_id": "w1", "git_commit": "abc", "caller_path": "train.go", "created_date": "2026-03-04T05:06:07.000008", "user": "ada", "prefix": e.st.Prefix}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("experiment record (-want +got):\n%s", diff)
	}
}

// Scenario 75: Upstream finds the steps a value refers to.
func TestUpstream(t *testing.T) {
	a := recipe.New("a", nop[empty], empty{}, nil)
	b := recipe.New("b", nop[recipe.Input], recipe.OutputOf(a, ""), nil)
	c := recipe.New("c", nop[empty], empty{}, nil)
	type cfg struct {
		X recipe.Input
		Y []any
		Z map[string]recipe.Input
	}
	for _, tc := range []struct {
		name string
		v    any
		want []recipe.Node
	}{
		{"primitive", 3, nil},
		{"empty containers", []any{map[string]any{}, []int{}}, nil},
		{"hard-coded path", recipe.Path("raw"), nil},
		{"versioned leaf", recipe.V("x"), nil},
		{"input", recipe.OutputOf(b, "x"), []recipe.Node{b}},
		{"non-blocking", recipe.OutputOf(b, "").Nonblocking(), []recipe.Node{b}},
		{"artifact", recipe.ArtifactOf(c), []recipe.Node{c}},
		{"steps directly, once, in order", []recipe.Node{c, b, c}, []recipe.Node{c, b}},
		{"nested, in declaration and key order", cfg{
			X: recipe.OutputOf(c, ""),
			Y: []any{recipe.OutputOf(b, "1")},
			Z: map[string]recipe.Input{"z": recipe.OutputOf(c, "z"), "a": recipe.OutputOf(a, "")},
		}, []recipe.Node{c, b, a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := recipe.Upstream(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Upstream = %v, want %v", got, tc.want)
			}
		})
	}
}

// Scenario 76: Materialize runs what a config refers to and resolves it.
func TestMaterialize(t *testing.T) {
	type cfg struct {
		Tokens recipe.Input              `json:"tokens"`
		LR     recipe.Versioned[float64] `json:"lr"`
	}
	type plain struct {
		N int
	}
	var execs atomic.Int64
	release := make(chan struct{})
	tokStep := func() *recipe.Step[recipe.Versioned[string], recipe.None] {
		return recipe.New("tok", func(context.Context, recipe.Versioned[string]) error {
			execs.Add(1)
			<-release
			return nil
		}, recipe.V("gpt2"), nil)
	}

	t.Run("no placeholders", func(t *testing.T) {
		e := newEnv(t)
		got, err := recipe.Materialize(t.Context(), plain{N: 3}, "", e.opts(), nil)
		if err != nil || got.N != 3 {
			t.Fatalf("Materialize = %v, %v", got, err)
		}
		if keys := e.st.Keys(t); len(keys) != 0 {
			t.Errorf("wrote %q", keys)
		}
	})

	t.Run("runs the upstream step once for two concurrent calls", func(t *testing.T) {
		e := newEnv(t)
		waiting := make(chan struct{}, 1)
		var results [2]cfg
		var errs [2]error
		var wg sync.WaitGroup
		for i := range 2 {
			o := e.opts()
			o.OnEvent = func(ev cairn.Event) {
				if ev.Kind == cairn.StepWaiting {
					select { // StepWaiting comes at every poll: signal once
					case waiting <- struct{}{}:
					default:
					}
				}
			}
			c := cfg{Tokens: recipe.OutputOf(tokStep(), "tokens.bin"), LR: recipe.V(0.1)}
			wg.Go(func() { results[i], errs[i] = recipe.Materialize(t.Context(), c, "", o, nil) })
		}
		<-waiting
		close(release)
		wg.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			t.Fatal(err)
		}
		if got := execs.Load(); got != 1 {
			t.Errorf("%d executions, want 1", got)
		}
		tok := tokStep()
		p, _ := mustResolve(t, e.st.Prefix, tok).OutputPath(tok)
		for _, r := range results {
			if got, want := r.Tokens.Path(), p+"/tokens.bin"; got != want || !strings.HasPrefix(got, e.st.Prefix+"/tok-") {
				t.Errorf("tokens %s, want %s under the prefix", got, want)
			}
			if r.LR.Value() != 0.1 {
				t.Errorf("lr %v", r.LR.Value())
			}
		}
	})

	t.Run("output placeholder without an output path", func(t *testing.T) {
		e := newEnv(t)
		_, err := recipe.Materialize(t.Context(), struct{ Out recipe.Output }{}, "", e.opts(), nil)
		var ce *recipe.ConfigError
		if !errors.As(err, &ce) || ce.Field != "Out" || !strings.Contains(err.Error(), "pass Materialize an output path") {
			t.Errorf("error %v", err)
		}
		got, err := recipe.Materialize(t.Context(), struct{ Out recipe.Output }{recipe.ThisOutput("x")}, "job", e.opts(), nil)
		if err != nil || got.Out.Path() != e.st.Prefix+"/job/x" {
			t.Errorf("Materialize = %v, %v", got, err)
		}
	})
}
