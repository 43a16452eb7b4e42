package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/cluster"
)

// flagsProgram is a plain pipeline program with flags of its own: --n sets
// the attribute of its remote step "count", --label an attribute of its
// local step "label", and --notes names a file whose content the remote
// step returns. With selfParsed it instead parses --n itself, from
// os.Args, and gives cli.Main the rest (the workaround of issue 10, whose
// worker cannot rebuild the pipeline).
func flagsProgram(o *cli.Options, selfParsed bool) int {
	fs := flag.NewFlagSet("flags", flag.ContinueOnError)
	n := fs.Int("n", 1, "count up to `N`")
	label := fs.String("label", "x", "the label step's attribute")
	var notes []string
	fs.Var(cli.FileFlag(func(name string, data []byte) error {
		notes = append(notes, string(data))
		return nil
	}), "notes", "a `file` of notes for the remote step")
	if o == nil {
		o = &cli.Options{}
	}
	if selfParsed {
		own := flag.NewFlagSet("own", flag.ContinueOnError)
		self := own.Int("n", 1, "")
		if err := own.Parse(os.Args[1:]); err != nil {
			return cli.ExitUsage
		}
		*n = *self
		o.Args = own.Args()
	} else {
		o.Flags = fs
	}
	o.Prepare = func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
		lbl := &cairn.Step{Name: "label", Attrs: map[string]any{"label": *label}, Func: func(context.Context, *cairn.Output) (any, error) {
			return *label, nil
		}}
		count := cairn.Remote(func(ctx context.Context, out *cairn.Output) (map[string]any, error) {
			return map[string]any{"n": *n, "notes": strings.Join(notes, "|"), "pid": os.Getpid()}, nil
		}, &cairn.RemoteSpec{Resources: cluster.Resources{CPUs: 1, Memory: 64 * cluster.MiB}})
		return cairn.Steps(lbl, &cairn.Step{Name: "count", Attrs: map[string]any{"n": *n}, Func: count.Func()}), nil
	}
	return cli.Main(nil, o)
}

func runFlagsProgram(t *testing.T, dir string, selfParsed bool, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	mode := "flags"
	if selfParsed {
		mode = "self-parsed"
	}
	cmd.Env = append(os.Environ(), "CAIRN_TEST_FLAGS_PROGRAM="+mode, "CAIRN_CLUSTER=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A program's own flags mix with cairn's, and its remote step's worker
// gets them and the content of the file a flag read (deleted before the
// second run's job; the recorded content is used).
func TestProgramFlagsReachWorker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out")
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runFlagsProgram(t, dir, false, "--n", "7", "--prefix", prefix, "--notes", "notes.txt", "--label=a b", "--poll-interval", "100ms")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	m, _ := filepath.Glob(filepath.Join(prefix, "count_*", ".artifact"))
	if len(m) != 1 {
		t.Fatalf("count artifacts %v\n%s", m, out)
	}
	data, _ := os.ReadFile(m[0])
	var got struct {
		N     int    `json:"n"`
		Notes string `json:"notes"`
		PID   int    `json:"pid"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.N != 7 || got.Notes != "hello\n" || got.PID == 0 {
		t.Errorf("the remote step saw %+v, want n 7 and the notes", got)
	}
	// status takes the program's flags too: with --n 7 the count step is
	// the one that ran.
	var stdout, stderr bytes.Buffer
	code := flagsProgram(&cli.Options{Args: []string{"status", "--prefix", prefix, "--n", "7", "--label", "a b"}, Stdout: &stdout, Stderr: &stderr}, false)
	if code != cli.ExitOK || strings.Count(stdout.String(), "SUCCESS") != 2 {
		t.Errorf("status --n 7: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// A program that parses a flag itself (the old workaround) gets a worker
// that cannot rebuild its step; the error names the arguments the worker
// never got.
func TestSelfParsedFlagsNamedInMismatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, err := runFlagsProgram(t, dir, true, "-n", "5", "--", "--prefix", filepath.Join(dir, "out"))
	if err == nil {
		t.Fatalf("run succeeded; want the remote step to fail\n%s", out)
	}
	for _, want := range []string{
		"worker program differs from the submitter's",
		"the step's configuration differs (submitter → here): attrs.n 5 → 1",
		"likely cause: the submitter's command line had arguments its program parsed itself, which a worker never gets (-n 5): declare such flags in cli.Options.Flags",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestProgramFlagErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		flags func(fs *flag.FlagSet)
		args  []string
		want  string
	}{
		{"unknown flag", nil, []string{"--nn", "3"}, "flag provided but not defined: -nn"},
		{"bad value", nil, []string{"--n", "three"}, `invalid value "three" for flag -n`},
		{"missing file", nil, []string{"--notes", "/nonexistent/notes"}, "no such file or directory"},
		{"name taken by cairn", func(fs *flag.FlagSet) { fs.String("prefix", "", "") }, nil, "the program's flag -prefix has the name of a flag of cairn's run command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o := &cli.Options{Args: append([]string{"--prefix", t.TempDir(), "--dry-run"}, tc.args...), Stdout: &stderr, Stderr: &stderr}
			var code int
			if tc.flags != nil {
				fs := flag.NewFlagSet("p", flag.ContinueOnError)
				tc.flags(fs)
				o.Flags = fs
				code = cli.Main(cairn.Steps(), o)
			} else {
				code = flagsProgram(o, false)
			}
			if code != cli.ExitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, want %d; output:\n%s\nwant %q", code, cli.ExitUsage, stderr.String(), tc.want)
			}
		})
	}
}

func TestJobEnv(t *testing.T) {
	t.Parallel()
	got := cli.JobEnv([]string{
		"CAIRN_PREFIX=/p", "MARIN_PREFIX=gs://b", "CAIRN_EXPERIMENT=x=y", "HOME=/root",
		"CAIRN_CLUSTER=slurm", "CAIRN_STAGE_PROGRAM=/s", "CAIRN_JOB_ID=1", "CAIRN_REPLICA=0", "CAIRN_ATTEMPT=2", "CAIRN_VERIFIED_PROGRAM=sha256:ab /tmp/p",
		"MARIN_HF_TOKEN=t", "CAIRN_S3_SECRET=s", "MARIN_API_KEY=k", "CAIRN_PASSWORD=p", "MARIN_KEYBOARD=ok",
	})
	want := map[string]string{"CAIRN_PREFIX": "/p", "MARIN_PREFIX": "gs://b", "CAIRN_EXPERIMENT": "x=y", "MARIN_KEYBOARD": "ok"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("JobEnv = %v, want %v", got, want)
	}
}
