package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cli"
)

// reasonPipeline is tok (vocab) -> train (lr) -> eval, plus a step that
// fails while fail is set. runs counts executions by step name.
type reasonPipeline struct {
	mu   sync.Mutex
	runs map[string]int
}

func (p *reasonPipeline) steps(vocab int, lr float64, fail bool) []*cairn.Step {
	fn := func(name string) cairn.Func {
		return func(ctx context.Context, out *cairn.Output) (any, error) {
			p.mu.Lock()
			p.runs[name]++
			n := p.runs[name]
			p.mu.Unlock()
			if name == "flaky" && fail {
				return nil, errors.New("boom: the flaky step failed")
			}
			if name == "tok" && n > 1 {
				return nil, nil // a forced re-run that saves nothing
			}
			return map[string]any{"step": name, "run": n}, nil
		}
	}
	tok := &cairn.Step{Name: "tok", Attrs: map[string]any{"vocab": vocab}, Func: fn("tok")}
	train := &cairn.Step{Name: "train", Attrs: map[string]any{"lr": lr}, Deps: []*cairn.Step{tok}, Func: fn("train")}
	eval := &cairn.Step{Name: "eval", Deps: []*cairn.Step{train}, Func: fn("eval")}
	flaky := &cairn.Step{Name: "flaky", Func: fn("flaky")}
	return []*cairn.Step{eval, flaky}
}

func (p *reasonPipeline) count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs[name]
}

