package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cli"
)

// The test binary doubles as a pipeline program: with CAIRN_TEST_PIPELINE
// set it runs testPipeline through cli.Main, so tests can race real
// processes and kill them.
func TestMain(m *testing.M) {
	if os.Getenv("CAIRN_TEST_PIPELINE") != "" {
		os.Exit(cli.Main(cairn.Steps(testPipeline()...), nil))
	}
	if os.Getenv("CAIRN_TEST_REMOTE_PIPELINE") != "" { // remote_test.go
		os.Exit(cli.Main(remotePipeline(), nil))
	}
	if os.Getenv("CAIRN_TEST_PACK_PIPELINE") != "" { // pack_test.go
		os.Exit(cli.Main(packPipeline(), nil))
	}
	if os.Getenv("CAIRN_TEST_LIVE_PIPELINE") != "" { // live_test.go
		os.Exit(cli.Main(cairn.Steps(livePipeline()...), nil))
	}
	if n := os.Getenv("CAIRN_TEST_TEAM_PIPELINE"); n != "" { // multiuser_test.go
		os.Exit(runTeamPipeline(n))
	}
	if os.Getenv("CAIRN_TEST_LOGS_PIPELINE") != "" { // logs_test.go
		os.Exit(cli.Main(cairn.Steps(logsPipeline()...), nil))
	}
	if m := os.Getenv("CAIRN_TEST_FLAGS_PROGRAM"); m != "" { // params_test.go
		os.Exit(flagsProgram(nil, m == "self-parsed"))
	}
	if os.Getenv("CAIRN_TEST_TOOL") != "" { // the generic cairn command
		os.Exit(cli.Tool(nil))
	}
	os.Exit(m.Run())
}

// testPipeline is a fan-out of 24 steps over a root, joined by a step,
// followed by a "victim" step that blocks while CAIRN_TEST_BLOCK names a
// file to create. Every execution appends "ID START END PID" to the file
// CAIRN_TEST_LOG.
func testPipeline() []*cairn.Step {
	logPath := os.Getenv("CAIRN_TEST_LOG")
	record := func(id string, start time.Time) error {
		f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		// One write(2) of a short line to an O_APPEND file is atomic.
		_, err = fmt.Fprintf(f, "%s %d %d %d\n", id, start.UnixNano(), time.Now().UnixNano(), os.Getpid())
		return err
	}
	work := func(name string) cairn.Func {
		return func(ctx context.Context, out *cairn.Output) (any, error) {
			start := time.Now()
			time.Sleep(3 * time.Millisecond) // widen the window a duplicate would need
			id := filepath.Base(out.Path)
			return map[string]string{"step": name}, record(id, start)
		}
	}
	root := &cairn.Step{Name: "root", Func: work("root")}
	var leaves []*cairn.Step
	for i := range 24 {
		leaves = append(leaves, &cairn.Step{Name: fmt.Sprintf("leaf/%02d", i), Attrs: map[string]int{"i": i}, Deps: []*cairn.Step{root}, Func: work("leaf")})
	}
	join := &cairn.Step{Name: "join", Deps: leaves, Func: work("join")}
	// victim runs after join, so when a test kills the process while victim
	// blocks, every other step has finished and recorded its status.
	victim := &cairn.Step{Name: "victim", Deps: []*cairn.Step{join}, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		start := time.Now()
		if marker := os.Getenv("CAIRN_TEST_BLOCK"); marker != "" {
			if err := os.WriteFile(marker, []byte(out.WorkerID), 0o644); err != nil {
				return nil, err
			}
			if release := os.Getenv("CAIRN_TEST_RELEASE"); release != "" {
				// A step that does not watch its context: it finishes its
				// work when the file appears, whatever happened meanwhile.
				for {
					if _, err := os.Stat(release); err == nil {
						return map[string]int{"pid": os.Getpid()}, nil
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			<-ctx.Done() // until killed
			return nil, ctx.Err()
		}
		return map[string]int{"pid": os.Getpid()}, record(filepath.Base(out.Path), start)
	}}
	return []*cairn.Step{victim}
}

type execution struct {
	id         string
	start, end int64
	pid        int
}

func readLog(t *testing.T, path string) []execution {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []execution
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e execution
		if _, err := fmt.Sscanf(sc.Text(), "%s %d %d %d", &e.id, &e.start, &e.end, &e.pid); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// pipelineCmd returns a command running the test pipeline on prefix.
func pipelineCmd(t *testing.T, prefix, logPath string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"--prefix", prefix}, args...)...)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_PIPELINE=1", "CAIRN_TEST_LOG="+logPath)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// Several OS processes run the same pipeline on one prefix: every step
// executes exactly once.
func TestProcessesShareOnePrefix(t *testing.T) {
	dir := t.TempDir()
	prefix, logPath := filepath.Join(dir, "prefix"), filepath.Join(dir, "log")
	const procs = 4
	var wg sync.WaitGroup
	outputs := make([]bytes.Buffer, procs)
	errs := make([]error, procs)
	for i := range procs {
		cmd := pipelineCmd(t, prefix, logPath, nil, "--poll-interval", "10ms", "--max-concurrent", "4")
		cmd.Stderr = &outputs[i]
		wg.Go(func() { errs[i] = cmd.Run() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outputs[i].String())
		}
	}
	counts := map[string]int{}
	pids := map[int]bool{}
	for _, e := range readLog(t, logPath) {
		counts[e.id]++
		pids[e.pid] = true
	}
	if len(counts) != 27 {
		t.Errorf("%d distinct steps executed, want 27", len(counts))
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("%s executed %d times", id, n)
		}
	}
	t.Logf("27 steps executed once each, spread over %d of %d processes", len(pids), procs)
	// Every process reports every step as ran, cached or completed elsewhere.
	for i := range procs {
		if !strings.Contains(outputs[i].String(), "cairn: 27 step(s)") {
			t.Errorf("process %d summary missing:\n%s", i, outputs[i].String())
		}
	}
}

