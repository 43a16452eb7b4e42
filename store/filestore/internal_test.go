package filestore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"example.com/cairn/store"
	"example.com/cairn/store/driver"
	"example.com/cairn/store/storetest"
)

// replaceWhileLocked plays a writer in its critical section: it locks the
// file at p, renames a new file with content data over p, and unlocks.
// release, if non-nil, is closed while the lock is held.
func replaceWhileLocked(t *testing.T, p string, data []byte, release chan<- struct{}) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := flock(f); err != nil {
		t.Fatal(err)
	}
	if release != nil {
		close(release)
	}
	tmp := p + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// TestReplaceAfterOpenRetries has a conditional writer open the current
// file, then (while it has not locked it yet, or waits for the lock) another
// writer replaces the file. The first writer must notice that its locked
// inode is no longer the object, retry on the new file, and fail the version
// check, rather than rename over the newer content.
func TestReplaceAfterOpenRetries(t *testing.T) {
	for name, kind := range map[string]driver.ConditionKind{"IfVersion": driver.IfVersion, "Always": driver.Always} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			b, err := newBucket(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			v0, err := b.Write(ctx, "lease", []byte("v0"), driver.Condition{})
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(b.root, "lease")

			opened := make(chan struct{})
			proceed := make(chan struct{})
			var once sync.Once
			opens := 0
			b.afterOpen = func(string) {
				opens++
				once.Do(func() {
					close(opened)
					<-proceed
				})
			}
			done := make(chan error)
			go func() {
				_, err := b.Write(ctx, "lease", []byte("mine"), driver.Condition{Kind: kind, Version: v0})
				done <- err
			}()
			<-opened
			// The writer holds an open descriptor of the v0 inode. Lock that
			// inode first, let the writer go on to wait for the lock, then
			// replace the file and unlock.
			replaceWhileLocked(t, p, []byte("theirs"), proceed)
			err = <-done

			got, err2 := os.ReadFile(p)
			if err2 != nil {
				t.Fatal(err2)
			}
			if opens < 2 {
				t.Errorf("the writer opened the file %d times, want a retry after the replacement", opens)
			}
			switch kind {
			case driver.IfVersion:
				if b.ErrorCode(err) != driver.Precondition {
					t.Errorf("Write(IfVersion(v0)) after a replacement = %v, want a precondition failure", err)
				}
				if string(got) != "theirs" {
					t.Errorf("content = %q, want %q: the stale conditional write replaced newer content", got, "theirs")
				}
			case driver.Always:
				if err != nil {
					t.Errorf("unconditional Write = %v", err)
				}
				if string(got) != "mine" {
					t.Errorf("content = %q, want %q: the unconditional write is ordered after the replacement", got, "mine")
				}
			}
		})
	}
}

// TestDeleteWaitsForLock checks that an unconditional delete takes the lock:
// it must not remove the file while a conditional writer holds it.
func TestDeleteWaitsForLock(t *testing.T) {
	ctx := t.Context()
	b, err := newBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(ctx, "k", []byte("v0"), driver.Condition{}); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(b.root, "k")
	opened := make(chan struct{})
	proceed := make(chan struct{})
	b.afterOpen = func(string) {
		close(opened)
		<-proceed
		b.afterOpen = nil
	}
	done := make(chan error)
	go func() { done <- b.Delete(ctx, "k", driver.Condition{}) }()
	<-opened
	replaceWhileLocked(t, p, []byte("v1"), proceed)
	if err := <-done; err != nil {
		t.Fatalf("Delete = %v", err)
	}
	// The delete, ordered after the replacement, removed the new file, and
	// nothing else is left.
	if entries, _ := os.ReadDir(b.root); len(entries) != 0 {
		t.Errorf("directory holds %v after Delete, want nothing", entries)
	}
}

func TestListPartialPrefix(t *testing.T) {
	ctx := t.Context()
	b, err := newBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"run/step-1/status", "run/step-10/status", "run/step-2", "run/other", "runner"} {
		if _, err := b.Write(ctx, k, nil, driver.Condition{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"run/step-1", []string{"run/step-1/status", "run/step-10/status"}},
		{"run/step-", []string{"run/step-1/status", "run/step-10/status", "run/step-2"}},
		{"run", []string{"run/other", "run/step-1/status", "run/step-10/status", "run/step-2", "runner"}},
		{"run/", []string{"run/other", "run/step-1/status", "run/step-10/status", "run/step-2"}},
		{"run/x", nil},
		{"nodir/x", nil},
	} {
		var got []string
		for k, err := range b.List(ctx, tc.prefix) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, k)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("List(%q) mismatch (-want +got):\n%s", tc.prefix, diff)
		}
	}
}

