package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/runrecord"
)

// reportPipeline is prep -> (left, right) -> join -> fail -> after; fail
// fails, after is skipped.
func reportPipeline() []*cairn.Step {
	ok := func(context.Context, *cairn.Output) (any, error) { time.Sleep(5 * time.Millisecond); return nil, nil }
	prep := &cairn.Step{Name: "rep/prep", Func: ok}
	left := &cairn.Step{Name: "rep/left", Deps: []*cairn.Step{prep}, Func: ok}
	right := &cairn.Step{Name: "rep/right", Deps: []*cairn.Step{prep}, Func: ok}
	join := &cairn.Step{Name: "rep/join", Deps: []*cairn.Step{left, right}, Func: ok}
	fail := &cairn.Step{Name: "rep/fail", Deps: []*cairn.Step{join}, Func: func(context.Context, *cairn.Output) (any, error) {
		return nil, errors.New("metric file missing")
	}}
	after := &cairn.Step{Name: "rep/after", Deps: []*cairn.Step{fail}, Func: ok}
	return []*cairn.Step{after}
}

func mainOf(t *testing.T, steps []*cairn.Step, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(cairn.Steps(steps...), &cli.Options{Args: args, Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func toolOf(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Tool(&cli.Options{Args: args, Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func readOnlyRecord(t *testing.T, prefix string) *runrecord.Record {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(prefix, "experiments", ".cairn_runs", "*.json"))
	if len(m) != 1 {
		t.Fatalf("run records: %v, want one", m)
	}
	data, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	rec, err := runrecord.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// A run writes its record; report renders it as HTML and a trace, for the
// program (latest run) and the cairn tool (any run by ID).
func TestRunRecordAndReport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prefix := filepath.Join(dir, "p")
	code, _, stderr := mainOf(t, reportPipeline(), "--prefix", prefix)
	if code != cli.ExitFailed || !strings.Contains(stderr, "run recorded") {
		t.Fatalf("run: code %d\n%s", code, stderr)
	}
	rec := readOnlyRecord(t, prefix)
	if rec.Outcome != runrecord.Failed || len(rec.Steps) != 6 || rec.Prefix != prefix {
		t.Fatalf("record: outcome %q, %d steps, prefix %q", rec.Outcome, len(rec.Steps), rec.Prefix)
	}
	for _, s := range rec.Steps {
		if s.Finished.Before(rec.Started) || rec.Finished.Before(s.Finished) {
			t.Errorf("%s finished at %v, outside the run %v..%v", s.Step, s.Finished, rec.Started, rec.Finished)
		}
		if s.Outcome == "ran" && (s.Queued.After(s.Started) || s.Started.After(s.Finished)) {
			t.Errorf("%s: queued %v started %v finished %v", s.Step, s.Queued, s.Started, s.Finished)
		}
	}
	// A second run: cached steps are recorded as such; --list shows both.
	time.Sleep(10 * time.Millisecond) // run IDs are to the millisecond
	if code, _, stderr := mainOf(t, reportPipeline(), "--prefix", prefix); code != cli.ExitFailed {
		t.Fatalf("second run: code %d\n%s", code, stderr)
	}
	code, out, stderr := mainOf(t, nil, "report", "--prefix", prefix, "--list")
	if code != cli.ExitOK || len(strings.Split(strings.TrimSpace(out), "\n")) != 3 || !strings.Contains(out, rec.RunID) {
		t.Fatalf("report --list: code %d\n%s%s", code, out, stderr)
	}

	html, trace := filepath.Join(dir, "r.html"), filepath.Join(dir, "t.json")
	code, out, stderr = mainOf(t, nil, "report", "--prefix", prefix, "-o", html, "--trace", trace)
	if code != cli.ExitOK || !strings.Contains(out, "report "+html) {
		t.Fatalf("report: code %d\n%s%s", code, out, stderr)
	}
	page, _ := os.ReadFile(html)
	if !strings.Contains(string(page), "4 cached") || strings.Contains(string(page), rec.RunID) {
		t.Error("the program's report is not of its latest run (4 cached, 1 failed, 1 skipped)")
	}
	var tr map[string]any
	if data, _ := os.ReadFile(trace); json.Unmarshal(data, &tr) != nil || tr["traceEvents"] == nil {
		t.Errorf("trace is not a trace-event file")
	}
	// The tool reports any run by ID.
	first := filepath.Join(dir, "first.html")
	if code, _, stderr := toolOf(t, "report", prefix, rec.RunID, "-o", first); code != cli.ExitOK {
		t.Fatalf("cairn report: code %d\n%s", code, stderr)
	}
	page, _ = os.ReadFile(first)
	for _, want := range []string{rec.RunID, "metric file missing", "rep/join_", `class="b-failed"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the report of the first run lacks %q", want)
		}
	}
	if code, _, _ := toolOf(t, "report", prefix, "20000101T000000.000Z-000000"); code != cli.ExitFailed {
		t.Errorf("report of a missing run: code %d", code)
	}
	// The page renders in a real browser.
	if dom := chromiumDOM(t, first); dom != "" {
		if strings.Count(dom, "<rect") < 5 || !strings.Contains(dom, "rep/fail_") || !strings.Contains(dom, "<table") {
			t.Errorf("chromium's DOM lacks the timeline or the table:\n%.2000s", dom)
		}
	}
}

// chromiumDOM returns the DOM of file as headless Chromium renders it, or
// "" (the test logs why) if chromium is not installed.
func chromiumDOM(t *testing.T, file string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Log("chromium is not installed: not rendering the report")
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+file)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}

// A remote step's record holds its job, the resources it asked for and
// what its job process used (rusage).
func TestRunRecordOfRemoteStep(t *testing.T) {
	t.Parallel()
	testRunRecordOfRemoteStep(t, "local")
}

// The same on Slurm: the job's usage is measured by its worker process,
// with or without Slurm accounting.
func TestRunRecordOfSlurmStep(t *testing.T) {
	spec := requireSlurm(t)
	t.Parallel()
	testRunRecordOfRemoteStep(t, spec)
}

func testRunRecordOfRemoteStep(t *testing.T, spec string) {
	e := newRemoteEnv(t)
	cmd := e.cmd(false, "--cluster", spec)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	rec := readOnlyRecord(t, e.prefix)
	var train *runrecord.Step
	for i, s := range rec.Steps {
		if strings.HasPrefix(s.Step, "train_") {
			train = &rec.Steps[i]
		} else if s.Resources != nil || s.Job != nil {
			t.Errorf("local step %s has a job or resources: %+v", s.Step, s)
		}
	}
	if train == nil || train.Job == nil || train.Resources == nil || train.Resources.Requested == nil {
		t.Fatalf("train: %+v", train)
	}
	if j := train.Job; j.Cluster != strings.SplitN(spec, "?", 2)[0] || len(j.IDs) != 1 || j.State != "succeeded" || !strings.HasSuffix(j.Log, "attempt-1.log") {
		t.Errorf("job = %+v", j)
	}
	if j := train.Job; j.Running.Before(j.Submitted) || j.Finished.Before(j.Running) {
		t.Errorf("job submitted %v, running %v, finished %v: want them in order", j.Submitted, j.Running, j.Finished)
	}
	if q := train.Resources.Requested; q.CPUs != 2 || q.MemoryBytes != 128<<20 {
		t.Errorf("requested = %+v", q)
	}
	u := train.Resources.Used
	if u == nil || u.Source != "rusage" || u.MaxRSSBytes < 1<<20 || u.CPUUserS+u.CPUSystemS <= 0 {
		t.Errorf("used = %+v (note %q)", u, train.Resources.UsedNote)
	}
	if !strings.HasPrefix(train.Worker, rec.Runner+".") || train.Host == "" {
		t.Errorf("train worker %q host %q, runner %q", train.Worker, train.Host, rec.Runner)
	}
}

func TestGraph(t *testing.T) {
	t.Parallel()
	prefix := filepath.Join(t.TempDir(), "p")
	steps := reportPipeline()
	mainOf(t, steps, "--prefix", prefix)
	// Another worker holds rep/after with a fresh lease.
	after, _ := steps[0].OutputPath(prefix)
	os.MkdirAll(after, 0o755)
	os.WriteFile(filepath.Join(after, ".executor_status"), []byte("RUNNING"), 0o644)
	lease := fmt.Sprintf(`{"worker_id": "otherhost-42-abcdef.1", "timestamp": %f}`, float64(time.Now().UnixNano())/1e9)
	os.WriteFile(filepath.Join(after, ".executor_status.lock"), []byte(lease), 0o644)

	code, js, stderr := mainOf(t, steps, "graph", "--prefix", prefix, "--format", "json")
	if code != cli.ExitOK {
		t.Fatalf("graph: code %d\n%s", code, stderr)
	}
	var g struct {
		Format string
		Steps  []struct {
			Step, Name, State string
			Deps              []string
		}
	}
	if err := json.Unmarshal([]byte(js), &g); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, s := range g.Steps {
		order = append(order, s.Name+"="+s.State)
	}
	// Topological, ties by ID (left before right).
	want := "rep/prep=cached rep/left=cached rep/right=cached rep/join=cached rep/fail=failed rep/after=running"
	if g.Format != "cairn.graph/1" || strings.Join(order, " ") != want {
		t.Errorf("graph = %s %q\nwant %q", g.Format, strings.Join(order, " "), want)
	}
	if len(g.Steps[3].Deps) != 2 {
		t.Errorf("join's deps: %v", g.Steps[3].Deps)
	}
	// A new step: another prefix.
	if _, js2, _ := mainOf(t, steps, "graph", "--prefix", filepath.Join(t.TempDir(), "q"), "--format", "json"); strings.Count(js2, `"state": "new"`) != 6 {
		t.Errorf("on an empty prefix every step is new:\n%s", js2)
	}

	code, dot, _ := mainOf(t, steps, "graph", "--prefix", prefix)
	_, dot2, _ := mainOf(t, steps, "graph", "--prefix", prefix, "--format", "dot")
	if code != cli.ExitOK || dot != dot2 {
		t.Fatalf("dot output is not deterministic:\n%s\n%s", dot, dot2)
	}
	if !strings.HasPrefix(dot, "digraph cairn {\n") || !strings.HasSuffix(dot, "}\n") ||
		strings.Count(dot, " -> ") != 6 || strings.Count(dot, "[label=") != 6 ||
		!regexp.MustCompile(`"rep/fail_[0-9a-f]{8}" \[label="rep/fail_[0-9a-f]{8}\\nfailed"`).MatchString(dot) {
		t.Errorf("dot:\n%s", dot)
	}
	_, mm, _ := mainOf(t, steps, "graph", "--prefix", prefix, "--format", "mermaid")
	if !strings.HasPrefix(mm, "flowchart LR\n") || strings.Count(mm, " --> ") != 6 || !strings.Contains(mm, `<br/>running"]:::running`) {
		t.Errorf("mermaid:\n%s", mm)
	}
	if code, _, _ := mainOf(t, steps, "graph", "--format", "svg"); code != cli.ExitUsage {
		t.Errorf("--format svg: code %d", code)
	}
}

func TestStatusFilters(t *testing.T) {
	t.Parallel()
	prefix := filepath.Join(t.TempDir(), "p")
	steps := reportPipeline()
	mainOf(t, steps, "--prefix", prefix)
	// An old version of a step, and another program's step.
	for _, d := range []string{"rep/prep_0badc0de", "elsewhere/thing_12345678"} {
		os.MkdirAll(filepath.Join(prefix, d), 0o755)
		os.WriteFile(filepath.Join(prefix, d, ".executor_status"), []byte("FAILED"), 0o644)
	}
	lines := func(out string) []string {
		var l []string
		// The table ends at the first blank line; failures follow it.
		for _, f := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			if len(strings.Fields(f)) < 2 || strings.HasPrefix(f, "FAILED ") {
				break
			}
			l = append(l, strings.Fields(f)[0]+" "+strings.Fields(f)[1])
		}
		return l
	}
	cases := []struct {
		tool bool
		args []string
		want string
	}{
		{false, nil, "rep/fail FAILED|rep/join SUCCESS|rep/left SUCCESS|rep/prep SUCCESS|rep/right SUCCESS"},
		{false, []string{"--failed"}, "rep/fail FAILED"},
		{false, []string{"--all", "--failed"}, "elsewhere/thing FAILED|rep/fail FAILED|rep/prep FAILED"},
		{false, []string{"--name", "le|ri"}, "rep/left SUCCESS|rep/right SUCCESS"},
		{false, []string{"--running"}, ""},
		{true, []string{"--failed", "--name", "^rep/"}, "rep/fail FAILED|rep/prep FAILED"},
		{true, nil, "elsewhere/thing FAILED|rep/fail FAILED|rep/join SUCCESS|rep/left SUCCESS|rep/prep FAILED|rep/prep SUCCESS|rep/right SUCCESS"},
	}
	for _, c := range cases {
		var code int
		var out, stderr string
		if c.tool {
			code, out, stderr = toolOf(t, append([]string{"status", prefix}, c.args...)...)
		} else {
			code, out, stderr = mainOf(t, steps, append([]string{"status", "--prefix", prefix}, c.args...)...)
		}
		var got []string
		for _, l := range lines(out) {
			got = append(got, regexp.MustCompile(`_[0-9a-f]{8} `).ReplaceAllString(l, " "))
		}
		if code != cli.ExitOK || strings.Join(got, "|") != c.want {
			t.Errorf("status %v (tool %v): code %d, got %q, want %q\n%s%s", c.args, c.tool, code, strings.Join(got, "|"), c.want, out, stderr)
		}
	}
	if code, _, _ := mainOf(t, steps, "status", "--prefix", prefix, "--name", "("); code != cli.ExitUsage {
		t.Errorf("bad --name: code %d", code)
	}
}

// An interrupted run is recorded too, as interrupted.
func TestRunRecordOfInterruptedRun(t *testing.T) {
	t.Parallel()
	prefix := filepath.Join(t.TempDir(), "p")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	block := &cairn.Step{Name: "block", Func: func(ctx context.Context, _ *cairn.Output) (any, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	var out, errb bytes.Buffer
	code := cli.Main(cairn.Steps(block), &cli.Options{Args: []string{"--prefix", prefix}, Stdout: &out, Stderr: &errb, Context: ctx})
	if code != cli.ExitInterrupted {
		t.Fatalf("code %d\n%s", code, errb.String())
	}
	rec := readOnlyRecord(t, prefix)
	if rec.Outcome != runrecord.Interrupted || len(rec.Steps) != 1 || rec.Steps[0].Outcome != "interrupted" {
		t.Errorf("record: outcome %q, steps %+v", rec.Outcome, rec.Steps)
	}
}

// A layer that writes its steps at absolute paths (package recipe does)
// and a relative --prefix: status lists the program's steps and graph
// shows them cached, as the run found them.
func TestAbsoluteStepPathsUnderRelativePrefix(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	abs := filepath.ToSlash(filepath.Join(dir, "rel"))
	a := &cairn.Step{Name: "lay/a", OverridePath: abs + "/lay/a-111111", Func: func(context.Context, *cairn.Output) (any, error) { return 1, nil }}
	b := &cairn.Step{Name: "lay/b", OverridePath: abs + "/lay/b-222222", Deps: []*cairn.Step{a}, Func: func(context.Context, *cairn.Output) (any, error) { return 2, nil }}
	steps := []*cairn.Step{b}
	if code, _, stderr := mainOf(t, steps, "--prefix", "rel"); code != cli.ExitOK {
		t.Fatalf("run: code %d\n%s", code, stderr)
	}
	code, out, stderr := mainOf(t, steps, "status", "--prefix", "rel")
	if code != cli.ExitOK || !regexp.MustCompile(`(?m)^lay/a-111111 +SUCCESS`).MatchString(out) || !regexp.MustCompile(`(?m)^lay/b-222222 +SUCCESS`).MatchString(out) {
		t.Errorf("status: code %d\n%s%s", code, out, stderr)
	}
	code, js, stderr := mainOf(t, steps, "graph", "--prefix", "rel", "--format", "json")
	var g struct{ Steps []struct{ Dir, State string } }
	if err := json.Unmarshal([]byte(js), &g); code != cli.ExitOK || err != nil {
		t.Fatalf("graph: code %d, %v\n%s", code, err, stderr)
	}
	var got []string
	for _, s := range g.Steps {
		got = append(got, s.Dir+"="+s.State)
	}
	if want := "lay/a-111111=cached lay/b-222222=cached"; strings.Join(got, " ") != want {
		t.Errorf("graph = %q, want %q", strings.Join(got, " "), want)
	}
}
