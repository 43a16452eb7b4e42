package slurmcluster

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"example.com/cairn/cluster/driver"
)

var hostile = []string{`$(touch CANARY)`, "`touch CANARY`", `'; touch CANARY; '`, `"`, `\`, "a\nb", `$HOME`, `*`, ``, `%j`, `--x`}

// The batch script, run by a real shell, reproduces every value exactly
// and runs nothing else. This checks the quoting without Slurm.
func TestScriptQuoting(t *testing.T) {
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	var args []string
	env := map[string]string{}
	for i, h := range hostile {
		v := strings.ReplaceAll(h, "CANARY", canary)
		args = append(args, v)
		env["V"+string(rune('A'+i))] = v
	}
	weird := filepath.Join(dir, "log 'dir' \"$HOME\" %j\n;x")
	work := filepath.Join(dir, "work $(touch "+canary+")")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Scheduler{opts: Options{Shell: "/bin/sh"}}
	spec := &driver.JobSpec{
		Name:     "x",
		Command:  append([]string{"/bin/sh", "-c", `pwd; for a; do printf '<%s>' "$a"; done; echo; env | grep '^V[A-Z]=' | sort`, "sh"}, args...),
		Env:      env,
		Setup:    [][]string{{"/bin/echo", "setup", "$(touch " + canary + ")"}},
		Dir:      work,
		LogDir:   weird,
		Attempt:  3,
		Replicas: 1,
	}
	script := s.script(spec)
	cmd := exec.Command("/bin/sh", "-s")
	cmd.Stdin = strings.NewReader(string(script))
	cmd.Env = append(os.Environ(), "SLURM_RESTART_COUNT=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("script failed: %v\n%s\n%s", err, out, script)
	}
	log, err := os.ReadFile(filepath.Join(weird, "attempt-4.log"))
	if err != nil {
		t.Fatalf("attempt 3 restarted once must log to attempt-4.log: %v", err)
	}
	want := "setup $(touch " + canary + ")\n" + work + "\n"
	for _, a := range args {
		want += "<" + a + ">"
	}
	if !strings.HasPrefix(string(log), want+"\n") {
		t.Errorf("log = %q, want prefix %q", log, want)
	}
	for k, v := range env {
		if !strings.Contains(string(log), k+"="+v+"\n") && !strings.Contains(v, "\n") {
			t.Errorf("variable %s=%q missing from %q", k, v, log)
		}
	}
	if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a value was executed by the shell")
	}
	if strings.Contains(string(script), "#SBATCH") {
		t.Errorf("script contains #SBATCH directives")
	}
}

func TestSbatchArgs(t *testing.T) {
	s := &Scheduler{opts: Options{Partition: "gpu", Account: "acct", QOS: "high", ExtraArgs: []string{"--exclusive"}}}
	for _, tc := range []struct {
		name string
		spec driver.JobSpec
		want []string
	}{
		{"one replica", driver.JobSpec{Name: "n", Tag: "t", Attempt: 2, Replicas: 1, Resources: driver.Resources{CPUs: 4, Memory: 3<<30 + 1, Disk: 10 << 30, GPUs: 2, GPUType: "a100", TimeLimit: 90 * time.Second}},
			[]string{"--parsable", "--job-name=n", "--comment=cairn:t:2", "--output=/dev/null", "--cpus-per-task=4", "--mem=3073M", "--gpus=a100:2", "--tmp=10240M", "--time=2", "--partition=gpu", "--account=acct", "--qos=high", "--exclusive"}},
		{"gang", driver.JobSpec{Name: "n", Attempt: 1, Replicas: 3, Resources: driver.Resources{CPUs: 2, Memory: 1 << 30, GPUs: 1}},
			[]string{"--parsable", "--job-name=n", "--comment=cairn::1", "--output=/dev/null", "--cpus-per-task=2", "--ntasks=3", "--mem-per-cpu=512M", "--gpus-per-task=1", "--partition=gpu", "--account=acct", "--qos=high", "--exclusive"}},
	} {
		if got := s.sbatchArgs(&tc.spec); !slices.Equal(got, tc.want) {
			t.Errorf("%s: sbatch %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// Every terminal Slurm state maps to a status and a cause.
func TestMapState(t *testing.T) {
	for _, tc := range []struct {
		state, reason string
		want          driver.State
		cause         driver.Cause
	}{
		{"PENDING", "Resources", driver.Pending, driver.CauseNone},
		{"PENDING", "PartitionConfig", driver.Failed, driver.CauseUnsatisfiable},
		{"REQUEUED", "", driver.Pending, driver.CauseNone},
		{"RUNNING", "None", driver.Running, driver.CauseNone},
		{"COMPLETING", "", driver.Running, driver.CauseNone},
		{"COMPLETED", "", driver.Succeeded, driver.CauseNone},
		{"FAILED", "NonZeroExitCode", driver.Failed, driver.CauseExit},
		{"CANCELLED", "", driver.Stopped, driver.CauseCancelled},
		{"TIMEOUT", "", driver.Failed, driver.CauseTimeLimit},
		{"OUT_OF_MEMORY", "", driver.Failed, driver.CauseOutOfMemory},
		{"NODE_FAIL", "", driver.Failed, driver.CauseNodeFailure},
		{"BOOT_FAIL", "", driver.Failed, driver.CauseNodeFailure},
		{"PREEMPTED", "", driver.Failed, driver.CausePreempted},
		{"DEADLINE", "", driver.Failed, driver.CauseDeadline},
		{"SPECIAL_EXIT", "", driver.Failed, driver.CauseExit},
		{"SOMETHING_NEW", "", driver.Failed, driver.CauseOther},
	} {
		st := mapState(tc.state, tc.reason)
		if st.State != tc.want || st.Cause != tc.cause {
			t.Errorf("mapState(%q, %q) = %v/%v, want %v/%v", tc.state, tc.reason, st.State, st.Cause, tc.want, tc.cause)
		}
	}
}

func TestComment(t *testing.T) {
	for _, c := range []string{comment("abc-1.2", 7), comment("", 1)} {
		tag, n, ok := parseComment(c)
		if !ok || comment(tag, n) != c {
			t.Errorf("parseComment(%q) = %q, %d, %v", c, tag, n, ok)
		}
	}
	for _, c := range []string{"(null)", "cairn:x", "cairn:x:y", "other"} {
		if _, _, ok := parseComment(c); ok {
			t.Errorf("parseComment(%q) ok", c)
		}
	}
}

// fakeBin writes scripted Slurm commands into a directory, for the error
// paths a real Slurm cannot be made to produce.
func fakeBin(t *testing.T, scripts map[string]string) string {
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestErrorClassification(t *testing.T) {
	ctx := context.Background()
	spec := &driver.JobSpec{Name: "x", Command: []string{"true"}, Replicas: 1, Attempt: 1, LogDir: t.TempDir(), Resources: driver.Resources{CPUs: 1}}
	for _, tc := range []struct {
		sbatch string
		code   driver.Code
	}{
		{`echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)" >&2; exit 1`, driver.Transient},
		{`echo "sbatch: error: Batch job submission failed: Requested node configuration is not available" >&2; exit 1`, driver.Unsatisfiable},
		{`echo "sbatch: error: something odd" >&2; exit 1`, driver.Unknown},
		{`echo "not-a-number"`, driver.Unknown},
	} {
		s, err := New(&Options{BinDir: fakeBin(t, map[string]string{"sbatch": tc.sbatch})})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Submit(ctx, spec)
		if err == nil || s.ErrorCode(err) != tc.code {
			t.Errorf("sbatch %q: err %v, code %v; want code %v", tc.sbatch, err, s.ErrorCode(err), tc.code)
		}
	}
	// A cluster reachable again: "ID;cluster" output is accepted.
	s, err := New(&Options{BinDir: fakeBin(t, map[string]string{"sbatch": `cat > /dev/null; echo "42;ci"`})})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.Submit(ctx, spec); err != nil || id != "42" {
		t.Errorf("Submit = %q, %v", id, err)
	}
	// squeue no longer lists the job and accounting is off: the job is gone.
	s, err = New(&Options{BinDir: fakeBin(t, map[string]string{
		"sbatch": `exit 0`,
		"squeue": `echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1`,
		"sacct":  `echo "Slurm accounting storage is disabled" >&2; exit 1`,
	})})
	if err != nil {
		t.Fatal(err)
	}
	sts, err := s.Status(ctx, []string{"7"})
	if err != nil || sts[0].State != driver.Gone {
		t.Errorf("Status = %+v, %v; want gone", sts, err)
	}
	// With accounting, sacct answers for jobs squeue forgot.
	s, err = New(&Options{BinDir: fakeBin(t, map[string]string{
		"sbatch": `exit 0`,
		"squeue": `exit 0`,
		"sacct":  `echo "7|CANCELLED by 0|0:15"; echo "8|FAILED|3:0"`,
	})})
	if err != nil {
		t.Fatal(err)
	}
	sts, err = s.Status(ctx, []string{"7", "8"})
	if err != nil || sts[0].State != driver.Stopped || sts[1].State != driver.Failed || sts[1].ExitCode != 3 {
		t.Errorf("Status = %+v, %v", sts, err)
	}
	if _, err := New(&Options{BinDir: t.TempDir()}); err == nil {
		t.Errorf("New without sbatch succeeded")
	}
}
