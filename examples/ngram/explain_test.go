package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"example.com/cairn/cli"
	"example.com/cairn/recipe/recipecli"
)

// Issue 9: after a real run, changing one versioned field makes --dry-run
// name that field for the changed step and the changed ancestor for its
// dependents, and name every step by its directory.
func TestDryRunNamesTheChangedField(t *testing.T) {
	storage := cli.DefaultStorage()
	prefix := t.TempDir()
	runPipeline(t, defaultConfig(), storage, prefix)

	cfg := defaultConfig()
	cfg.Tokenize.VocabSize = 500
	p, err := newPipeline(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dryRun := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		code := recipecli.Main(p.Steps(), &recipecli.Options{CLI: &cli.Options{
			Args: append(args, "--prefix", prefix), Stdout: &out, Stderr: &errb,
			Getenv: func(string) string { return "" },
		}})
		if code != cli.ExitOK {
			t.Fatalf("%q: exit %d\n%s", args, code, errb.String())
		}
		return out.String()
	}
	out := dryRun("--dry-run")
	t.Logf("dry run with vocab_size 500:\n%s", out)
	line := func(step string) string {
		t.Helper()
		l := regexp.MustCompile(`(?m)^ngram/` + step + `-[0-9a-f]{6}\s.*$`).FindString(out)
		if l == "" {
			t.Fatalf("no line for ngram/%s-HASH6 in\n%s", step, out)
		}
		return l
	}
	for _, s := range []string{"ingest", "clean"} {
		if l := line(s); !strings.Contains(l, "cached since") {
			t.Errorf("%s: %q", s, l)
		}
	}
	tok := line("tokenize")
	if !strings.Contains(tok, "would run  changed: vocab_size 400 → 500") {
		t.Errorf("tokenize: %q", tok)
	}
	tokDir := strings.Fields(tok)[0]
	for _, s := range []string{"train", "evaluate", "report"} {
		if l := line(s); !strings.Contains(l, "changed upstream: "+tokDir+" (vocab_size 400 → 500)") {
			t.Errorf("%s: %q, want changed upstream: %s (vocab_size 400 → 500)", s, l, tokDir)
		}
	}
	if l := line("train"); !strings.Contains(l, "remote: cluster local") {
		t.Errorf("train: %q, want its cluster", l)
	}
	// No core ID (NAME_HASH8) anywhere: one name everywhere.
	if m := regexp.MustCompile(`ngram/\w+_[0-9a-f]{8}`).FindString(out); m != "" {
		t.Errorf("dry run shows the core ID %s", m)
	}

	ex := dryRun("explain", "ngram/evaluate")
	for _, want := range []string{"reason:  changed upstream", "first changed ancestor: " + tokDir, "vocab_size 400 → 500"} {
		if !strings.Contains(ex, want) {
			t.Errorf("explain lacks %q:\n%s", want, ex)
		}
	}
}
