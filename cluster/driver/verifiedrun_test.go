package driver_test

import (
	"crypto/sha256"
	"encoding/hex"
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

// VerifiedRun runs a private copy of the program whose digest it checked,
// with openssl or, without it, sha256sum, tells the program so, and
// refuses a program whose digest differs.
func TestVerifiedRun(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	out := filepath.Join(dir, "out")
	script := "#!/bin/sh\nprintf '%s\\n%s\\n%s\\n' \"$0\" \"$CAIRN_VERIFIED_PROGRAM\" \"$1\" > '" + out + "'\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(script))
	digest := hex.EncodeToString(sum[:])

	// A PATH with what the script needs but openssl.
	noSSL := filepath.Join(dir, "bin")
	if err := os.Mkdir(noSSL, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"cp", "mktemp", "sha256sum", "chmod", "rm", "sh"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not found", tool)
		}
		if err := os.Symlink(p, filepath.Join(noSSL, tool)); err != nil {
			t.Fatal(err)
		}
	}
	paths := map[string]string{"sha256sum": noSSL}
	if _, err := exec.LookPath("openssl"); err == nil {
		paths["openssl"] = os.Getenv("PATH")
	}
	run := func(path, want string) (int, string) {
		cmd := exec.Command("/bin/sh", "-c", driver.VerifiedRun, "cairn-step", want, prog, "arg 1")
		cmd.Env = []string{"PATH=" + path, "TMPDIR=" + dir} // no HOME: no cache
		b, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(b)
	}
	for hasher, path := range paths {
		os.Remove(out)
		if code, output := run(path, digest); code != 0 {
			t.Fatalf("%s: exit %d: %s", hasher, code, output)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != 3 || lines[0] == prog || !strings.HasPrefix(lines[0], dir+"/cairn-program.") ||
			lines[1] != "sha256:"+digest+" "+lines[0] || lines[2] != "arg 1" {
			t.Errorf("%s: the program saw $0, %s, $1 = %q; want its private copy, that copy's digest and path, and its argument", hasher, driver.VerifiedProgramEnv, lines)
		}
		if _, err := os.Stat(lines[0]); !os.IsNotExist(err) {
			t.Errorf("%s: the private copy %s is left behind (%v)", hasher, lines[0], err)
		}

		os.Remove(out)
		other := strings.Repeat("0", 64)
		if code, output := run(path, other); code != 126 || !strings.Contains(output, "refusing to run it") {
			t.Errorf("%s: another digest: exit %d, %q; want 126 and the refusal", hasher, code, output)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("%s: a program whose digest differs ran", hasher)
		}
	}
	if len(paths) < 2 {
		t.Log("openssl not installed: only the sha256sum path was tested")
	}
}

// VerifiedRun keeps checked copies in a private cache: a job of the same
// digest runs the cached copy without reading the staged file; a cache
// that others may write is not used; the cache keeps eight copies.
func TestVerifiedRunCache(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "home", ".cache", "cairn", "programs")
	prog := filepath.Join(dir, "prog")
	out := filepath.Join(dir, "out")
	canary := filepath.Join(dir, "canary")
	good := "#!/bin/sh\nprintf '%s' \"$0\" > '" + out + "'\n"
	sum := sha256.Sum256([]byte(good))
	digest := hex.EncodeToString(sum[:])
	write := func(content string) {
		t.Helper()
		os.Remove(prog)
		if err := os.WriteFile(prog, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// run runs the staged program with env and returns the exit code and
	// the path the program ran from ("" if it did not run).
	run := func(env ...string) (int, string) {
		t.Helper()
		os.Remove(out)
		cmd := exec.Command("/bin/sh", "-c", driver.VerifiedRun, "cairn-step", digest, prog)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + dir, "HOME=" + filepath.Join(dir, "home")}, env...)
		b, _ := cmd.CombinedOutput()
		ran, _ := os.ReadFile(out)
		if cmd.ProcessState.ExitCode() != 0 {
			t.Logf("exit %d: %s", cmd.ProcessState.ExitCode(), b)
		}
		return cmd.ProcessState.ExitCode(), string(ran)
	}
	replaced := "#!/bin/sh\ntouch '" + canary + "'\n"

	write(good)
	if code, ran := run(); code != 0 || !strings.HasPrefix(ran, cache+"/.run.") {
		t.Fatalf("first job: exit %d, ran from %q; want a private directory of the cache %s", code, ran, cache)
	}
	entry := filepath.Join(cache, digest)
	if fi, err := os.Lstat(entry); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache entry %s: %v, %v; want a regular file, mode 0700", entry, fi, err)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache %s: %v, %v; want mode 0700", cache, fi, err)
	}
	// The staged file is replaced: the cached copy runs, not the file.
	write(replaced)
	if code, ran := run(); code != 0 || !strings.HasPrefix(ran, cache+"/.run.") {
		t.Errorf("job with the program cached: exit %d, ran from %q; want the cached copy", code, ran)
	}
	if _, err := os.Stat(canary); !os.IsNotExist(err) {
		t.Fatal("the replaced staged program ran")
	}
	if left, _ := filepath.Glob(filepath.Join(cache, ".run.*")); len(left) != 0 {
		t.Errorf("jobs left %q behind", left)
	}
	// Without the cache, the replacement is refused.
	for _, env := range [][]string{{driver.ProgramCacheEnv + "=off"}, {driver.ProgramCacheEnv + "=relative/dir"}} {
		if code, ran := run(env...); code != 126 || ran != "" {
			t.Errorf("%v: exit %d, ran %q; want 126, nothing run", env, code, ran)
		}
	}
	// A cache others may write is not trusted.
	if err := os.Chmod(cache, 0o777); err != nil {
		t.Fatal(err)
	}
	if code, ran := run(); code != 126 || ran != "" {
		t.Errorf("world-writable cache: exit %d, ran %q; want 126, nothing run", code, ran)
	}
	write(good)
	if code, ran := run(); code != 0 || !strings.HasPrefix(ran, dir+"/cairn-program.") {
		t.Errorf("world-writable cache: exit %d, ran from %q; want a private directory under TMPDIR", code, ran)
	}
	if _, err := os.Stat(canary); !os.IsNotExist(err) {
		t.Fatal("the replaced staged program ran")
	}

	// Eviction: eight copies, by last use; what killed jobs left a week
	// ago; nothing else.
	other := filepath.Join(dir, "cache2")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-30 * 24 * time.Hour)
	var olds []string
	for i := range 9 {
		name := fmt.Sprintf("%064x", i)
		p := filepath.Join(other, name)
		if err := os.WriteFile(p, nil, 0o700); err != nil {
			t.Fatal(err)
		}
		at := old.Add(time.Duration(i) * time.Hour)
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
		olds = append(olds, name)
	}
	for _, name := range []string{".run.killed", "notes"} {
		if err := os.Mkdir(filepath.Join(other, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(other, name), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if code, _ := run(driver.ProgramCacheEnv + "=" + other); code != 0 {
		t.Fatalf("exit %d", code)
	}
	ents, err := os.ReadDir(other)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := append([]string{digest}, olds[2:]...) // the newest seven old ones
	want = append(want, "notes")
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("cache after eviction = %q\nwant %q", names, want)
	}
}

// Jobs starting together on an empty cache all run the program, and leave
// one cached copy and nothing else.
func TestVerifiedRunCacheConcurrentJobs(t *testing.T) {
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	prog := filepath.Join(dir, "prog")
	good := "#!/bin/sh\ntouch \"$1\"\n"
	if err := os.WriteFile(prog, []byte(good), 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(good))
	digest := hex.EncodeToString(sum[:])
	const jobs = 8
	errs := make(chan error, jobs)
	for i := range jobs {
		go func() {
			cmd := exec.Command("/bin/sh", "-c", driver.VerifiedRun, "cairn-step", digest, prog, filepath.Join(dir, fmt.Sprint("ran-", i)))
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + dir, driver.ProgramCacheEnv + "=" + cache}
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("job %d: %v: %s", i, err, out)
				return
			}
			errs <- nil
		}()
	}
	for range jobs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for i := range jobs {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprint("ran-", i))); err != nil {
			t.Errorf("job %d did not run the program: %v", i, err)
		}
	}
	ents, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != digest {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("cache holds %q, want only %s", names, digest)
	}
}