// A runner killed with SIGKILL mid-step is taken over by another runner once
// its lease goes stale, and the pipeline completes.
func TestKilledRunnerIsTakenOver(t *testing.T) {
	dir := t.TempDir()
	prefix, logPath := filepath.Join(dir, "prefix"), filepath.Join(dir, "log")
	marker := filepath.Join(dir, "victim-started")
	lease := []string{"--lease-interval", "100ms", "--lease-stale-after", "600ms", "--poll-interval", "20ms"}

	first := pipelineCmd(t, prefix, logPath, []string{"CAIRN_TEST_BLOCK=" + marker}, lease...)
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	victimWorker := awaitMarker(t, marker, first, &firstErr)
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	second := pipelineCmd(t, prefix, logPath, nil, append(lease, "--log-format", "json")...)
	var secondErr bytes.Buffer
	second.Stderr = &secondErr
	if err := second.Run(); err != nil {
		t.Fatalf("second runner: %v\n%s", err, secondErr.String())
	}
	var tookOver map[string]any
	for line := range strings.SplitSeq(secondErr.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "step ran after taking over" && strings.HasPrefix(fmt.Sprint(m["step"]), "victim_") {
			tookOver = m
		}
	}
	if tookOver == nil {
		t.Fatalf("no takeover of victim logged:\n%s", secondErr.String())
	}
	if tookOver["previous_holder"] != string(victimWorker) {
		t.Errorf("previous holder %v, want the killed worker %s", tookOver["previous_holder"], victimWorker)
	}
	counts := map[string]int{}
	for _, e := range readLog(t, logPath) {
		counts[e.id]++
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("%s executed %d times", id, n)
		}
	}
	if len(counts) != 27 {
		t.Errorf("%d steps completed, want 27", len(counts))
	}
}

