package gcsstore

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/storage"

	"example.com/cairn/store/driver"
)

// DefaultChunkSize is the size of the chunks of a streaming write; the
// writer holds one chunk in memory.
const DefaultChunkSize = 16 << 20

// chunkRetryDeadline bounds the retries of one chunk of a streaming write.
const chunkRetryDeadline = 2 * time.Minute

var _ driver.Streamer = (*gcsBucket)(nil)

// NewWriter implements driver.Streamer with the client's resumable upload:
// it sends the object in chunks of DefaultChunkSize, buffering one chunk.
// Unlike the bucket's other requests, which the client never retries
// (package store does), the chunks of this upload are retried by the client
// itself, which resumes from the last byte the server acknowledged: a
// transient failure repeats one chunk, never the whole object. The object
// is created when the upload finishes (Commit); cancelling the writer's
// context, which Abort and a done ctx do, abandons the upload and creates
// nothing.
func (b *gcsBucket) NewWriter(ctx context.Context, key string, _ *driver.WriterOptions) (driver.Writer, error) {
	wctx, cancel := context.WithCancel(ctx)
	obj := b.bkt.Object(key).Retryer(
		storage.WithPolicy(storage.RetryAlways), // an unconditional write is idempotent
		storage.WithErrorFunc(func(err error) bool {
			return err != nil && (b.ErrorCode(err) == driver.Transient || storage.ShouldRetry(err))
		}),
	)
	w := obj.NewWriter(wctx)
	w.ChunkSize = DefaultChunkSize
	w.ChunkRetryDeadline = chunkRetryDeadline
	return &writer{w: w, cancel: cancel, b: b}, nil
}

type writer struct {
	w      *storage.Writer
	cancel context.CancelFunc
	b      *gcsBucket
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	return n, w.b.explain(err)
}

func (w *writer) Commit() (driver.Version, error) {
	defer w.cancel()
	if err := w.w.Close(); err != nil {
		return "", w.b.explain(err)
	}
	return version(w.w.Attrs().Generation), nil
}

func (w *writer) Abort() error {
	w.cancel()
	w.w.Close() // fails with the cancellation
	return nil
}

// NewRangeReader implements driver.Streamer. The reader reads one
// generation of the object, which is its version.
func (b *gcsBucket) NewRangeReader(ctx context.Context, key string, off, length int64) (driver.Reader, error) {
	if length == 0 {
		return b.emptyReader(ctx, key)
	}
	r, err := b.bkt.Object(key).NewRangeReader(ctx, off, length)
	if err != nil {
		if httpStatus(err) == http.StatusRequestedRangeNotSatisfiable {
			return b.emptyReader(ctx, key) // off is at or past the end
		}
		return nil, b.explain(err)
	}
	return &reader{ReadCloser: r, attrs: driver.Attributes{
		Size: r.Attrs.Size, Version: version(r.Attrs.Generation), ModTime: r.Attrs.LastModified.UnixNano(),
	}}, nil
}

// emptyReader reads nothing of key, which must exist.
func (b *gcsBucket) emptyReader(ctx context.Context, key string) (driver.Reader, error) {
	a, err := b.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	return &reader{ReadCloser: io.NopCloser(strings.NewReader("")), attrs: a}, nil
}

type reader struct {
	io.ReadCloser
	attrs driver.Attributes
}

func (r *reader) Attributes() driver.Attributes { return r.attrs }
