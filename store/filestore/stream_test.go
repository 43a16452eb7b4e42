package filestore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestStreamLeavesNoTempFiles: an aborted, a cancelled and a committed
// streaming write leave no temporary file. (TestModesFollowUmask checks
// the mode of streamed objects.)
func TestStreamLeavesNoTempFiles(t *testing.T) {
	b, dir := newBucket(t, nil)
	ctx := t.Context()

	w, err := b.NewWriter(ctx, "d/aborted")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	if left := tempFiles(t, dir); len(left) != 1 {
		t.Errorf("during a streaming write: temporary files %q, want one", left)
	}
	w.Abort()

	cctx, cancel := context.WithCancel(ctx)
	w, err = b.NewWriter(cctx, "d/cancelled")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	cancel()
	if err := w.Close(); err == nil {
		t.Error("Close after cancel = nil, want an error")
	}

	w, err = b.NewWriter(ctx, "d/done")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("whole"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("temporary files left behind: %q", left)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "d"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "done" {
		t.Errorf("directory holds %v, want only done", entries)
	}
}

// TestStreamRefusesSymlinkedDir: a streaming write whose directory is a
// symbolic link fails and writes nothing through it.
func TestStreamRefusesSymlinkedDir(t *testing.T) {
	b, dir := newBucket(t, nil)
	if _, err := b.Write(t.Context(), "real/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if w, err := b.NewWriter(t.Context(), "link/obj"); err == nil {
		w.Write([]byte("escaped"))
		err = w.Close()
		t.Errorf("streaming write through a symlinked directory: Close = %v, want NewWriter to fail", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("the write created %v outside the bucket", entries)
	}
	if r, err := b.NewReader(t.Context(), "link/obj"); err == nil {
		r.Close()
		t.Error("NewReader through a symlinked directory = nil error, want an error")
	}
}
