package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"example.com/cairn/store/driver"
)

// This file holds the streaming API (issue 10, item 1): objects written and
// read as streams, for outputs too large to hold in memory.

// Writer writes one object as a stream; make it with [Bucket.NewWriter].
// The object appears only when Close succeeds. Its methods must be called
// from one goroutine.
type Writer struct {
	b    *Bucket
	key  string
	w    driver.Writer
	ctx  context.Context
	err  error // the first write error; sticky
	done bool
	v    Version
}

// NewWriter starts writing key unconditionally. The bytes written become
// the object's content, replacing any earlier content atomically, only when
// [Writer.Close] returns nil: until then readers see the old object (or
// none), never a partial one. If ctx is cancelled before Close returns, or
// a write fails, or [Writer.Abort] is called, nothing is written and the
// backend's temporary state (a temporary file, a multipart upload) is
// removed. Of concurrent writers of one key, the one that closes last wins
// whole.
//
// The caller must call Close or Abort. A key reserved by [Bucket.WithReserved]
// is refused with ErrReserved.
//
// How each backend streams, and what a transient failure repeats:
//
//   - filestore writes a temporary file in the key's directory and installs
//     it on Close as Write does (under the object's lock); a local write has
//     no transient failures to retry.
//   - memstore buffers the object and stores it on Close, with Write's
//     retries.
//   - s3store uses a multipart upload: parts of a fixed size are uploaded
//     concurrently from a bounded pool of buffers, and each part is retried
//     on its own under the bucket's RetryPolicy (the client s3store
//     makes does not retry by itself). An object smaller than one part is sent with one PutObject.
//     On Abort, a failed part or a cancelled context, the multipart upload
//     is aborted.
//   - gcsstore uses the client's resumable upload, which sends chunks and
//     retries a failed chunk itself, resuming from the last byte the server
//     acknowledged; cancelling the context aborts the upload.
//
// A Reader that fails transiently mid-stream reopens the object at the
// offset it had reached and continues, under the bucket's RetryPolicy, as
// long as the object still has the version it started with (backends that
// cannot tell the version cheaply, filestore, have no transient read
// failures).
func (b *Bucket) NewWriter(ctx context.Context, key string) (*Writer, error) {
	k, err := b.key("write", key)
	if err != nil {
		return nil, err
	}
	if err := b.checkReserved("write", k, key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("store: write %s: %w", b.URL(key), err)
	}
	s, ok := b.drv.(driver.Streamer)
	if !ok {
		return &Writer{b: b, key: key, ctx: ctx, w: &bufferWriter{ctx: ctx, b: b, k: k}}, nil
	}
	opts := &driver.WriterOptions{Retry: func(ctx context.Context, op string, attempt func() error) error {
		_, err := b.retry(ctx, op, key, func() error { return b.wrap(op, key, attempt()) })
		return err
	}}
	var w driver.Writer
	_, err = b.retry(ctx, "write", key, func() error {
		var err error
		w, err = s.NewWriter(ctx, k, opts)
		return b.wrap("write", key, err)
	})
	if err != nil {
		return nil, err
	}
	return &Writer{b: b, key: key, ctx: ctx, w: w}, nil
}

// Write writes p to the object. After an error, every later Write and
// Close fail and the object is not written.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("store: write %s: writer is closed", w.b.URL(w.key))
	}
	if w.err != nil {
		return 0, w.err
	}
	if err := w.ctx.Err(); err != nil {
		w.err = fmt.Errorf("store: write %s: %w", w.b.URL(w.key), err)
		return 0, w.err
	}
	n, err := w.w.Write(p)
	if err != nil {
		w.err = w.b.wrap("write", w.key, err)
	}
	return n, w.err
}

// Close finishes the write and makes the object visible. If an earlier
// Write failed or the context is done, it aborts instead and returns the
// error; nothing is written. Calling Close again returns an error.
func (w *Writer) Close() error {
	if w.done {
		return fmt.Errorf("store: write %s: writer is closed", w.b.URL(w.key))
	}
	w.done = true
	if w.err == nil {
		if err := w.ctx.Err(); err != nil {
			w.err = fmt.Errorf("store: write %s: %w", w.b.URL(w.key), err)
		}
	}
	if w.err != nil {
		w.w.Abort()
		return w.err
	}
	v, err := w.w.Commit()
	if err != nil {
		return w.b.wrap("write", w.key, err)
	}
	w.v = v
	return nil
}

// Abort abandons the write: nothing is written. It is a no-op after Close.
func (w *Writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.b.wrap("write", w.key, w.w.Abort())
}

// Version returns the version of the object written, once Close has
// succeeded ("" before).
func (w *Writer) Version() Version { return w.v }

