package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"example.com/cairn/cli"
)

// writeOutput writes an output directory the way a runner leaves it.
func writeOutput(t *testing.T, dir, info, status string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".executor_info"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	if status != "" {
		if err := os.WriteFile(filepath.Join(dir, ".executor_status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func runTool(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Tool(&cli.Options{Args: args, Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

// cairn explain works from the files alone: Marin's outputs (NAME-HASH6,
// versioned fields under "version") and core steps named by --attrs/--dep.
func TestToolExplain(t *testing.T) {
	prefix := t.TempDir()
	marin := func(hash string, vocab int, status string) {
		writeOutput(t, filepath.Join(prefix, "tokenize-"+hash),
			`{"name": "tokenize", "fn_name": "tok", "config": {"vocab_size": `+itoa(vocab)+`, "out": "`+prefix+`/tokenize-`+hash+`"}, "version": {"name": "tokenize", "config": {"vocab_size": `+itoa(vocab)+`}, "dependencies": []}, "dependencies": [], "output_path": "`+prefix+`/tokenize-`+hash+`"}`,
			status)
	}
	marin("aaaaaa", 400, `{"date": "2026-01-01T00:00:00", "status": "SUCCESS"}`+"\n")
	marin("bbbbbb", 500, "")
	code, out, errOut := runTool(t, "explain", prefix, "tokenize-bbbbbb")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Logf("cairn explain tokenize-bbbbbb:\n%s", out)
	for _, want := range []string{"reason:  changed", "vocab_size 400 → 500", "tokenize-aaaaaa"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	code, out, _ = runTool(t, "explain", prefix, "tokenize-aaaaaa")
	if code != cli.ExitOK || !strings.Contains(out, "reason:  cached") || !strings.Contains(out, "against the most recent other version of the step:\n  changed: vocab_size 500 → 400") {
		t.Errorf("cached Marin output: exit %d\n%s", code, out)
	}

	// A core step by name, attributes and dependencies.
	writeOutput(t, filepath.Join(prefix, "train_00000001"),
		`{"name": "train", "config": {"lr": 0.001}, "dependencies": [], "output_path": "`+prefix+`/train_00000001"}`, "SUCCESS")
	code, out, errOut = runTool(t, "explain", prefix, "train", "--attrs", `{"lr": 0.002}`)
	if code != cli.ExitOK || !strings.Contains(out, "attrs.lr 0.001 → 0.002") || !strings.Contains(out, "plan:    would run") {
		t.Errorf("core step: exit %d %s\n%s", code, errOut, out)
	}
	code, out, _ = runTool(t, "explain", prefix, "eval", "--dep", "train_12345678", "--json")
	if code != cli.ExitOK || !strings.Contains(out, `"kind": "new"`) {
		t.Errorf("--json: exit %d\n%s", code, out)
	}
	if code, _, errOut := runTool(t, "explain", prefix, "nothing-here"); code != cli.ExitUsage || !strings.Contains(errOut, "no .executor_info") {
		t.Errorf("missing output: exit %d: %s", code, errOut)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestToolHelpAndVersion(t *testing.T) {
	code, out, errOut := runTool(t, "--help")
	if code != cli.ExitOK || errOut != "" || !strings.Contains(out, "cairn explain PREFIX STEP") {
		t.Errorf("--help: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, out, _ := runTool(t, "--version"); code != cli.ExitOK || !strings.Contains(out, "revision") {
		t.Errorf("--version: exit %d %q", code, out)
	}
}
