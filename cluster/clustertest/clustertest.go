// Package clustertest is the conformance suite every cluster backend runs:
//
//	func TestConformance(t *testing.T) {
//		clustertest.Run(t, clustertest.Harness{New: newClient, ...})
//	}
//
// It submits real jobs (small /bin/sh programs) and checks what package
// cluster promises: success and failure with exit codes and log tails,
// cancellation, waiting with a deadline, retries against the failure
// budget with one log file per attempt, unsatisfiable requests, adoption
// (never of another user's job), setup commands, replicas, programs
// verified against their digest before they run, many jobs with one
// request submitted at once (packed into one scheduler request by backends
// that can, each still its own job), and — with hostile job
// names, arguments, environment variable names and values, working and log
// directories, through package cluster and straight into the driver — that
// no value is ever interpreted by a shell. Harnesses declare what their
// backend can do instead of skipping cases by name.
package clustertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/driver"
)

// Harness describes a backend under test.
type Harness struct {
	// New returns a client over a new driver instance. The suite closes it.
	New func(t *testing.T) *cluster.Client
	// Driver returns a new driver instance, for the cases that call the
	// driver directly, as its exported API allows. The suite closes it.
	Driver func(t *testing.T) driver.Scheduler
	// ForeignJob, if set, submits a job named name with tag tag that the
	// clients New returns must never adopt: another user's (or, for a
	// backend whose jobs do not outlive their client, another client's).
	// The job must stay pending or running until the test ends; ForeignJob
	// cancels it then. nil skips the case.
	ForeignJob func(t *testing.T, ctx context.Context, name, tag string)
	// UnsatisfiableCPUs is a CPU count the backend can never provide.
	UnsatisfiableCPUs int
	// AdoptAcrossClients: jobs outlive their client, and a new client can
	// adopt them. Otherwise adoption is checked within one client.
	AdoptAcrossClients bool
	// Replicas: the backend runs gangs of 2 replicas.
	Replicas bool
	// TimeLimit is a time limit to test (the backend's smallest; a job
	// sleeping much longer must fail with cause "time limit"); 0 skips.
	TimeLimit time.Duration
	// TimeLimitRounding is the granularity the backend rounds time limits
	// up to (a minute on Slurm); 0 means exact. ResizeOnRetry, which
	// needs a job to outlive TimeLimit and then fit in ten times it, is
	// skipped when the rounding exceeds TimeLimit.
	TimeLimitRounding time.Duration
	// Packs: the driver submits several jobs in one request
	// (driver.Packer), and DriverPack must test it. Backends that do not
	// pack run every job on its own; the Packed case holds for both.
	Packs bool
	// Timeout bounds each case; 0 means 2 minutes.
	Timeout time.Duration
}

// hostile strings: none may be interpreted by a shell. canary is replaced
// by the path of a file that must never be created.
var hostile = []string{
	`$(touch canary)`,
	"`touch canary`",
	`'; touch canary; '`,
	`"; touch canary; "`,
	`$HOME`,
	`${PATH}`,
	`*`,
	`a\b`,
	`%j %x %%`,
	"two\nlines",
	" spaced  out ",
	"",
	`-dash`,
	`a,b=c`,
	"ünïcødé ✓",
	`&& touch canary ||`,
	`| touch canary`,
	`> canary`,
	`; touch canary #`,
}

func hostileValues(canary string) []string {
	out := make([]string, len(hostile))
	for i, h := range hostile {
		out[i] = strings.ReplaceAll(h, "canary", canary)
	}
	return out
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Minute
	}
	s := &suite{h: h}
	cases := []struct {
		name string
		f    func(t *testing.T, c *cluster.Client, ctx context.Context)
	}{
		{"Succeeds", s.succeeds},
		{"FailsWithExitCode", s.failsWithExitCode},
		{"Environment", s.environment},
		{"HostileValues", s.hostileValues},
		{"Cancel", s.cancel},
		{"WaitDeadline", s.waitDeadline},
		{"RetriesFailures", s.retriesFailures},
		{"NoRetryByDefault", s.noRetryByDefault},
		{"Unsatisfiable", s.unsatisfiable},
		{"InvalidJob", s.invalidJob},
		{"Adopt", s.adopt},
		{"AdoptOnlyOwnJobs", s.adoptOnlyOwnJobs},
		{"VerifiedProgram", s.verifiedProgram},
		{"SymlinkedLog", s.symlinkedLog},
		{"WaitAll", s.waitAll},
		{"Setup", s.setup},
		{"Replicas", s.replicas},
		{"TimeLimit", s.timeLimit},
		{"ResizeOnRetry", s.resizeOnRetry},
		{"Packed", s.packed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := h.New(t)
			t.Cleanup(func() { c.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), h.Timeout)
			defer cancel()
			tc.f(t, c, ctx)
		})
	}
	driverCases := []struct {
		name string
		f    func(t *testing.T, d driver.Scheduler, ctx context.Context)
	}{
		{"DriverValidates", s.driverValidates},
		{"DriverHostileValues", s.driverHostileValues},
		{"DriverPack", s.driverPack},
	}
	for _, tc := range driverCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if h.Driver == nil {
				t.Skip("harness: no Driver")
			}
			d := h.Driver(t)
			t.Cleanup(func() { d.Close() })
			ctx, cancel := context.WithTimeout(t.Context(), h.Timeout)
			defer cancel()
			tc.f(t, d, ctx)
		})
	}
}