// bufferWriter is the Writer of a driver that does not stream: it holds the
// object in memory and writes it on Commit.
type bufferWriter struct {
	ctx context.Context
	b   *Bucket
	k   string
	buf bytes.Buffer
}

func (w *bufferWriter) Write(p []byte) (int, error) { return w.buf.Write(p) }
func (w *bufferWriter) Abort() error                { return nil }
func (w *bufferWriter) Commit() (Version, error) {
	return w.b.drv.Write(w.ctx, w.k, w.buf.Bytes(), Condition{})
}

// Reader reads one object, or a range of it, as a stream; make it with
// [Bucket.NewReader] or [Bucket.NewRangeReader]. It must be closed.
type Reader struct {
	b      *Bucket
	ctx    context.Context
	key, k string
	s      driver.Streamer
	r      driver.Reader
	attrs  Attributes
	off    int64 // the offset of the next byte to read
	end    int64 // the offset after the last byte wanted; -1 for the end
}

// NewReader reads the whole of key. A missing key fails with ErrNotExist.
func (b *Bucket) NewReader(ctx context.Context, key string) (*Reader, error) {
	return b.NewRangeReader(ctx, key, 0, -1)
}

// NewRangeReader reads length bytes of key from offset off (a negative
// length reads to the end; a range past the end is cut short). The reader
// reads one version of the object: if the object is replaced while it is
// read and a transient failure makes the reader reopen it, the read fails
// rather than mixing versions.
func (b *Bucket) NewRangeReader(ctx context.Context, key string, off, length int64) (*Reader, error) {
	k, err := b.key("read", key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("store: read %s: negative offset %d", b.URL(key), off)
	}
	end := int64(-1)
	if length >= 0 {
		end = off + length
	}
	s, ok := b.drv.(driver.Streamer)
	if !ok {
		s = bufferStreamer{b.drv}
	}
	r := &Reader{b: b, ctx: ctx, key: key, k: k, s: s, off: off, end: end}
	if err := r.open(); err != nil {
		return nil, err
	}
	r.attrs = r.r.Attributes()
	return r, nil
}

// open opens the driver's reader at r.off, retrying transient failures.
func (r *Reader) open() error {
	_, err := r.b.retry(r.ctx, "read", r.key, func() error {
		length := int64(-1)
		if r.end >= 0 {
			length = max(r.end-r.off, 0)
		}
		dr, err := r.s.NewRangeReader(r.ctx, r.k, r.off, length)
		if err != nil {
			return r.b.wrap("read", r.key, err)
		}
		if r.r != nil && dr.Attributes().Version != r.attrs.Version {
			dr.Close()
			return fmt.Errorf("store: read %s: the object was replaced while it was read", r.b.URL(r.key))
		}
		r.r = dr
		return nil
	})
	return err
}

// Attributes describe the whole object. Version may be empty when the
// backend cannot tell it cheaply (filestore).
func (r *Reader) Attributes() Attributes { return r.attrs }

// Read reads from the object. A transient failure reopens the object where
// the read had reached, under the bucket's RetryPolicy.
func (r *Reader) Read(p []byte) (int, error) {
	for {
		n, err := r.r.Read(p)
		r.off += int64(n)
		if err == nil || err == io.EOF {
			return n, err
		}
		err = r.b.wrap("read", r.key, err)
		if n > 0 || r.attrs.Version == "" || !r.b.opts.Retry.retryable(err) || r.ctx.Err() != nil {
			return n, err
		}
		r.r.Close()
		if oerr := r.open(); oerr != nil {
			return 0, errors.Join(err, oerr)
		}
	}
}

// Close releases the reader.
func (r *Reader) Close() error { return r.r.Close() }

// bufferStreamer streams from a driver that does not: it reads whole
// objects.
type bufferStreamer struct{ driver.Bucket }

func (s bufferStreamer) NewWriter(context.Context, string, *driver.WriterOptions) (driver.Writer, error) {
	return nil, errors.New("not a streaming driver")
}

func (s bufferStreamer) NewRangeReader(ctx context.Context, key string, off, length int64) (driver.Reader, error) {
	data, v, err := s.Read(ctx, key)
	if err != nil {
		return nil, err
	}
	size := int64(len(data))
	data = data[min(off, size):]
	if length >= 0 && length < int64(len(data)) {
		data = data[:length]
	}
	return &bytesReader{bytes.NewReader(data), Attributes{Size: size, Version: v}}, nil
}

type bytesReader struct {
	*bytes.Reader
	attrs Attributes
}

func (r *bytesReader) Close() error           { return nil }
func (r *bytesReader) Attributes() Attributes { return r.attrs }
