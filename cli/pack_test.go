package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/cluster"
	"example.com/cairn/runrecord"
)

// packPipeline is CAIRN_TEST_SHARDS independent remote steps with one
// resource request, which a runner on Slurm submits as one job array. Each appends
// "SHARD CAIRN_JOB_ID" to CAIRN_TEST_LOG and prints "shard N running" to its
// log; shard CAIRN_TEST_FAIL fails; while CAIRN_TEST_RELEASE names a file,
// each first creates CAIRN_TEST_STARTED-N and waits for that file.
func packPipeline() iter.Seq[*cairn.Step] {
	n, _ := strconv.Atoi(os.Getenv("CAIRN_TEST_SHARDS"))
	steps := make([]*cairn.Step, n)
	for i := range steps {
		fn := cairn.Remote(func(ctx context.Context, out *cairn.Output) (map[string]string, error) {
			fmt.Printf("shard %d running\n", i)
			if release := os.Getenv("CAIRN_TEST_RELEASE"); release != "" {
				if err := os.WriteFile(fmt.Sprint(os.Getenv("CAIRN_TEST_STARTED"), "-", i), nil, 0o644); err != nil {
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
			f, err := os.OpenFile(os.Getenv("CAIRN_TEST_LOG"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			fmt.Fprintf(f, "%d %s\n", i, os.Getenv("CAIRN_JOB_ID"))
			if os.Getenv("CAIRN_TEST_FAIL") == strconv.Itoa(i) {
				return nil, fmt.Errorf("shard %d fails deliberately", i)
			}
			return map[string]string{"job": os.Getenv("CAIRN_JOB_ID")}, nil
		}, &cairn.RemoteSpec{Resources: cluster.Resources{CPUs: 1, Memory: 64 * cluster.MiB}})
		steps[i] = &cairn.Step{Name: "shard", Attrs: map[string]int{"i": i}, Func: fn.Func()}
	}
	return cairn.Steps(steps...)
}

// packEnv runs packPipeline with shards steps.
type packEnv struct {
	remoteEnv
	shards int
}

// newPackEnv returns the environment of a test of packPipeline with n
// shards, which cancels the shards' jobs when the test ends (a failed
// test must not leave jobs waiting for a release that never comes).
func newPackEnv(t *testing.T, n int) packEnv {
	e := packEnv{newRemoteEnv(t), n}
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join(e.prefix, "shard_*", ".cairn_remote.json"))
		for _, p := range dirs {
			var rec shardRecord
			if data, err := os.ReadFile(p); err == nil && json.Unmarshal(data, &rec) == nil && len(rec.JobIDs) > 0 {
				exec.Command("scancel", rec.JobIDs...).Run()
			}
		}
	})
	return e
}

func (e packEnv) cmd(block bool, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"--prefix", e.prefix, "--poll-interval", "100ms", "--max-concurrent", "16"}, args...)...)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_PACK_PIPELINE=1", "CAIRN_TEST_LOG="+e.log, "CAIRN_TEST_STARTED="+e.started,
		fmt.Sprint("CAIRN_TEST_SHARDS=", e.shards))
	if block {
		cmd.Env = append(cmd.Env, "CAIRN_TEST_RELEASE="+e.release)
	}
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// shardRecord is what the tests read of a shard's remote record.
type shardRecord struct {
	dir     string
	JobIDs  []string `json:"job_ids"`
	Adopted bool     `json:"adopted"`
	State   string   `json:"state"`
}

