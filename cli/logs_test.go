package cli_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cli"
)

// logsPipeline is the program for CAIRN_TEST_LOGS_PIPELINE (TestMain):
// "talker" logs "tick N" through out.Logger until the file
// CAIRN_TEST_RELEASE exists (it writes CAIRN_TEST_BLOCK when it starts);
// "crasher" logs a line and panics. CAIRN_TEST_LOGS_PIPELINE names the
// step to run.
func logsPipeline() []*cairn.Step {
	talker := &cairn.Step{Name: "talker", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		for i := 0; ; i++ {
			out.Logger.Info("tick", "n", i)
			if i == 0 {
				// The first tick is in the log (written per record) before
				// the marker tells the test the step has started.
				if err := os.WriteFile(os.Getenv("CAIRN_TEST_BLOCK"), []byte(out.WorkerID), 0o644); err != nil {
					return nil, err
				}
			}
			if _, err := os.Stat(os.Getenv("CAIRN_TEST_RELEASE")); err == nil {
				out.Logger.Info("released")
				return nil, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}}
	crasher := &cairn.Step{Name: "crasher", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		out.Logger.Info("about to crash", "why", "testing")
		var names []string
		return names[len(names)], nil // index out of range: panics
	}}
	switch os.Getenv("CAIRN_TEST_LOGS_PIPELINE") {
	case "crasher":
		return []*cairn.Step{crasher}
	case "remotecrasher": // the same, as a job on the local cluster
		crasher.Remote = &cairn.RemoteSpec{}
		return []*cairn.Step{crasher}
	}
	return []*cairn.Step{talker}
}

// logsCmd runs the logs pipeline program (args after the program name).
func logsCmd(step string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_LOGS_PIPELINE="+step)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// toolCmd runs the generic cairn command.
func toolCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_TOOL=1")
	return cmd
}

// await polls cond (another process is at work: nothing to select on)
// until it holds, failing the test after a generous deadline.
func await(t *testing.T, what string, cond func() bool, dump func() string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out\n%s", what, dump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExit waits for cmd, failing the test if it does not end within a
// generous deadline.
func waitExit(t *testing.T, cmd *exec.Cmd, what string, dump func() string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit\n%s", what, dump())
		return nil
	}
}

