package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cli"
)

// TestSymlinkInPrefixIsNotFollowed plants a symbolic link where the run
// creates the directory of a step's name prefix ("team/" of "team/x"),
// pointing outside the prefix (issue 8, item 7). The step must fail
// without writing anything through the link.
func TestSymlinkInPrefixIsNotFollowed(t *testing.T) {
	dir := t.TempDir()
	prefix, victim := filepath.Join(dir, "prefix"), filepath.Join(dir, "victim")
	for _, d := range []string{prefix, victim} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(victim, filepath.Join(prefix, "team")); err != nil {
		t.Fatal(err)
	}
	ran := false
	s := &cairn.Step{Name: "team/x", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		ran = true
		_, err := out.Bucket.Write(ctx, "data", []byte("x"))
		return nil, err
	}}
	var out, errb bytes.Buffer
	code := cli.Main(cairn.Steps(s), &cli.Options{Args: []string{"--prefix", prefix}, Stdout: &out, Stderr: &errb})
	if code != cli.ExitFailed || !strings.Contains(errb.String(), "symbolic link") {
		t.Errorf("code %d, want %d with an error about the symbolic link; stderr:\n%s", code, cli.ExitFailed, errb.String())
	}
	if ran {
		t.Errorf("the step ran in a directory reached through a symbolic link")
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("the run wrote %v outside the prefix", ents)
	}
}
