package slurmcluster_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/clustertest"
	"example.com/cairn/cluster/driver"
	"example.com/cairn/cluster/slurmcluster"
)

// requireSlurm skips the test unless a Slurm cluster is available, as
// scripts/services.sh up (and CI) arranges.
func requireSlurm(t *testing.T) *slurmcluster.Options {
	t.Helper()
	if os.Getenv("CAIRN_TEST_SLURM") == "" {
		t.Skip("CAIRN_TEST_SLURM is not set: start a single-node Slurm with `scripts/services.sh up` and source $CAIRN_SERVICES_ENV (default /tmp/cairn-services.env)")
	}
	return &slurmcluster.Options{Partition: os.Getenv("CAIRN_TEST_SLURM_PARTITION")}
}

func newClient(t *testing.T, opts *slurmcluster.Options) *cluster.Client {
	t.Helper()
	s, err := slurmcluster.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return cluster.NewClient(s, &cluster.Options{Name: "slurm", PollMax: 250 * time.Millisecond})
}

func TestConformance(t *testing.T) {
	opts := requireSlurm(t)
	clustertest.Run(t, clustertest.Harness{
		New: func(t *testing.T) *cluster.Client { return newClient(t, opts) },
		Driver: func(t *testing.T) driver.Scheduler {
			s, err := slurmcluster.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		ForeignJob:         foreignJob,
		UnsatisfiableCPUs:  1000,
		AdoptAcrossClients: true,
		Replicas:           true,
		TimeLimit:          time.Second, // rounded up to Slurm's minute
		TimeLimitRounding:  time.Minute,
		Packs:              true,
		Timeout:            3 * time.Minute,
	})
}

// foreignJob submits, as the user nobody, a held job named name whose
// comment carries tag as cairn's do. Only root can submit as another user.
func foreignJob(t *testing.T, ctx context.Context, name, tag string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("submitting another user's job needs root (sbatch --uid)")
	}
	out, err := exec.CommandContext(ctx, "sbatch", "--parsable", "--uid=nobody", "--hold", "--job-name="+name,
		"--comment=cairn:"+tag+":1", "--output=/dev/null", "--wrap=sleep 600").CombinedOutput()
	if err != nil {
		t.Fatalf("sbatch --uid=nobody: %v\n%s", err, out)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("scancel", id).Run() })
}

