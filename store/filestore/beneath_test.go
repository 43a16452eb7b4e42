package filestore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"example.com/cairn/store"
	"example.com/cairn/store/storetest"
)

// resolutions are the two ways a bucket resolves paths beneath its root:
// openat2(2) where the kernel has it, and the openat(2) walk otherwise.
var resolutions = []struct {
	name string
	walk bool
}{{"Openat2", false}, {"Walk", true}}

// newTestBucket returns a bucket on a fresh directory, resolving with the
// walk if walk is set, and the directory.
func newTestBucket(t *testing.T, walk, noTmpfile bool) (*store.Bucket, string) {
	t.Helper()
	b, err := newBucket(filepath.Join(t.TempDir(), "bucket"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b.noOpenat2.Store(walk)
	b.noTmpfile.Store(noTmpfile)
	return store.NewBucket(b, b.root, nil), b.root
}

// TestConformanceWalk runs the suite with openat2 disabled, as on kernels
// before 5.6, so that the openat walk stays correct.
func TestConformanceWalk(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewBucket: func(t *testing.T) *store.Bucket {
			b, _ := newTestBucket(t, true, false)
			return b
		},
		Location:     func(t *testing.T, b *store.Bucket) string { return b.String() },
		Hierarchical: true,
	})
}

// TestSymlinksAreNotFollowed plants symbolic links inside the prefix, to a
// directory and a file outside it and to another object inside it, and
// checks that no operation goes through them (issue 8, item 7): writes
// fail, nothing outside changes, reads and deletes fail with ErrNotRegular,
// and List yields the links but nothing below them.
func TestSymlinksAreNotFollowed(t *testing.T) {
	for _, res := range resolutions {
		for _, noTmp := range []bool{false, true} {
			name := res.name
			if noTmp {
				name += "/NamedTemporaries"
			}
			t.Run(name, func(t *testing.T) {
				ctx := t.Context()
				b, dir := newTestBucket(t, res.walk, noTmp)
				victim := t.TempDir()
				victimFile := filepath.Join(victim, "file")
				if err := os.WriteFile(victimFile, []byte("precious"), 0o644); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Write(ctx, "step/data", []byte("ok")); err != nil {
					t.Fatal(err)
				}
				links := map[string]string{
					"sub":                        victim,                          // a directory outside
					"step/.executor_status":      victimFile,                      // a file outside
					"step/.executor_status.lock": filepath.Join(dir, "step/data"), // an object inside
					"step/.cairn_logs":           victim,
					"step/dangling":              filepath.Join(victim, "nothing-here"),
				}
				for k, target := range links {
					if err := os.Symlink(target, filepath.Join(dir, k)); err != nil {
						t.Fatal(err)
					}
				}
				for _, key := range []string{"sub/x", "sub/new/x", "step/.executor_status", "step/.executor_status.lock", "step/.cairn_logs/attempt-1.log", "step/dangling"} {
					for _, cond := range []store.Condition{{}, store.IfAbsent(), store.IfVersion("v")} {
						_, err := b.WriteIf(ctx, key, []byte("garbage"), cond)
						if err == nil {
							t.Errorf("WriteIf(%q, %v) through a symbolic link = nil, want an error", key, cond)
						}
					}
				}
				for _, key := range []string{"sub/file", "step/.executor_status", "step/.executor_status.lock", "step/dangling"} {
					if _, _, err := b.Read(ctx, key); !errors.Is(err, store.ErrNotRegular) {
						t.Errorf("Read(%q) through a symbolic link = %v, want ErrNotRegular", key, err)
					}
					if _, err := b.Stat(ctx, key); !errors.Is(err, store.ErrNotRegular) {
						t.Errorf("Stat(%q) through a symbolic link = %v, want ErrNotRegular", key, err)
					}
					if err := b.Delete(ctx, key); !errors.Is(err, store.ErrNotRegular) {
						t.Errorf("Delete(%q) of a symbolic link = %v, want ErrNotRegular", key, err)
					}
				}
				if data, err := os.ReadFile(victimFile); err != nil || string(data) != "precious" {
					t.Errorf("the file outside the prefix holds %q, %v; want it untouched", data, err)
				}
				if ents, _ := os.ReadDir(victim); len(ents) != 1 {
					t.Errorf("the directory outside the prefix holds %v, want only its file", ents)
				}
				if data, _, err := b.Read(ctx, "step/data"); err != nil || string(data) != "ok" {
					t.Errorf(`Read("step/data") = %q, %v; want "ok" (the object a link pointed to is untouched)`, data, err)
				}
				var keys []string
				for k, err := range b.List(ctx, "") {
					if err != nil {
						t.Fatal(err)
					}
					keys = append(keys, k)
				}
				want := "step/.cairn_logs,step/.executor_status,step/.executor_status.lock,step/dangling,step/data,sub"
				if strings.Join(keys, ",") != want {
					t.Errorf("List = %q, want %s: links are listed, not followed", keys, want)
				}
			})
		}
	}
}

