package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The live view is tested for real: the pipeline program (this test
// binary, see TestMain) runs in a tmux pane, a terminal, and the tests
// read the screen with capture-pane.

// paneTimeout bounds every wait for the screen to show something; the
// waits poll, so a slow machine only makes them slower.
const paneTimeout = 60 * time.Second

// tmux is an isolated tmux server (its own socket) for one test.
type tmux struct {
	t    *testing.T
	sock string
}

func newTmux(t *testing.T) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed")
	}
	x := &tmux{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { exec.Command("tmux", "-S", x.sock, "kill-server").Run() })
	return x
}

func (x *tmux) run(args ...string) string {
	x.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", x.sock}, args...)...).CombinedOutput()
	if err != nil {
		x.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// start runs the live test pipeline with env and args in a new 150×24
// window named name; when it ends the pane shows "EXIT=CODE".
func (x *tmux) start(name string, env []string, args ...string) {
	x.t.Helper()
	quoted := make([]string, 0, len(args)+len(env)+3)
	quoted = append(quoted, "env", "CAIRN_TEST_LIVE_PIPELINE=1")
	for _, a := range append(env, append([]string{os.Args[0]}, args...)...) {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	cmd := strings.Join(quoted, " ") + "; echo EXIT=$?; sleep 3600"
	x.run("new-window", "-d", "-n", name, cmd)
}

// startServer starts the server with a first, idle session, sized for the
// windows the tests open.
func (x *tmux) startServer() {
	x.t.Helper()
	// -f /dev/null: no user configuration. Only the command that starts
	// the server takes it (Debian's tmux 3.x drops the connection when a
	// later client passes -f again).
	out, err := exec.Command("tmux", "-S", x.sock, "-f", "/dev/null", "new-session", "-d", "-s", "test", "-x", "150", "-y", "24", "sleep 3600").CombinedOutput()
	if err != nil {
		x.t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
}

func (x *tmux) capture(name string) string {
	x.t.Helper()
	return x.run("capture-pane", "-p", "-t", "test:"+name)
}

// await polls the window's screen until it matches re, and returns the
// snapshot and the match's submatches.
func (x *tmux) await(name string, re *regexp.Regexp) (string, []string) {
	x.t.Helper()
	deadline := time.Now().Add(paneTimeout)
	for {
		snap := x.capture(name)
		if m := re.FindStringSubmatch(snap); m != nil {
			return snap, m
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("window %s never showed %q; the screen:\n%s", name, re, snap)
		}
		time.Sleep(100 * time.Millisecond) // another process's screen: nothing to select on
	}
}

type liveEnv struct {
	prefix, release string
}

func newLiveEnv(t *testing.T) liveEnv {
	dir := t.TempDir()
	return liveEnv{prefix: filepath.Join(dir, "prefix"), release: filepath.Join(dir, "release")}
}

func (e liveEnv) env(extra ...string) []string {
	return append([]string{"CAIRN_TEST_LIVE_RELEASE=" + e.release}, extra...)
}

func (e liveEnv) releaseSlow(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(e.release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

var (
	countsLine  = regexp.MustCompile(`cairn \d+:\d\d  (\d+) cached · (\d+) running · (\d+) waiting on another runner · (\d+) queued remotely · (\d+) done · (\d+) failed · (\d+) skipped`)
	runningSlow = regexp.MustCompile(`running  slow_[0-9a-f]{8}  (\d+):(\d\d)  \| working chunk=\d+`)
	slowStarted = regexp.MustCompile(`msg="step started" step=slow_[0-9a-f]{8} worker=(\S+)`)
	waitingSlow = regexp.MustCompile(`waiting  slow_[0-9a-f]{8}  takeover possible in \d+:\d\d, held by (\S+) \(host ([^)]+)\)`)
	exited      = regexp.MustCompile(`EXIT=(\d+)`)
)

// On a terminal a run shows the live view: counts by state, the running
// step with its elapsed time and last log line, and, in a second runner,
// the step it waits for with the holder, its host and the time until
// takeover. Log lines go above the view, and the view is gone when the run
// ends.
func TestLiveViewInTmux(t *testing.T) {
	x := newTmux(t)
	x.startServer()
	e := newLiveEnv(t)
	x.start("first", e.env(), "--prefix", e.prefix)
	snap, m := x.await("first", runningSlow)
	t.Logf("first runner, slow running:\n%s", snap)
	c := countsLine.FindStringSubmatch(snap)
	if c == nil {
		t.Fatalf("no counts line:\n%s", snap)
	}
	if want := []string{"0", "1", "0", "0", "3", "1", "0"}; fmt.Sprint(c[1:]) != fmt.Sprint(want) {
		t.Errorf("counts (cached running waiting queued done failed skipped) = %v, want %v", c[1:], want)
	}
	// The elapsed time counts up while the step runs.
	first := m[1] + ":" + m[2]
	snap, m = x.await("first", regexp.MustCompile(`running  slow_[0-9a-f]{8}  (\d+:\d\d)`))
	for m[1] == first {
		snap, m = x.await("first", regexp.MustCompile(`running  slow_[0-9a-f]{8}  (\d+:\d\d)`))
	}
	t.Logf("first runner, later:\n%s", snap)
	if strings.Count(snap, "cairn ") != 1 || strings.Count(snap, "running  slow_") != 1 {
		t.Errorf("the view is drawn more than once on the screen (torn or not redrawn in place):\n%s", snap)
	}
	worker := slowStarted.FindStringSubmatch(snap)
	if worker == nil {
		t.Fatalf("no step started line for slow above the view:\n%s", snap)
	}

	// A second runner waits for slow, and says for whom.
	x.start("second", e.env(), "--prefix", e.prefix, "--poll-interval", "200ms")
	snap, w := x.await("second", waitingSlow)
	t.Logf("second runner, waiting:\n%s", snap)
	host, _ := os.Hostname()
	if w[1] != worker[1] || w[2] != host {
		t.Errorf("waiting on %s (host %s), want %s (host %s)", w[1], w[2], worker[1], host)
	}
	if c := countsLine.FindStringSubmatch(snap); c == nil || c[1] != "3" || c[3] != "1" {
		t.Errorf("second runner's counts: %v, want 3 cached and 1 waiting", c)
	}

	e.releaseSlow(t)
	snap, code := x.await("first", exited)
	t.Logf("first runner, finished:\n%s", snap)
	if code[1] != "1" { // broken failed
		t.Errorf("first runner exited %s, want 1", code[1])
	}
	if countsLine.MatchString(snap) || strings.Contains(snap, "running  slow") {
		t.Errorf("the live view is left on the screen after the run:\n%s", snap)
	}
	if !strings.Contains(snap, `msg="step ran" step=slow_`) || !strings.Contains(snap, "4 ran, 1 failed") {
		t.Errorf("first runner's end:\n%s", snap)
	}
	snap, _ = x.await("second", exited)
	t.Logf("second runner, finished:\n%s", snap)
	if !strings.Contains(snap, "completed by another worker") {
		t.Errorf("second runner's end:\n%s", snap)
	}
}

// TERM=dumb, NO_COLOR and --log-format json turn the live view off, even
// on a terminal: the run logs plain lines only.
func TestNoLiveViewWhenAskedInTmux(t *testing.T) {
	x := newTmux(t)
	x.startServer()
	for i, tc := range []struct {
		name string
		env  []string
		args []string
		// started matches the "step started" line of slow.
		started *regexp.Regexp
	}{
		{"dumb", []string{"TERM=dumb"}, nil, slowStarted},
		{"nocolor", []string{"NO_COLOR=1"}, nil, slowStarted},
		{"json", nil, []string{"--log-format", "json"}, regexp.MustCompile(`"msg":"step started","step":"slow_[0-9a-f]{8}","worker":"\S+"`)},
	} {
		e := newLiveEnv(t)
		name := fmt.Sprintf("w%d", i)
		x.start(name, e.env(tc.env...), append([]string{"--prefix", e.prefix}, tc.args...)...)
		x.await(name, tc.started)
		// Several redraw periods later (the step logs every second).
		snap, _ := x.await(name, regexp.MustCompile(`chunk.{0,3}11`))
		t.Logf("%s:\n%s", tc.name, snap)
		if countsLine.MatchString(snap) || strings.Contains(snap, "running  slow") {
			t.Errorf("%s: live view drawn:\n%s", tc.name, snap)
		}
		e.releaseSlow(t)
		x.await(name, exited)
	}
}

// Off a terminal (stderr a pipe), a run logs plain lines, a "step started"
// line with the worker for every step that runs, and no escape sequences.
func TestPlainProgressOffTerminal(t *testing.T) {
	e := newLiveEnv(t)
	e.releaseSlow(t)
	cmd := exec.Command(os.Args[0], "--prefix", e.prefix)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_LIVE_PIPELINE=1", "CAIRN_TEST_LIVE_RELEASE="+e.release, "TERM=xterm-256color")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %d (%v), want 1:\n%s", code, err, out)
	}
	s := string(out)
	if strings.Contains(s, "\x1b[") || countsLine.MatchString(s) {
		t.Errorf("escape sequences or a live view off a terminal:\n%q", s)
	}
	for _, step := range []string{"prep/0", "prep/1", "prep/2", "broken", "slow"} {
		re := regexp.MustCompile(`msg="step started" step=` + regexp.QuoteMeta(step) + `_[0-9a-f]{8} worker=\S+-\d+-[0-9a-f]{6}\.\d+`)
		if !re.MatchString(s) {
			t.Errorf("no step started line with a worker for %s:\n%s", step, s)
		}
	}
}

// Ctrl-C names the step it stops; a step that ignores its context is
// abandoned after --stop-grace, its lease released and its status
// restored, and the program exits with 130.
func TestInterruptAbandonsAStepIgnoringItsContextInTmux(t *testing.T) {
	x := newTmux(t)
	x.startServer()
	e := newLiveEnv(t)
	x.start("run", e.env("CAIRN_TEST_LIVE_STUBBORN=1"), "--prefix", e.prefix, "--stop-grace", "1s")
	x.await("run", runningSlow)
	x.run("send-keys", "-t", "test:run", "C-c")
	snap, _ := x.await("run", regexp.MustCompile(`cairn: interrupt: stopping 1 running step\(s\): slow_[0-9a-f]{8} \(up to 1s; press Ctrl-C again to exit at once\)`))
	t.Logf("after Ctrl-C:\n%s", snap)
	snap, code := x.await("run", exited)
	t.Logf("at exit:\n%s", snap)
	if code[1] != "130" {
		t.Errorf("exit %s, want 130", code[1])
	}
	if !regexp.MustCompile(`step still running after the stop grace period; abandoning it" step=slow_[0-9a-f]{8} grace=1s`).MatchString(snap) {
		t.Errorf("no line naming the abandoned step:\n%s", snap)
	}
	assertReleased(t, e.prefix)
}

// A second Ctrl-C does not wait for the grace period.
func TestSecondInterruptExitsAtOnceInTmux(t *testing.T) {
	x := newTmux(t)
	x.startServer()
	e := newLiveEnv(t)
	x.start("run", e.env("CAIRN_TEST_LIVE_STUBBORN=1"), "--prefix", e.prefix, "--stop-grace", "1h")
	x.await("run", runningSlow)
	x.run("send-keys", "-t", "test:run", "C-c")
	x.await("run", regexp.MustCompile(`cairn: interrupt: stopping 1 running step`))
	x.run("send-keys", "-t", "test:run", "C-c")
	snap, code := x.await("run", exited)
	t.Logf("after a second Ctrl-C:\n%s", snap)
	if code[1] != "130" {
		t.Errorf("exit %s, want 130", code[1])
	}
	if !regexp.MustCompile(`cairn: interrupt again: exiting now; abandoning 1 running step\(s\): slow_[0-9a-f]{8}`).MatchString(snap) {
		t.Errorf("no line naming the abandoned step:\n%s", snap)
	}
	assertReleased(t, e.prefix)
}

// assertReleased checks that slow's lease and status are gone.
func assertReleased(t *testing.T, prefix string) {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(prefix, "slow_*"))
	if len(dirs) != 1 {
		t.Fatalf("slow's output dirs: %v", dirs)
	}
	for _, f := range []string{".executor_status.lock", ".executor_status"} {
		if _, err := os.Stat(filepath.Join(dirs[0], f)); !os.IsNotExist(err) {
			t.Errorf("%s left behind after the interrupt (%v)", f, err)
		}
	}
}

// A remote step's line shows its cluster job: id, scheduler state and
// cluster (the local cluster runs jobs as subprocesses).
func TestLiveViewShowsRemoteJobInTmux(t *testing.T) {
	x := newTmux(t)
	x.startServer()
	e := newRemoteEnv(t)
	x.run("new-window", "-d", "-n", "remote", fmt.Sprintf(
		"env CAIRN_TEST_REMOTE_PIPELINE=1 CAIRN_TEST_LOG='%s' CAIRN_TEST_STARTED='%s' CAIRN_TEST_RELEASE='%s' '%s' --prefix '%s' --poll-interval 100ms; echo EXIT=$?; sleep 3600",
		e.log, e.started, e.release, os.Args[0], e.prefix))
	snap, m := x.await("remote", regexp.MustCompile(`running  train_[0-9a-f]{8}  \d+:\d\d  job (\S+) RUNNING on local`))
	t.Logf("remote step running:\n%s", snap)
	if !strings.Contains(snap, "job_id="+m[1]) {
		t.Errorf("job %s is not the one logged as submitted:\n%s", m[1], snap)
	}
	if c := countsLine.FindStringSubmatch(snap); c == nil || c[2] != "1" || c[5] != "1" {
		t.Errorf("counts %v, want 1 running and 1 done", c)
	}
	if err := os.WriteFile(e.release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if snap, code := x.await("remote", exited); code[1] != "0" {
		t.Errorf("exit %s, want 0:\n%s", code[1], snap)
	}
}

// Off a terminal, a remote step's job logs its state changes with its id.
func TestPlainProgressLogsJobStates(t *testing.T) {
	e := newRemoteEnv(t)
	cmd := e.cmd(false)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`msg="submitted job" step=train_[0-9a-f]{8} job=\S+ job_id=(\S+) cluster=local`),
		regexp.MustCompile(`msg="job (queued|running)" step=train_[0-9a-f]{8} cluster=local job_id=\S+ state=(PENDING|RUNNING)`),
		regexp.MustCompile(`msg="job succeeded" step=train_[0-9a-f]{8} cluster=local job_id=\S+ state=SUCCEEDED`),
	} {
		if !re.Match(out) {
			t.Errorf("no line matching %s in:\n%s", re, out)
		}
	}
}