// `prog logs STEP` prints a running step's log; `prog logs STEP -f` and
// `cairn logs PREFIX STEP -f` follow it as it grows and exit by themselves
// once the step has ended. The whole log ends with the attempt's closing
// record.
func TestLogsFollowRunningStep(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "prefix")
	marker, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	env := []string{"CAIRN_TEST_BLOCK=" + marker, "CAIRN_TEST_RELEASE=" + release}

	runner := logsCmd("talker", env, "--prefix", prefix)
	var runErr lockedBuffer
	runner.Stderr = &runErr
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	defer runner.Process.Kill()
	await(t, "the step starts", func() bool { _, err := os.Stat(marker); return err == nil }, runErr.String)

	// A plain `logs` prints what is there and exits.
	var once bytes.Buffer
	plain := logsCmd("talker", env, "logs", "talker", "--prefix", prefix)
	plain.Stdout, plain.Stderr = &once, &once
	await(t, "logs prints ticks", func() bool {
		once.Reset()
		plain = logsCmd("talker", env, "logs", "talker", "--prefix", prefix)
		plain.Stdout, plain.Stderr = &once, &once
		return plain.Run() == nil && strings.Contains(once.String(), "msg=tick n=1")
	}, once.String)
	if !strings.Contains(once.String(), "attempt started") {
		t.Errorf("logs output lacks the attempt's opening record:\n%s", once.String())
	}

	var progOut, progErr, toolOut, toolErr lockedBuffer
	prog := logsCmd("talker", env, "logs", "talker", "-f", "--poll-interval", "50ms", "--prefix", prefix)
	prog.Stdout, prog.Stderr = &progOut, &progErr
	tool := toolCmd("logs", prefix, "talker", "-f", "--poll-interval", "50ms")
	tool.Stdout, tool.Stderr = &toolOut, &toolErr
	for _, c := range []*exec.Cmd{prog, tool} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Process.Kill()
	}
	// Both follow: they print ticks logged after they started.
	n := strings.Count(once.String(), "msg=tick")
	later := regexp.MustCompile(`msg=tick n=(\d+)`)
	grown := func(b *lockedBuffer) func() bool {
		return func() bool {
			m := later.FindAllStringSubmatch(b.String(), -1)
			return len(m) > n+2
		}
	}
	await(t, "prog logs -f follows", grown(&progOut), func() string { return progOut.String() + progErr.String() })
	await(t, "cairn logs -f follows", grown(&toolOut), func() string { return toolOut.String() + toolErr.String() })

	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, runner, "runner", runErr.String); err != nil {
		t.Fatalf("runner: %v\n%s", err, runErr.String())
	}
	for _, c := range []struct {
		name     string
		cmd      *exec.Cmd
		out, err *lockedBuffer
	}{{"prog logs -f", prog, &progOut, &progErr}, {"cairn logs -f", tool, &toolOut, &toolErr}} {
		dump := func() string { return c.out.String() + "\n--- stderr:\n" + c.err.String() }
		if err := waitExit(t, c.cmd, c.name, dump); err != nil {
			t.Errorf("%s: %v\n%s", c.name, err, dump())
		}
		out := c.out.String()
		if !strings.Contains(out, "msg=released") || !strings.Contains(out, `msg="step function returned"`) {
			t.Errorf("%s did not print the end of the log:\n%s", c.name, dump())
		}
		if !strings.Contains(c.err.String(), "is SUCCESS") {
			t.Errorf("%s did not say the step ended:\n%s", c.name, dump())
		}
		// Printed once each: following never repeats a line.
		if strings.Count(out, "attempt started") != 1 {
			t.Errorf("%s printed the log's start %d times:\n%s", c.name, strings.Count(out, "attempt started"), out)
		}
	}
}

// A runner killed mid-step leaves attempt-1.log; the runner that takes the
// step over writes attempt-2.log and leaves attempt-1.log as it was.
// `logs` shows the latest attempt, `logs --attempt 1` the first.
func TestLogsTakeoverGetsNewAttempt(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "prefix")
	marker, release := filepath.Join(dir, "started"), filepath.Join(dir, "release")
	env := []string{"CAIRN_TEST_BLOCK=" + marker, "CAIRN_TEST_RELEASE=" + release}
	lease := []string{"--prefix", prefix, "--lease-interval", "100ms", "--lease-stale-after", "600ms", "--poll-interval", "20ms"}

	first := logsCmd("talker", env, lease...)
	var firstErr lockedBuffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	await(t, "the step starts", func() bool { _, err := os.Stat(marker); return err == nil }, firstErr.String)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	logs, err := filepath.Glob(filepath.Join(prefix, "talker_*", ".cairn_logs", "attempt-1.log"))
	if err != nil || len(logs) != 1 {
		t.Fatalf("attempt-1.log: %v %v", logs, err)
	}
	before, err := os.ReadFile(logs[0])
	if err != nil || !strings.Contains(string(before), "msg=tick") {
		t.Fatalf("attempt-1.log after the kill: %q, %v", before, err)
	}

	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	second := logsCmd("talker", env, lease...)
	if out, err := second.CombinedOutput(); err != nil {
		t.Fatalf("second runner: %v\n%s", err, out)
	}
	if after, err := os.ReadFile(logs[0]); err != nil || !bytes.Equal(after, before) {
		t.Errorf("attempt-1.log changed by the takeover:\n%s\nwas\n%s", after, before)
	}
	second2 := filepath.Join(filepath.Dir(logs[0]), "attempt-2.log")
	data, err := os.ReadFile(second2)
	if err != nil || !strings.Contains(string(data), "msg=released") {
		t.Errorf("attempt-2.log = %q, %v; want the taker's records", data, err)
	}

	latest, err := logsCmd("talker", env, "logs", "talker", "--prefix", prefix).Output()
	if err != nil || string(latest) != string(data) {
		t.Errorf("logs printed %q, %v; want attempt-2.log", latest, err)
	}
	one, err := toolCmd("logs", prefix, "talker", "--attempt", "1").Output()
	if err != nil || !bytes.Equal(one, before) {
		t.Errorf("cairn logs --attempt 1 printed %q, %v; want attempt-1.log", one, err)
	}
}