// TestNonRegularFilesAreRefused puts a FIFO, a socket and a link to
// /dev/zero where control files belong (issue 8, item 6): reads must return
// at once with ErrNotRegular, neither hang on the FIFO nor read forever.
func TestNonRegularFilesAreRefused(t *testing.T) {
	for _, res := range resolutions {
		t.Run(res.name, func(t *testing.T) {
			ctx := t.Context()
			b, dir := newTestBucket(t, res.walk, false)
			if _, err := b.Write(ctx, "step/data", []byte("ok")); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(filepath.Join(dir, "step/.executor_status"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/dev/zero", filepath.Join(dir, "step/.executor_info")); err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(dir, "step/.cairn_remote.json")
			fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(fd)
			if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: sock}); err != nil {
				t.Fatal(err)
			}
			for _, key := range []string{"step/.executor_status", "step/.executor_info", "step/.cairn_remote.json"} {
				if _, _, err := b.Read(ctx, key); !errors.Is(err, store.ErrNotRegular) {
					t.Errorf("Read(%q) = %v, want ErrNotRegular", key, err)
				}
				if _, _, err := b.ReadLimit(ctx, key, 1<<20); !errors.Is(err, store.ErrNotRegular) {
					t.Errorf("ReadLimit(%q) = %v, want ErrNotRegular", key, err)
				}
				if _, err := b.WriteIf(ctx, key, []byte("x"), store.IfVersion("v")); !errors.Is(err, store.ErrNotRegular) {
					t.Errorf("WriteIf(%q, IfVersion) = %v, want ErrNotRegular", key, err)
				}
				if _, err := b.Write(ctx, key, []byte("x")); !errors.Is(err, store.ErrNotRegular) {
					t.Errorf("Write(%q) = %v, want ErrNotRegular", key, err)
				}
				if _, err := b.WriteIf(ctx, key, []byte("x"), store.IfAbsent()); !errors.Is(err, store.ErrPrecondition) {
					t.Errorf("WriteIf(%q, IfAbsent) = %v, want ErrPrecondition", key, err)
				}
			}
			var fi fs.FileInfo
			if fi, err = os.Lstat(filepath.Join(dir, "step/.executor_status")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
				t.Errorf("the FIFO was replaced: %v, %v", fi, err)
			}
		})
	}
}

// TestReadLimitBoundsTheRead checks that ReadLimit reads no more than its
// limit of a large object, and that a read at the limit succeeds.
func TestReadLimitBoundsTheRead(t *testing.T) {
	ctx := t.Context()
	b, dir := newTestBucket(t, false, false)
	if _, err := b.Write(ctx, "small", []byte("12345")); err != nil {
		t.Fatal(err)
	}
	if data, _, err := b.ReadLimit(ctx, "small", 5); err != nil || string(data) != "12345" {
		t.Errorf(`ReadLimit("small", 5) = %q, %v; want "12345", nil`, data, err)
	}
	if _, _, err := b.ReadLimit(ctx, "small", 4); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf(`ReadLimit("small", 4) = %v, want ErrTooLarge`, err)
	}
	// A sparse file of a terabyte: reading it whole would run out of memory.
	f, err := os.Create(filepath.Join(dir, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skipf("cannot make a sparse file here: %v", err)
	}
	f.Close()
	if _, _, err := b.ReadLimit(ctx, "huge", 1<<20); !errors.Is(err, store.ErrTooLarge) {
		t.Errorf(`ReadLimit("huge", 1 MiB) = %v, want ErrTooLarge`, err)
	}
}

