package gcsstore_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"example.com/cairn/store"
)

// isChunk reports whether r sends a chunk of a resumable upload: a request
// to the session URL, which names the upload (GCS answers PUT there;
// fake-gcs-server's session URL takes POST).
func isChunk(r *http.Request) bool { return r.URL.Query().Has("upload_id") }

// A transient failure of one chunk of a streaming write repeats that chunk
// within the same resumable upload, not the whole object.
func TestStreamRetriesOneChunk(t *testing.T) {
	rec, b := recorded(t)
	var chunks atomic.Int32
	rec.fail = func(r *http.Request, _ int) int {
		if isChunk(r) && chunks.Add(1) == 2 {
			return http.StatusServiceUnavailable
		}
		return 0
	}
	data := make([]byte, 40<<20) // three chunks of 16 MiB
	rand.NewChaCha8([32]byte{2}).Read(data)
	w, err := b.NewWriter(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil after one retried chunk", err)
	}
	got, _, err := b.Read(t.Context(), "obj")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Read = %d bytes, %v; want the %d bytes written", len(got), err, len(data))
	}
	var sessions int
	for _, r := range rec.requests() {
		if strings.HasPrefix(r, "POST ") && strings.Contains(r, "uploadType=resumable") && !strings.Contains(r, "upload_id=") {
			sessions++
		}
	}
	if sessions != 1 {
		t.Errorf("%d resumable sessions started, want 1: a failed chunk is retried within its upload", sessions)
	}
	if n := chunks.Load(); n < 4 {
		t.Errorf("%d chunk requests, want at least 4 (3 chunks, one sent twice)", n)
	}
	b.Delete(context.Background(), "obj")
}

// A chunk refused for good fails the write, and no object appears.
func TestStreamPermanentFailure(t *testing.T) {
	rec, b := recorded(t)
	rec.fail = func(r *http.Request, _ int) int {
		if isChunk(r) {
			return http.StatusForbidden
		}
		return 0
	}
	w, err := b.NewWriter(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(make([]byte, 40<<20))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		t.Fatal("write with every chunk refused = nil error, want an error")
	}
	rec.fail = nil
	if _, err := b.Stat(t.Context(), "obj"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat after a failed write = %v, want ErrNotExist", err)
	}
}