// A runner frozen (SIGSTOP: a GC pause, a VM freeze) past its lease while
// its step runs is taken over; when it wakes, its step completes, but it
// can no longer write: the taker's artifact and SUCCESS survive, and the
// woken runner reports the step completed by another worker.
func TestFrozenRunnerCannotOverwriteTheTaker(t *testing.T) {
	dir := t.TempDir()
	prefix, logPath := filepath.Join(dir, "prefix"), filepath.Join(dir, "log")
	marker, release := filepath.Join(dir, "victim-started"), filepath.Join(dir, "release")
	lease := []string{"--lease-interval", "100ms", "--lease-stale-after", "600ms", "--poll-interval", "20ms"}

	frozen := pipelineCmd(t, prefix, logPath, []string{"CAIRN_TEST_BLOCK=" + marker, "CAIRN_TEST_RELEASE=" + release}, append(lease, "--log-format", "json")...)
	var frozenErr bytes.Buffer
	frozen.Stderr = &frozenErr
	if err := frozen.Start(); err != nil {
		t.Fatal(err)
	}
	awaitMarker(t, marker, frozen, &frozenErr)
	if err := frozen.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { frozen.Process.Signal(syscall.SIGCONT); frozen.Process.Kill() })

	taker := pipelineCmd(t, prefix, logPath, nil, append(lease, "--log-format", "json")...)
	var takerErr bytes.Buffer
	taker.Stderr = &takerErr
	if err := taker.Run(); err != nil {
		t.Fatalf("taker: %v\n%s", err, takerErr.String())
	}
	victims, _ := filepath.Glob(filepath.Join(prefix, "victim_*"))
	if len(victims) != 1 {
		t.Fatalf("victim output dirs: %v", victims)
	}
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(victims[0], name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	wantArtifact := fmt.Sprintf(`{"pid":%d}`, taker.Process.Pid)
	if got := read(".artifact"); got != wantArtifact {
		t.Fatalf("taker's artifact %s, want %s", got, wantArtifact)
	}

	// Wake the frozen runner and let its step finish.
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := frozen.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := frozen.Wait(); err != nil {
		t.Fatalf("woken runner: %v\n%s", err, frozenErr.String())
	}
	if got := read(".artifact"); got != wantArtifact {
		t.Errorf("artifact %s after the frozen runner woke, want the taker's %s", got, wantArtifact)
	}
	if got := read(".executor_status"); got != "SUCCESS" {
		t.Errorf("status %q after the frozen runner woke, want SUCCESS", got)
	}
	if !strings.Contains(frozenErr.String(), "lease lost") || !strings.Contains(frozenErr.String(), "completed by another worker") {
		t.Errorf("the woken runner did not report losing the step to the taker:\n%s", frozenErr.String())
	}
}

