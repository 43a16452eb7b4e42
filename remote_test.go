package cairn_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cluster"
	"example.com/cairn/cluster/localcluster"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
	"example.com/cairn/store/memstore"
)

// workerArg makes the test binary a remote-step worker (see TestMain):
// cluster jobs run "TESTBINARY cairn-test-worker FLAGS", with the pipeline
// named by CAIRN_TEST_CASE.
const workerArg = "cairn-test-worker"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == workerArg {
		os.Exit(testWorker(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// testWorker is the worker mode of the test binary, as package cli gives
// pipeline programs.
func testWorker(args []string) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	step := fs.String("step", "", "")
	path := fs.String("path", "", "")
	prefix := fs.String("prefix", "", "")
	digest := fs.String("program-digest", "", "")
	params := fs.String("params", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *params != "" { // TestRemoteParamsAndEnv
		data, err := cairn.ReadJobParams(context.Background(), testStorage(), *path, *params)
		if err != nil {
			fmt.Fprintf(os.Stderr, "worker: %v\n", err)
			return 1
		}
		fmt.Printf("params: %s; runner env: %q\n", data, os.Getenv("CAIRN_FROM_RUNNER"))
	}
	replica, _ := strconv.Atoi(os.Getenv("CAIRN_REPLICA"))
	err := cairn.RunWorker(context.Background(), testPipeline(os.Getenv("CAIRN_TEST_CASE"), *prefix), &cairn.WorkerOptions{
		Step: *step, Path: *path, Prefix: *prefix, Storage: testStorage(), Digest: *digest, Replica: replica,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		return 1
	}
	return 0
}

func testStorage() *store.URLMux {
	mux := new(store.URLMux)
	mux.Register("file", &filestore.URLOpener{})
	return mux
}

type sumResult struct {
	Sum   int    `json:"sum"`
	PID   int    `json:"pid"`
	Label string `json:"label"`
}

// testPipeline builds the pipelines the tests run; the worker rebuilds the
// same one. Steps are closures over local variables, as users write them.
func testPipeline(name, prefix string) iter.Seq[*cairn.Step] {
	label := "closure-captured-" + name // captured by the remote function
	env := map[string]string{"CAIRN_TEST_CASE": name, "CAIRN_TEST_VALUE": "it's $HOME; `x`"}
	gen := &cairn.Step{Name: "gen", Attrs: map[string]int{"n": 5}, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		_, err := out.Bucket.Write(ctx, "numbers.txt", []byte("1 2 3 4 5"))
		return map[string]int{"n": 5}, err
	}}
	switch name {
	case "basic":
		square := cairn.Remote(func(ctx context.Context, out *cairn.Output) (sumResult, error) {
			in, err := out.OpenDep(ctx, gen)
			if err != nil {
				return sumResult{}, err
			}
			data, _, err := in.Read(ctx, "numbers.txt")
			if err != nil {
				return sumResult{}, err
			}
			sum := 0
			for f := range strings.FieldsSeq(string(data)) {
				n, _ := strconv.Atoi(f)
				sum += n * n
			}
			out.Logger.Info("squared", "sum", sum, "value", os.Getenv("CAIRN_TEST_VALUE"))
			return sumResult{Sum: sum, PID: os.Getpid(), Label: label}, nil
		}, &cairn.RemoteSpec{Env: env, Resources: cluster.Resources{CPUs: 1, Memory: 64 * cluster.MiB}})
		sq := &cairn.Step{Name: "square", Deps: []*cairn.Step{gen}, Func: square.Func()}
		// marked is remote through Step.Remote, with a plain Func.
		marked := &cairn.Step{Name: "marked", Deps: []*cairn.Step{sq}, Remote: &cairn.RemoteSpec{Env: env},
			Func: func(ctx context.Context, out *cairn.Output) (any, error) {
				r, err := cairn.Load[sumResult](ctx, out, sq)
				return map[string]any{"sum": r.Sum, "pid": os.Getpid(), "value": os.Getenv("CAIRN_TEST_VALUE")}, err
			}}
		report := &cairn.Step{Name: "report", Deps: []*cairn.Step{sq, marked}, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			r, err := cairn.Load[sumResult](ctx, out, sq)
			return map[string]any{"sum": r.Sum, "pid": os.Getpid()}, err
		}}
		return cairn.Steps(report)
	case "fail":
		return cairn.Steps(&cairn.Step{Name: "fails", Deps: []*cairn.Step{gen}, Remote: &cairn.RemoteSpec{Env: env},
			Func: func(ctx context.Context, out *cairn.Output) (any, error) {
				fmt.Println("about to fail")
				return nil, errors.New("deliberate failure in the job")
			}})
	case "gang":
		return cairn.Steps(&cairn.Step{Name: "gang", Remote: &cairn.RemoteSpec{Env: env, Replicas: 2},
			Func: func(ctx context.Context, out *cairn.Output) (any, error) {
				dir, _ := strings.CutPrefix(out.Path, "file://")
				f, err := os.OpenFile(filepath.Join(dir, "replicas.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					return nil, err
				}
				defer f.Close()
				fmt.Fprintf(f, "replica %s\n", os.Getenv("CAIRN_REPLICA"))
				return map[string]string{"replica": os.Getenv("CAIRN_REPLICA")}, nil
			}})
	case "quick":
		return cairn.Steps(&cairn.Step{Name: "quick", Remote: &cairn.RemoteSpec{Env: env},
			Func: func(ctx context.Context, out *cairn.Output) (any, error) {
				return map[string]int{"pid": os.Getpid()}, nil
			}})
	case "slow":
		return cairn.Steps(&cairn.Step{Name: "slow", Remote: &cairn.RemoteSpec{Env: env},
			Func: func(ctx context.Context, out *cairn.Output) (any, error) {
				fmt.Println("slow step started")
				<-ctx.Done()
				time.Sleep(50 * time.Millisecond)
				return nil, ctx.Err()
			}})
	}
	panic("unknown test pipeline " + name)
}

// remoteRun runs pipeline name on a local-disk prefix with remote steps on
// the local cluster backend.
func remoteRun(t *testing.T, ctx context.Context, name, prefix string, edit func(*cairn.RemoteOptions)) (*cairn.Report, error) {
	t.Helper()
	c := cluster.NewClient(localcluster.New(nil), &cluster.Options{Name: "local"})
	defer c.Close()
	ro := &cairn.RemoteOptions{
		Cluster: c,
		WorkerArgs: func(w cairn.WorkerJob) []string {
			return []string{workerArg, "--step", w.Step, "--path", w.Path, "--prefix", prefix, "--program-digest", w.Digest}
		},
	}
	if edit != nil {
		edit(ro)
	}
	return cairn.Run(ctx, testPipeline(name, prefix), &cairn.RunOptions{Prefix: prefix, Storage: testStorage(), Remote: ro, Logger: discardLogger()})
}

func stepDir(t *testing.T, prefix, id string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(prefix, id+"_*"))
	if err != nil || len(m) != 1 {
		t.Fatalf("output of %s under %s: %v %v", id, prefix, m, err)
	}
	return m[0]
}

func readJSON(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A pipeline mixing local and remote steps runs each remote function in a
// job (another process), with the lease, status and artifact protocol
// unchanged, the job's log under the output path and the program recorded.
func TestRemoteStepsRunAsJobs(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	rep, err := remoteRun(t, t.Context(), "basic", prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Count(cairn.Ran); n != 4 {
		t.Errorf("%d steps ran, want 4: %+v", n, rep.Steps)
	}
	sq := stepDir(t, prefix, "square")
	var got sumResult
	if err := decodeFile(filepath.Join(sq, statusfile.ArtifactKey), &got); err != nil {
		t.Fatal(err)
	}
	if got.Sum != 55 || got.PID == os.Getpid() || got.Label != "closure-captured-basic" {
		t.Errorf("square artifact = %+v; want sum 55 computed in another process by the closure", got)
	}
	if s := readJSON(t, filepath.Join(sq, statusfile.StatusKey)); s != statusfile.Success {
		t.Errorf("status %q", s)
	}
	if _, err := os.Stat(filepath.Join(sq, statusfile.LockKey)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lease not released: %v", err)
	}
	var rec statusfile.Remote
	if err := decodeFile(filepath.Join(sq, statusfile.RemoteKey), &rec); err != nil {
		t.Fatal(err)
	}
	self, err := cairn.CurrentProgram()
	if err != nil {
		t.Fatal(err)
	}
	wantLog := filepath.Join(sq, statusfile.LogsDir, "attempt-1.log")
	if rec.Program.Digest != self.Digest || rec.Program.Build == "" || rec.State != "succeeded" || rec.Cluster != "local" ||
		!slices.Equal(rec.Logs, []string{wantLog}) || rec.Job != "square_"+strings.TrimPrefix(filepath.Base(sq), "square_") || rec.ExitCode == nil || *rec.ExitCode != 0 {
		t.Errorf("remote record = %+v", rec)
	}
	if log := readJSON(t, wantLog); !strings.Contains(log, "squared") || !strings.Contains(log, "it's $HOME; `x`") {
		t.Errorf("job log lacks the step's output:\n%s", log)
	}
	// Step.Remote works the same; the value reaches the job unquoted.
	var marked map[string]any
	if err := decodeFile(filepath.Join(stepDir(t, prefix, "marked"), statusfile.ArtifactKey), &marked); err != nil {
		t.Fatal(err)
	}
	if marked["sum"] != 55.0 || marked["pid"] == float64(os.Getpid()) || marked["value"] != "it's $HOME; `x`" {
		t.Errorf("marked artifact = %v", marked)
	}
	// Local steps ran here.
	var report map[string]any
	if err := decodeFile(filepath.Join(stepDir(t, prefix, "report"), statusfile.ArtifactKey), &report); err != nil {
		t.Fatal(err)
	}
	if report["pid"] != float64(os.Getpid()) {
		t.Errorf("report ran in pid %v, want this process", report["pid"])
	}
	// A second run finds everything cached and submits nothing.
	rep, err = remoteRun(t, t.Context(), "basic", prefix, nil)
	if err != nil || rep.Count(cairn.Cached) != 4 {
		t.Errorf("second run: %v, %+v", err, rep.Steps)
	}
}

func decodeFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// A failed job fails the step with its state, exit code and log tail.
func TestRemoteStepFailure(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	_, err := remoteRun(t, t.Context(), "fail", prefix, nil)
	je, ok := errors.AsType[*cluster.JobError](err)
	if !ok || je.ExitCode != 1 || je.Status != cluster.Failed || !strings.Contains(je.LogTail, "deliberate failure in the job") ||
		!strings.Contains(je.LogTail, "about to fail") {
		t.Fatalf("err = %v; want a JobError with exit code 1 and the step's error in the log tail", err)
	}
	dir := stepDir(t, prefix, "fails")
	if s := readJSON(t, filepath.Join(dir, statusfile.StatusKey)); s != statusfile.Failed {
		t.Errorf("status %q, want FAILED", s)
	}
	f := readJSON(t, filepath.Join(dir, statusfile.FailureKey))
	if !strings.Contains(f, "deliberate failure") {
		t.Errorf("failure record lacks the cause: %s", f)
	}
}

// A job whose program is not the submitter's refuses to run.
func TestRemoteProgramMismatch(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	_, err := remoteRun(t, t.Context(), "fail", prefix, func(ro *cairn.RemoteOptions) {
		p, err := cairn.CurrentProgram()
		if err != nil {
			t.Fatal(err)
		}
		p.Digest = "sha256:" + strings.Repeat("0", 64)
		ro.Program = &p
	})
	if !errors.Is(err, cluster.ErrFailed) || !errors.Is(err, cairn.ErrProgramMismatch) || !strings.Contains(err.Error(), "refusing to run it") {
		t.Fatalf("err = %v; want the job's refusal to run a program with another digest", err)
	}
	if strings.Contains(err.Error(), "deliberate failure") {
		t.Errorf("the step ran under another program: %v", err)
	}
}

// Every replica of a gang runs the function; one artifact is saved.
func TestRemoteGang(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	if _, err := remoteRun(t, t.Context(), "gang", prefix, nil); err != nil {
		t.Fatal(err)
	}
	dir := stepDir(t, prefix, "gang")
	lines := strings.Split(strings.TrimSpace(readJSON(t, filepath.Join(dir, "replicas.txt"))), "\n")
	slices.Sort(lines)
	if !slices.Equal(lines, []string{"replica 0", "replica 1"}) {
		t.Errorf("replicas ran: %q", lines)
	}
	if a := readJSON(t, filepath.Join(dir, statusfile.ArtifactKey)); a != `{"replica":"0"}` {
		t.Errorf("artifact %s, want replica 0's", a)
	}
}

// Interrupting the run cancels the job and restores the step's status.
func TestRemoteInterruptCancelsJob(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := remoteRun(t, ctx, "slow", prefix, nil)
		done <- err
	}()
	// Wait for the job to print its first line.
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(prefix, "slow_*", statusfile.LogsDir, "attempt-1.log"))
		if len(m) == 1 {
			if data, _ := os.ReadFile(m[0]); strings.Contains(string(data), "slow step started") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the job never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v, want context.Canceled", err)
	}
	dir := stepDir(t, prefix, "slow")
	var rec statusfile.Remote
	if err := decodeFile(filepath.Join(dir, statusfile.RemoteKey), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.State != "stopped" {
		t.Errorf("job state %q, want stopped", rec.State)
	}
	if _, err := os.Stat(filepath.Join(dir, statusfile.StatusKey)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("status not restored: %v", err)
	}
}

// Staging copies the program once, content-addressed, and jobs run the
// staged copy; a bucket a job cannot execute from is refused.
func TestStageProgram(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	self, err := cairn.CurrentProgram()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := filestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	staged, err := cairn.StageProgram(ctx, b, self)
	if err != nil {
		t.Fatal(err)
	}
	hexd := strings.TrimPrefix(self.Digest, "sha256:")
	if staged.Path != filepath.Join(dir, hexd) || staged.Digest != self.Digest {
		t.Errorf("staged = %+v", staged)
	}
	fi, err := os.Stat(staged.Path)
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("staged binary %v, %v: want a read-only file (jobs run a verified private copy)", fi, err)
	}
	mtime := fi.ModTime()
	time.Sleep(20 * time.Millisecond)
	if _, err := cairn.StageProgram(ctx, b, self); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(staged.Path); !fi.ModTime().Equal(mtime) {
		t.Errorf("the program was uploaded twice")
	}
	if _, err := cairn.StageProgram(ctx, memstore.New().Bucket("stage"), self); err == nil {
		t.Errorf("staging to an in-memory bucket succeeded")
	}

	// A run with staging runs the job from the staged copy.
	prefix := t.TempDir()
	stage := t.TempDir()
	if _, err := remoteRun(t, ctx, "basic", prefix, func(ro *cairn.RemoteOptions) { ro.StageProgram = stage }); err != nil {
		t.Fatal(err)
	}
	var rec statusfile.Remote
	if err := decodeFile(filepath.Join(stepDir(t, prefix, "square"), statusfile.RemoteKey), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Program.Path != filepath.Join(stage, hexd) {
		t.Errorf("job ran %s, want the staged copy in %s", rec.Program.Path, stage)
	}
}

// A staged program replaced after staging (as anyone able to write a
// shared staging directory could) is not run: the job verifies its own
// private copy before it starts, so the step fails with
// ErrProgramMismatch and the replacement never runs (issue 8, item 12).
func TestStagedProgramReplacedIsNotRun(t *testing.T) {
	t.Parallel()
	prefix, stage := t.TempDir(), t.TempDir()
	canary := filepath.Join(t.TempDir(), "canary")
	_, err := remoteRun(t, t.Context(), "fail", prefix, func(ro *cairn.RemoteOptions) {
		ro.StageProgram = stage
		args := ro.WorkerArgs
		// WorkerArgs is called once the program is staged, just before the
		// job is submitted: replace the staged file then.
		ro.WorkerArgs = func(w cairn.WorkerJob) []string {
			staged := filepath.Join(stage, strings.TrimPrefix(w.Digest, "sha256:"))
			if err := os.Chmod(staged, 0o755); err != nil {
				t.Error(err)
			}
			if err := os.WriteFile(staged, []byte("#!/bin/sh\ntouch '"+canary+"'\n"), 0o755); err != nil {
				t.Error(err)
			}
			return args(w)
		}
	})
	if !errors.Is(err, cairn.ErrProgramMismatch) || !strings.Contains(err.Error(), "refusing to run it") {
		t.Fatalf("run = %v; want the job's refusal (ErrProgramMismatch)", err)
	}
	if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the replaced staged program ran")
	}
	if s := readJSON(t, filepath.Join(stepDir(t, prefix, "fails"), statusfile.StatusKey)); s != statusfile.Failed {
		t.Errorf("status %q, want FAILED", s)
	}
	// Staging again notices the damaged copy instead of trusting its name.
	b, err := filestore.Open(stage, nil)
	if err != nil {
		t.Fatal(err)
	}
	self, err := cairn.CurrentProgram()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cairn.StageProgram(t.Context(), b, self); err == nil || !strings.Contains(err.Error(), "replaced or damaged") {
		t.Errorf("StageProgram over a replaced copy = %v; want it refused", err)
	}
}

// A staging directory or staged file every user may write is refused; a
// group-writable (team) directory is accepted (issue 8, items 12-13).
func TestStageProgramPermissions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	self, err := cairn.CurrentProgram()
	if err != nil {
		t.Fatal(err)
	}
	stage := func(dir string) error {
		b, err := filestore.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cairn.StageProgram(ctx, b, self)
		return err
	}
	for _, tc := range []struct {
		name     string
		dirMode  os.FileMode
		fileMode os.FileMode // 0: not staged before
		ok       bool
	}{
		{"private", 0o755, 0, true},
		{"group-writable team directory", 0o775, 0, true},
		{"group-writable setgid team directory", 0o2775, 0, true},
		{"world-writable", 0o777, 0, false},
		{"world-writable sticky", 0o1777, 0, false},
		{"group-writable staged copy", 0o775, 0o664, true},
		{"world-writable staged copy", 0o755, 0o666, false},
	} {
		dir := filepath.Join(t.TempDir(), "stage")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if tc.fileMode != 0 {
			if err := stage(dir); err != nil {
				t.Fatalf("%s: staging the first copy: %v", tc.name, err)
			}
			if err := os.Chmod(filepath.Join(dir, strings.TrimPrefix(self.Digest, "sha256:")), tc.fileMode); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(dir, tc.dirMode); err != nil {
			t.Fatal(err)
		}
		err := stage(dir)
		if tc.ok && err != nil {
			t.Errorf("%s: StageProgram = %v, want success", tc.name, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "writable by every user")) {
			t.Errorf("%s: StageProgram = %v, want a refusal", tc.name, err)
		}
	}
}

// Without a cluster, remote steps run in this process.
func TestRemoteWithoutCluster(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	if _, err := cairn.Run(t.Context(), testPipeline("basic", prefix), &cairn.RunOptions{Prefix: prefix, Storage: testStorage(), Logger: discardLogger()}); err != nil {
		t.Fatal(err)
	}
	var got sumResult
	if err := decodeFile(filepath.Join(stepDir(t, prefix, "square"), statusfile.ArtifactKey), &got); err != nil {
		t.Fatal(err)
	}
	if got.Sum != 55 || got.PID != os.Getpid() {
		t.Errorf("artifact %+v, want sum 55 computed here", got)
	}
}

// The worker refuses a step the pipeline does not have, naming the
// same-named step whose hash differs.
func TestRunWorkerUnknownStep(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	err := cairn.RunWorker(t.Context(), testPipeline("basic", prefix), &cairn.WorkerOptions{Step: "square_00000000", Prefix: prefix, Storage: testStorage()})
	if !errors.Is(err, cairn.ErrProgramMismatch) || !strings.Contains(err.Error(), "square_") {
		t.Errorf("err = %v", err)
	}
}

// The worker checks its own digest against the submitter's, unless the
// job's launcher verified that very digest (WorkerOptions.Verified).
func TestRunWorkerDigest(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	other := "sha256:" + strings.Repeat("0", 64)
	opts := func(verified string) *cairn.WorkerOptions {
		return &cairn.WorkerOptions{Step: "square_00000000", Prefix: prefix, Storage: testStorage(), Digest: other, Verified: verified}
	}
	err := cairn.RunWorker(t.Context(), testPipeline("basic", prefix), opts(""))
	if !errors.Is(err, cairn.ErrProgramMismatch) || !strings.Contains(err.Error(), "the submitter's was "+other) {
		t.Errorf("another program's digest: err = %v; want the digests' mismatch", err)
	}
	// Trusted: the worker goes on, to the step (which this pipeline lacks).
	err = cairn.RunWorker(t.Context(), testPipeline("basic", prefix), opts(other))
	if !errors.Is(err, cairn.ErrProgramMismatch) || strings.Contains(err.Error(), "the submitter's was") || !strings.Contains(err.Error(), "square_") {
		t.Errorf("digest verified by the launcher: err = %v; want the unknown step's error, not the digests'", err)
	}
	// A verified digest that is not the submitter's proves nothing.
	err = cairn.RunWorker(t.Context(), testPipeline("basic", prefix), opts("sha256:"+strings.Repeat("1", 64)))
	if !errors.Is(err, cairn.ErrProgramMismatch) || !strings.Contains(err.Error(), "the submitter's was "+other) {
		t.Errorf("another verified digest: err = %v; want the digests' mismatch", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// With an output path a job cannot write to directly (here a URL scheme
// the runner knows but localPath does not), the job logs to a local
// directory and the runner copies the logs under the output path.
func TestRemoteLogsCopiedForNonLocalPrefix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prefix := "shared://" + dir
	storage := testStorage()
	storage.Register("shared", filestore.URLOpener{})
	c := cluster.NewClient(localcluster.New(nil), &cluster.Options{Name: "local", LogRoot: t.TempDir()})
	defer c.Close()
	_, err := cairn.Run(t.Context(), testPipeline("fail", prefix), &cairn.RunOptions{Prefix: prefix, Storage: storage, Logger: discardLogger(),
		Remote: &cairn.RemoteOptions{Cluster: c, WorkerArgs: func(w cairn.WorkerJob) []string {
			// The worker opens "shared" URLs too: it runs the same storage setup
			// (testWorker registers only "file", so it gets the local path).
			return []string{workerArg, "--step", w.Step, "--prefix", dir, "--program-digest", w.Digest}
		}}})
	if !errors.Is(err, cluster.ErrFailed) {
		t.Fatalf("run = %v, want the job's failure", err)
	}
	log := readJSON(t, filepath.Join(stepDir(t, dir, "fails"), statusfile.LogsDir, "attempt-1.log"))
	if !strings.Contains(log, "deliberate failure in the job") {
		t.Errorf("copied log = %q", log)
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// takeOverSetup leaves the step of pipeline "quick" at prefix as a dead
// runner would: status RUNNING, no lease, and a remote record with the
// given token and job IDs. It returns the step's ID and output path.
func takeOverSetup(t *testing.T, prefix, token string, jobIDs []string) (id, path string) {
	t.Helper()
	var step *cairn.Step
	for s := range testPipeline("quick", prefix) {
		step = s
	}
	id, err := step.ID()
	if err != nil {
		t.Fatal(err)
	}
	path, err = step.OutputPath(prefix)
	if err != nil {
		t.Fatal(err)
	}
	b, err := testStorage().OpenBucket(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := statusfile.WriteStatus(t.Context(), b, statusfile.Running); err != nil {
		t.Fatal(err)
	}
	rec := statusfile.Remote{Cluster: "local", Job: id, JobIDs: jobIDs, State: "running", Token: token, Submitted: time.Now().UTC()}
	if err := statusfile.WriteRemote(t.Context(), b, rec); err != nil {
		t.Fatal(err)
	}
	return id, path
}

// A runner taking a step over adopts only a job tagged with the token the
// previous submitter recorded: a job of the same name tagged with another
// token (or with the old, guessable hash of the path) is not adopted, and
// since the scheduler still runs it, the runner waits for it to end before
// it submits its own (issue 8, item 13). Another user's job is never a
// candidate at all (clustertest's AdoptOnlyOwnJobs).
func TestRemoteAdoptionNeedsRecordedToken(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	c := cluster.NewClient(localcluster.New(nil), &cluster.Options{Name: "local"})
	defer c.Close()
	release := filepath.Join(t.TempDir(), "release")
	// The impostor exits 0 without doing anything once released: adopted,
	// it would make the step SUCCESS with no artifact.
	impostor := cluster.JobSpec{
		Command: []string{"/bin/sh", "-c", `while [ ! -e "$1" ]; do sleep 0.02; done`, "sh", release},
		LogDir:  t.TempDir(),
	}
	id, path := takeOverSetup(t, prefix, "recorded-token", nil)
	sum := sha256.Sum256([]byte(path))
	var impostors []string
	for _, tag := range []string{cairn.JobTag("another-token", path), hex.EncodeToString(sum[:8])} {
		impostor.Name, impostor.Tag = id, tag
		j, err := c.Submit(t.Context(), impostor)
		if err != nil {
			t.Fatal(err)
		}
		impostors = append(impostors, j.ID())
	}
	// The record names the impostors' jobs, as if the dead runner had
	// submitted them.
	takeOverSetup(t, prefix, "recorded-token", impostors)

	var logs lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := cairn.Run(t.Context(), testPipeline("quick", prefix), &cairn.RunOptions{
			Prefix: prefix, Storage: testStorage(), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Remote: &cairn.RemoteOptions{Cluster: c, WorkerArgs: func(w cairn.WorkerJob) []string {
				return []string{workerArg, "--step", w.Step, "--path", w.Path, "--prefix", prefix, "--program-digest", w.Digest}
			}},
		})
		done <- err
	}()
	// The runner waits for the job it may not adopt; release it then.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "cannot be adopted") {
		if strings.Contains(logs.String(), "adopted the job") {
			t.Fatalf("the runner adopted a job not tagged with the recorded token:\n%s", logs.String())
		}
		select {
		case err := <-done:
			t.Fatalf("run ended (%v) without waiting for the unadoptable job:\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner never waited for the unadoptable job:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	dir, _ := strings.CutPrefix(path, "file://")
	var rec statusfile.Remote
	if err := decodeFile(filepath.Join(dir, statusfile.RemoteKey), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Adopted || rec.Token == "" || rec.Token == "recorded-token" || len(rec.JobIDs) != 1 || slices.Contains(impostors, rec.JobIDs[0]) {
		t.Errorf("remote record %+v; want a fresh job under a new token, not an adopted impostor", rec)
	}
	var art map[string]int
	if err := decodeFile(filepath.Join(dir, statusfile.ArtifactKey), &art); err != nil || art["pid"] == 0 {
		t.Errorf("artifact %v, %v: want the real job's", art, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, statusfile.RemoteKey)); err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("remote record %v, %v: want it unreadable by other users (it holds the token)", fi, err)
	}
}

// A runner taking a step over adopts the job tagged with the recorded
// token, and the job's outcome decides the step.
func TestRemoteAdoptsJobWithRecordedToken(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	c := cluster.NewClient(localcluster.New(nil), &cluster.Options{Name: "local"})
	defer c.Close()
	id, path := takeOverSetup(t, prefix, "recorded-token", nil)
	self, err := cairn.CurrentProgram()
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := strings.CutPrefix(path, "file://")
	release := filepath.Join(t.TempDir(), "release")
	// The dead runner's job: the real worker, held until released so that
	// it is still running when the new runner looks for it.
	j, err := c.Submit(t.Context(), cluster.JobSpec{
		Name: id,
		Tag:  cairn.JobTag("recorded-token", path),
		Command: []string{"/bin/sh", "-c", `while [ ! -e "$1" ]; do sleep 0.02; done; shift; exec "$@"`, "sh", release,
			self.Path, workerArg, "--step", id, "--path", path, "--prefix", prefix},
		Environment: cluster.Environment{Vars: map[string]string{"CAIRN_TEST_CASE": "quick"}},
		LogDir:      filepath.Join(dir, statusfile.LogsDir),
	})
	if err != nil {
		t.Fatal(err)
	}
	takeOverSetup(t, prefix, "recorded-token", []string{j.ID()})
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := cairn.Run(t.Context(), testPipeline("quick", prefix), &cairn.RunOptions{
			Prefix: prefix, Storage: testStorage(), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Remote: &cairn.RemoteOptions{Cluster: c, WorkerArgs: func(w cairn.WorkerJob) []string {
				return []string{workerArg, "--step", w.Step, "--path", w.Path, "--prefix", prefix, "--program-digest", w.Digest}
			}},
		})
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	awaitLog(t, &logs, done, "adopted the job", deadline)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	var rec statusfile.Remote
	if err := decodeFile(filepath.Join(dir, statusfile.RemoteKey), &rec); err != nil {
		t.Fatal(err)
	}
	if !rec.Adopted || rec.Token != "recorded-token" || !slices.Equal(rec.JobIDs, []string{j.ID()}) {
		t.Errorf("remote record %+v; want the recorded job adopted", rec)
	}
	if s := readJSON(t, filepath.Join(dir, statusfile.StatusKey)); s != statusfile.Success {
		t.Errorf("status %q", s)
	}
}

// A runner that loses its lease while its step's job runs leaves the job
// running, for the runner that takes the step over to adopt: cancelling it
// would fail the step under its new owner. Here nobody else is there: the
// runner goes back to waiting, takes the step over itself and adopts its
// own job.
func TestRemoteLeaseLostLeavesJobToTaker(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	c := cluster.NewClient(localcluster.New(nil), &cluster.Options{Name: "local"})
	defer c.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := cairn.Run(ctx, testPipeline("slow", prefix), &cairn.RunOptions{
			Prefix: prefix, Storage: testStorage(), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Lease: &lease.Options{Interval: 50 * time.Millisecond}, PollInterval: 10 * time.Millisecond,
			Remote: &cairn.RemoteOptions{Cluster: c, WorkerArgs: func(w cairn.WorkerJob) []string {
				return []string{workerArg, "--step", w.Step, "--path", w.Path, "--prefix", prefix, "--program-digest", w.Digest}
			}},
		})
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(prefix, "slow_*", statusfile.LogsDir, "attempt-1.log"))
		if len(m) == 1 {
			if data, _ := os.ReadFile(m[0]); strings.Contains(string(data), "slow step started") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the job never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	dir := stepDir(t, prefix, "slow")
	var first statusfile.Remote
	if err := decodeFile(filepath.Join(dir, statusfile.RemoteKey), &first); err != nil {
		t.Fatal(err)
	}
	// The lease is taken away.
	if err := os.Remove(filepath.Join(dir, statusfile.LockKey)); err != nil {
		t.Fatal(err)
	}
	awaitLog(t, &logs, done, "adopted the job", deadline)
	if !strings.Contains(logs.String(), "lease lost") {
		t.Errorf("the loss was not logged:\n%s", logs.String())
	}
	var rec statusfile.Remote
	if err := decodeFile(filepath.Join(dir, statusfile.RemoteKey), &rec); err != nil {
		t.Fatal(err)
	}
	if !rec.Adopted || len(rec.JobIDs) == 0 || len(first.JobIDs) == 0 || rec.JobIDs[len(rec.JobIDs)-1] != first.JobIDs[0] {
		t.Errorf("remote record %+v after the loss; want the first job (%v) adopted", rec, first.JobIDs)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run = %v, want context.Canceled", err)
	}
}

// awaitLog waits until logs holds want, failing the test if the run ends
// (a value on done) or the deadline passes first.
func awaitLog(t *testing.T, logs *lockedBuffer, done <-chan error, want string, deadline time.Time) {
	t.Helper()
	for !strings.Contains(logs.String(), want) {
		select {
		case err := <-done:
			t.Fatalf("run ended (%v) before logging %q:\n%s", err, want, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner never logged %q:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RemoteOptions.Params are recorded under each remote step's output before
// its job is submitted, and the job reads them back by the digest in its
// command; RemoteOptions.Env reaches the job, under the step's own
// variables.
func TestRemoteParamsAndEnv(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	params := []byte(`{"format": "test", "args": ["-n=7"]}`)
	var digests []string
	_, err := remoteRun(t, t.Context(), "basic", prefix, func(ro *cairn.RemoteOptions) {
		ro.Params = params
		ro.Env = map[string]string{"CAIRN_FROM_RUNNER": "r1", "CAIRN_TEST_VALUE": "the runner's"}
		args := ro.WorkerArgs
		ro.WorkerArgs = func(w cairn.WorkerJob) []string {
			digests = append(digests, w.Params)
			return append(args(w), "--params", w.Params)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sq := stepDir(t, prefix, "square")
	if got := readJSON(t, filepath.Join(sq, statusfile.ParamsKey)); got != string(params) {
		t.Errorf("recorded params %q, want %q", got, params)
	}
	want := fmt.Sprintf("params: %s; runner env: %q", params, "r1")
	if log := readJSON(t, filepath.Join(sq, statusfile.LogsDir, "attempt-1.log")); !strings.Contains(log, want) {
		t.Errorf("job log lacks %q:\n%s", want, log)
	}
	if len(digests) != 2 || digests[0] != statusfile.ParamsDigest(params) {
		t.Errorf("WorkerJob.Params = %q, want the digest of the params for each of the 2 jobs", digests)
	}
	var marked map[string]any
	if err := decodeFile(filepath.Join(stepDir(t, prefix, "marked"), statusfile.ArtifactKey), &marked); err != nil {
		t.Fatal(err)
	}
	if marked["value"] != "it's $HOME; `x`" {
		t.Errorf("CAIRN_TEST_VALUE in the job = %v; the step's own value must win over RemoteOptions.Env", marked["value"])
	}
	// A record that does not match the job's digest is refused.
	if _, err := cairn.ReadJobParams(t.Context(), testStorage(), sq, statusfile.ParamsDigest([]byte("other"))); !errors.Is(err, cairn.ErrProgramMismatch) {
		t.Errorf("ReadJobParams with another digest: %v, want ErrProgramMismatch", err)
	}
	if _, err := cairn.ReadJobParams(t.Context(), testStorage(), stepDir(t, prefix, "gen"), digests[0]); !errors.Is(err, cairn.ErrProgramMismatch) {
		t.Errorf("ReadJobParams of a local step: %v, want ErrProgramMismatch", err)
	}
}
