package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cli"
)

// countingStep is a step that counts its executions.
func countingStep(n *atomic.Int32) *cairn.Step {
	return &cairn.Step{Name: "counted", Func: func(context.Context, *cairn.Output) (any, error) {
		n.Add(1)
		return nil, nil
	}}
}

// Issue 8: bad prefixes and timing flags are usage or storage errors with
// their own exit codes, said once, before any step runs; not silently
// replaced by defaults, and not a failure of every step.
func TestRunRejectsBadFlagsAndStorage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, "p")
	for _, tc := range []struct {
		args     []string
		code     int
		stderr   []string // substrings of stderr
		env      string   // CAIRN_PREFIX
		noPrefix bool
	}{
		{args: []string{"--prefix", ""}, code: cli.ExitUsage, stderr: []string{"--prefix is empty"}, noPrefix: true},
		{args: []string{"--prefix="}, code: cli.ExitUsage, stderr: []string{"--prefix is empty"}, env: prefix, noPrefix: true},
		{args: []string{"--lease-interval", "0"}, code: cli.ExitUsage, stderr: []string{"--lease-interval must be positive"}},
		{args: []string{"--lease-interval", "-1s"}, code: cli.ExitUsage, stderr: []string{"--lease-interval must be positive"}},
		{args: []string{"--lease-stale-after", "0"}, code: cli.ExitUsage, stderr: []string{"--lease-stale-after must be positive"}},
		{args: []string{"--poll-interval", "0"}, code: cli.ExitUsage, stderr: []string{"--poll-interval must be positive"}},
		{args: []string{"--lease-interval", "2s", "--lease-stale-after", "1s"}, code: cli.ExitUsage, stderr: []string{"--lease-stale-after (1s) must exceed --lease-interval (2s)"}},
		{args: []string{"--lease-interval", "1s", "--lease-stale-after", "1s"}, code: cli.ExitUsage, stderr: []string{"must exceed --lease-interval"}},
		{args: []string{"--lease-interval", "2m"}, code: cli.ExitUsage, stderr: []string{"--lease-stale-after (1m30s) must exceed --lease-interval (2m0s)"}},
		{args: []string{"--prefix", "s3://bucket/x"}, code: cli.ExitStorage, stderr: []string{`no backend for scheme "s3"`}, noPrefix: true},
		{args: []string{"--prefix", "s3://bucket/x", "--dry-run"}, code: cli.ExitStorage, stderr: []string{`no backend for scheme "s3"`}, noPrefix: true},
		{args: []string{"--prefix", file}, code: cli.ExitStorage, stderr: []string{"not a directory"}, noPrefix: true},
		{args: []string{}, code: cli.ExitStorage, stderr: []string{"not a directory"}, env: file, noPrefix: true},
	} {
		var n atomic.Int32
		args := tc.args
		if !tc.noPrefix {
			args = append([]string{"--prefix", prefix}, args...)
		}
		var out, errb bytes.Buffer
		code := cli.Main(cairn.Steps(countingStep(&n)), &cli.Options{Args: args, Stdout: &out, Stderr: &errb,
			Getenv: func(k string) string {
				if k == "CAIRN_PREFIX" {
					return tc.env
				}
				return ""
			}})
		if code != tc.code {
			t.Errorf("%q: exit %d, want %d; stderr:\n%s", args, code, tc.code, errb.String())
		}
		for _, want := range tc.stderr {
			if !strings.Contains(errb.String(), want) {
				t.Errorf("%q: stderr does not say %q:\n%s", args, want, errb.String())
			}
		}
		if strings.Contains(errb.String(), "step(s)") {
			t.Errorf("%q: reported per step:\n%s", args, errb.String())
		}
		if n.Load() != 0 {
			t.Errorf("%q: the step ran", args)
		}
	}
	// The flags still work when they make sense; a prefix that does not
	// exist yet is created.
	var n atomic.Int32
	var out, errb bytes.Buffer
	args := []string{"--prefix", filepath.Join(dir, "q"), "--lease-interval", "1s", "--lease-stale-after", "3s", "--poll-interval", "10ms"}
	if code := cli.Main(cairn.Steps(countingStep(&n)), &cli.Options{Args: args, Stdout: &out, Stderr: &errb}); code != cli.ExitOK || n.Load() != 1 {
		t.Errorf("%q: exit %d, %d executions; stderr:\n%s", args, code, n.Load(), errb.String())
	}
}

