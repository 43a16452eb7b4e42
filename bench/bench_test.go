package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the bench binary when the
// command re-executes itself (cairn child, launcher).
func TestMain(m *testing.M) {
	if code, ok := subprocessMain(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestCommand runs the whole command on tiny shapes, with cairn and with
// ninja and make if they are installed, and checks its output.
func TestCommand(t *testing.T) {
	tools := []string{"cairn"}
	for _, name := range []string{"ninja", "make"} {
		if _, err := exec.LookPath(name); err != nil {
			t.Logf("%s is not installed; not running it", name)
			continue
		}
		tools = append(tools, name)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"-scale", "0.01", "-tools", strings.Join(tools, ",")}
	if err := run(t.Context(), args, &stdout, &stderr); err != nil {
		t.Fatalf("bench %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}

	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if want := len(shapes()) * len(tools); len(lines) != want {
		t.Fatalf("got %d JSON lines, want %d (shapes x tools):\n%s", len(lines), want, stdout.String())
	}
	seen := map[string]bool{}
	for _, line := range lines {
		r := checkLine(t, line)
		seen[r.Tool+"/"+r.Shape] = true
	}
	for _, sh := range shapes() {
		for _, tool := range tools {
			if !seen[tool+"/"+sh.name] {
				t.Errorf("no line for tool %s, shape %s", tool, sh.name)
			}
		}
	}
	for _, want := range []string{"steps/s", "µs/step", "targets (median of per-repetition", "fanout         cairn/ninja", " CPUs, load "} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// checkLine parses one JSON line, checks it and returns it.
func checkLine(t *testing.T, line string) result {
	t.Helper()
	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		t.Fatalf("bad JSON line %q: %v", line, err)
	}
	for _, f := range []string{"tool", "shape", "run", "steps", "wall_s", "steps_per_s", "per_step_us", "peak_rss_mb"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("line lacks %q: %s", f, line)
		}
	}
	var r result
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	if r.Env.FS == "" || r.Env.Kernel == "" || r.Env.CPUs <= 0 || r.Env.Load1 < 0 || r.StepWork == "" {
		t.Errorf("line lacks its environment or step work: %s", line)
	}
	if r.Steps <= 0 || r.WallS <= 0 || r.PeakRSSMB <= 0 || r.PerStepUS <= 0 {
		t.Errorf("non-positive measurement: %s", line)
	}
	if got, want := r.StepsPerS, float64(r.Steps)/r.WallS; math.Abs(got-want) > 1e-6*want {
		t.Errorf("steps_per_s = %g, want steps/wall_s = %g: %s", got, want, line)
	}
	wantRun := "cold"
	if strings.HasSuffix(r.Shape, "-cached") {
		wantRun = "cached"
	}
	if r.Run != wantRun {
		t.Errorf("run = %q, want %q: %s", r.Run, wantRun, line)
	}
	if r.Tool == "cairn" && (r.InprocWallS <= 0 || r.InprocWallS > r.WallS) {
		t.Errorf("cairn inproc_wall_s = %g, want in (0, wall_s=%g]", r.InprocWallS, r.WallS)
	}
	return r
}

// TestAddRatios checks that wall-time ratios are taken within each
// repetition, then their median.
func TestAddRatios(t *testing.T) {
	s := func(walls ...time.Duration) []sample {
		var out []sample
		for _, w := range walls {
			out = append(out, sample{proc: procStats{wall: w}})
		}
		return out
	}
	rs := []result{{Tool: "cairn"}, {Tool: "ninja"}}
	// Repetition 2 ran under load for both tools: the per-repetition
	// ratios are 0.5, 0.5 and 1.5 (median 0.5), while the ratio of the
	// medians (3 and 2) would be 1.5.
	addRatios(rs, [][]sample{s(1, 10, 3), s(2, 20, 2)})
	if got := rs[0].WallRatio["ninja"]; got != 0.5 {
		t.Errorf("cairn/ninja = %v, want 0.5", got)
	}
	if got := rs[1].WallRatio["cairn"]; got != 2 {
		t.Errorf("ninja/cairn = %v, want 2", got)
	}
}

// TestShapes checks the full-size shapes' step and edge counts and that
// nodes are in topological order.
func TestShapes(t *testing.T) {
	want := map[string][2]int{ // steps, edges
		"chain":         {1000, 999},
		"fanout":        {10001, 10000},
		"grid":          {10000, 2 * 99 * 100},
		"fanout-cached": {10001, 10000},
		"fanout-write":  {10001, 10000},
	}
	for _, sh := range shapes() {
		g, _ := sh.build(1)
		if got := [2]int{g.size(), g.edges()}; got != want[sh.name] {
			t.Errorf("%s: (steps, edges) = %v, want %v", sh.name, got, want[sh.name])
		}
		for i, ds := range g.deps {
			for _, d := range ds {
				if d >= i {
					t.Fatalf("%s: node %d depends on later node %d", sh.name, i, d)
				}
			}
		}
	}
}

// TestCachedRunMustBeCached checks that a "cached" cairn run that finds
// nothing done fails loudly instead of reporting a benchmark.
func TestCachedRunMustBeCached(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sh, err := lookupShape("fanout-cached")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := sh.build(0.001)
	ct := &cairnTool{launch: launcher{exe: exe}, scale: 0.001, maxConcurrent: 2}
	_, err = ct.run(t.Context(), job{shape: sh, graph: g, dir: t.TempDir(), cached: true, label: "test"})
	if err == nil || !strings.Contains(err.Error(), "want all") {
		t.Fatalf("cached run over an empty prefix: got error %v, want a check failure", err)
	}
}

// TestCheckOutputs checks the output-file checks of ninja and make runs.
func TestCheckOutputs(t *testing.T) {
	g, _ := chain(0.002) // 2 steps
	t0, t1 := time.Unix(1, 0), time.Unix(2, 0)
	cases := []struct {
		cached        bool
		before, after []time.Time
		ok            bool
	}{
		{false, []time.Time{{}, {}}, []time.Time{t0, t1}, true},
		{false, []time.Time{{}, {}}, []time.Time{t0, {}}, false},
		{true, []time.Time{t0, t1}, []time.Time{t0, t1}, true},
		{true, []time.Time{t0, t0}, []time.Time{t0, t1}, false},
		{true, []time.Time{{}, {}}, []time.Time{{}, {}}, false},
	}
	for i, c := range cases {
		err := checkOutputs(c.before, c.after, job{graph: g, cached: c.cached})
		if (err == nil) != c.ok {
			t.Errorf("case %d: got error %v, want ok=%v", i, err, c.ok)
		}
	}
}

// TestMissingToolIsSkipped checks that a tool whose binary is not in $PATH
// is skipped with a message.
func TestMissingToolIsSkipped(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	var stderr bytes.Buffer
	tools, err := newTools(config{tools: []string{"cairn", "ninja", "make"}, maxConcurrent: 1, jobs: 1, scale: 1}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools {
		names = append(names, tl.name())
	}
	if !slices.Equal(names, []string{"cairn"}) {
		t.Errorf("tools = %v, want [cairn]", names)
	}
	for _, name := range []string{"ninja", "make"} {
		if !strings.Contains(stderr.String(), "skipping "+name) {
			t.Errorf("stderr lacks a message about skipping %s: %q", name, stderr.String())
		}
	}
}

func TestParseFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-tools", "cairn,bazel"},
		{"-shapes", "ring"},
		{"-repeat", "0"},
		{"-scale", "0"},
		{"extra"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", args)
		}
	}
	c, err := parseFlags([]string{"-tools", "make,cairn", "-shapes", "fanout-cached,chain"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.tools, []string{"cairn", "make"}) || !slices.Equal(c.shapes, []string{"chain", "fanout-cached"}) {
		t.Errorf("got tools %v, shapes %v; want them in canonical order", c.tools, c.shapes)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %g, want %g", c.in, got, c.want)
		}
	}
}