func submitWait(t *testing.T, c *cluster.Client, spec cluster.JobSpec) (*cluster.Job, cluster.Status, error) {
	t.Helper()
	if spec.LogDir == "" {
		spec.LogDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	j, err := c.Submit(ctx, spec)
	if err != nil {
		return nil, cluster.Failed, err
	}
	st, err := j.Wait(ctx)
	return j, st, err
}

func logOf(t *testing.T, j *cluster.Job) string {
	t.Helper()
	a := j.Attempts()
	data, err := os.ReadFile(a[len(a)-1].LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Resource requests reach the job as Slurm reports them to it.
func TestResourcesSeenByJob(t *testing.T) {
	opts := requireSlurm(t)
	t.Parallel()
	c := newClient(t, opts)
	defer c.Close()
	j, _, err := submitWait(t, c, cluster.JobSpec{
		Name:      "resources",
		Command:   []string{"/bin/sh", "-c", `echo "cpus=$SLURM_CPUS_PER_TASK gpus=$CUDA_VISIBLE_DEVICES mem=$SLURM_MEM_PER_NODE"`},
		Resources: cluster.Resources{CPUs: 3, Memory: 300 * cluster.MiB, Disk: 2 * cluster.GiB, Device: cluster.GPU("", 2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(logOf(t, j)), "cpus=3 gpus=0,1 mem=300"; got != want {
		t.Errorf("job saw %q, want %q", got, want)
	}
}

// Requests Slurm can never satisfy fail at submission with Slurm's reason.
func TestUnsatisfiable(t *testing.T) {
	opts := requireSlurm(t)
	t.Parallel()
	c := newClient(t, opts)
	defer c.Close()
	for _, tc := range []struct {
		name string
		r    cluster.Resources
		why  string
	}{
		{"gpus", cluster.Resources{Device: cluster.GPU("", 5)}, "node configuration is not available"},
		{"cpus", cluster.Resources{CPUs: 9}, "More processors requested than permitted"},
		{"memory", cluster.Resources{Memory: 100 * cluster.GiB}, "Memory specification can not be satisfied"},
		{"disk", cluster.Resources{Disk: 1000 * cluster.GiB}, "Temporary disk specification can not be satisfied"},
		{"region", cluster.Resources{Regions: []string{"mars-1"}}, "regions"},
	} {
		start := time.Now()
		_, _, err := submitWait(t, c, cluster.JobSpec{Name: "unsat-" + tc.name, Command: []string{"true"}, Resources: tc.r})
		if !errors.Is(err, cluster.ErrUnsatisfiable) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: err = %v; want ErrUnsatisfiable with %q", tc.name, err, tc.why)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %s", tc.name, d)
		}
	}
	_, _, err := submitWait(t, c, cluster.JobSpec{Name: "tpu", Command: []string{"true"}, Resources: cluster.Resources{Device: cluster.TPU("v5p-8")}})
	if !errors.Is(err, cluster.ErrUnsupported) {
		t.Errorf("TPU: err = %v, want ErrUnsupported", err)
	}
	_, _, err = submitWait(t, c, cluster.JobSpec{Name: "image", Command: []string{"true"}, Environment: cluster.Environment{Image: "ubuntu:24.04"}})
	if !errors.Is(err, cluster.ErrUnsupported) {
		t.Errorf("image: err = %v, want ErrUnsupported", err)
	}
}

// A job requeued by Slurm (as preemption with requeue does) is followed
// through its restart, against the preemption budget, each run logging to
// its own attempt file.
func TestRequeue(t *testing.T) {
	opts := requireSlurm(t)
	t.Parallel()
	c := newClient(t, opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	marker := filepath.Join(t.TempDir(), "marker")
	// The first run waits to be requeued; the second finishes.
	j, err := c.Submit(ctx, cluster.JobSpec{
		Name:    "requeue",
		Command: []string{"/bin/sh", "-c", `echo "run $CAIRN_ATTEMPT"; if [ -e "$1" ]; then exit 0; fi; : > "$1"; sleep 600`, "sh", marker},
		LogDir:  t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, ctx, marker)
	requeue(t, j.ID())
	st, err := j.Wait(ctx)
	if err != nil || st != cluster.Succeeded {
		t.Fatalf("Wait = %v, %v", st, err)
	}
	a := j.Attempts()
	if len(a) != 2 || a[0].Cause != "preempted" || a[1].Status != cluster.Succeeded || a[0].ID != a[1].ID {
		t.Fatalf("Attempts = %+v; want a preempted attempt, then a succeeded one with the same job ID", a)
	}
	for i, want := range []string{"run 1\n", "run 2\n"} {
		data, err := os.ReadFile(a[i].LogPath)
		if err != nil || !strings.HasPrefix(string(data), want) {
			t.Errorf("attempt %d log = %q, %v; want it to start with %q", i+1, data, err, want)
		}
	}
}

// With no preemption budget, a requeued job is cancelled and fails.
func TestRequeueBudgetExhausted(t *testing.T) {
	opts := requireSlurm(t)
	t.Parallel()
	c := newClient(t, opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	marker := filepath.Join(t.TempDir(), "marker")
	j, err := c.Submit(ctx, cluster.JobSpec{
		Name:                 "requeue-budget",
		Command:              []string{"/bin/sh", "-c", `: > "$1"; sleep 600`, "sh", marker},
		MaxRetriesPreemption: -1,
		LogDir:               t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, ctx, marker)
	requeue(t, j.ID())
	_, err = j.Wait(ctx)
	je, ok := errors.AsType[*cluster.JobError](err)
	if !ok || je.Cause != "preempted" {
		t.Fatalf("Wait = %v; want a preempted failure", err)
	}
	out, _ := exec.Command("squeue", "-h", "-j", j.ID(), "-o", "%T").Output()
	if s := strings.TrimSpace(string(out)); s != "CANCELLED" && s != "" {
		t.Errorf("job left in state %q, want cancelled", s)
	}
}

// requeue does what a preemption with requeue does, and lets the job start
// again at once (Slurm would hold it for two minutes).
func requeue(t *testing.T, id string) {
	t.Helper()
	scontrol := func(args ...string) {
		if out, err := exec.Command("scontrol", args...).CombinedOutput(); err != nil {
			t.Fatalf("scontrol %v: %v\n%s", args, err, out)
		}
	}
	scontrol("requeue", id)
	// The requeue completes asynchronously; only then is the begin time set.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := exec.Command("squeue", "-h", "-j", id, "-o", "%T %r").Output()
		if strings.TrimSpace(string(out)) == "PENDING BeginTime" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not requeued: squeue says %q", id, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Not "now": a batch job restarted within a second of its requeue can be
	// killed with "Job credential revoked". A client without preemption
	// budget may have cancelled the requeued job meanwhile: then there is
	// nothing to start.
	args := []string{"update", "JobId=" + id, "StartTime=now+2"}
	if out, err := exec.Command("scontrol", args...).CombinedOutput(); err != nil && !strings.Contains(string(out), "already finished") {
		t.Fatalf("scontrol %v: %v\n%s", args, err, out)
	}
}

func waitFile(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never appeared", path)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Spec parameters reach sbatch; unknown ones are rejected.
func TestOpener(t *testing.T) {
	opts := requireSlurm(t)
	t.Parallel()
	mux := new(cluster.Mux)
	mux.Register("slurm", &slurmcluster.Opener{})
	ctx := t.Context()
	c, err := mux.Open(ctx, "slurm?partition="+opts.Partition, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := submitWait(t, c, cluster.JobSpec{Name: "opener", Command: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
	bad, err := mux.Open(ctx, "slurm?partition=nosuchpartition", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, _, err := submitWait(t, bad, cluster.JobSpec{Name: "opener", Command: []string{"true"}}); !errors.Is(err, cluster.ErrUnsatisfiable) {
		t.Errorf("unknown partition: %v, want ErrUnsatisfiable", err)
	}
	if _, err := mux.Open(ctx, "slurm?partiton=debug", nil); !errors.Is(err, cluster.ErrBadSpec) {
		t.Errorf("misspelt parameter: %v, want ErrBadSpec", err)
	}
}

// A submitter that itself runs in a requeued Slurm job does not hand its
// job's variables to the jobs it submits: the job numbers its attempt from
// its own restarts, logs where the client says it does, and sees its own
// SLURM_JOB_ID (issue 8, item 15). Not parallel: it sets the environment.
func TestInheritedSlurmVariables(t *testing.T) {
	opts := requireSlurm(t)
	inherited := map[string]string{
		"SLURM_RESTART_COUNT": "3",
		"SLURM_JOB_ID":        "999999",
		"SLURM_JOBID":         "999999",
		"SLURM_ARRAY_JOB_ID":  "999990",
		"SLURM_ARRAY_TASK_ID": "9",
		"SLURM_EXPORT_ENV":    "NONE",
	}
	for k, v := range inherited {
		t.Setenv(k, v)
	}
	c := newClient(t, opts)
	defer c.Close()
	j, _, err := submitWait(t, c, cluster.JobSpec{Name: "inherited", Command: []string{"/bin/sh", "-c", `env | grep '^SLURM_' | sort; echo "attempt=$CAIRN_ATTEMPT"`}})
	if err != nil {
		t.Fatal(err)
	}
	a := j.Attempts()
	if len(a) != 1 || filepath.Base(a[0].LogPath) != "attempt-1.log" {
		t.Fatalf("Attempts = %+v; want one, logging to attempt-1.log", a)
	}
	log := logOf(t, j) // reads a[0].LogPath: the file the job wrote
	seen := map[string]string{}
	for line := range strings.SplitSeq(log, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			seen[k] = v
		}
	}
	if seen["attempt"] != "1" {
		t.Errorf("the job's CAIRN_ATTEMPT = %q, want 1", seen["attempt"])
	}
	if seen["SLURM_JOB_ID"] != j.ID() {
		t.Errorf("the job's SLURM_JOB_ID = %q, want its own %q", seen["SLURM_JOB_ID"], j.ID())
	}
	for k, v := range inherited {
		if seen[k] == v {
			t.Errorf("the job inherited %s=%s", k, v)
		}
	}
	if _, ok := seen["SLURM_RESTART_COUNT"]; ok {
		t.Errorf("the job sees SLURM_RESTART_COUNT=%s though it never restarted", seen["SLURM_RESTART_COUNT"])
	}
}

// One lone job through the client, packing on and off: Submit returns as
// soon as sbatch does either way (a lone job is never held back for a
// pack), and the time to the job's end is slurmctld's scheduling pass.
// Reports submit-ms (Client.Submit) per job beside the time to the end.
func BenchmarkLoneJobPacked(b *testing.B)   { benchmarkLoneJob(b, 0) }
func BenchmarkLoneJobUnpacked(b *testing.B) { benchmarkLoneJob(b, 1) }

func benchmarkLoneJob(b *testing.B, maxPack int) {
	if os.Getenv("CAIRN_TEST_SLURM") == "" {
		b.Skip("CAIRN_TEST_SLURM is not set")
	}
	s, err := slurmcluster.New(&slurmcluster.Options{Partition: os.Getenv("CAIRN_TEST_SLURM_PARTITION")})
	if err != nil {
		b.Fatal(err)
	}
	c := cluster.NewClient(s, &cluster.Options{Name: "slurm", MaxPack: maxPack})
	defer c.Close()
	var submit time.Duration
	for b.Loop() {
		start := time.Now()
		j, err := c.Submit(b.Context(), cluster.JobSpec{Name: "lone", Command: []string{"true"}, LogDir: b.TempDir(),
			Resources: cluster.Resources{CPUs: 1, Memory: 64 * cluster.MiB}})
		if err != nil {
			b.Fatal(err)
		}
		submit += time.Since(start)
		if _, err := j.Wait(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(submit.Milliseconds())/float64(b.N), "submit-ms/op")
}
