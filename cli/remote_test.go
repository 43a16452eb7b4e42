package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/cluster"
)

// remotePipeline is prep (local) -> train (remote) -> report (local). train
// appends "JOB_ID PID" to CAIRN_TEST_LOG; while CAIRN_TEST_RELEASE names a
// file, it first creates CAIRN_TEST_STARTED and waits for that file.
func remotePipeline() iter.Seq[*cairn.Step] {
	logPath := os.Getenv("CAIRN_TEST_LOG")
	prep := &cairn.Step{Name: "prep", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		_, err := out.Bucket.Write(ctx, "data.txt", []byte("3 4"))
		return nil, err
	}}
	train := cairn.Remote(func(ctx context.Context, out *cairn.Output) (map[string]string, error) {
		if release := os.Getenv("CAIRN_TEST_RELEASE"); release != "" {
			if err := os.WriteFile(os.Getenv("CAIRN_TEST_STARTED"), nil, 0o644); err != nil {
				return nil, err
			}
			for {
				if _, err := os.Stat(release); err == nil {
					break
				}
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
		job := os.Getenv("SLURM_JOB_ID")
		if job == "" {
			job = os.Getenv("CAIRN_JOB_ID")
		}
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		fmt.Fprintf(f, "%s %d\n", job, os.Getpid())
		return map[string]string{"job": job, "cpus": os.Getenv("SLURM_CPUS_PER_TASK")}, nil
	}, &cairn.RemoteSpec{Resources: cluster.Resources{CPUs: 2, Memory: 128 * cluster.MiB}})
	trainStep := &cairn.Step{Name: "train", Deps: []*cairn.Step{prep}, Func: train.Func()}
	report := &cairn.Step{Name: "report", Deps: []*cairn.Step{trainStep}, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		r, err := cairn.Load[map[string]string](ctx, out, trainStep)
		return map[string]any{"train": r, "pid": os.Getpid()}, err
	}}
	return cairn.Steps(report)
}

type remoteEnv struct {
	prefix, log, started, release string
}

func newRemoteEnv(t *testing.T) remoteEnv {
	dir := t.TempDir()
	return remoteEnv{
		prefix:  filepath.Join(dir, "prefix"),
		log:     filepath.Join(dir, "executions"),
		started: filepath.Join(dir, "started"),
		release: filepath.Join(dir, "release"),
	}
}

func (e remoteEnv) cmd(block bool, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"--prefix", e.prefix, "--poll-interval", "100ms"}, args...)...)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_REMOTE_PIPELINE=1", "CAIRN_TEST_LOG="+e.log, "CAIRN_TEST_STARTED="+e.started)
	if block {
		cmd.Env = append(cmd.Env, "CAIRN_TEST_RELEASE="+e.release)
	}
	return cmd
}

func (e remoteEnv) executions(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func (e remoteEnv) artifact(t *testing.T, name string, v any) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(e.prefix, name+"_*", ".artifact"))
	if len(m) != 1 {
		t.Fatalf("artifact of %s: %v", name, m)
	}
	data, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func requireSlurm(t *testing.T) string {
	t.Helper()
	if os.Getenv("CAIRN_TEST_SLURM") == "" {
		t.Skip("CAIRN_TEST_SLURM is not set: start a single-node Slurm with `scripts/services.sh up` and source $CAIRN_SERVICES_ENV (default /tmp/cairn-services.env)")
	}
	spec := "slurm"
	if p := os.Getenv("CAIRN_TEST_SLURM_PARTITION"); p != "" {
		spec += "?partition=" + p
	}
	return spec
}

// With no cluster configured, remote steps run as local subprocesses, and
// `status` points at their logs.
func TestRemoteStepLocalByDefault(t *testing.T) {
	t.Parallel()
	e := newRemoteEnv(t)
	cmd := e.cmd(false)
	cmd.Env = append(cmd.Env, "CAIRN_CLUSTER=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	ex := e.executions(t)
	if len(ex) != 1 || !strings.HasPrefix(ex[0], "local-") || strings.HasSuffix(ex[0], fmt.Sprint(" ", os.Getpid())) {
		t.Fatalf("executions = %q; want one, in a local job", ex)
	}
	var stdout, stderr bytes.Buffer
	if code := cli.Main(nil, &cli.Options{Args: []string{"status", e.prefix}, Stdout: &stdout, Stderr: &stderr}); code != cli.ExitOK {
		t.Fatalf("status: %d %s", code, stderr.String())
	}
	if !regexpMatch(`train_[0-9a-f]{8}\s+SUCCESS.*\[job local:train_[0-9a-f]{8} \(local-\S+\), log \S+/train_[0-9a-f]{8}/\.cairn_logs/attempt-1\.log\]`, stdout.String()) {
		t.Errorf("status does not point at the job's log:\n%s", stdout.String())
	}
}

// A bad cluster spec is a usage error naming the problem.
func TestBadClusterSpec(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"nosuch", "local?workers=x", "local?bogus=1", "Local!"} {
		var stderr bytes.Buffer
		code := cli.Main(remotePipeline(), &cli.Options{Args: []string{"--prefix", t.TempDir(), "--cluster", spec}, Stderr: &stderr})
		if code != cli.ExitUsage || !strings.Contains(stderr.String(), "bad cluster spec") {
			t.Errorf("--cluster %q: exit %d, %s", spec, code, stderr.String())
		}
	}
}