// shards returns the remote records of the shards, by index (the order of
// their attributes is the order of their executions' "SHARD" field).
func (e packEnv) records(t *testing.T) map[int]shardRecord {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(e.prefix, "shard_*"))
	if len(dirs) != e.shards {
		t.Fatalf("shard outputs: %v", dirs)
	}
	out := map[int]shardRecord{}
	for _, dir := range dirs {
		var info struct {
			Config map[string]any `json:"config"`
		}
		data, err := os.ReadFile(filepath.Join(dir, ".executor_info"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &info); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		i, ok := info.Config["i"].(float64)
		if !ok {
			t.Fatalf("%s: no shard index in %s", dir, data)
		}
		rec := shardRecord{dir: dir}
		data, err = os.ReadFile(filepath.Join(dir, ".cairn_remote.json"))
		if err != nil || json.Unmarshal(data, &rec) != nil {
			t.Fatalf("remote record of shard %v: %s, %v", i, data, err)
		}
		out[int(i)] = rec
	}
	return out
}

// packed checks that the records name one element job each, and that
// elements share arrays: the steps were packed.
func packed(t *testing.T, recs map[int]shardRecord) {
	t.Helper()
	arrays := map[string]int{}
	for i, r := range recs {
		if len(r.JobIDs) != 1 {
			t.Fatalf("shard %d: jobs %v, want one", i, r.JobIDs)
		}
		array, _, ok := strings.Cut(r.JobIDs[0], "_")
		if !ok {
			continue // submitted alone (the first of a burst is)
		}
		arrays[array]++
	}
	most := 0
	for _, n := range arrays {
		most = max(most, n)
	}
	if most < 2 {
		t.Errorf("no two shards share a job array (jobs by array: %v): nothing was packed", arrays)
	}
}

// Remote steps with one request run packed into a Slurm job array, each
// still its own step: its own job (element) ID, status, log and lease; one
// failing fails no other; re-run, the failed one is retried alone.
func TestPackedStepsOnSlurm(t *testing.T) {
	spec := requireSlurm(t)
	t.Parallel()
	e := newPackEnv(t, 6)
	out, err := e.cmd(false, []string{"CAIRN_TEST_FAIL=2"}, "--cluster", spec).CombinedOutput()
	if code := exitCodeOf(err); code != cli.ExitFailed {
		t.Fatalf("run: exit %d (%v), want %d\n%s", code, err, cli.ExitFailed, out)
	}
	recs := e.records(t)
	packed(t, recs)
	executions := map[string]string{} // shard -> CAIRN_JOB_ID
	for _, line := range e.executions(t) {
		shard, job, _ := strings.Cut(line, " ")
		if _, dup := executions[shard]; dup {
			t.Errorf("shard %s ran twice", shard)
		}
		executions[shard] = job
	}
	for i, r := range recs {
		if got := executions[strconv.Itoa(i)]; got != r.JobIDs[0] {
			t.Errorf("shard %d ran as job %q, its record names %q", i, got, r.JobIDs[0])
		}
		status, _ := os.ReadFile(filepath.Join(r.dir, ".executor_status"))
		want, state := "SUCCESS", "succeeded"
		if i == 2 {
			want, state = "FAILED", "failed"
		}
		if !strings.Contains(string(status), want) || r.State != state {
			t.Errorf("shard %d: status %s, job %s; want %s, %s", i, status, r.State, want, state)
		}
		if _, err := os.Stat(filepath.Join(r.dir, ".executor_status.lock")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("shard %d: lease not released: %v", i, err)
		}
		log, err := os.ReadFile(filepath.Join(r.dir, ".cairn_logs", "attempt-1.log"))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(log), "running\n"); n != 1 || !strings.Contains(string(log), fmt.Sprintf("shard %d running", i)) {
			t.Errorf("shard %d: log holds another's output or none:\n%s", i, log)
		}
	}
	if !strings.Contains(string(out), "shard 2 fails deliberately") || !strings.Contains(string(out), "5 ran, 1 failed") {
		t.Errorf("run output does not report the one failure:\n%s", out)
	}
	// The run record names each step's own element.
	runs, _ := filepath.Glob(filepath.Join(e.prefix, "experiments", ".cairn_runs", "*.json"))
	if len(runs) != 1 {
		t.Fatalf("run records: %v", runs)
	}
	data, err := os.ReadFile(runs[0])
	if err != nil {
		t.Fatal(err)
	}
	var record runrecord.Record
	if err := json.Unmarshal(data, &record); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, st := range record.Steps {
		if st.Job != nil && st.Job.Cluster == "slurm" {
			for _, id := range st.Job.IDs {
				ids[id] = true
			}
		}
	}
	for i, r := range recs {
		if !ids[r.JobIDs[0]] {
			t.Errorf("the run record does not name shard %d's job %s (it names %v)", i, r.JobIDs[0], ids)
		}
	}

	// Re-run: only the failed shard runs again, in a job of its own.
	if out, err := e.cmd(false, nil, "--cluster", spec).CombinedOutput(); err != nil || !strings.Contains(string(out), "1 ran, 5 cached") {
		t.Fatalf("re-run: %v\n%s", err, out)
	}
	again := e.records(t)
	if again[2].State != "succeeded" || slices.Equal(again[2].JobIDs, recs[2].JobIDs) {
		t.Errorf("failed shard after re-run: %+v (was %+v)", again[2], recs[2])
	}
}

