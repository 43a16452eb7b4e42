package recipecli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"example.com/cairn/cli"
	"example.com/cairn/recipe"
)

type cfg struct {
	In recipe.Input          `json:"in"`
	N  recipe.Versioned[int] `json:"n"`
}

func pipeline(n int, ran *[]string) []recipe.Node {
	a := recipe.New("a", func(context.Context, recipe.Versioned[string]) error {
		*ran = append(*ran, "a")
		return nil
	}, recipe.V("x"), nil)
	b := recipe.New("b", func(context.Context, cfg) error {
		*ran = append(*ran, "b")
		return nil
	}, cfg{In: recipe.OutputOf(a, "sub"), N: recipe.V(n)}, nil)
	return []recipe.Node{b}
}

func run(t *testing.T, steps []recipe.Node, rec *recipe.RecordOptions, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(steps, &Options{
		CLI:    &cli.Options{Args: args, Stdout: &stdout, Stderr: &stderr, Context: t.Context()},
		Record: rec,
	})
	return code, stdout.String() + stderr.String()
}

func TestMainRuns(t *testing.T) {
	dir := t.TempDir()
	var ran []string
	rec := &recipe.RecordOptions{User: "ada", GitCommit: "0123abcd"}
	for _, tc := range []struct {
		name     string
		n        int
		args     []string
		wantCode int
		wantRan  []string
		wantOut  string
	}{
		{"dry run", 1, []string{"--dry-run"}, cli.ExitOK, nil, "would run"},
		{"first run", 1, nil, cli.ExitOK, []string{"a", "b"}, "2 ran"},
		{"second run", 1, nil, cli.ExitOK, nil, "2 cached"},
		{"changed versioned value", 2, nil, cli.ExitOK, []string{"b"}, "1 ran, 1 cached"},
		{"run-only of a succeeded step", 2, []string{"--run-only", "^a$"}, cli.ExitOK, nil, "nothing to do"},
		{"run-only matching nothing", 3, []string{"--run-only", "^z$"}, cli.ExitInvalid, nil, `--run-only "^z$" matched no step`},
		{"bad prefix", 3, []string{"--prefix", "nope://x"}, cli.ExitStorage, nil, `no backend for scheme "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran = nil
			code, out := run(t, pipeline(tc.n, &ran), rec, append([]string{"--prefix", dir}, tc.args...)...)
			if code != tc.wantCode || !strings.Contains(out, tc.wantOut) {
				t.Errorf("exit %d, want %d; output:\n%s\nwant it to contain %q", code, tc.wantCode, out, tc.wantOut)
			}
			if strings.Join(ran, ",") != strings.Join(tc.wantRan, ",") {
				t.Errorf("ran %q, want %q", ran, tc.wantRan)
			}
		})
	}

	// Two distinct pipelines ran (n=1, n=2), so two experiment records,
	// named after the test binary's main package.
	exps, err := filepath.Glob(filepath.Join(dir, "experiments", "recipecli.test-*.json"))
	if err != nil || len(exps) != 2 {
		t.Fatalf("experiment records %q, %v; want 2", exps, err)
	}
	data, err := os.ReadFile(exps[0])
	if err != nil {
		t.Fatal(err)
	}
	var exp recipe.Experiment
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatal(err)
	}
	if exp.User == nil || *exp.User != "ada" || exp.GitCommit == nil || *exp.GitCommit != "0123abcd" ||
		!strings.HasSuffix(exp.CallerPath, "recipe/recipecli.test") || len(exp.Steps) != 2 {
		t.Errorf("experiment record %s", data)
	}
}

func TestInvalidPipeline(t *testing.T) {
	bad := recipe.New("bad", func(context.Context, struct{ In recipe.Input }) error { return nil }, struct{ In recipe.Input }{}, nil)
	code, out := run(t, []recipe.Node{bad}, nil, "--prefix", t.TempDir())
	if code != cli.ExitInvalid || !strings.Contains(out, `recipe: step "bad": config field In: recipe.Input is not set`) {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestFromProcess(t *testing.T) {
	r := fromProcess(t.Context(), nil, true)
	if r.Program != "recipecli.test" || r.User != "" || r.GitCommit != "" {
		t.Errorf("dry run: %+v, want the program name only", r)
	}
	r = fromProcess(t.Context(), &recipe.RecordOptions{Program: "p", User: "u"}, false)
	if r.Program != "p" || r.User != "u" {
		t.Errorf("explicit fields were overwritten: %+v", r)
	}
}

func TestGitCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	if got := gitCommit(t.Context(), t.TempDir()); got != "" {
		t.Errorf("outside a work tree: %q, want empty", got)
	}
	inTree := exec.Command("git", "rev-parse", "--is-inside-work-tree").Run() == nil
	got := gitCommit(t.Context(), "")
	if inTree && len(got) != 40 {
		t.Errorf("in a work tree: %q, want a commit hash", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if got := gitCommit(ctx, ""); got != "" {
		t.Errorf("cancelled: %q", got)
	}
}