// The same pipeline runs unchanged on Slurm: the remote step in a Slurm job
// with its resources, the local ones here.
func TestRemoteStepOnSlurm(t *testing.T) {
	spec := requireSlurm(t)
	t.Parallel()
	e := newRemoteEnv(t)
	if out, err := e.cmd(false, "--cluster", spec).CombinedOutput(); err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	var rep struct {
		Train map[string]string `json:"train"`
		PID   int               `json:"pid"`
	}
	e.artifact(t, "report", &rep)
	if rep.Train["job"] == "" || strings.HasPrefix(rep.Train["job"], "local-") || rep.Train["cpus"] != "2" {
		t.Errorf("train ran as %v; want a Slurm job with 2 CPUs", rep.Train)
	}
	if out, err := e.cmd(false, "--cluster", spec).CombinedOutput(); err != nil || !strings.Contains(string(out), "3 cached") {
		t.Errorf("second run: %v\n%s", err, out)
	}
}

// A runner killed while its remote step's job runs leaves the job running;
// the runner that takes the step over adopts the job instead of
// submitting another, and the step's function runs once.
func TestAdoptJobAfterRunnerKilled(t *testing.T) {
	spec := requireSlurm(t)
	t.Parallel()
	e := newRemoteEnv(t)
	lease := []string{"--cluster", spec, "--lease-interval", "200ms", "--lease-stale-after", "1s"}
	first := e.cmd(true, lease...)
	var firstOut lockedBuffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitForFile(t, e.started, 60*time.Second)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()

	second := e.cmd(true, lease...)
	var secondOut lockedBuffer
	second.Stdout, second.Stderr = &secondOut, &secondOut
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	// Release the job once the second runner has adopted it.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(secondOut.String(), "adopted the job") {
		if time.Now().After(deadline) {
			second.Process.Kill()
			second.Wait()
			t.Fatalf("the second runner did not adopt the job:\n%s", secondOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.WriteFile(e.release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second runner: %v\n%s", err, secondOut.String())
	}
	if ex := e.executions(t); len(ex) != 1 {
		t.Errorf("train executed %d times: %q", len(ex), ex)
	}
	// Exactly one job was ever submitted for the step (at this prefix: the
	// job's comment carries a tag of the output path).
	m, _ := filepath.Glob(filepath.Join(e.prefix, "train_*"))
	if len(m) != 1 {
		t.Fatalf("train output: %v", m)
	}
	var rec struct {
		JobIDs  []string `json:"job_ids"`
		Adopted bool     `json:"adopted"`
	}
	data, err := os.ReadFile(filepath.Join(m[0], ".cairn_remote.json"))
	if err != nil || json.Unmarshal(data, &rec) != nil || len(rec.JobIDs) != 1 || !rec.Adopted {
		t.Fatalf("remote record %s (%v): want one adopted job", data, err)
	}
	out, err := exec.Command("squeue", "-h", "--states=all", "--name="+filepath.Base(m[0]), "-o", "%i %k").Output()
	if err != nil {
		t.Fatal(err)
	}
	comments := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		id, comment, _ := strings.Cut(line, " ")
		comments[id] = comment
	}
	n := 0
	for _, c := range comments {
		if c == comments[rec.JobIDs[0]] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d jobs for the step at this prefix, want 1: %v", n, comments)
	}
	if !strings.Contains(secondOut.String(), "took over") {
		t.Errorf("second runner did not report taking over:\n%s", secondOut.String())
	}
}

func waitForFile(t *testing.T, path string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// lockedBuffer is a bytes.Buffer a test can read while a process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