// A runner killed while the elements of its pack run leaves them running;
// the runner that takes the steps over adopts each element, and every
// step's function runs once.
func TestPackedAdoptionAfterRunnerKilled(t *testing.T) {
	spec := requireSlurm(t)
	// Not parallel: every shard must run at once on the test cluster.
	e := newPackEnv(t, 3)
	lease := []string{"--cluster", spec, "--lease-interval", "200ms", "--lease-stale-after", "1s"}
	first := e.cmd(true, nil, lease...)
	var firstOut lockedBuffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range e.shards {
		waitForFile(t, fmt.Sprint(e.started, "-", i), 90*time.Second)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	before := e.records(t)
	packed(t, before)

	second := e.cmd(true, nil, lease...)
	var secondOut lockedBuffer
	second.Stdout, second.Stderr = &secondOut, &secondOut
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for strings.Count(secondOut.String(), "adopted the job") < e.shards {
		if time.Now().After(deadline) {
			second.Process.Kill()
			second.Wait()
			t.Fatalf("the second runner did not adopt every element:\n%s", secondOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.WriteFile(e.release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("second runner: %v\n%s", err, secondOut.String())
	}
	if ex := e.executions(t); len(ex) != e.shards {
		t.Errorf("%d executions, want one per shard: %q", len(ex), ex)
	}
	for i, r := range e.records(t) {
		if !r.Adopted || r.State != "succeeded" || !slices.Equal(r.JobIDs, before[i].JobIDs) {
			t.Errorf("shard %d: record %+v; want its element %v adopted and succeeded", i, r, before[i].JobIDs)
		}
	}
}

// Interrupting the runner cancels every element of its pack (scancel of
// each element), and restores the steps' statuses.
func TestPackedInterruptCancelsElements(t *testing.T) {
	spec := requireSlurm(t)
	// Not parallel: every shard must run at once on the test cluster.
	e := newPackEnv(t, 3)
	cmd := e.cmd(true, nil, "--cluster", spec)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range e.shards {
		waitForFile(t, fmt.Sprint(e.started, "-", i), 90*time.Second)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if code := exitCodeOf(err); code != cli.ExitInterrupted {
		t.Fatalf("interrupted run: exit %d (%v), want %d\n%s", code, err, cli.ExitInterrupted, out.String())
	}
	recs := e.records(t)
	packed(t, recs)
	for i, r := range recs {
		if r.State != "stopped" {
			t.Errorf("shard %d: job %s, want stopped", i, r.State)
		}
		if _, err := os.Stat(filepath.Join(r.dir, ".executor_status")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("shard %d: status not restored: %v", i, err)
		}
		st, err := exec.Command("squeue", "-h", "-r", "--states=all", "-j", r.JobIDs[0], "-o", "%T").Output()
		if err != nil || strings.TrimSpace(string(st)) != "CANCELLED" {
			t.Errorf("shard %d: Slurm says %s (%v), want CANCELLED", i, st, err)
		}
	}
}