// Issue 8: status of a prefix that is not a directory says so and exits 4
// instead of printing an empty table; an empty prefix is a usage error.
func TestStatusRejectsBadPrefix(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		main   bool // a pipeline program's status, else the cairn tool's
		args   []string
		code   int
		stderr string
	}{
		{false, []string{"status", missing}, cli.ExitStorage, "no such directory"},
		{false, []string{"status", "--json", missing}, cli.ExitStorage, "no such directory"},
		{false, []string{"status", "file://" + missing}, cli.ExitStorage, "no such directory"},
		{false, []string{"status", "--prefix", missing}, cli.ExitStorage, "no such directory"},
		{false, []string{"status", file}, cli.ExitStorage, "not a directory"},
		{true, []string{"status", "extra-arg"}, cli.ExitStorage, "no such directory"},
		{true, []string{"status", "--prefix", missing}, cli.ExitStorage, "no such directory"},
		{false, []string{"status", "s3://bucket/p"}, cli.ExitStorage, `no backend for scheme "s3"`},
		{false, []string{"status", ""}, cli.ExitUsage, "empty"},
		{false, []string{"status", "--prefix", ""}, cli.ExitUsage, "--prefix is empty"},
		{true, []string{"status", "--prefix="}, cli.ExitUsage, "--prefix is empty"},
		{false, []string{"status", "--prefix", empty, missing}, cli.ExitUsage, "give the prefix once"},
		{false, []string{"status", empty, missing}, cli.ExitUsage, "one prefix"},
		{false, []string{"status", "--lease-stale-after", "0", empty}, cli.ExitUsage, "--lease-stale-after must be positive"},
		{false, []string{"status", empty}, cli.ExitOK, ""},
		{true, []string{"status", "--json", empty}, cli.ExitOK, ""},
	} {
		var out, errb bytes.Buffer
		o := &cli.Options{Args: tc.args, Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		var code int
		if tc.main {
			code = cli.Main(nil, o)
		} else {
			code = cli.Tool(o)
		}
		if code != tc.code || !strings.Contains(errb.String(), tc.stderr) {
			t.Errorf("main=%v %q: exit %d, stderr %q; want exit %d and %q", tc.main, tc.args, code, errb.String(), tc.code, tc.stderr)
		}
		if code != cli.ExitOK && out.Len() > 0 {
			t.Errorf("main=%v %q: printed a table on error:\n%s", tc.main, tc.args, out.String())
		}
	}
}

// Issue 8: cairn path accepts only real step IDs as --dep, and no empty
// --prefix.
func TestPathRejectsBadDeps(t *testing.T) {
	for _, dep := range []string{
		"x_1234567z", "x_ABCDEF12", "x_123456789", "x_1234567", "_12345678",
		"x_12345678\n", "a\nb_12345678", "x__12345678/", "/x_12345678", "../x_12345678", "nohash",
	} {
		var out, errb bytes.Buffer
		args := []string{"path", "y", "--dep", dep, "--prefix", "/p"}
		if code := cli.Tool(&cli.Options{Args: args, Stdout: &out, Stderr: &errb}); code != cli.ExitUsage || out.Len() > 0 {
			t.Errorf("cairn %q = %d %q, want a usage error", args, code, out.String())
		}
	}
	var out, errb bytes.Buffer
	args := []string{"path", "y", "--dep", "a/b.c_0123abcd", "--prefix", "/p"}
	if code := cli.Tool(&cli.Options{Args: args, Stdout: &out, Stderr: &errb}); code != cli.ExitOK {
		t.Errorf("cairn %q = %d (%s), want success", args, code, errb.String())
	}
	args = []string{"path", "y", "--prefix", ""}
	if code := cli.Tool(&cli.Options{Args: args, Stdout: &out, Stderr: &errb}); code != cli.ExitUsage || !strings.Contains(errb.String(), "--prefix is empty") {
		t.Errorf("cairn %q = %d (%s), want a usage error", args, code, errb.String())
	}
}

// A misspelt flag is a usage error that names the flag most likely meant,
// on every command; a flag like none gets no guess.
func TestMisspeltFlagHint(t *testing.T) {
	var n atomic.Int32
	steps := []*cairn.Step{countingStep(&n)}
	prefix := filepath.Join(t.TempDir(), "p")
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"--prefx", prefix}, "did you mean --prefix?"},
		{[]string{"--max-concurent", "2", "--prefix", prefix}, "did you mean --max-concurrent?"},
		{[]string{"status", "--prefix", prefix, "--jsn"}, "did you mean --json?"},
		{[]string{"logs", "counted", "--folow", "--prefix", prefix}, "did you mean --follow?"},
		{[]string{"graph", "--formt", "dot"}, "did you mean --format?"},
		{[]string{"--zzz"}, ""},
	} {
		code, _, stderr := mainOf(t, steps, tc.args...)
		got := strings.Contains(stderr, "did you mean")
		if code != cli.ExitUsage || tc.hint != "" && !strings.Contains(stderr, tc.hint) || tc.hint == "" && got {
			t.Errorf("%v: code %d, stderr:\n%s\nwant exit %d and hint %q", tc.args, code, stderr, cli.ExitUsage, tc.hint)
		}
	}
	if n.Load() != 0 {
		t.Errorf("a step ran %d times", n.Load())
	}
	code, _, stderr := toolOf(t, "status", "--jsn")
	if code != cli.ExitUsage || !strings.Contains(stderr, "did you mean --json?") {
		t.Errorf("cairn status --jsn: code %d, stderr:\n%s", code, stderr)
	}
}