// TestModesFollowUmask checks issue 13: directories are created 0777 and
// objects 0666 before the umask, by every creation path (O_TMPFILE, named
// temporaries renamed or linked into place, streaming writes), and a setgid directory's group
// is inherited. It changes the process umask, so it must not run in
// parallel with other tests.
func TestModesFollowUmask(t *testing.T) {
	for _, umask := range []int{0o002, 0o022, 0o077} {
		for _, noTmp := range []bool{false, true} {
			old := syscall.Umask(umask)
			func() {
				defer syscall.Umask(old)
				ctx := t.Context()
				b, dir := newTestBucket(t, false, noTmp)
				if _, err := b.WriteIf(ctx, "a/b/created", []byte("x"), store.IfAbsent()); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Write(ctx, "a/b/put", []byte("x")); err != nil {
					t.Fatal(err)
				}
				v, err := b.Write(ctx, "a/b/replaced", []byte("x"))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.WriteIf(ctx, "a/b/replaced", []byte("y"), store.IfVersion(v)); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Write(ctx, "a/b/put", []byte("z")); err != nil {
					t.Fatal(err)
				}
				w, err := b.NewWriter(ctx, "a/b/streamed")
				if err != nil {
					t.Fatal(err)
				}
				w.Write([]byte("s"))
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				wantFile, wantDir := fs.FileMode(0o666&^umask), fs.FileMode(0o777&^umask)
				for _, p := range []string{"", "a", "a/b"} {
					fi, err := os.Stat(filepath.Join(dir, p))
					if err != nil {
						t.Fatal(err)
					}
					if fi.Mode().Perm() != wantDir {
						t.Errorf("umask %03o, O_TMPFILE %v: directory %q has mode %v, want %v", umask, !noTmp, p, fi.Mode().Perm(), wantDir)
					}
				}
				for _, p := range []string{"a/b/created", "a/b/put", "a/b/replaced", "a/b/streamed"} {
					fi, err := os.Stat(filepath.Join(dir, p))
					if err != nil {
						t.Fatal(err)
					}
					if fi.Mode().Perm() != wantFile {
						t.Errorf("umask %03o, O_TMPFILE %v: object %q has mode %v, want %v", umask, !noTmp, p, fi.Mode().Perm(), wantFile)
					}
				}
			}()
		}
	}
}

// TestSetgidDirectoryIsInherited checks that directories created under a
// setgid group directory keep the bit and the group, as mkdir(1) would: the
// layout a team shares a prefix with (issue 13).
func TestSetgidDirectoryIsInherited(t *testing.T) {
	groups, _ := os.Getgroups()
	if os.Geteuid() == 0 {
		groups = append(groups, 4242) // root may give a directory any group
	}
	if len(groups) == 0 {
		t.Skip("no supplementary groups to test a group directory with")
	}
	gid := groups[len(groups)-1]
	for _, res := range resolutions {
		t.Run(res.name, func(t *testing.T) {
			b, dir := newTestBucket(t, res.walk, false)
			if err := os.Mkdir(dir, 0o775); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, -1, gid); err != nil {
				t.Skipf("cannot give the prefix group %d: %v", gid, err)
			}
			if err := os.Chmod(dir, fs.ModeSetgid|0o775); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Write(t.Context(), "step/x/.executor_status", []byte("RUNNING")); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"step", "step/x", "step/x/.executor_status"} {
				fi, err := os.Stat(filepath.Join(dir, p))
				if err != nil {
					t.Fatal(err)
				}
				st := fi.Sys().(*syscall.Stat_t)
				if int(st.Gid) != gid {
					t.Errorf("%s has group %d, want the prefix's group %d", p, st.Gid, gid)
				}
				if fi.IsDir() && fi.Mode()&fs.ModeSetgid == 0 {
					t.Errorf("directory %s has mode %v, want the setgid bit inherited", p, fi.Mode())
				}
			}
		})
	}
}
