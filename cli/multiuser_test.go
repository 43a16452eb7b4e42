package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cli"
)

// This file tests issue 13: one prefix shared by two Unix users of one
// group, as a team shares a prefix on a cluster file system (a setgid
// group directory, umask 002). The test binary doubles as the pipeline
// program (CAIRN_TEST_TEAM_PIPELINE, see TestMain), run as each user with
// setpriv.

// Users and group the test creates (when missing) and removes (when it
// created them).
const (
	teamGroup = "cairn-test-team"
	teamUserA = "cairn-test-a"
	teamUserB = "cairn-test-b"
)

// teamPipeline returns the pipeline for CAIRN_TEST_TEAM_PIPELINE=n: "first"
// (which blocks, writing its worker ID to the file CAIRN_TEST_BLOCK, while
// that is set), then for n >= 2 "second" on first, then for n >= 3 "third",
// which reads first's data file and second's artifact. The steps' names
// share the directory "team/", so a later step's directory is created in a
// directory another user created.
func teamPipeline(n int) []*cairn.Step {
	first := &cairn.Step{Name: "team/first", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		if marker := os.Getenv("CAIRN_TEST_BLOCK"); marker != "" {
			if err := os.WriteFile(marker, []byte(out.WorkerID), 0o666); err != nil {
				return nil, err
			}
			<-ctx.Done() // until killed
			return nil, ctx.Err()
		}
		if _, err := out.Bucket.Write(ctx, "data.txt", []byte("first, by uid "+strconv.Itoa(os.Getuid()))); err != nil {
			return nil, err
		}
		return "first-artifact", nil
	}}
	second := &cairn.Step{Name: "team/second", Deps: []*cairn.Step{first}, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		return "second-artifact", nil
	}}
	third := &cairn.Step{Name: "team/third", Deps: []*cairn.Step{first, second}, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		v, err := cairn.Load[string](ctx, out, second)
		if err != nil {
			return nil, err
		}
		b, err := out.OpenDep(ctx, first)
		if err != nil {
			return nil, err
		}
		data, _, err := b.Read(ctx, "data.txt")
		if err != nil {
			return nil, err
		}
		return v + " + " + string(data), nil
	}}
	return [][]*cairn.Step{nil, {first}, {second}, {third}}[n]
}

// runTeamPipeline is TestMain's entry for CAIRN_TEST_TEAM_PIPELINE.
func runTeamPipeline(n string) int {
	i, err := strconv.Atoi(n)
	if err != nil || i < 1 || i > 3 {
		fmt.Fprintf(os.Stderr, "CAIRN_TEST_TEAM_PIPELINE=%q: want 1, 2 or 3\n", n)
		return 2
	}
	return cli.Main(cairn.Steps(teamPipeline(i)...), nil)
}

// ensureGroupAndUsers creates the test's group and users if missing and
// removes, when the test ends, those it created.
func ensureGroupAndUsers(t *testing.T) (gid int, uids map[string]int) {
	t.Helper()
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	if _, err := user.LookupGroup(teamGroup); err != nil {
		run("groupadd", teamGroup)
		t.Cleanup(func() { exec.Command("groupdel", teamGroup).Run() })
	}
	uids = map[string]int{}
	for _, name := range []string{teamUserA, teamUserB} {
		if _, err := user.Lookup(name); err != nil {
			run("useradd", "--no-create-home", "--no-user-group", "--gid", teamGroup, "--shell", "/bin/false", name)
			// Registered after the group's cleanup, so it runs before it.
			t.Cleanup(func() { exec.Command("userdel", name).Run() })
		}
		u, err := user.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		uids[name], _ = strconv.Atoi(u.Uid)
	}
	g, err := user.LookupGroup(teamGroup)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ = strconv.Atoi(g.Gid)
	return gid, uids
}

