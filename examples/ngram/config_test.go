package main

import (
	"bytes"
	"strings"
	"testing"

	"example.com/cairn/cli"
	"example.com/cairn/recipe/recipecli"
)

// The shipped bigram.yaml and --set overrides configure the pipeline; a
// typo is an error naming the field.
func TestConfigFromCommandLine(t *testing.T) {
	prefix := t.TempDir()
	run := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := recipecli.MainConfig(defaultConfig(), build, &recipecli.Options{CLI: &cli.Options{
			Args: append([]string{"--prefix", prefix, "--log-level", "warn"}, args...), Stdout: &out, Stderr: &out,
		}})
		return code, out.String()
	}
	// The default pipeline, run in this process (a remote step run
	// through the command line would re-execute the test binary).
	runPipeline(t, defaultConfig(), cli.DefaultStorage(), prefix)
	code, out := run("--dry-run", "--config", "bigram.yaml", "--set", "report.samples=1")
	if code != cli.ExitOK || !strings.Contains(out, "changed: order 3 → 2") || !strings.Contains(out, "max_tokens 40 → 20, samples 5 → 1") {
		t.Errorf("dry run with bigram.yaml: exit %d\n%s", code, out)
	}
	code, out = run("--dry-run", "--set", "tokenize.vocab=500")
	if code != cli.ExitInvalid || !strings.Contains(out, `unknown field "vocab" in tokenize; did you mean "vocab_size"?`) {
		t.Errorf("typo: exit %d\n%s", code, out)
	}
}
