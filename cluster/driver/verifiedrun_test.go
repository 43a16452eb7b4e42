package driver_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
		cmd.Env = []string{"PATH=" + path, "TMPDIR=" + dir}
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