// mkdirMode creates dir with exactly mode (chmod, since the umask applies
// to mkdir).
func mkdirMode(t *testing.T, dir string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// TestTwoUsersShareAPrefix runs the takeover of a dead runner's step by
// another user of the runner's group (issue 13):
//
//  1. user A, with umask 022 (the mistake), runs "first" and is killed
//     while it holds the lease;
//  2. user B cannot take over in A's directory, which is not group
//     writable: the run exits with cli.ExitStorage and the error names the
//     directory, its owner and mode, and what to set;
//  3. after `chmod -R g+w` (what the error says), B takes over the stale
//     lease, finishes "first", and runs "second" in a new directory under
//     the "team/" directory A created;
//  4. A, now with umask 002, re-runs: "first" and "second" are cached (A
//     reads B's control files), and "third" reads B's data and artifact.
//
// It needs root, to create the users and run processes as them.
func TestTwoUsersShareAPrefix(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create two users and a group (useradd, groupadd) and run runners as them (setpriv); CI runs it as root")
	}
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not found: %v", tool, err)
		}
	}
	gid, uids := ensureGroupAndUsers(t)

	// Every directory the users need is made here with explicit modes: the
	// test's own temporary directories are 0700 and root's.
	top, err := os.MkdirTemp("", "cairn-team-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	mkdirMode(t, top, 0o755)
	bin := filepath.Join(top, "pipeline")
	copyExecutable(t, os.Args[0], bin)
	prefix := filepath.Join(top, "shared")
	mkdirMode(t, prefix, 0o775|fs.ModeSetgid)
	if err := os.Chown(prefix, 0, gid); err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(top, "scratch") // markers
	mkdirMode(t, scratch, 0o777)
	marker := filepath.Join(scratch, "first-started")

	lease := []string{"--lease-interval", "200ms", "--lease-stale-after", "1s", "--poll-interval", "50ms", "--log-format", "json"}
	asOn := func(prefix, name, umask string, pipeline int, env ...string) *exec.Cmd {
		// sh sets the umask and execs setpriv, which execs the program, so
		// the command's process is the runner itself.
		args := append([]string{"-c", `umask "$0"; exec "$@"`, umask,
			"setpriv", "--reuid=" + strconv.Itoa(uids[name]), "--regid=" + strconv.Itoa(gid), "--init-groups", "--",
			bin, "--prefix", prefix}, lease...)
		cmd := exec.Command("/bin/sh", args...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "CAIRN_TEST_TEAM_PIPELINE=" + strconv.Itoa(pipeline)}, env...)
		cmd.Dir = "/"
		return cmd
	}
	as := func(name, umask string, pipeline int, env ...string) *exec.Cmd {
		return asOn(prefix, name, umask, pipeline, env...)
	}

	// 0. The team's way (a setgid group directory, everyone with umask
	// 002): A is killed while "first" holds its lease, and B takes the
	// step over and finishes the pipeline with no chmod by anyone.
	teamPrefix := filepath.Join(top, "team-umask-002")
	mkdirMode(t, teamPrefix, 0o775|fs.ModeSetgid)
	if err := os.Chown(teamPrefix, 0, gid); err != nil {
		t.Fatal(err)
	}
	teamMarker := filepath.Join(scratch, "team-first-started")
	a0 := asOn(teamPrefix, teamUserA, "002", 1, "CAIRN_TEST_BLOCK="+teamMarker)
	var a0Err bytes.Buffer
	a0.Stderr = &a0Err
	if err := a0.Start(); err != nil {
		t.Fatal(err)
	}
	worker0 := awaitMarker(t, teamMarker, a0, &a0Err)
	if err := a0.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a0.Wait()
	b0 := asOn(teamPrefix, teamUserB, "002", 3)
	var b0Err bytes.Buffer
	b0.Stderr = &b0Err
	if err := b0.Run(); err != nil {
		t.Fatalf("B taking over from A, both with umask 002: %v\n%s", err, b0Err.String())
	}
	if took := logRecords(b0Err.String(), "step ran after taking over"); len(took) != 1 || took[0]["previous_holder"] != string(worker0) {
		t.Errorf("B's takeovers = %v, want first taken over from A's worker %s\n%s", took, worker0, b0Err.String())
	}

	// 1. A (umask 022) is killed while "first" holds its lease.
	a := as(teamUserA, "022", 1, "CAIRN_TEST_BLOCK="+marker)
	var aErr bytes.Buffer
	a.Stderr = &aErr
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	workerA := awaitMarker(t, marker, a, &aErr)
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()

	// 2. B cannot write in A's directories.
	b := as(teamUserB, "002", 2)
	var bErr bytes.Buffer
	b.Stderr = &bErr
	err = b.Run()
	if code := exitCodeOf(err); code != cli.ExitStorage {
		t.Fatalf("B in A's non-group-writable directory: exit %d (%v), want %d (storage)\n%s", code, err, cli.ExitStorage, bErr.String())
	}
	for _, want := range []string{filepath.Join(prefix, "team", "first_"), teamUserA, "chmod -R g+w", "umask 002"} {
		if !strings.Contains(bErr.String(), want) {
			t.Errorf("B's error does not mention %q:\n%s", want, bErr.String())
		}
	}

	t.Logf("B's error in A's directory:\n%s", bErr.String())

	// 3. Fixed as the error says, B takes over and finishes.
	if out, err := exec.Command("chmod", "-R", "g+w", prefix).CombinedOutput(); err != nil {
		t.Fatalf("chmod: %v\n%s", err, out)
	}
	b = as(teamUserB, "002", 2)
	bErr.Reset()
	b.Stderr = &bErr
	if err := b.Run(); err != nil {
		t.Fatalf("B after chmod -R g+w: %v\n%s", err, bErr.String())
	}
	took := logRecords(bErr.String(), "step ran after taking over")
	if len(took) != 1 || !strings.HasPrefix(fmt.Sprint(took[0]["step"]), "team/first_") || took[0]["previous_holder"] != string(workerA) {
		t.Errorf("B's takeovers = %v, want first taken over from A's worker %s\n%s", took, workerA, bErr.String())
	}

	// 4. A (umask 002) finds both cached and reads B's outputs.
	a = as(teamUserA, "002", 3)
	aErr.Reset()
	a.Stderr = &aErr
	if err := a.Run(); err != nil {
		t.Fatalf("A's re-run: %v\n%s", err, aErr.String())
	}
	finished := map[string]string{} // step name: the message of its result
	for _, r := range logRecords(aErr.String(), "") {
		if id, ok := r["step"].(string); ok && strings.HasPrefix(fmt.Sprint(r["msg"]), "step ") {
			finished[strings.SplitN(id, "_", 2)[0]] = fmt.Sprint(r["msg"])
		}
	}
	if finished["team/first"] != "step cached" || finished["team/second"] != "step cached" || finished["team/third"] != "step ran" {
		t.Errorf("A's re-run: %q; want first and second cached, third ran\n%s", finished, aErr.String())
	}
	third := findDir(t, filepath.Join(prefix, "team"), "third_")
	data, err := os.ReadFile(filepath.Join(third, ".artifact"))
	if want := fmt.Sprintf(`"second-artifact + first, by uid %d"`, uids[teamUserB]); err != nil || string(data) != want {
		t.Errorf("third's artifact = %s, %v; want %s", data, err, want)
	}

	// Everything B created is the group's and group-writable.
	err = filepath.WalkDir(prefix, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if int(st.Uid) == uids[teamUserB] && (int(st.Gid) != gid || fi.Mode().Perm()&0o020 == 0) {
			t.Errorf("%s: group %d, mode %v; want group %d and group-writable", p, st.Gid, fi.Mode(), gid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// copyExecutable copies the program at src to dst with mode 0755.
func copyExecutable(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		t.Fatal(err)
	}
}

// exitCodeOf returns the exit code of a command's Run error.
func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// logRecords returns the JSON log records in stderr whose message is msg
// (every record if msg is "").
func logRecords(stderr, msg string) []map[string]any {
	var recs []map[string]any
	for line := range strings.SplitSeq(stderr, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && (msg == "" || m["msg"] == msg) {
			recs = append(recs, m)
		}
	}
	return recs
}

// findDir returns the entry of dir whose name starts with prefix.
func findDir(t *testing.T, dir, prefix string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			return filepath.Join(dir, e.Name())
		}
	}
	t.Fatalf("no %s* in %s", prefix, dir)
	return ""
}