type suite struct{ h Harness }

// sh returns the argv running script with /bin/sh; args become $1...
func sh(script string, args ...string) []string {
	return append([]string{"/bin/sh", "-c", script, "sh"}, args...)
}

func readLog(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading log: %v", err)
	}
	return string(data)
}

func lastLog(t *testing.T, j *cluster.Job) string {
	t.Helper()
	a := j.Attempts()
	return readLog(t, a[len(a)-1].LogPath)
}

func submit(t *testing.T, ctx context.Context, c *cluster.Client, spec cluster.JobSpec) *cluster.Job {
	t.Helper()
	if spec.LogDir == "" {
		spec.LogDir = filepath.Join(t.TempDir(), "logs")
	}
	j, err := c.Submit(ctx, spec)
	if err != nil {
		t.Fatalf("Submit(%q): %v", spec.Name, err)
	}
	return j
}

// waitRunning waits until j runs.
func waitRunning(t *testing.T, ctx context.Context, j *cluster.Job) {
	t.Helper()
	for j.Status() != cluster.Running {
		if j.Status().Finished() {
			_, err := j.Wait(ctx)
			t.Fatalf("job finished before running: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job never ran: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The simplest job succeeds, and its output is in attempt-1.log.
func (s *suite) succeeds(t *testing.T, c *cluster.Client, ctx context.Context) {
	j := submit(t, ctx, c, cluster.JobSpec{Name: "succeeds", Command: sh(`echo "hello from $CAIRN_REPLICA/$CAIRN_REPLICAS"`)})
	st, err := j.Wait(ctx)
	if err != nil || st != cluster.Succeeded {
		t.Fatalf("Wait = %v, %v; want succeeded, nil", st, err)
	}
	a := j.Attempts()
	if len(a) != 1 || a[0].N != 1 || filepath.Base(a[0].LogPath) != "attempt-1.log" {
		t.Errorf("Attempts = %+v; want one attempt logging to attempt-1.log", a)
	}
	if got := lastLog(t, j); got != "hello from 0/1\n" {
		t.Errorf("log = %q, want %q", got, "hello from 0/1\n")
	}
	if j.ID() == "" || j.Name() != "succeeds" || j.Adopted() {
		t.Errorf("ID, Name, Adopted = %q, %q, %v", j.ID(), j.Name(), j.Adopted())
	}
}

// A job never follows a symbolic link planted where its log goes (a step's
// log directory on a shared prefix is writable by others): it fails
// instead of appending to the file the link names.
func (s *suite) symlinkedLog(t *testing.T, c *cluster.Client, ctx context.Context) {
	for _, link := range []string{"file", "dir"} {
		t.Run(link, func(t *testing.T) {
			dir := t.TempDir()
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, []byte("precious\n"), 0o666); err != nil {
				t.Fatal(err)
			}
			logDir := filepath.Join(dir, "logs")
			if link == "dir" {
				if err := os.Symlink(dir, logDir); err != nil {
					t.Fatal(err)
				}
				victim = filepath.Join(dir, "attempt-1.log")
				if err := os.WriteFile(victim, []byte("precious\n"), 0o666); err != nil {
					t.Fatal(err)
				}
			} else {
				if err := os.Mkdir(logDir, 0o777); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(victim, filepath.Join(logDir, "attempt-1.log")); err != nil {
					t.Fatal(err)
				}
			}
			j := submit(t, ctx, c, cluster.JobSpec{Name: "symlinked-log-" + link, Command: sh(`echo pwned`), LogDir: logDir})
			if st, _ := j.Wait(ctx); st == cluster.Succeeded {
				t.Errorf("job logging through a symbolic link succeeded")
			}
			if data, err := os.ReadFile(victim); err != nil || string(data) != "precious\n" {
				t.Errorf("the link's target now holds %q (%v)", data, err)
			}
		})
	}
}

// A failing job reports its exit code and the tail of its log.
func (s *suite) failsWithExitCode(t *testing.T, c *cluster.Client, ctx context.Context) {
	j := submit(t, ctx, c, cluster.JobSpec{Name: "fails", Command: sh(`echo "something broke" >&2; exit 3`)})
	st, err := j.Wait(ctx)
	if st != cluster.Failed || !errors.Is(err, cluster.ErrFailed) {
		t.Fatalf("Wait = %v, %v; want failed, ErrFailed", st, err)
	}
	je, ok := errors.AsType[*cluster.JobError](err)
	if !ok {
		t.Fatalf("error %T is not a *JobError", err)
	}
	if je.ExitCode != 3 || je.Cause != "exit" || !strings.Contains(je.LogTail, "something broke") || je.Attempts != 1 {
		t.Errorf("JobError = %+v; want exit code 3, cause exit, the log line in LogTail, 1 attempt", je)
	}
	if !strings.Contains(err.Error(), "code 3") || !strings.Contains(err.Error(), "something broke") {
		t.Errorf("error message %q lacks the exit code or the log tail", err)
	}
}

// Environment variables reach the job exactly; dependency groups too.
func (s *suite) environment(t *testing.T, c *cluster.Client, ctx context.Context) {
	j := submit(t, ctx, c, cluster.JobSpec{
		Name:    "environment",
		Command: sh(`printf '%s|%s|%s\n' "$CAIRN_T_ONE" "$CAIRN_T_TWO" "$CAIRN_DEPENDENCY_GROUPS"`),
		Environment: cluster.Environment{
			Vars:             map[string]string{"CAIRN_T_ONE": "1", "CAIRN_T_TWO": "two words"},
			DependencyGroups: []string{"data", "eval"},
		},
	})
	if _, err := j.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := lastLog(t, j), "1|two words|data,eval\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
}

// No job name, argument, environment value, working directory or log
// directory is ever interpreted by a shell.
func (s *suite) hostileValues(t *testing.T, c *cluster.Client, ctx context.Context) {
	base := t.TempDir()
	canary := filepath.Join(base, "canary")
	values := hostileValues(canary)
	weird := "dir with 'quotes' \"and\" $HOME %j ; & `x` \n newline"
	dir := filepath.Join(base, weird, "work")
	logDir := filepath.Join(base, weird, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	var keys []string
	for i, v := range values {
		k := "CAIRN_HOSTILE_" + string(rune('A'+i))
		vars[k] = v
		keys = append(keys, k)
	}
	// The program prints its working directory, then every argument, then
	// every variable, each as <value> on its own "line" (values may hold
	// newlines, so the check compares the whole output).
	script := `printf '<%s>' "$(pwd)"; for a; do printf '<%s>' "$a"; done; for k in ` + strings.Join(keys, " ") + `; do eval "v=\$$k"; printf '<%s>' "$v"; done`
	name := "Évil Name; $(touch " + canary + ") `touch " + canary + "` | && > ../.."
	want := "<" + dir + ">"
	for range 2 {
		for _, v := range values {
			want += "<" + v + ">"
		}
	}
	// With replicas, the values take the backend's gang path too (srun).
	replicas := []int{1}
	if s.h.Replicas {
		replicas = append(replicas, 2)
	}
	var j *cluster.Job
	for _, n := range replicas {
		j = submit(t, ctx, c, cluster.JobSpec{
			Name:        name,
			Command:     sh(`if [ "$CAIRN_REPLICA" = 0 ]; then `+script+`; fi`, values...),
			Environment: cluster.Environment{Vars: vars},
			Dir:         dir,
			LogDir:      filepath.Join(logDir, fmt.Sprint(n)),
			Replicas:    n,
		})
		if _, err := j.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if got := lastLog(t, j); got != want {
			t.Errorf("%d replica(s): job output differs:\n got %q\nwant %q", n, got, want)
		}
	}
	if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a hostile value was run by a shell: %s exists", canary)
	}
	if got, want := j.Name(), cluster.SanitizeName(name); got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	if got, want := j.Attempts()[0].LogPath, filepath.Join(logDir, fmt.Sprint(replicas[len(replicas)-1])); filepath.Dir(got) != want {
		t.Errorf("log path %q is not in %q", got, want)
	}
}

// A cancelled job is stopped.
func (s *suite) cancel(t *testing.T, c *cluster.Client, ctx context.Context) {
	j := submit(t, ctx, c, cluster.JobSpec{Name: "cancel", Command: sh(`echo started; sleep 600`)})
	waitRunning(t, ctx, j)
	if err := j.Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	st, err := j.Wait(ctx)
	if st != cluster.Stopped || !errors.Is(err, cluster.ErrStopped) || errors.Is(err, cluster.ErrFailed) {
		t.Fatalf("Wait after Cancel = %v, %v; want stopped, ErrStopped", st, err)
	}
	if err := j.Cancel(ctx); err != nil {
		t.Errorf("second Cancel: %v", err)
	}
}

// Wait returns when its context ends, and the job goes on.
func (s *suite) waitDeadline(t *testing.T, c *cluster.Client, ctx context.Context) {
	j := submit(t, ctx, c, cluster.JobSpec{Name: "wait-deadline", Command: sh(`sleep 600`)})
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	st, err := j.Wait(wctx)
	if !errors.Is(err, context.DeadlineExceeded) || st.Finished() {
		t.Fatalf("Wait with a short deadline = %v, %v; want an unfinished status and DeadlineExceeded", st, err)
	}
	if j.Status().Finished() {
		t.Errorf("job finished after Wait's context ended")
	}
	if err := j.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := j.Wait(ctx); st != cluster.Stopped {
		t.Errorf("status after Cancel = %v, want stopped", st)
	}
}

// A failed attempt is retried within MaxRetriesFailure, each attempt
// logging to its own file.
func (s *suite) retriesFailures(t *testing.T, c *cluster.Client, ctx context.Context) {
	marker := filepath.Join(t.TempDir(), "marker")
	j := submit(t, ctx, c, cluster.JobSpec{
		Name:              "retries",
		Command:           sh(`if [ -e "$1" ]; then echo "attempt $CAIRN_ATTEMPT ok"; else : > "$1"; echo "attempt $CAIRN_ATTEMPT fails"; exit 7; fi`, marker),
		MaxRetriesFailure: 2,
	})
	st, err := j.Wait(ctx)
	if err != nil || st != cluster.Succeeded {
		t.Fatalf("Wait = %v, %v; want succeeded on the second attempt", st, err)
	}
	a := j.Attempts()
	if len(a) != 2 || a[0].Status != cluster.Failed || a[0].ExitCode != 7 || a[1].Status != cluster.Succeeded {
		t.Fatalf("Attempts = %+v; want a failed attempt (exit 7) then a succeeded one", a)
	}
	if got := readLog(t, a[0].LogPath); got != "attempt 1 fails\n" {
		t.Errorf("attempt 1 log = %q", got)
	}
	if got := readLog(t, a[1].LogPath); got != "attempt 2 ok\n" {
		t.Errorf("attempt 2 log = %q", got)
	}
}

// MaxRetriesFailure defaults to 0.
func (s *suite) noRetryByDefault(t *testing.T, c *cluster.Client, ctx context.Context) {
	j := submit(t, ctx, c, cluster.JobSpec{Name: "no-retry", Command: sh(`exit 1`)})
	if _, err := j.Wait(ctx); !errors.Is(err, cluster.ErrFailed) {
		t.Fatalf("Wait = %v, want ErrFailed", err)
	}
	if n := len(j.Attempts()); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}
}

// A request the cluster can never satisfy fails at once.
func (s *suite) unsatisfiable(t *testing.T, c *cluster.Client, ctx context.Context) {
	start := time.Now()
	j, err := c.Submit(ctx, cluster.JobSpec{
		Name:      "unsatisfiable",
		Command:   sh(`true`),
		Resources: cluster.Resources{CPUs: s.h.UnsatisfiableCPUs},
		LogDir:    t.TempDir(),
	})
	if err == nil {
		_, err = j.Wait(ctx)
	}
	if !errors.Is(err, cluster.ErrUnsatisfiable) {
		t.Fatalf("Submit/Wait of %d CPUs = %v; want ErrUnsatisfiable", s.h.UnsatisfiableCPUs, err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s to report an unsatisfiable request", d)
	}
}

// Invalid specs are rejected before reaching the backend.
func (s *suite) invalidJob(t *testing.T, c *cluster.Client, ctx context.Context) {
	for _, spec := range []cluster.JobSpec{
		{Name: "empty"},
		{Name: "bad-env", Command: sh("true"), Environment: cluster.Environment{Vars: map[string]string{"A-B": "x"}}},
		{Name: "bad-env2", Command: sh("true"), Environment: cluster.Environment{Vars: map[string]string{"A=B": "x"}}},
		{Name: "nul", Command: []string{"/bin/echo", "a\x00b"}},
		{Name: "bad-tag", Command: sh("true"), Tag: "a b"},
		{Name: "neg", Command: sh("true"), Resources: cluster.Resources{CPUs: -1}},
		{Name: "empty-setup", Command: sh("true"), Environment: cluster.Environment{Setup: [][]string{{}}}},
	} {
		if _, err := c.Submit(ctx, spec); !errors.Is(err, cluster.ErrInvalidJob) {
			t.Errorf("Submit(%q) = %v, want ErrInvalidJob", spec.Name, err)
		}
	}
}

// Adopt finds a running job by name and tag, and nothing else.
func (s *suite) adopt(t *testing.T, c *cluster.Client, ctx context.Context) {
	spec := cluster.JobSpec{
		Name:    "adopt-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		Command: sh(`echo adopted; sleep 600`),
		Tag:     "tag-1",
		LogDir:  t.TempDir(),
	}
	j := submit(t, ctx, c, spec)
	defer j.Cancel(context.WithoutCancel(ctx))
	waitRunning(t, ctx, j)
	other := c
	if s.h.AdoptAcrossClients {
		other = s.h.New(t)
		defer other.Close()
	}
	a, err := other.Adopt(ctx, spec)
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if a.ID() != j.ID() || !a.Adopted() {
		t.Errorf("adopted job %q (Adopted=%v), want %q", a.ID(), a.Adopted(), j.ID())
	}
	wrongTag := spec
	wrongTag.Tag = "tag-2"
	if _, err := other.Adopt(ctx, wrongTag); !errors.Is(err, cluster.ErrNotFound) {
		t.Errorf("Adopt with another tag = %v, want ErrNotFound", err)
	}
	none := spec
	none.Name = spec.Name + "-nobody"
	if _, err := other.Adopt(ctx, none); !errors.Is(err, cluster.ErrNotFound) {
		t.Errorf("Adopt of an unknown name = %v, want ErrNotFound", err)
	}
	if err := a.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.Wait(ctx); st != cluster.Stopped {
		t.Errorf("adopted job after Cancel: %v, want stopped", st)
	}
	if st, _ := j.Wait(ctx); st != cluster.Stopped {
		t.Errorf("original job after Cancel: %v, want stopped", st)
	}
}

// WaitAll waits for every job and joins the failures.
func (s *suite) waitAll(t *testing.T, c *cluster.Client, ctx context.Context) {
	jobs := []*cluster.Job{
		submit(t, ctx, c, cluster.JobSpec{Name: "all-1", Command: sh(`true`)}),
		submit(t, ctx, c, cluster.JobSpec{Name: "all-2", Command: sh(`exit 4`)}),
		submit(t, ctx, c, cluster.JobSpec{Name: "all-3", Command: sh(`true`)}),
	}
	sts, err := cluster.WaitAll(ctx, jobs...)
	if want := []cluster.Status{cluster.Succeeded, cluster.Failed, cluster.Succeeded}; !slices.Equal(sts, want) {
		t.Errorf("WaitAll statuses = %v, want %v", sts, want)
	}
	if je, ok := errors.AsType[*cluster.JobError](err); !ok || je.Name != "all-2" || je.ExitCode != 4 {
		t.Errorf("WaitAll error = %v; want all-2's JobError with exit code 4", err)
	}
	if sts, err := cluster.WaitAll(ctx); len(sts) != 0 || err != nil {
		t.Errorf("WaitAll() = %v, %v", sts, err)
	}
}

// Setup commands run first, in order, in the job's environment; a failing
// one fails the job.
func (s *suite) setup(t *testing.T, c *cluster.Client, ctx context.Context) {
	j := submit(t, ctx, c, cluster.JobSpec{
		Name:    "setup",
		Command: sh(`echo main`),
		Environment: cluster.Environment{
			Vars:  map[string]string{"CAIRN_T_SETUP": "$HOME 'x'"},
			Setup: [][]string{{"/bin/echo", "setup one"}, sh(`printf 'setup two %s\n' "$CAIRN_T_SETUP"`)},
		},
	})
	if _, err := j.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := lastLog(t, j), "setup one\nsetup two $HOME 'x'\nmain\n"; got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
	j = submit(t, ctx, c, cluster.JobSpec{
		Name:        "setup-fails",
		Command:     sh(`echo main must not run`),
		Environment: cluster.Environment{Setup: [][]string{sh(`exit 5`)}},
	})
	_, err := j.Wait(ctx)
	if je, ok := errors.AsType[*cluster.JobError](err); !ok || je.ExitCode != 5 {
		t.Fatalf("Wait = %v; want a JobError with exit code 5", err)
	}
	if strings.Contains(lastLog(t, j), "must not run") {
		t.Errorf("the program ran after its setup failed")
	}
}

// A gang of replicas starts together; each knows its index.
func (s *suite) replicas(t *testing.T, c *cluster.Client, ctx context.Context) {
	if !s.h.Replicas {
		t.Skip("harness: backend does not run replicas")
	}
	j := submit(t, ctx, c, cluster.JobSpec{Name: "replicas", Replicas: 2, Command: sh(`echo "replica $CAIRN_REPLICA of $CAIRN_REPLICAS"`)})
	if _, err := j.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(lastLog(t, j)), "\n")
	slices.Sort(lines)
	if want := []string{"replica 0 of 2", "replica 1 of 2"}; !slices.Equal(lines, want) {
		t.Errorf("log lines = %q, want %q", lines, want)
	}
}

// A job that outlives its time limit fails with cause "time limit".
func (s *suite) timeLimit(t *testing.T, c *cluster.Client, ctx context.Context) {
	if s.h.TimeLimit == 0 {
		t.Skip("harness: no time limit to test")
	}
	j := submit(t, ctx, c, cluster.JobSpec{Name: "time-limit", Command: sh(`sleep 600`), Resources: cluster.Resources{TimeLimit: s.h.TimeLimit}})
	_, err := j.Wait(ctx)
	je, ok := errors.AsType[*cluster.JobError](err)
	if !ok || je.Cause != "time limit" || je.Status != cluster.Failed {
		t.Fatalf("Wait = %v; want a failure with cause time limit", err)
	}
}

// A job retried after reaching its time limit gets the resources Resize
// returns, clamped to MaxResources, attempt by attempt.
func (s *suite) resizeOnRetry(t *testing.T, c *cluster.Client, ctx context.Context) {
	if s.h.TimeLimit == 0 || s.h.TimeLimitRounding > s.h.TimeLimit {
		t.Skip("harness: no exact time limit to test (the backend rounds it up)")
	}
	tl := s.h.TimeLimit
	work := sh(fmt.Sprintf("sleep %.3f", (tl * 5 / 2).Seconds()))
	j := submit(t, ctx, c, cluster.JobSpec{Name: "resize", Command: work, Resources: cluster.Resources{TimeLimit: tl},
		MaxRetriesFailure: 3, Resize: cluster.ScaleOnLimits(10)})
	if st, err := j.Wait(ctx); err != nil || st != cluster.Succeeded {
		t.Fatalf("Wait = %v, %v; want the retry with 10x the time limit to succeed", st, err)
	}
	a := j.Attempts()
	if len(a) != 2 || a[0].Cause != "time limit" || a[0].Resources.TimeLimit != tl || a[1].Resources.TimeLimit != 10*tl {
		t.Errorf("attempts %+v; want a time-limited first attempt with %s and a second with %s", a, tl, 10*tl)
	}
	j = submit(t, ctx, c, cluster.JobSpec{Name: "resize-capped", Command: work, Resources: cluster.Resources{TimeLimit: tl},
		MaxRetriesFailure: 1, Resize: cluster.ScaleOnLimits(10), MaxResources: cluster.Resources{TimeLimit: 2 * tl}})
	_, err := j.Wait(ctx)
	if je, ok := errors.AsType[*cluster.JobError](err); !ok || je.Cause != "time limit" || je.Attempts != 2 {
		t.Fatalf("Wait = %v; want the capped retry to fail on its time limit too", err)
	}
	if a := j.Attempts(); a[1].Resources.TimeLimit != 2*tl {
		t.Errorf("capped retry had a time limit of %s, want MaxResources' %s", a[1].Resources.TimeLimit, 2*tl)
	}
}

// Adopt never returns another user's job, however it is named and tagged:
// anyone can name a job, and the job an adopter finds decides its step's
// outcome.
func (s *suite) adoptOnlyOwnJobs(t *testing.T, c *cluster.Client, ctx context.Context) {
	if s.h.ForeignJob == nil {
		t.Skip("harness: no ForeignJob")
	}
	spec := cluster.JobSpec{
		Name:    "foreign-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		Command: sh(`sleep 600`),
		Tag:     "stolen-tag",
		LogDir:  t.TempDir(),
	}
	s.h.ForeignJob(t, ctx, cluster.SanitizeName(spec.Name), spec.Tag)
	if j, err := c.Adopt(ctx, spec); !errors.Is(err, cluster.ErrNotFound) {
		if err == nil {
			j.Cancel(context.WithoutCancel(ctx))
		}
		t.Fatalf("Adopt found another user's job with the same name and tag: %v", err)
	}
}

// A program with a digest runs from a private copy verified on the node;
// a program replaced after its digest was taken runs nothing and fails
// the job with exit code 126. Paths and arguments stay hostile.
func (s *suite) verifiedProgram(t *testing.T, c *cluster.Client, ctx context.Context) {
	base := t.TempDir()
	canary := filepath.Join(base, "canary")
	// Slashes in the hostile part make directory levels.
	prog := filepath.Join(base, "staged $(touch "+canary+") 'x'", "program")
	if err := os.MkdirAll(filepath.Dir(prog), 0o755); err != nil {
		t.Fatal(err)
	}
	// It says which digest the backend told it was checked
	// (VerifiedProgramEnv), if it was told so of the copy it is.
	good := []byte("#!/bin/sh\nif [ \"$0\" = \"$2\" ]; then echo \"ran the staged file itself\"; exit 1; fi\n" +
		"case $" + cluster.VerifiedProgramEnv + " in *\" $0\") ;; *) echo \"not told that $0 was verified: $" + cluster.VerifiedProgramEnv + "\"; exit 1;; esac\n" +
		"printf 'verified <%s> %s\\n' \"$1\" \"${" + cluster.VerifiedProgramEnv + "%% *}\"\n")
	if err := os.WriteFile(prog, good, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(good)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	arg := "$(touch " + canary + ")"
	replicas := []int{1}
	if s.h.Replicas {
		replicas = append(replicas, 2)
	}
	for _, n := range replicas {
		if err := os.WriteFile(prog, good, 0o755); err != nil {
			t.Fatal(err)
		}
		// A cache of checked copies of its own (driver.VerifiedRun), and
		// none for the replaced program: a backend that caches would run
		// the copy checked first, and not read the replacement at all.
		spec := cluster.JobSpec{Name: "verified", Command: []string{prog, arg, prog}, Digest: digest, Replicas: n,
			Environment: cluster.Environment{Vars: map[string]string{driver.ProgramCacheEnv: t.TempDir()}}}
		j := submit(t, ctx, c, spec)
		if _, err := j.Wait(ctx); err != nil {
			t.Fatalf("%d replica(s): verified program: %v", n, err)
		}
		if got, want := lastLog(t, j), strings.Repeat("verified <"+arg+"> "+digest+"\n", n); got != want {
			t.Errorf("%d replica(s): log = %q, want %q", n, got, want)
		}

		// Replace the program, as anyone able to write a shared staging
		// directory could.
		if err := os.WriteFile(prog, []byte("#!/bin/sh\ntouch '"+canary+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		spec.Environment.Vars = map[string]string{driver.ProgramCacheEnv: "off"}
		j = submit(t, ctx, c, spec)
		_, err := j.Wait(ctx)
		if je, ok := errors.AsType[*cluster.JobError](err); !ok || je.ExitCode != 126 || !strings.Contains(je.LogTail, "refusing to run") {
			t.Errorf("%d replica(s): replaced program: Wait = %v; want a failure with exit code 126 saying it refuses to run", n, err)
		}
		if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%d replica(s): the replaced program ran", n)
		}
	}
	for _, bad := range []string{"sha256:xyz", "md5:" + strings.Repeat("0", 32), strings.TrimPrefix(digest, "sha256:")} {
		if _, err := c.Submit(ctx, cluster.JobSpec{Name: "bad-digest", Command: []string{prog}, Digest: bad, LogDir: t.TempDir()}); !errors.Is(err, cluster.ErrInvalidJob) {
			t.Errorf("Submit with digest %q = %v, want ErrInvalidJob", bad, err)
		}
	}
	if _, err := c.Submit(ctx, cluster.JobSpec{Name: "relative", Command: []string{"program"}, Digest: digest, LogDir: t.TempDir()}); !errors.Is(err, cluster.ErrInvalidJob) {
		t.Errorf("Submit of a relative verified program = %v, want ErrInvalidJob", err)
	}
}

// driverSpec returns a valid driver spec running argv.
func driverSpec(t *testing.T, argv ...string) driver.JobSpec {
	return driver.JobSpec{Name: "driver", Command: argv, LogDir: t.TempDir(), Attempt: 1, Replicas: 1, Resources: driver.Resources{CPUs: 1}}
}

// driverWait polls d until job id is finished.
func driverWait(t *testing.T, ctx context.Context, d driver.Scheduler, id string) driver.Status {
	t.Helper()
	for {
		sts, err := d.Status(ctx, []string{id})
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		switch sts[0].State {
		case driver.Succeeded, driver.Failed, driver.Stopped:
			return sts[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s never finished: %v", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// A driver used directly (it is an exported API) validates what could
// reach a shell or its scheduler's command line itself, and rejects it
// with code Invalid: variable names that are not identifiers (the classic
// "X=1; touch canary #"), bad job names, tags and digests, NUL bytes.
func (s *suite) driverValidates(t *testing.T, d driver.Scheduler, ctx context.Context) {
	canary := filepath.Join(t.TempDir(), "canary")
	touch := "touch " + canary
	for _, tc := range []struct {
		name string
		edit func(*driver.JobSpec)
	}{
		{"env name with a command", func(j *driver.JobSpec) { j.Env = map[string]string{"X=1; " + touch + " #": "v"} }},
		{"env name with a newline", func(j *driver.JobSpec) { j.Env = map[string]string{"X\n" + touch + "\nY": "v"} }},
		{"env name with $()", func(j *driver.JobSpec) { j.Env = map[string]string{"$(" + touch + ")": "v"} }},
		{"env name starting with a digit", func(j *driver.JobSpec) { j.Env = map[string]string{"1X": "v"} }},
		{"empty env name", func(j *driver.JobSpec) { j.Env = map[string]string{"": "v"} }},
		{"env value with NUL", func(j *driver.JobSpec) { j.Env = map[string]string{"X": "a\x00b"} }},
		{"job name with a command", func(j *driver.JobSpec) { j.Name = "x; " + touch }},
		{"job name with a newline", func(j *driver.JobSpec) { j.Name = "x\n" + touch }},
		{"upper-case job name", func(j *driver.JobSpec) { j.Name = "X" }},
		{"tag", func(j *driver.JobSpec) { j.Tag = "t:1|" + touch }},
		{"argument with NUL", func(j *driver.JobSpec) { j.Command = append(j.Command, "a\x00b") }},
		{"setup argument with NUL", func(j *driver.JobSpec) { j.Setup = [][]string{{"/bin/echo", "a\x00b"}} }},
		{"empty setup command", func(j *driver.JobSpec) { j.Setup = [][]string{{}} }},
		{"empty command", func(j *driver.JobSpec) { j.Command = nil }},
		{"work dir with NUL", func(j *driver.JobSpec) { j.Dir = "/tmp\x00" + touch }},
		{"no log dir", func(j *driver.JobSpec) { j.LogDir = "" }},
		{"digest", func(j *driver.JobSpec) { j.Digest = "'; " + touch + "; '" }},
		{"digest of a relative program", func(j *driver.JobSpec) { j.Command[0], j.Digest = "sh", strings.Repeat("0", 64) }},
		{"GPU type", func(j *driver.JobSpec) { j.Resources.GPUs, j.Resources.GPUType = 1, "x,--wrap="+touch }},
		{"no replicas", func(j *driver.JobSpec) { j.Replicas = 0 }},
		{"attempt 0", func(j *driver.JobSpec) { j.Attempt = 0 }},
	} {
		spec := driverSpec(t, "/bin/sh", "-c", "true")
		tc.edit(&spec)
		id, err := d.Submit(ctx, &spec)
		if err == nil {
			driverWait(t, ctx, d, id)
			t.Errorf("%s: Submit accepted the spec", tc.name)
		} else if d.ErrorCode(err) != driver.Invalid {
			t.Errorf("%s: Submit = %v (code %v), want code Invalid", tc.name, err, d.ErrorCode(err))
		}
	}
	if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an injected command ran: %s exists", canary)
	}
}

// Hostile values a driver accepts — arguments, environment values, the
// working and log directories, in a gang too — reach the program exactly,
// and nothing else runs.
func (s *suite) driverHostileValues(t *testing.T, d driver.Scheduler, ctx context.Context) {
	base := t.TempDir()
	canary := filepath.Join(base, "canary")
	values := hostileValues(canary)
	weird := "dir with 'quotes' \"and\" $HOME %j ; & `x` \n newline $(touch " + canary + ")"
	dir := filepath.Join(base, weird, "work")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	var keys []string
	for i, v := range values {
		k := "CAIRN_HOSTILE_" + string(rune('A'+i))
		env[k] = v
		keys = append(keys, k)
	}
	script := `[ "$CAIRN_REPLICA" = 0 ] || exit 0; printf '<%s>' "$(pwd)"; for a; do printf '<%s>' "$a"; done; for k in ` + strings.Join(keys, " ") + `; do eval "v=\$$k"; printf '<%s>' "$v"; done`
	want := "<" + dir + ">"
	for range 2 {
		for _, v := range values {
			want += "<" + v + ">"
		}
	}
	replicas := []int{1}
	if s.h.Replicas {
		replicas = append(replicas, 2)
	}
	for _, n := range replicas {
		spec := driverSpec(t, sh(script, values...)...)
		spec.Env, spec.Dir, spec.Replicas = env, dir, n
		spec.LogDir = filepath.Join(base, weird, fmt.Sprint("logs-", n))
		spec.Setup = [][]string{append([]string{"/bin/echo", "-n"}, values[:3]...)}
		id, err := d.Submit(ctx, &spec)
		if err != nil {
			t.Fatalf("%d replica(s): Submit: %v", n, err)
		}
		if st := driverWait(t, ctx, d, id); st.State != driver.Succeeded {
			t.Fatalf("%d replica(s): job ended %+v", n, st)
		}
		data, err := os.ReadFile(filepath.Join(spec.LogDir, driver.LogName(1)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(data), strings.Join(values[:3], " ")+want; got != want {
			t.Errorf("%d replica(s): job output differs:\n got %q\nwant %q", n, got, want)
		}
	}
	if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a hostile value was run by a shell: %s exists", canary)
	}
}
