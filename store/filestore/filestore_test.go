package filestore_test

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
	"example.com/cairn/store/storetest"
)

func TestMain(m *testing.M) {
	if storetest.HelperProcess(context.Background(), openLocation) {
		return
	}
	os.Exit(m.Run())
}

func openLocation(_ context.Context, dir string) (*store.Bucket, error) {
	return filestore.Open(dir, nil)
}

func newBucket(t testing.TB, opts *filestore.Options) (*store.Bucket, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bucket") // created by the first write
	b, err := filestore.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewBucket: func(t *testing.T) *store.Bucket {
			b, _ := newBucket(t, nil)
			return b
		},
		Location:     func(t *testing.T, b *store.Bucket) string { return b.String() },
		Hierarchical: true,
		LargeObjects: "local disk",
	})
}

// tempFiles returns the temporary files left under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".cairn-tmp-") {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestNoTempFilesLeft(t *testing.T) {
	for _, sync := range []bool{false, true} {
		t.Run(map[bool]string{false: "Default", true: "Sync"}[sync], func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			b, dir := newBucket(t, &filestore.Options{Sync: sync})
			v, err := b.WriteIf(ctx, "d/k", []byte("0"), store.IfAbsent())
			if err != nil {
				t.Fatal(err)
			}
			for i := range 50 {
				data := []byte{byte('1' + i)}
				if v, err = b.WriteIf(ctx, "d/k", data, store.IfVersion(v)); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Write(ctx, "d/other", data); err != nil {
					t.Fatal(err)
				}
			}
			// Failed conditional writes and deletes of every kind.
			failures := []error{
				func() error { _, err := b.WriteIf(ctx, "d/k", []byte("x"), store.IfAbsent()); return err }(),
				func() error { _, err := b.WriteIf(ctx, "d/k", []byte("x"), store.IfVersion("stale")); return err }(),
				func() error { _, err := b.WriteIf(ctx, "d/missing", []byte("x"), store.IfVersion(v)); return err }(),
				func() error { _, err := b.WriteIf(ctx, "nodir/k", []byte("x"), store.IfVersion(v)); return err }(),
				b.DeleteIf(ctx, "d/k", store.IfVersion("stale")),
			}
			for i, err := range failures {
				if !errors.Is(err, store.ErrPrecondition) {
					t.Errorf("failure %d = %v, want ErrPrecondition", i, err)
				}
			}
			if err := b.Delete(ctx, "d/other"); err != nil {
				t.Fatal(err)
			}
			if left := tempFiles(t, dir); len(left) > 0 {
				t.Errorf("temporary files left behind: %q", left)
			}
			if _, err := os.Stat(filepath.Join(dir, "nodir")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a failed IfVersion write created its directory: Stat = %v", err)
			}
			entries, err := os.ReadDir(filepath.Join(dir, "d"))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Name() != "k" {
				t.Errorf("directory holds %v, want only the object k (no lock files)", entries)
			}
			if data, _, err := b.Read(ctx, "d/k"); err != nil || string(data) != string([]byte{'1' + 49}) {
				t.Errorf("Read = %q, %v", data, err)
			}
		})
	}
}

