package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/cairn/store"
	"example.com/cairn/store/driver"
	"example.com/cairn/store/memstore"
)

// flakyReader is a driver.Bucket and driver.Streamer over one object whose
// readers fail transiently after failAfter bytes, failures times; replace
// changes the object's version after the first failure.
type flakyReader struct {
	driver.Bucket // only the methods below are called
	data          []byte
	version       driver.Version
	failAfter     int64
	failures      int
	replace       bool
	opens         []int64 // offsets opened
}

func (d *flakyReader) NewWriter(context.Context, string, *driver.WriterOptions) (driver.Writer, error) {
	return nil, errors.New("read-only")
}

func (d *flakyReader) NewRangeReader(_ context.Context, _ string, off, length int64) (driver.Reader, error) {
	d.opens = append(d.opens, off)
	end := int64(len(d.data))
	if length >= 0 {
		end = min(end, off+length)
	}
	r := &flakyStream{d: d, data: d.data[off:end], attrs: driver.Attributes{Size: int64(len(d.data)), Version: d.version}}
	if d.failures > 0 {
		r.fail = d.failAfter
	} else {
		r.fail = -1
	}
	return r, nil
}

func (d *flakyReader) ErrorCode(err error) driver.Code {
	if errors.Is(err, errFlaky) {
		return driver.Transient
	}
	return driver.Unknown
}

type flakyStream struct {
	d     *flakyReader
	data  []byte
	fail  int64 // bytes before a failure; -1 for none
	attrs driver.Attributes
}

func (s *flakyStream) Read(p []byte) (int, error) {
	if s.fail == 0 {
		s.d.failures--
		if s.d.replace {
			s.d.version += "'"
		}
		s.fail = -1
		return 0, errFlaky
	}
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := len(p)
	if s.fail > 0 {
		n = min(n, int(s.fail))
		s.fail -= int64(n)
	}
	n = copy(p, s.data[:min(n, len(s.data))])
	s.data = s.data[n:]
	return n, nil
}

func (s *flakyStream) Close() error                  { return nil }
func (s *flakyStream) Attributes() driver.Attributes { return s.attrs }

var noWait = &store.Options{Retry: store.RetryPolicy{Backoff: func(int) time.Duration { return 0 }}}

// A stream that fails transiently is reopened where it stopped.
func TestReaderResumesAfterTransientError(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	d := &flakyReader{data: data, version: "v1", failAfter: 3000, failures: 2}
	b := store.NewBucket(d, "test://", noWait)
	r, err := b.NewRangeReader(t.Context(), "k", 100, 9000)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("ReadAll = %v, want the transient failures resumed", err)
	}
	if !bytes.Equal(got, data[100:9100]) {
		t.Errorf("read %d bytes, not the range [100, 9100)", len(got))
	}
	if want := []int64{100, 3100, 6100}; !equalInts(d.opens, want) {
		t.Errorf("opened at offsets %v, want %v (each reopen where the read stopped)", d.opens, want)
	}
}

// A reopened stream that finds another version fails instead of mixing
// two versions' bytes.
func TestReaderRefusesAnotherVersion(t *testing.T) {
	d := &flakyReader{data: make([]byte, 10000), version: "v1", failAfter: 3000, failures: 1, replace: true}
	b := store.NewBucket(d, "test://", noWait)
	r, err := b.NewReader(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(r)
	if err == nil || !strings.Contains(err.Error(), "replaced while it was read") {
		t.Errorf("ReadAll across a replacement = %v, want an error saying the object was replaced", err)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The commit of a streaming write is retried like Write when it fails
// transiently (memstore stores the object in one Write on Close).
func TestWriterCommitIsRetried(t *testing.T) {
	ns := memstore.New()
	var (
		mu      sync.Mutex
		retries int
	)
	b := ns.Bucket("").WithOptions(fast(&retries, &mu))
	fails := 2
	ns.SetFaults(memstore.Faults{BeforeOp: func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		if op == "write" && fails > 0 {
			fails--
			return memstore.ErrInjectedTransient
		}
		return nil
	}})
	w, err := b.NewWriter(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("streamed"))
	if err := w.Close(); err != nil {
		t.Fatalf("Close = %v, want nil after 2 transient failures", err)
	}
	if retries != 2 {
		t.Errorf("%d retries, want 2", retries)
	}
	if data, v, err := b.Read(t.Context(), "k"); string(data) != "streamed" || v != w.Version() || err != nil {
		t.Errorf("Read = %q, %q, %v; want %q and the writer's version %q", data, v, err, "streamed", w.Version())
	}
}

// Writer misuse: a second Close, a Write after Close.
func TestWriterClosed(t *testing.T) {
	b := memstore.New().Bucket("")
	w, err := b.NewWriter(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close = nil error")
	}
	if err := w.Close(); err == nil {
		t.Error("second Close = nil error")
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Close = %v, want nil (a no-op)", err)
	}
	if data, _, err := b.Read(t.Context(), "k"); err != nil || len(data) != 0 {
		t.Errorf("Read = %q, %v; want an empty object", data, err)
	}
}

// UploadDir refuses a symbolic link, and the first failure stops the
// transfer with its error.
func TestUploadDirRefusesSymlink(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	b := memstore.New().Bucket("")
	err := b.UploadDir(t.Context(), src, "", nil)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("UploadDir of a tree with a symbolic link = %v, want an error naming it", err)
	}
	if _, _, err := b.Read(t.Context(), "link"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("the link was uploaded: Read = %v", err)
	}
}

// DownloadDir writes nothing through a symbolic link planted in the
// destination.
func TestDownloadDirStaysInside(t *testing.T) {
	b := memstore.New().Bucket("")
	if _, err := b.Write(t.Context(), "sub/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	dst, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dst, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := b.DownloadDir(t.Context(), "", dst, nil); err == nil {
		t.Error("DownloadDir through a symbolic link leading outside = nil error, want an error")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("DownloadDir wrote %v outside its directory", entries)
	}
}