func TestPathStaysInRoot(t *testing.T) {
	b, err := newBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../escape", "a/../../escape", "/abs", ""} {
		if _, err := b.Write(t.Context(), key, []byte("x"), driver.Condition{}); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("driver Write(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(b.root), "escape")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file was written outside the root")
	}
}

func TestErrorCode(t *testing.T) {
	b := &bucket{}
	errnoErr := func(errno syscall.Errno) error { return &fs.PathError{Op: "open", Path: "/x", Err: errno} }
	for _, tc := range []struct {
		err  error
		want driver.Code
	}{
		{errnoErr(syscall.ENOENT), driver.NotExist},
		{errnoErr(syscall.ENOTDIR), driver.NotExist},
		{errNotRegular("read", "/x", syscall.S_IFDIR), driver.NotRegular},
		{errNotRegular("read", "/x", syscall.S_IFIFO), driver.NotRegular},
		{pathErr("open", "/x", syscall.ELOOP), driver.NotRegular},
		{&fs.PathError{Op: "read", Path: "/x", Err: &tooLargeError{10}}, driver.TooLarge},
		{&PermissionError{Path: "/x", Err: pathErr("open", "/x", syscall.EACCES)}, driver.Permission},
		{errExists, driver.Precondition},
		{errAbsent, driver.Precondition},
		{versionMismatch("a", "b"), driver.Precondition},
		{errnoErr(syscall.EACCES), driver.Permission},
		{errnoErr(syscall.EPERM), driver.Permission},
		{errnoErr(syscall.EROFS), driver.Permission},
		{errnoErr(syscall.EAGAIN), driver.Transient},
		{errnoErr(syscall.EINTR), driver.Transient},
		{errnoErr(syscall.ESTALE), driver.Transient},
		{errnoErr(syscall.ETIMEDOUT), driver.Transient},
		{errnoErr(syscall.EIO), driver.Unknown},
		{errnoErr(syscall.ENOSPC), driver.Unknown},
		{&os.LinkError{Op: "link", Old: "a", New: "b", Err: syscall.EXDEV}, driver.Unknown},
	} {
		if got := b.ErrorCode(tc.err); got != tc.want {
			t.Errorf("ErrorCode(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestConformanceNamedTemporaries runs the suite with the O_TMPFILE fast
// path disabled, as on file systems without it (NFS), so that the fallback
// through named temporary files stays correct. Its racing processes use the
// fast path, so the two also race each other.
func TestConformanceNamedTemporaries(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewBucket: func(t *testing.T) *store.Bucket {
			b, err := newBucket(filepath.Join(t.TempDir(), "bucket"), nil)
			if err != nil {
				t.Fatal(err)
			}
			b.noTmpfile.Store(true)
			return store.NewBucket(b, b.root, nil)
		},
		Location:     func(t *testing.T, b *store.Bucket) string { return b.String() },
		Hierarchical: true,
	})
}

func TestLsMode(t *testing.T) {
	for _, tc := range []struct {
		m    fs.FileMode
		want string
	}{
		{fs.ModeDir | fs.ModeSetgid | 0o755, "drwxr-sr-x"},
		{fs.ModeDir | fs.ModeSetgid | 0o745, "drwxr-Sr-x"},
		{fs.ModeDir | fs.ModeSticky | 0o777, "drwxrwxrwt"},
		{0o644, "-rw-r--r--"},
	} {
		if got := lsMode(tc.m); got != tc.want {
			t.Errorf("lsMode(%v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}

// TestPermissionErrorNamesTheBlocker checks the explanation of a refused
// operation: the directory for a change of its entries, the object for an
// open of the object, with owner, group and mode as ls shows them.
func TestPermissionErrorNamesTheBlocker(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "obj")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op, blocker string
	}{
		{"create", dir},
		{"open", p},
	} {
		err := explainPermission(p, dir, &fs.PathError{Op: tc.op, Path: p, Err: syscall.EACCES})
		pe, ok := errors.AsType[*PermissionError](err)
		if !ok {
			t.Fatalf("explainPermission(%s) = %v, want a *PermissionError", tc.op, err)
		}
		if pe.Blocker != tc.blocker || pe.Owner == "" || pe.Group == "" {
			t.Errorf("explainPermission(%s) = %+v, want blocker %s with its owner and group", tc.op, pe, tc.blocker)
		}
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("explainPermission(%s) = %v, want it to satisfy fs.ErrPermission", tc.op, err)
		}
		for _, want := range []string{tc.blocker, "chmod -R g+w", "umask 002"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("explainPermission(%s) = %q, want it to mention %q", tc.op, err, want)
			}
		}
	}
	if err := explainPermission(p, dir, syscall.ENOENT); err != syscall.ENOENT {
		t.Errorf("explainPermission(ENOENT) = %v, want it unchanged", err)
	}
}