func TestListSkipsTempFiles(t *testing.T) {
	ctx := t.Context()
	b, dir := newBucket(t, nil)
	for _, k := range []string{"a", "sub/b"} {
		if _, err := b.Write(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	// What a writer that crashed mid-write, and an NFS client holding a
	// removed file open, leave behind.
	for _, name := range []string{
		".cairn-tmp-123", "sub/.cairn-tmp-abc", ".cairn-tmp-dir/x",
		".nfs000000000000a1b200000001", "sub/.nfs00000000000000ff0000000a",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for k, err := range b.List(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	if diff := cmp.Diff([]string{"a", "sub/b"}, got); diff != "" {
		t.Errorf("List mismatch (-want +got):\n%s", diff)
	}
	for _, key := range []string{".cairn-tmp-123", "sub/.cairn-tmp-x", ".cairn-tmp-dir/x", ".nfs000000000000a1b200000001"} {
		if _, err := b.Write(ctx, key, []byte("x")); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("Write(%q) = %v, want ErrInvalidKey (reserved name)", key, err)
		}
	}
	if _, err := b.Write(ctx, ".nfs-not-silly", []byte("x")); err != nil {
		t.Errorf(`Write(".nfs-not-silly") = %v, want nil (only the NFS client's exact pattern is reserved)`, err)
	}
}

// TestDirectoryIsNotAnObject checks that a key naming a directory is
// neither an object nor absent (issue 8, item 8): a lease or status file
// replaced by a directory is corrupt, and the runner must say so rather than
// wait for it forever.
func TestDirectoryIsNotAnObject(t *testing.T) {
	ctx := t.Context()
	b, dir := newBucket(t, nil)
	if _, err := b.Write(ctx, "d/k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Read(ctx, "d"); !errors.Is(err, store.ErrNotRegular) {
		t.Errorf(`Read("d") of a directory = %v, want ErrNotRegular`, err)
	}
	if _, _, err := b.ReadLimit(ctx, "d", 10); !errors.Is(err, store.ErrNotRegular) {
		t.Errorf(`ReadLimit("d") of a directory = %v, want ErrNotRegular`, err)
	}
	if _, err := b.Stat(ctx, "d"); !errors.Is(err, store.ErrNotRegular) {
		t.Errorf(`Stat("d") of a directory = %v, want ErrNotRegular`, err)
	}
	if ok, err := b.Exists(ctx, "d"); ok || !errors.Is(err, store.ErrNotRegular) {
		t.Errorf(`Exists("d") of a directory = %v, %v; want false, ErrNotRegular`, ok, err)
	}
	if _, err := b.WriteIf(ctx, "d", []byte("x"), store.IfVersion("v")); !errors.Is(err, store.ErrNotRegular) {
		t.Errorf(`WriteIf("d", IfVersion) of a directory = %v, want ErrNotRegular`, err)
	}
	if _, err := b.WriteIf(ctx, "d", []byte("x"), store.IfAbsent()); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf(`WriteIf("d", IfAbsent) of a directory = %v, want ErrPrecondition (something exists)`, err)
	}
	if _, err := b.Write(ctx, "d", []byte("x")); !errors.Is(err, store.ErrNotRegular) {
		t.Errorf(`Write("d") over a directory = %v, want ErrNotRegular`, err)
	}
	if err := b.DeleteIf(ctx, "d", store.IfVersion("v")); !errors.Is(err, store.ErrNotRegular) {
		t.Errorf(`DeleteIf("d") of a directory = %v, want ErrNotRegular`, err)
	}
	if err := b.Delete(ctx, "d"); !errors.Is(err, store.ErrNotRegular) {
		t.Errorf(`Delete("d") of a directory = %v, want ErrNotRegular`, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d", "k")); err != nil {
		t.Errorf("the directory's contents were touched: %v", err)
	}
	if _, _, err := b.Read(ctx, "d/k/below-a-file"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Read of a key below a file = %v, want ErrNotExist", err)
	}
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("temporary files left behind: %q", left)
	}
}

func TestOpen(t *testing.T) {
	t.Chdir(t.TempDir())
	b, err := filestore.Open("rel/dir", nil)
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(wd, "rel", "dir")
	if b.String() != want {
		t.Errorf(`Open("rel/dir").String() = %q, want %q`, b.String(), want)
	}
	if _, err := os.Stat(want); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open created the directory (Stat = %v); it must do no I/O", err)
	}
	if _, err := b.Write(t.Context(), "x/y", []byte("z")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(want, "x", "y"))
	if err != nil {
		t.Fatalf("the first write did not create the file: %v", err)
	}
	if fi.Mode().Perm()&0o400 == 0 {
		t.Errorf("object mode = %v, want it readable by its owner", fi.Mode())
	}
	if _, err := filestore.Open("", nil); err == nil {
		t.Errorf(`Open("") = nil error, want an error`)
	}
}

func TestURLOpener(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	var mux store.URLMux
	mux.Register("file", filestore.URLOpener{})
	for _, loc := range []string{dir, "file://" + dir, "file://localhost" + dir} {
		b, err := mux.OpenBucket(ctx, loc)
		if err != nil {
			t.Errorf("OpenBucket(%q) = %v", loc, err)
			continue
		}
		if b.String() != dir {
			t.Errorf("OpenBucket(%q).String() = %q, want %q", loc, b.String(), dir)
		}
	}
	for _, bad := range []string{"file://host/x", "file:///x?sync=1", "file:relative"} {
		u, err := url.Parse(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := (filestore.URLOpener{}).OpenBucketURL(ctx, u); err == nil {
			t.Errorf("OpenBucketURL(%q) = nil error, want an error", bad)
		}
	}
}

func TestSync(t *testing.T) {
	ctx := t.Context()
	b, dir := newBucket(t, &filestore.Options{Sync: true})
	v, err := b.WriteIf(ctx, "a/k", []byte("one"), store.IfAbsent())
	if err != nil {
		t.Fatalf("WriteIf(IfAbsent) with Sync = %v", err)
	}
	if v, err = b.WriteIf(ctx, "a/k", []byte("two"), store.IfVersion(v)); err != nil {
		t.Fatalf("WriteIf(IfVersion) with Sync = %v", err)
	}
	if _, err = b.Write(ctx, "a/j", []byte("three")); err != nil {
		t.Fatalf("Write with Sync = %v", err)
	}
	if data, gotV, err := b.Read(ctx, "a/k"); err != nil || string(data) != "two" || gotV != v {
		t.Errorf("Read = %q, %q, %v; want \"two\", %q, nil", data, gotV, err, v)
	}
	if err := b.DeleteIf(ctx, "a/k", store.IfVersion(v)); err != nil {
		t.Errorf("DeleteIf with Sync = %v", err)
	}
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("temporary files left behind: %q", left)
	}
}

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root, which bypasses file permissions: cannot provoke EACCES")
	}
	ctx := t.Context()
	b, dir := newBucket(t, nil)
	if _, err := b.Write(ctx, "locked/k", []byte("x")); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked")
	if err := os.Chmod(locked, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	if _, err := b.Write(ctx, "locked/new", []byte("x")); !errors.Is(err, store.ErrPermission) {
		t.Errorf("Write into a read-only directory = %v, want ErrPermission", err)
	}
	if _, err := b.WriteIf(ctx, "locked/k", []byte("y"), store.IfAbsent()); !errors.Is(err, store.ErrPermission) {
		t.Errorf("WriteIf(IfAbsent) into a read-only directory = %v, want ErrPermission", err)
	}
	if err := os.Chmod(locked, 0o000); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Read(ctx, "locked/k"); !errors.Is(err, store.ErrPermission) {
		t.Errorf("Read in an inaccessible directory = %v, want ErrPermission", err)
	}
}

func BenchmarkWriteIfAbsent(b *testing.B) {
	bkt, _ := newBucket(b, nil)
	storetest.BenchWriteIfAbsent(b, bkt)
}

func BenchmarkWriteIfVersion(b *testing.B) {
	bkt, _ := newBucket(b, nil)
	storetest.BenchWriteIfVersion(b, bkt)
}

func BenchmarkWriteIfVersionSync(b *testing.B) {
	bkt, _ := newBucket(b, &filestore.Options{Sync: true})
	storetest.BenchWriteIfVersion(b, bkt)
}

func BenchmarkRead(b *testing.B) {
	bkt, _ := newBucket(b, nil)
	storetest.BenchRead(b, bkt)
}