// runCLI runs cli.Main in process on the test pipeline.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	t.Setenv("CAIRN_TEST_LOG", filepath.Join(t.TempDir(), "log"))
	code = cli.Main(cairn.Steps(testPipeline()...), &cli.Options{Args: args, Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

func TestDryRunThenRunThenCached(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "p")
	code, out, errOut := runCLI(t, "--prefix", prefix, "--dry-run")
	if code != cli.ExitOK || !strings.Contains(out, "would run") || strings.Count(out, "\n") != 28 {
		t.Fatalf("dry run: code %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(prefix); !os.IsNotExist(err) {
		t.Errorf("dry run created %s", prefix)
	}
	code, _, errOut = runCLI(t, "--prefix", prefix)
	if code != cli.ExitOK || !strings.Contains(errOut, "27 ran") {
		t.Fatalf("run: code %d\n%s", code, errOut)
	}
	code, _, errOut = runCLI(t, "--prefix", prefix)
	if code != cli.ExitOK || !strings.Contains(errOut, "27 cached") {
		t.Fatalf("re-run: code %d\n%s", code, errOut)
	}
	code, out, _ = runCLI(t, "--prefix", prefix, "--dry-run")
	if code != cli.ExitOK || strings.Count(out, "cached since") != 27 { // PLAN "cached", REASON "cached since …"
		t.Errorf("dry run after run:\n%s", out)
	}
}

func TestRunOnlyAndExitCodes(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "p")
	code, _, errOut := runCLI(t, "--prefix", prefix, "--run-only", "^leaf/0[0-2]$")
	if code != cli.ExitOK || !strings.Contains(errOut, "4 ran") {
		t.Errorf("--run-only three leaves: code %d\n%s", code, errOut)
	}
	if code, _, _ := runCLI(t, "--prefix", prefix, "--run-only", "^nomatch$"); code != cli.ExitInvalid {
		t.Errorf("unmatched --run-only: code %d, want %d", code, cli.ExitInvalid)
	}
	if code, _, _ := runCLI(t, "--prefix", prefix, "--max-concurrent", "-1"); code != cli.ExitUsage {
		t.Errorf("--max-concurrent -1: code %d, want %d", code, cli.ExitUsage)
	}
	if code, _, _ := runCLI(t, "--prefix", prefix, "--run-only", "("); code != cli.ExitUsage {
		t.Errorf("bad regexp: code %d, want %d", code, cli.ExitUsage)
	}
	if code, _, _ := runCLI(t, "--no-such-flag"); code != cli.ExitUsage {
		t.Errorf("unknown flag: code %d", code)
	}
	if code, _, _ := runCLI(t, "frobnicate"); code != cli.ExitUsage {
		t.Errorf("unknown command: code %d", code)
	}
}

func TestFailedStepExitCode(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "p")
	boom := &cairn.Step{Name: "boom", Func: func(context.Context, *cairn.Output) (any, error) { return nil, fmt.Errorf("disk full") }}
	var out, errb bytes.Buffer
	code := cli.Main(cairn.Steps(boom), &cli.Options{Args: []string{"--prefix", prefix}, Stdout: &out, Stderr: &errb})
	if code != cli.ExitFailed || !strings.Contains(errb.String(), "disk full") {
		t.Errorf("code %d, stderr:\n%s", code, errb.String())
	}
	code = cli.Main(cairn.Steps(boom), &cli.Options{Args: []string{"--prefix", prefix, "--force-run-failed=false"}, Stdout: &out, Stderr: &errb})
	if code != cli.ExitFailed || !strings.Contains(errb.String(), "failed previously") {
		t.Errorf("--force-run-failed=false: code %d, stderr:\n%s", code, errb.String())
	}
	// status shows the failure and its cause.
	var sout bytes.Buffer
	code = cli.Tool(&cli.Options{Args: []string{"status", prefix}, Stdout: &sout, Stderr: &errb})
	if code != cli.ExitOK || !strings.Contains(sout.String(), "FAILED") || !strings.Contains(sout.String(), "disk full") {
		t.Errorf("status: code %d\n%s", code, sout.String())
	}
}

func TestStatusCommand(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "p")
	if code, _, errOut := runCLI(t, "--prefix", prefix); code != 0 {
		t.Fatal(errOut)
	}
	// A step directory written by Marin sits beside ours.
	marin := filepath.Join(prefix, "tokenize_abcd1234")
	if err := os.MkdirAll(marin, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(marin, ".executor_status"), []byte("RUNNING"), 0o644)
	os.WriteFile(filepath.Join(marin, ".executor_status.lock"), []byte(`{"worker_id": "marin-host-1", "timestamp": 1740000000.0}`), 0o644)

	var out, errb bytes.Buffer
	if code := cli.Tool(&cli.Options{Args: []string{"status", prefix, "--json"}, Stdout: &out, Stderr: &errb}); code != 0 {
		t.Fatalf("status --json: %d %s", code, errb.String())
	}
	var rows []map[string]any
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("status --json output: %v\n%s", err, out.String())
	}
	if len(rows) != 28 {
		t.Errorf("%d rows, want 28", len(rows))
	}
	byStep := map[string]map[string]any{}
	for _, r := range rows {
		byStep[fmt.Sprint(r["step"])] = r
	}
	m := byStep["tokenize_abcd1234"]
	if m["status"] != "RUNNING" || m["lease_holder"] != "marin-host-1" || m["lease_stale"] != true {
		t.Errorf("Marin step row = %v", m)
	}
	for step, r := range byStep {
		if strings.HasPrefix(step, "leaf/") && r["status"] != "SUCCESS" {
			t.Errorf("%s: %v", step, r)
		}
	}
	out.Reset()
	if code := cli.Tool(&cli.Options{Args: []string{"status", prefix}, Stdout: &out, Stderr: &errb}); code != 0 || !strings.Contains(out.String(), "no live lease") {
		t.Errorf("status table:\n%s", out.String())
	}
}

func TestPathCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"path", "raw", "--prefix", "/p"}, "/p/raw_547180fc\n"},
		{[]string{"path", "clean", "--attrs", `{"min_len": 20, "lang": "en"}`, "--dep", "raw_5f2b8e0c", "--prefix", "gs://b"}, "gs://b/clean_0d79ba85\n"},
		{[]string{"path", "train", "--attrs", `{"lr": 0.001, "layers": 2, "note": "naïve"}`, "--dep", "raw_5f2b8e0c", "--dep", "clean_0a1b2c3d", "--prefix", "/p", "--json"},
			`{"hash_id":"967adb8d","name_with_hash":"train_967adb8d","output_path":"/p/train_967adb8d"}` + "\n"},
	} {
		var out, errb bytes.Buffer
		code := cli.Tool(&cli.Options{Args: tc.args, Stdout: &out, Stderr: &errb})
		if code != 0 || out.String() != tc.want {
			t.Errorf("cairn %q = %d %q (%s), want %q", tc.args, code, out.String(), errb.String(), tc.want)
		}
	}
	for _, bad := range [][]string{
		{"path"},
		{"path", "x", "--attrs", "[1]"},
		{"path", "x", "--attrs", "{bad"},
		{"path", "x", "--dep", "nohash"},
	} {
		var out, errb bytes.Buffer
		if code := cli.Tool(&cli.Options{Args: bad, Stdout: &out, Stderr: &errb}); code != cli.ExitUsage {
			t.Errorf("cairn %q = %d, want usage error", bad, code)
		}
	}
	var out, errb bytes.Buffer
	if code := cli.Tool(&cli.Options{Args: []string{"path", "../x"}, Stdout: &out, Stderr: &errb}); code != cli.ExitInvalid || !strings.Contains(errb.String(), "invalid step name") {
		t.Errorf("invalid name: %d %s", code, errb.String())
	}
}

// awaitMarker waits until path exists and is not empty, for the process cmd
// to signal that it reached a point, and returns its content; it kills cmd
// and fails the test after 30 s.
func awaitMarker(t *testing.T, path string, cmd *exec.Cmd, stderr *bytes.Buffer) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if data, err := os.ReadFile(path); err == nil && len(data) > 0 {
			return data
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("%s never appeared:\n%s", path, stderr.String())
		}
		time.Sleep(5 * time.Millisecond) // another process: nothing to select on
	}
}

// Ctrl-C (SIGINT) stops a run with exit code 130, releases the running
// step's lease and restores its status at once, so the next run starts the
// step without waiting for the lease to go stale (default: 90 s).
func TestInterruptReleasesLeases(t *testing.T) {
	dir := t.TempDir()
	prefix, logPath := filepath.Join(dir, "prefix"), filepath.Join(dir, "log")
	marker := filepath.Join(dir, "victim-started")
	first := pipelineCmd(t, prefix, logPath, []string{"CAIRN_TEST_BLOCK=" + marker})
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	awaitMarker(t, marker, first, &firstErr)
	if err := first.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := first.Wait()
	if code := first.ProcessState.ExitCode(); code != cli.ExitInterrupted {
		t.Fatalf("interrupted run exited %d (%v), want %d:\n%s", code, err, cli.ExitInterrupted, firstErr.String())
	}
	victims, _ := filepath.Glob(filepath.Join(prefix, "victim_*"))
	if len(victims) != 1 {
		t.Fatalf("victim output dirs: %v", victims)
	}
	for _, f := range []string{".executor_status.lock", ".executor_status"} {
		if _, err := os.Stat(filepath.Join(victims[0], f)); !os.IsNotExist(err) {
			t.Errorf("%s left behind after the interrupt (%v)", f, err)
		}
	}
	second := pipelineCmd(t, prefix, logPath, nil, "--log-format", "json")
	var secondErr bytes.Buffer
	second.Stderr = &secondErr
	if err := second.Run(); err != nil {
		t.Fatalf("second run: %v\n%s", err, secondErr.String())
	}
	if strings.Contains(secondErr.String(), "waiting for another worker") || !strings.Contains(secondErr.String(), ": 1 ran, 26 cached") {
		t.Errorf("second run did not start the victim at once:\n%s", secondErr.String())
	}
}
