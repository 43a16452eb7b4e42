package localcluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/clustertest"
	"example.com/cairn/cluster/driver"
	"example.com/cairn/cluster/localcluster"
)

func TestConformance(t *testing.T) {
	clustertest.Run(t, clustertest.Harness{
		New: func(t *testing.T) *cluster.Client {
			return cluster.NewClient(localcluster.New(&localcluster.Options{CPUs: 64, KillGrace: time.Second}), &cluster.Options{Name: "local"})
		},
		Driver: func(t *testing.T) driver.Scheduler {
			return localcluster.New(&localcluster.Options{CPUs: 64, KillGrace: time.Second})
		},
		// Another scheduler's job: the jobs of another process (even the
		// same user's) die with it and are never adopted.
		ForeignJob: func(t *testing.T, ctx context.Context, name, tag string) {
			other := cluster.NewClient(localcluster.New(nil), &cluster.Options{Name: "other"})
			t.Cleanup(func() { other.Close() })
			if _, err := other.Submit(ctx, cluster.JobSpec{Name: name, Tag: tag, Command: []string{"sleep", "600"}, LogDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
		},
		UnsatisfiableCPUs: 65,
		Replicas:          true,
		TimeLimit:         300 * time.Millisecond,
		Timeout:           30 * time.Second,
	})
}

func newClient(t *testing.T, opts *localcluster.Options) *cluster.Client {
	c := cluster.NewClient(localcluster.New(opts), &cluster.Options{Name: "local", PollMin: 5 * time.Millisecond, PollMax: 20 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// Jobs are admitted only while their declared CPUs, memory and GPUs fit
// the budget: the budget is never oversubscribed.
func TestAdmissionNeverOversubscribes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newClient(t, &localcluster.Options{CPUs: 4, Memory: 1000, GPUs: 3})
	ctx := t.Context()
	// Each job records "start end" of its run; running jobs must never
	// exceed 4 CPUs, 1000 bytes or 3 GPUs.
	type req struct {
		cpus int
		mem  int64
		gpus int
	}
	reqs := []req{{2, 100, 0}, {2, 600, 1}, {1, 500, 2}, {3, 100, 1}, {1, 100, 0}, {4, 1000, 3}, {1, 0, 2}, {2, 400, 1}}
	var jobs []*cluster.Job
	for i, r := range reqs {
		dev := cluster.Device{}
		if r.gpus > 0 {
			dev = cluster.GPU("", r.gpus)
		}
		j, err := c.Submit(ctx, cluster.JobSpec{
			Name:      fmt.Sprintf("job-%d", i),
			Command:   []string{"/bin/sh", "-c", `s=$(date +%s%N); sleep 0.05; echo "$s $(date +%s%N) $CUDA_VISIBLE_DEVICES" > "$1"`, "sh", filepath.Join(dir, fmt.Sprint(i))},
			Resources: cluster.Resources{CPUs: r.cpus, Memory: r.mem, Device: dev},
			LogDir:    filepath.Join(dir, "logs"),
		})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	if _, err := cluster.WaitAll(ctx, jobs...); err != nil {
		t.Fatal(err)
	}
	type span struct {
		start, end int64
		r          req
		gpus       []string
	}
	var spans []span
	for i, r := range reqs {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(data))
		s := span{r: r}
		fmt.Sscan(f[0], &s.start)
		fmt.Sscan(f[1], &s.end)
		if len(f) > 2 {
			s.gpus = strings.Split(f[2], ",")
		}
		if len(s.gpus) != r.gpus {
			t.Errorf("job %d saw CUDA_VISIBLE_DEVICES %v, want %d GPUs", i, s.gpus, r.gpus)
		}
		spans = append(spans, s)
	}
	for _, at := range spans {
		cpus, mem, gpus := 0, int64(0), map[string]int{}
		for _, s := range spans {
			if s.start <= at.start && at.start < s.end {
				cpus, mem = cpus+s.r.cpus, mem+s.r.mem
				for _, g := range s.gpus {
					gpus[g]++
				}
			}
		}
		if cpus > 4 || mem > 1000 || len(gpus) > 3 {
			t.Errorf("at %d: %d CPUs, %d bytes, GPUs %v in use", at.start, cpus, mem, gpus)
		}
		for g, n := range gpus {
			if n > 1 {
				t.Errorf("GPU %s given to %d jobs at once", g, n)
			}
		}
	}
}

// Workers bounds concurrent jobs.
func TestWorkers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := newClient(t, &localcluster.Options{Workers: 1, CPUs: 8})
	var jobs []*cluster.Job
	for i := range 3 {
		j, err := c.Submit(t.Context(), cluster.JobSpec{
			Name:    "w",
			Command: []string{"/bin/sh", "-c", `if [ -e "$1/busy" ]; then exit 9; fi; : > "$1/busy"; sleep 0.05; rm "$1/busy"`, "sh", dir},
			LogDir:  filepath.Join(dir, fmt.Sprint(i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	if _, err := cluster.WaitAll(t.Context(), jobs...); err != nil {
		t.Fatalf("two jobs ran at once with workers=1: %v", err)
	}
}

// Close stops running jobs: they cannot outlive their scheduler.
func TestCloseStopsJobs(t *testing.T) {
	t.Parallel()
	s := localcluster.New(&localcluster.Options{KillGrace: 100 * time.Millisecond})
	c := cluster.NewClient(s, nil)
	dir := t.TempDir()
	j, err := c.Submit(t.Context(), cluster.JobSpec{Name: "long", Command: []string{"/bin/sh", "-c", `trap '' TERM; echo $$ > "$1"; sleep 600`, "sh", filepath.Join(dir, "pid")}, LogDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for j.Status() != cluster.Running {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %s", d)
	}
	sts, _ := s.Status(t.Context(), []string{j.ID()})
	if sts[0].State != driver.Stopped {
		t.Errorf("after Close the job is %v, want stopped", sts[0].State)
	}
}

func TestOpener(t *testing.T) {
	t.Parallel()
	mux := new(cluster.Mux)
	mux.Register("local", &localcluster.Opener{})
	c, err := mux.Open(t.Context(), "local?workers=2&cpus=3&gpus=1&memory=1000000", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Submit(t.Context(), cluster.JobSpec{Name: "x", Command: []string{"true"}, Resources: cluster.Resources{CPUs: 4}, LogDir: t.TempDir()})
	if !errors.Is(err, cluster.ErrUnsatisfiable) || !strings.Contains(err.Error(), "3 CPUs") {
		t.Errorf("4 CPUs on a 3-CPU budget: %v", err)
	}
	for _, spec := range []string{"local?workers=-1", "local?cpu=3", "local?gpus=many"} {
		if _, err := mux.Open(t.Context(), spec, nil); !errors.Is(err, cluster.ErrBadSpec) {
			t.Errorf("Open(%q) = %v, want ErrBadSpec", spec, err)
		}
	}
}

// Local jobs do not see the variables of a Slurm job the submitter runs in
// (issue 8, item 15). Not parallel: it sets the environment.
func TestInheritedSlurmVariables(t *testing.T) {
	t.Setenv("SLURM_RESTART_COUNT", "3")
	t.Setenv("SLURM_JOB_ID", "999999")
	t.Setenv("CAIRN_T_KEEP", "kept")
	c := newClient(t, nil)
	j, err := c.Submit(t.Context(), cluster.JobSpec{Name: "inherited", Command: []string{"/bin/sh", "-c", `env | grep -E '^(SLURM_|CAIRN_T_KEEP=)' | sort; echo "attempt=$CAIRN_ATTEMPT"`}, LogDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(j.Attempts()[0].LogPath)
	if got, want := string(data), "CAIRN_T_KEEP=kept\nattempt=1\n"; err != nil || got != want {
		t.Errorf("job saw %q, %v; want %q", got, err, want)
	}
}
