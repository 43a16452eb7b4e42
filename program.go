package cairn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"example.com/cairn/store"
)

// ErrProgramMismatch is the cause of a remote step's failure when the
// program a cluster job ran is not the one that submitted it (the binary
// was rebuilt or replaced in between, or the pipeline it builds differs).
var ErrProgramMismatch = errors.New("worker program differs from the submitter's")

// Program identifies the binary that cluster jobs run to execute remote
// steps: Go closures cannot be sent to a cluster, so a job runs the same
// program in worker mode (see RunWorker). Its identity is recorded in each
// remote step's provenance and checked by the worker.
type Program struct {
	// Path is the executable a job runs.
	Path string
	// Digest is "sha256:" and the hex SHA-256 of the executable's content.
	Digest string
	// Build summarises the binary's build information: main package,
	// module version, VCS revision and Go version.
	Build string
}

// CurrentProgram returns the identity of the running binary.
func CurrentProgram() (Program, error) {
	exe, err := os.Executable()
	if err != nil {
		return Program{}, fmt.Errorf("program: %w", err)
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	digest, err := fileDigest(exe)
	if err != nil {
		return Program{}, fmt.Errorf("program: %w", err)
	}
	return Program{Path: exe, Digest: digest, Build: buildSummary()}, nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// buildSummary describes the binary from runtime/debug.ReadBuildInfo.
func buildSummary() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	parts := []string{bi.Path, bi.Main.Path + "@" + bi.Main.Version}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.modified", "vcs.time":
			parts = append(parts, s.Key+"="+s.Value)
		}
	}
	return strings.Join(append(parts, bi.GoVersion), " ")
}

// StageProgram copies the executable of p into b, under its digest, unless
// a copy is already there: staging is content-addressed and uploads each
// binary once. It returns the staged copy's identity, whose Path is a
// local path when b is on a local or shared file system. A program staged
// on an object store cannot be executed by a job directly; that is an
// error.
//
// A staging directory is typically shared, so what a job finds there is
// not trusted (issue 8, item 12): jobs that run a staged program (see
// RemoteOptions.StageProgram) run a private copy whose digest they verify
// on the node before it starts, so a replaced file makes the job fail
// instead of running someone else's code. StageProgram adds checks that
// catch a bad staging area early:
//   - it refuses a staging directory, or a staged file, that every user
//     may write (o+w, sticky or not); a directory writable by its group
//     (a team's) is accepted, as is a copy staged by another user of it;
//   - it verifies the digest of a copy that is already there, and refuses
//     one that differs, naming it, rather than trusting its name;
//   - the copies it writes are made read-only (0444): jobs never execute
//     the staged file itself, only their verified private copy.
func StageProgram(ctx context.Context, b *store.Bucket, p Program) (Program, error) {
	hexDigest, ok := strings.CutPrefix(p.Digest, "sha256:")
	if !ok || len(hexDigest) != 64 {
		return Program{}, fmt.Errorf("stage program: bad digest %q", p.Digest)
	}
	key := hexDigest
	dir, local := localPath(b.String())
	if !local {
		return Program{}, fmt.Errorf("stage program: %s is not on a file system a cluster job can execute from; stage under a shared directory", b)
	}
	if err := checkNotWorldWritable(dir, true); err != nil {
		return Program{}, err
	}
	path := filepath.Join(dir, filepath.FromSlash(key))
	if ok, err := b.Exists(ctx, key); err != nil {
		return Program{}, fmt.Errorf("stage program: %w", err)
	} else if !ok {
		data, err := os.ReadFile(p.Path)
		if err != nil {
			return Program{}, fmt.Errorf("stage program: %w", err)
		}
		if d := sha256.Sum256(data); hex.EncodeToString(d[:]) != hexDigest {
			return Program{}, fmt.Errorf("stage program: %s changed since its digest was taken", p.Path)
		}
		_, err = b.WriteIf(ctx, key, data, store.IfAbsent())
		switch {
		case err == nil:
			// Ours: read-only, as nothing executes or rewrites it.
			if err := os.Chmod(path, 0o444); err != nil {
				return Program{}, fmt.Errorf("stage program: %w", err)
			}
		case !errors.Is(err, store.ErrPrecondition): // else another runner staged it first
			return Program{}, fmt.Errorf("stage program: %w", err)
		}
	}
	if err := checkNotWorldWritable(dir, true); err != nil {
		return Program{}, err
	}
	if err := checkNotWorldWritable(path, false); err != nil {
		return Program{}, err
	}
	if d, err := fileDigest(path); err != nil {
		return Program{}, fmt.Errorf("stage program: %w", err)
	} else if d != p.Digest {
		return Program{}, fmt.Errorf("stage program: the staged copy %s has digest %s, not its name's: it was replaced or damaged; remove it", path, d)
	}
	p.Path = path
	return p, nil
}

// checkNotWorldWritable refuses a staging directory or file that every
// user may write. A missing directory is fine (it is about to be made).
func checkNotWorldWritable(path string, isDir bool) error {
	fi, err := os.Stat(path)
	if isDir && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stage program: %w", err)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		what := "staged program"
		if isDir {
			what = "staging directory"
		}
		return fmt.Errorf("stage program: the %s %s is writable by every user (mode %v); use one only you or your group can write", what, path, fi.Mode().Perm())
	}
	return nil
}

// localPath returns the local directory a location names: a plain path or
// a file:// URL.
func localPath(location string) (string, bool) {
	if !strings.Contains(location, "://") {
		return location, true
	}
	u, err := url.Parse(location)
	if err != nil || u.Scheme != "file" {
		return "", false
	}
	return u.Path, true
}
