package slurmcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
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

// runScript runs the batch script of spec with a real shell, and an srun
// on $PATH that starts the wrapper as two tasks (SLURM_PROCID 0 and 1),
// one after the other. It returns the shell's exit code.
func runScript(t *testing.T, spec *driver.JobSpec, env ...string) int {
	t.Helper()
	bin := fakeBin(t, map[string]string{"srun": `while [ $# -gt 0 ]; do case $1 in --*) shift;; *) break;; esac; done
SLURM_PROCID=0 "$@" && SLURM_PROCID=1 "$@"`})
	s := &Scheduler{opts: Options{Shell: "/bin/sh"}}
	cmd := exec.Command("/bin/sh", "-s")
	cmd.Stdin = strings.NewReader(string(s.script(spec)))
	cmd.Env = append(os.Environ(), append(env, "PATH="+bin+":"+os.Getenv("PATH"))...)
	out, err := cmd.CombinedOutput()
	if len(out) > 0 {
		t.Logf("script printed %q", out)
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// The multi-replica path (srun and its wrapper) reproduces every value
// exactly and runs nothing else (issue 8, item 14).
func TestScriptQuotingReplicas(t *testing.T) {
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	var args []string
	for _, h := range hostile {
		args = append(args, strings.ReplaceAll(h, "CANARY", canary))
	}
	logDir := filepath.Join(dir, "log 'dir' $(touch "+canary+") %j")
	spec := &driver.JobSpec{
		Name:     "x",
		Command:  append([]string{"/bin/sh", "-c", `for a; do printf '<%s>' "$a"; done; echo " $CAIRN_REPLICA"`, "sh"}, args...),
		Env:      map[string]string{"V": "$(touch " + canary + ")"},
		LogDir:   logDir,
		Attempt:  1,
		Replicas: 2,
	}
	if code := runScript(t, spec); code != 0 {
		t.Fatalf("script exited %d", code)
	}
	var want string
	for _, a := range args {
		want += "<" + a + ">"
	}
	want = want + " 0\n" + want + " 1\n"
	if log, err := os.ReadFile(filepath.Join(logDir, "attempt-1.log")); err != nil || string(log) != want {
		t.Errorf("log = %q, %v; want %q", log, err, want)
	}
	if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a value was executed by the shell")
	}
}

// A job with a digest runs a verified private copy of its program; a
// program replaced after submission (as anyone able to write a shared
// staging directory could) runs nothing and exits 126, in the batch
// script's own path and in every srun task (issue 8, item 12).
func TestScriptVerifiesProgram(t *testing.T) {
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	// Slashes in the hostile part are directory levels.
	prog := filepath.Join(dir, "staged 'prog' $(touch "+canary+")", "prog")
	if err := os.MkdirAll(filepath.Dir(prog), 0o755); err != nil {
		t.Fatal(err)
	}
	good := "#!/bin/sh\nprintf 'ran %s as %s replica %s\\n' \"$1\" \"$0\" \"$CAIRN_REPLICA\"\n"
	if err := os.WriteFile(prog, []byte(good), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(good))
	digest := hex.EncodeToString(sum[:])
	tmp := t.TempDir()
	for _, replicas := range []int{1, 2} {
		if err := os.WriteFile(prog, []byte(good), 0o755); err != nil {
			t.Fatal(err)
		}
		logDir := filepath.Join(dir, fmt.Sprintf("logs-%d", replicas))
		spec := &driver.JobSpec{Name: "x", Command: []string{prog, "$(touch " + canary + ")"}, Digest: digest, LogDir: logDir, Attempt: 1, Replicas: replicas}
		if code := runScript(t, spec, "TMPDIR="+tmp, driver.ProgramCacheEnv+"=off"); code != 0 {
			t.Fatalf("%d replica(s): verified program: exit %d", replicas, code)
		}
		log, _ := os.ReadFile(filepath.Join(logDir, "attempt-1.log"))
		lines := strings.Split(strings.TrimSpace(string(log)), "\n")
		if len(lines) != replicas {
			t.Fatalf("%d replica(s): log %q", replicas, log)
		}
		for i, l := range lines {
			if !strings.HasPrefix(l, "ran $(touch "+canary+") as "+tmp+"/cairn-program.") || !strings.HasSuffix(l, fmt.Sprint("/program replica ", i)) {
				t.Errorf("%d replica(s): line %q; want the program run from a private copy under %s", replicas, l, tmp)
			}
		}
		// The private copies are removed.
		if m, _ := filepath.Glob(filepath.Join(tmp, "cairn-program.*")); len(m) != 0 {
			t.Errorf("private copies left behind: %v", m)
		}

		// Replaced: refused, nothing runs, and the exit code says so.
		if err := os.WriteFile(prog, []byte("#!/bin/sh\ntouch '"+canary+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if code := runScript(t, spec, "TMPDIR="+tmp, driver.ProgramCacheEnv+"=off"); code != 126 {
			t.Errorf("%d replica(s): replaced program: exit %d, want 126", replicas, code)
		}
		if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%d replica(s): the replaced program ran", replicas)
		}
		if log, _ := os.ReadFile(filepath.Join(logDir, "attempt-1.log")); !strings.Contains(string(log), "refusing to run it") {
			t.Errorf("%d replica(s): log %q lacks the refusal", replicas, log)
		}
	}
}

// Submit validates what reaches the shell itself: a direct user of the
// driver cannot get a variable name, job name, tag or digest into the
// batch script or sbatch's arguments (issue 8, item 14). The fake sbatch
// records whether it ran.
func TestSubmitValidates(t *testing.T) {
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	ran := filepath.Join(dir, "sbatch-ran")
	s, err := New(&Options{BinDir: fakeBin(t, map[string]string{"sbatch": `cat > '` + ran + `'; echo 42`})})
	if err != nil {
		t.Fatal(err)
	}
	ok := driver.JobSpec{Name: "x", Command: []string{"true"}, LogDir: dir, Attempt: 1, Replicas: 1, Resources: driver.Resources{CPUs: 1}}
	touch := "touch " + canary
	for _, tc := range []struct {
		name string
		edit func(*driver.JobSpec)
	}{
		{"env name with a command", func(j *driver.JobSpec) { j.Env = map[string]string{"X=1; " + touch + " #": "v"} }},
		{"env name with a newline", func(j *driver.JobSpec) { j.Env = map[string]string{"X\n" + touch: "v"} }},
		{"env name with a dash", func(j *driver.JobSpec) { j.Env = map[string]string{"A-B": "v"} }},
		{"empty env name", func(j *driver.JobSpec) { j.Env = map[string]string{"": "v"} }},
		{"env value with NUL", func(j *driver.JobSpec) { j.Env = map[string]string{"A": "a\x00b"} }},
		{"job name", func(j *driver.JobSpec) { j.Name = "x; " + touch }},
		{"job name with a newline", func(j *driver.JobSpec) { j.Name = "x\n#SBATCH --wrap=" + touch }},
		{"tag", func(j *driver.JobSpec) { j.Tag = "t:9|" + touch }},
		{"argument with NUL", func(j *driver.JobSpec) { j.Command = []string{"true", "a\x00b"} }},
		{"empty command", func(j *driver.JobSpec) { j.Command = nil }},
		{"log dir with NUL", func(j *driver.JobSpec) { j.LogDir = dir + "\x00x" }},
		{"digest", func(j *driver.JobSpec) { j.Digest = "'; " + touch + "; '" }},
		{"digest of a relative program", func(j *driver.JobSpec) { j.Digest = strings.Repeat("0", 64) }},
		{"GPU type", func(j *driver.JobSpec) { j.Resources.GPUs, j.Resources.GPUType = 1, "a100:1,--wrap="+touch }},
		{"no replicas", func(j *driver.JobSpec) { j.Replicas = 0 }},
	} {
		spec := ok
		tc.edit(&spec)
		if _, err := s.Submit(t.Context(), &spec); s.ErrorCode(err) != driver.Invalid {
			t.Errorf("%s: Submit = %v, want an Invalid error", tc.name, err)
		}
		if _, err := os.Stat(ran); err == nil {
			t.Fatalf("%s: the spec reached sbatch", tc.name)
		}
	}
	if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an injected command ran")
	}
	if _, err := New(&Options{Shell: "/bin/sh\ntouch " + canary}); err == nil {
		t.Errorf("New accepted a shell with a newline")
	}
}

// Slurm commands, and through sbatch's --export=ALL the jobs, do not get
// the variables of a Slurm job the submitter runs in (issue 8, item 15).
// Not parallel: it sets the process environment.
func TestSlurmVariablesNotInherited(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "env")
	t.Setenv("SLURM_RESTART_COUNT", "3")
	t.Setenv("SLURM_JOB_ID", "999")
	t.Setenv("SLURM_JOBID", "999")
	t.Setenv("SLURM_ARRAY_TASK_ID", "2")
	t.Setenv("SLURM_EXPORT_ENV", "NONE")
	t.Setenv("SLURM_CONF", "/etc/slurm/slurm.conf")
	t.Setenv("CAIRN_T_KEEP", "kept")
	s, err := New(&Options{BinDir: fakeBin(t, map[string]string{"sbatch": `cat >/dev/null; env > '` + envFile + `'; echo 42`})})
	if err != nil {
		t.Fatal(err)
	}
	spec := &driver.JobSpec{Name: "x", Command: []string{"true"}, LogDir: dir, Attempt: 1, Replicas: 1, Resources: driver.Resources{CPUs: 1}}
	if _, err := s.Submit(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	var slurm []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(line, "SLURM_") {
			slurm = append(slurm, line)
		}
	}
	if want := []string{"SLURM_CONF=/etc/slurm/slurm.conf"}; !slices.Equal(slurm, want) {
		t.Errorf("sbatch saw %q, want only %q", slurm, want)
	}
	if !strings.Contains(string(data), "\nCAIRN_T_KEEP=kept\n") {
		t.Errorf("sbatch did not get the rest of the environment")
	}
}
