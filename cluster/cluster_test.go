package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/driver"
)

func TestSanitizeName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"train_1a2b3c4d", "train_1a2b3c4d"},
		{"Tokenized/Wiki_00ff", "tokenized-wiki_00ff"},
		{"a  b\tc", "a-b-c"},
		{"--..x..--", "x"},
		{"", "remote_job"},
		{"$(rm -rf /)", "rm--rf"},
		{"a-$b", "a--b"},
		{"ünï", "n"},
		{"...", "remote_job"},
		{"x.y-z_w", "x.y-z_w"},
	} {
		if got := cluster.SanitizeName(tc.in); got != tc.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		spec, name, params string
		bad                bool
	}{
		{spec: "local", name: "local"},
		{spec: "local?workers=4", name: "local", params: "workers=4"},
		{spec: "slurm?partition=gpu&account=a1", name: "slurm", params: "account=a1&partition=gpu"},
		{spec: "", bad: true},
		{spec: "?x=1", bad: true},
		{spec: "Slurm", bad: true},
		{spec: "slurm?%zz", bad: true},
		{spec: "slurm?=1", bad: true},
		{spec: "local://x", bad: true},
	} {
		name, params, err := cluster.ParseSpec(tc.spec)
		if tc.bad {
			if !errors.Is(err, cluster.ErrBadSpec) {
				t.Errorf("ParseSpec(%q) = %v, want ErrBadSpec", tc.spec, err)
			}
			continue
		}
		if err != nil || name != tc.name || params.Encode() != tc.params {
			t.Errorf("ParseSpec(%q) = %q, %q, %v; want %q, %q", tc.spec, name, params.Encode(), err, tc.name, tc.params)
		}
	}
}

// fake is a scriptable driver: each submission runs through the states
// script returns for its attempt number.
type fake struct {
	mu        sync.Mutex
	script    func(attempt int) []driver.Status
	jobs      map[string]*fakeJob
	next      int
	cancelled []string
	submits   []driver.JobSpec
}

type fakeJob struct {
	spec   driver.JobSpec
	states []driver.Status
	i      int
}

func newFake(script func(attempt int) []driver.Status) *fake {
	return &fake{script: script, jobs: map[string]*fakeJob{}}
}

func (f *fake) Submit(_ context.Context, spec *driver.JobSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	id := fmt.Sprint(f.next)
	f.jobs[id] = &fakeJob{spec: *spec, states: f.script(spec.Attempt)}
	f.submits = append(f.submits, *spec)
	return id, nil
}

func (f *fake) Status(_ context.Context, ids []string) ([]driver.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]driver.Status, len(ids))
	for i, id := range ids {
		j, ok := f.jobs[id]
		if !ok {
			out[i] = driver.Status{State: driver.Gone, ExitCode: -1}
			continue
		}
		out[i] = j.states[j.i]
		if j.i < len(j.states)-1 {
			j.i++
		}
	}
	return out, nil
}

func (f *fake) Cancel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	if j, ok := f.jobs[id]; ok {
		j.states = []driver.Status{{State: driver.Stopped, Cause: driver.CauseCancelled}}
		j.i = 0
	}
	return nil
}

func (f *fake) Find(context.Context, string) ([]driver.Found, error) { return nil, nil }
func (f *fake) ErrorCode(error) driver.Code                          { return driver.Unknown }
func (f *fake) Close() error                                         { return nil }

var (
	pending   = driver.Status{State: driver.Pending, ExitCode: -1}
	running   = driver.Status{State: driver.Running, ExitCode: -1}
	succeeded = driver.Status{State: driver.Succeeded}
)

func failed(c driver.Cause, code int) driver.Status {
	return driver.Status{State: driver.Failed, Cause: c, ExitCode: code, Reason: "scripted"}
}