// A panicking step's error, the last lines of its log and its stack appear
// at the end of the run, and `cairn status` shows the same; for a step
// run in-process (the stack is in its failure record) and for one run as
// a cluster job (the stack is in its job's log).
func TestFailureSummaryShowsLogTailAndStack(t *testing.T) {
	t.Run("local", func(t *testing.T) { testFailureSummary(t, "crasher", `\.cairn_failure\.json`) })
	t.Run("remote", func(t *testing.T) { testFailureSummary(t, "remotecrasher", `\.cairn_logs/attempt-1\.log`) })
}

func testFailureSummary(t *testing.T, pipeline, stackFile string) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "prefix")
	run := logsCmd(pipeline, nil, "--prefix", prefix)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	err := run.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != cli.ExitFailed {
		t.Fatalf("run: %v, want exit %d\n%s", err, cli.ExitFailed, stderr.String())
	}
	status, err := toolCmd("status", prefix).Output()
	if err != nil {
		t.Fatalf("cairn status: %v", err)
	}
	for name, out := range map[string]string{"end of run": stderr.String(), "cairn status": string(status)} {
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`FAILED crasher_[0-9a-f]{8}: .*(panic: runtime error: index out of range|job crasher_[0-9a-f]{8} \(\S+\) failed: exit with code 1)`),
			regexp.MustCompile(`\| .*panic: runtime error: index out of range`),
			regexp.MustCompile(`log .*crasher_[0-9a-f]{8}/\.cairn_logs/attempt-1\.log \(last 10 lines\):`),
			regexp.MustCompile(`\| .*msg="about to crash".* why=testing`),
			regexp.MustCompile(`stack \(in full in .*` + stackFile + `\):`),
			regexp.MustCompile(`\| goroutine \d+`),
			regexp.MustCompile(`\| .*logs_test\.go:\d+`),
		} {
			if !want.MatchString(out) {
				t.Errorf("%s: no match for %s in:\n%s", name, want, out)
			}
		}
	}
	t.Logf("end of run:\n%s", stderr.String())
	t.Logf("cairn status:\n%s", status)
}

// A step that logs nothing gets no attempt log (it is created at the first
// log line); `logs` says so and succeeds, with or without -f, instead of
// calling the log missing.
func TestLogsOfAQuietStep(t *testing.T) {
	t.Parallel()
	prefix := filepath.Join(t.TempDir(), "p")
	quiet := []*cairn.Step{{Name: "quiet", Func: func(context.Context, *cairn.Output) (any, error) { return 1, nil }}}
	if code, _, stderr := mainOf(t, quiet, "--prefix", prefix); code != cli.ExitOK {
		t.Fatalf("run: code %d\n%s", code, stderr)
	}
	for _, args := range [][]string{{"logs", "quiet", "--prefix", prefix}, {"logs", "-f", "quiet", "--prefix", prefix}} {
		code, out, stderr := mainOf(t, quiet, args...)
		if code != cli.ExitOK || out != "" || !strings.Contains(stderr, "is SUCCESS and logged nothing") {
			t.Errorf("%v: code %d, stdout %q, stderr %q", args, code, out, stderr)
		}
	}
}