func runMain(t *testing.T, steps []*cairn.Step, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(cairn.Steps(steps...), &cli.Options{Args: args, Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

// planLine returns the dry-run line of the step named name.
func planLine(t *testing.T, out, name string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `_[0-9a-f]{8}\s.*$`)
	line := re.FindString(out)
	if line == "" {
		t.Fatalf("no line for %s in\n%s", name, out)
	}
	return line
}

func TestDryRunReasons(t *testing.T) {
	prefix := t.TempDir()
	p := &reasonPipeline{runs: map[string]int{}}

	code, out, _ := runMain(t, p.steps(400, 0.001, true), "--prefix", prefix, "--dry-run")
	if code != cli.ExitOK {
		t.Fatalf("first dry run: exit %d", code)
	}
	for _, n := range []string{"tok", "train", "eval", "flaky"} {
		if l := planLine(t, out, n); !strings.Contains(l, "would run  new: no earlier output of this step") {
			t.Errorf("%s: %q, want new", n, l)
		}
	}
	// Stable order: dependencies first, then by name.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var order []string
	for _, l := range lines[1:] {
		name, _, _ := strings.Cut(strings.Fields(l)[0], "_")
		order = append(order, name)
	}
	if got := strings.Join(order, " "); got != "flaky tok train eval" {
		t.Errorf("order %q, want flaky tok train eval", got)
	}

	if code, _, _ := runMain(t, p.steps(400, 0.001, true), "--prefix", prefix); code != cli.ExitFailed {
		t.Fatalf("run: exit %d, want %d (flaky fails)", code, cli.ExitFailed)
	}

	// One versioned field changed at the root: the step names the field,
	// its dependents the ancestor.
	code, out, _ = runMain(t, p.steps(500, 0.001, true), "--prefix", prefix, "--dry-run")
	if code != cli.ExitOK {
		t.Fatalf("dry run: exit %d", code)
	}
	t.Logf("dry run after changing vocab:\n%s", out)
	tok := planLine(t, out, "tok")
	if !strings.Contains(tok, "changed: attrs.vocab 400 → 500") {
		t.Errorf("tok: %q", tok)
	}
	tokID := strings.Fields(tok)[0]
	for _, n := range []string{"train", "eval"} {
		if l := planLine(t, out, n); !strings.Contains(l, "changed upstream: "+tokID+" (attrs.vocab 400 → 500)") {
			t.Errorf("%s: %q, want changed upstream: %s", n, l, tokID)
		}
	}
	if l := planLine(t, out, "flaky"); !strings.Contains(l, "failed before") || !strings.Contains(l, "boom: the flaky step failed") {
		t.Errorf("flaky: %q", l)
	}

	// A field in the middle: the root is cached (since when), train changed.
	code, out, _ = runMain(t, p.steps(400, 0.002, true), "--prefix", prefix, "--dry-run")
	if code != cli.ExitOK {
		t.Fatalf("dry run: exit %d", code)
	}
	if l := planLine(t, out, "tok"); !regexp.MustCompile(`cached\s+cached since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d`).MatchString(l) {
		t.Errorf("tok: %q", l)
	}
	if l := planLine(t, out, "train"); !strings.Contains(l, "changed: attrs.lr 0.001 → 0.002") {
		t.Errorf("train: %q", l)
	}

	// --json carries the same.
	code, out, _ = runMain(t, p.steps(400, 0.002, true), "--prefix", prefix, "--dry-run", "--json")
	if code != cli.ExitOK {
		t.Fatalf("dry run --json: exit %d", code)
	}
	var rows []struct {
		Step, Name, Plan string
		Reason           struct {
			Kind    string
			Text    string
			Changes []struct{ Field, Old, New string }
		}
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	found := false
	for _, r := range rows {
		if r.Name == "train" {
			found = true
			if r.Plan != "would run" || r.Reason.Kind != "changed" || len(r.Reason.Changes) != 1 ||
				r.Reason.Changes[0].Field != "attrs.lr" || r.Reason.Changes[0].Old != "0.001" || r.Reason.Changes[0].New != "0.002" {
				t.Errorf("train row %+v", r)
			}
		}
	}
	if !found || len(rows) != 4 {
		t.Errorf("rows %+v", rows)
	}

	// explain prints the reasoning in full for one step, by name.
	code, out, errOut := runMain(t, p.steps(400, 0.002, true), "explain", "train", "--prefix", prefix)
	if code != cli.ExitOK {
		t.Fatalf("explain: exit %d: %s", code, errOut)
	}
	t.Logf("explain train:\n%s", out)
	for _, want := range []string{"name:    train", "reason:  changed", "compared with the most recent earlier output:", "changed fields:\n         attrs.lr 0.001 → 0.002"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runMain(t, p.steps(400, 0.001, true), "explain", "flaky", "--prefix", prefix)
	if code != cli.ExitOK || !strings.Contains(out, "boom: the flaky step failed") || !strings.Contains(out, "by:      ") {
		t.Errorf("explain flaky: exit %d\n%s", code, out)
	}
	code, out, _ = runMain(t, p.steps(400, 0.002, true), "explain", "train", "--prefix", prefix, "--json")
	if code != cli.ExitOK || !strings.Contains(out, `"field": "attrs.lr"`) {
		t.Errorf("explain --json: exit %d\n%s", code, out)
	}
	if code, _, errOut := runMain(t, p.steps(400, 0.001, true), "explain", "nope", "--prefix", prefix); code != cli.ExitUsage || !strings.Contains(errOut, `no step "nope"`) {
		t.Errorf("explain nope: exit %d: %s", code, errOut)
	}
}

func TestForce(t *testing.T) {
	prefix := t.TempDir()
	p := &reasonPipeline{runs: map[string]int{}}
	steps := func() []*cairn.Step { return p.steps(400, 0.001, false) }
	if code, _, errOut := runMain(t, steps(), "--prefix", prefix); code != cli.ExitOK {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}

	code, out, _ := runMain(t, steps(), "--prefix", prefix, "--dry-run", "--force", "^tok$")
	if code != cli.ExitOK {
		t.Fatalf("dry run: exit %d", code)
	}
	if l := planLine(t, out, "tok"); !strings.Contains(l, "would run  forced (--force); without it: cached since ") {
		t.Errorf("tok: %q", l)
	}
	if l := planLine(t, out, "train"); !strings.Contains(l, "cached") {
		t.Errorf("train: %q", l)
	}

	// The forced step runs again; its dependents keep their identity and
	// stay cached.
	code, _, errOut := runMain(t, steps(), "--prefix", prefix, "--force", "^tok$")
	if code != cli.ExitOK {
		t.Fatalf("forced run: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "step forced: running it again") {
		t.Errorf("no forced log line:\n%s", errOut)
	}
	if got := [3]int{p.count("tok"), p.count("train"), p.count("eval")}; got != [3]int{2, 1, 1} {
		t.Errorf("runs of tok, train, eval = %v, want [2 1 1]", got)
	}
	// Its first run's artifact is replaced: the forced run returned nil,
	// saved as null.
	if m, _ := filepath.Glob(filepath.Join(prefix, "tok_*", ".artifact")); len(m) != 1 {
		t.Errorf("artifacts %v, want one", m)
	} else if data, err := os.ReadFile(m[0]); err != nil || string(data) != "null" {
		t.Errorf("the forced run's artifact is %q (%v), want null", data, err)
	}

	// --force-downstream re-runs what depends on it too.
	code, out, _ = runMain(t, steps(), "--prefix", prefix, "--dry-run", "--force", "^train$", "--force-downstream")
	if code != cli.ExitOK {
		t.Fatalf("dry run: exit %d", code)
	}
	if !strings.Contains(planLine(t, out, "eval"), "forced") || !strings.Contains(planLine(t, out, "tok"), "cached") {
		t.Errorf("dry run with --force-downstream:\n%s", out)
	}
	if code, _, errOut := runMain(t, steps(), "--prefix", prefix, "--force", "^train$", "--force-downstream"); code != cli.ExitOK {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}
	if got := [3]int{p.count("tok"), p.count("train"), p.count("eval")}; got != [3]int{2, 2, 2} {
		t.Errorf("runs of tok, train, eval = %v, want [2 2 2]", got)
	}
	// The new run's artifact replaced the old one.
	m, _ := filepath.Glob(filepath.Join(prefix, "train_*", ".artifact"))
	if data, err := os.ReadFile(m[0]); err != nil || !strings.Contains(string(data), `"run": 2`) && !strings.Contains(string(data), `"run":2`) {
		t.Errorf("train artifact %s: %q, %v", m[0], data, err)
	}
	// Nothing forced: all cached again.
	if code, out, _ := runMain(t, steps(), "--prefix", prefix, "--dry-run"); code != cli.ExitOK || strings.Contains(out, "would run") {
		t.Errorf("plain dry run: exit %d\n%s", code, out)
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"run", "--help"}} {
		code, out, errOut := runMain(t, nil, args...)
		if code != cli.ExitOK || errOut != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errOut)
		}
		for _, want := range []string{"usage:", " run ", " status", " explain STEP", " version"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: stdout lacks %q:\n%s", args, want, out)
			}
		}
		if strings.Contains(out, " worker ") && strings.Contains(out, "test worker") {
			t.Errorf("%q: help shows the hidden worker command:\n%s", args, out)
		}
	}
	if _, out, _ := runMain(t, nil, "--help"); !strings.Contains(out, "-force-downstream") || !strings.Contains(out, "-dry-run") {
		t.Errorf("--help lacks the flags:\n%s", out)
	}
	code, _, errOut := runMain(t, nil, "--no-such-flag")
	if code != cli.ExitUsage || !strings.Contains(errOut, "--help for usage") {
		t.Errorf("bad flag: exit %d, stderr %q", code, errOut)
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, _ := runMain(t, nil, args...)
		if code != cli.ExitOK || !strings.Contains(out, "revision") || !strings.Contains(out, "go1.") {
			t.Errorf("%q: exit %d: %q", args, code, out)
		}
	}
}