// runFake submits spec to a client over f in a synctest bubble (virtual
// time makes the polling instant) and waits for the job.
func runFake(t *testing.T, f *fake, spec cluster.JobSpec) (*cluster.Job, cluster.Status, error) {
	t.Helper()
	var (
		j   *cluster.Job
		st  cluster.Status
		err error
	)
	synctest.Test(t, func(t *testing.T) {
		c := cluster.NewClient(f, &cluster.Options{Name: "fake", LogRoot: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		defer c.Close()
		spec.Command = []string{"prog"}
		j, err = c.Submit(t.Context(), spec)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		st, err = j.Wait(ctx)
	})
	return j, st, err
}

func causes(j *cluster.Job) []string {
	var out []string
	for _, a := range j.Attempts() {
		out = append(out, a.Status.String()+"/"+a.Cause)
	}
	return out
}

// Preemptions and node failures are retried against the preemption
// budget, program failures against the failure budget; each retry is a new
// attempt with its own log file.
func TestRetryBudgets(t *testing.T) {
	for _, tc := range []struct {
		name        string
		script      func(int) []driver.Status
		failures    int
		preemptions int
		want        cluster.Status
		attempts    []string
	}{
		{
			name:     "preempted then succeeds",
			script:   func(n int) []driver.Status { return pick(n, failed(driver.CausePreempted, -1), succeeded) },
			want:     cluster.Succeeded,
			attempts: []string{"failed/preempted", "succeeded/"},
		},
		{
			name:     "node failure then succeeds",
			script:   func(n int) []driver.Status { return pick(n, failed(driver.CauseNodeFailure, -1), succeeded) },
			want:     cluster.Succeeded,
			attempts: []string{"failed/node failure", "succeeded/"},
		},
		{
			name:     "program failure is not retried by default",
			script:   func(n int) []driver.Status { return pick(n, failed(driver.CauseExit, 2), succeeded) },
			want:     cluster.Failed,
			attempts: []string{"failed/exit"},
		},
		{
			name: "program failure within the failure budget",
			script: func(n int) []driver.Status {
				return pick(n, failed(driver.CauseExit, 2), failed(driver.CauseOutOfMemory, -1), succeeded)
			},
			failures: 2,
			want:     cluster.Succeeded,
			attempts: []string{"failed/exit", "failed/out of memory", "succeeded/"},
		},
		{
			name:        "preemption budget exhausted",
			script:      func(n int) []driver.Status { return pick(n, failed(driver.CausePreempted, -1)) },
			preemptions: 2,
			want:        cluster.Failed,
			attempts:    []string{"failed/preempted", "failed/preempted", "failed/preempted"},
		},
		{
			name:        "no preemption retries",
			script:      func(n int) []driver.Status { return pick(n, failed(driver.CausePreempted, -1), succeeded) },
			preemptions: -1,
			want:        cluster.Failed,
			attempts:    []string{"failed/preempted"},
		},
		{
			name: "preemptions do not use the failure budget",
			script: func(n int) []driver.Status {
				return pick(n, failed(driver.CausePreempted, -1), failed(driver.CauseExit, 1), succeeded)
			},
			failures: 1,
			want:     cluster.Succeeded,
			attempts: []string{"failed/preempted", "failed/exit", "succeeded/"},
		},
		{
			name:     "unsatisfiable is final",
			script:   func(n int) []driver.Status { return pick(n, failed(driver.CauseUnsatisfiable, -1), succeeded) },
			failures: 5,
			want:     cluster.Failed,
			attempts: []string{"failed/unsatisfiable"},
		},
		{
			name: "in-place restarts count as preemptions",
			script: func(int) []driver.Status {
				return []driver.Status{running, {State: driver.Pending, Restarts: 1}, {State: driver.Running, Restarts: 1}, {State: driver.Succeeded, Restarts: 1}}
			},
			want:     cluster.Succeeded,
			attempts: []string{"failed/preempted", "succeeded/"},
		},
		{
			name: "in-place restarts beyond the budget",
			script: func(int) []driver.Status {
				return []driver.Status{running, {State: driver.Pending, Restarts: 1}, {State: driver.Running, Restarts: 2}}
			},
			preemptions: 1,
			want:        cluster.Failed,
			attempts:    []string{"failed/preempted", "failed/preempted", "failed/preempted"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(tc.script)
			j, st, err := runFake(t, f, cluster.JobSpec{Name: "job", MaxRetriesFailure: tc.failures, MaxRetriesPreemption: tc.preemptions})
			if st != tc.want || (err == nil) != (tc.want == cluster.Succeeded) {
				t.Errorf("Wait = %v, %v; want %v", st, err, tc.want)
			}
			if got := causes(j); !slices.Equal(got, tc.attempts) {
				t.Errorf("attempts = %q, want %q", got, tc.attempts)
			}
			for i, a := range j.Attempts() {
				if want := fmt.Sprintf("attempt-%d.log", i+1); !strings.HasSuffix(a.LogPath, "/"+want) {
					t.Errorf("attempt %d logs to %s, want %s", i+1, a.LogPath, want)
				}
			}
		})
	}
}

func pick(attempt int, s ...driver.Status) []driver.Status {
	return []driver.Status{pending, running, s[min(attempt, len(s))-1]}
}

// An unsatisfiable job is removed from the queue; a job the scheduler
// forgets is reported lost.
func TestUnsatisfiableCancelledAndLostJob(t *testing.T) {
	f := newFake(func(int) []driver.Status { return []driver.Status{pending, failed(driver.CauseUnsatisfiable, -1)} })
	_, _, err := runFake(t, f, cluster.JobSpec{Name: "never"})
	if !errors.Is(err, cluster.ErrUnsatisfiable) || len(f.cancelled) != 1 {
		t.Errorf("err = %v, cancelled %v; want ErrUnsatisfiable and the job cancelled", err, f.cancelled)
	}
	f = newFake(func(int) []driver.Status { return []driver.Status{running} })
	synctest.Test(t, func(t *testing.T) {
		c := cluster.NewClient(f, &cluster.Options{LogRoot: t.TempDir()})
		defer c.Close()
		j, err := c.Submit(t.Context(), cluster.JobSpec{Name: "lost", Command: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		clear(f.jobs)
		f.mu.Unlock()
		if _, err := j.Wait(t.Context()); !errors.Is(err, cluster.ErrNotFound) || !errors.Is(err, cluster.ErrFailed) {
			t.Errorf("Wait = %v, want ErrNotFound and ErrFailed", err)
		}
	})
}

// Closing the client ends waits with ErrClosed.
func TestCloseEndsWaits(t *testing.T) {
	f := newFake(func(int) []driver.Status { return []driver.Status{running} })
	synctest.Test(t, func(t *testing.T) {
		c := cluster.NewClient(f, &cluster.Options{LogRoot: t.TempDir()})
		j, err := c.Submit(t.Context(), cluster.JobSpec{Name: "x", Command: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if _, err := j.Wait(t.Context()); !errors.Is(err, cluster.ErrClosed) {
			t.Errorf("Wait after Close = %v, want ErrClosed", err)
		}
		if _, err := c.Submit(t.Context(), cluster.JobSpec{Name: "y", Command: []string{"x"}}); !errors.Is(err, cluster.ErrClosed) {
			t.Errorf("Submit after Close = %v, want ErrClosed", err)
		}
	})
}

// Polling backs off while nothing changes, within PollMin and PollMax.
func TestPollingBacksOff(t *testing.T) {
	f := newFake(func(int) []driver.Status {
		s := make([]driver.Status, 40)
		for i := range s {
			s[i] = running
		}
		return append(s, succeeded)
	})
	synctest.Test(t, func(t *testing.T) {
		c := cluster.NewClient(f, &cluster.Options{LogRoot: t.TempDir(), PollMin: 10 * time.Millisecond, PollMax: time.Second})
		defer c.Close()
		start := time.Now()
		j, err := c.Submit(t.Context(), cluster.JobSpec{Name: "x", Command: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		// 40 quiet polls growing by half from 10ms, capped at 1s: about 30 s.
		if d := time.Since(start); d < 20*time.Second || d > 45*time.Second {
			t.Errorf("40 polls took %s of virtual time", d)
		}
	})
}

func TestMux(t *testing.T) {
	mux := new(cluster.Mux)
	mux.Register("fake", openerFunc(func(_ context.Context, p *cluster.Params) (driver.Scheduler, error) {
		n := p.Int("n", 1)
		_ = p.String("mode", "x")
		if err := p.Done(); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errors.New("n must be positive")
		}
		return newFake(nil), nil
	}))
	ctx := t.Context()
	c, err := mux.Open(ctx, "fake?n=3&mode=y", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "fake" {
		t.Errorf("Name = %q", c.Name())
	}
	c.Close()
	if c, err := mux.Open(ctx, "fake?poll=2s&n=1&pack=1", nil); err != nil {
		t.Errorf("poll and pack parameters: %v", err)
	} else {
		c.Close()
	}
	for _, spec := range []string{"nosuch", "fake?n=x", "fake?n=-1", "fake?other=1", "fake?n=1&n=2", "fake?n=01", "fake?poll=x", "fake?poll=-1s", "fake?pack=0", "fake?pack=x"} {
		if _, err := mux.Open(ctx, spec, nil); !errors.Is(err, cluster.ErrBadSpec) {
			t.Errorf("Open(%q) = %v, want ErrBadSpec", spec, err)
		}
	}
	if _, err := mux.Open(ctx, "fake?n=0", nil); err == nil || errors.Is(err, cluster.ErrBadSpec) {
		t.Errorf("opener error = %v", err)
	}
	if got := mux.Names(); !slices.Equal(got, []string{"fake"}) {
		t.Errorf("Names = %v", got)
	}
}

type openerFunc func(context.Context, *cluster.Params) (driver.Scheduler, error)

func (f openerFunc) OpenScheduler(ctx context.Context, v url.Values) (driver.Scheduler, error) {
	return f(ctx, cluster.NewParams(v))
}

// Resize grows what a retried attempt requests after a failure of its own
// (memory after running out of it), clamped to MaxResources, and leaves a
// preempted attempt's request unchanged.
func TestResizeOnRetry(t *testing.T) {
	f := newFake(func(n int) []driver.Status {
		return pick(n, failed(driver.CauseOutOfMemory, -1), failed(driver.CausePreempted, -1), failed(driver.CauseOutOfMemory, -1), succeeded)
	})
	spec := cluster.JobSpec{Name: "job", MaxRetriesFailure: 2, Resources: cluster.Resources{CPUs: 2, Memory: 1 << 30, Device: cluster.GPU("a100", 1)},
		Resize: cluster.ScaleOnLimits(2), MaxResources: cluster.Resources{Memory: 3 << 30}}
	j, st, err := runFake(t, f, spec)
	if st != cluster.Succeeded || err != nil {
		t.Fatalf("Wait = %v, %v", st, err)
	}
	var mem []int64
	for _, s := range f.submits {
		mem = append(mem, s.Resources.Memory)
		if s.Resources.GPUs != 1 || s.Resources.GPUType != "a100" || s.Resources.CPUs != 2 {
			t.Errorf("attempt %d: resources %+v; the device and CPUs must not change", s.Attempt, s.Resources)
		}
	}
	// 1 GiB, out of memory: 2 GiB; preempted: unchanged; out of memory: 4
	// GiB, capped at 3 GiB.
	if want := []int64{1 << 30, 2 << 30, 2 << 30, 3 << 30}; !slices.Equal(mem, want) {
		t.Errorf("memory per attempt %v, want %v", mem, want)
	}
	if a := j.Attempts(); len(a) != 4 || a[3].Resources.Memory != 3<<30 {
		t.Errorf("attempts %+v; want the last one to record 3 GiB", a)
	}
	if got := cluster.ScaleOnLimits(3)(cluster.Retry{Cause: "time limit", Previous: cluster.Resources{TimeLimit: time.Minute, Memory: 5}}); got.TimeLimit != 3*time.Minute || got.Memory != 5 {
		t.Errorf("ScaleOnLimits after a time limit = %+v; want the time limit tripled, the memory unchanged", got)
	}
}
