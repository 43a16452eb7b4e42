package memstore

import (
	"bytes"
	"context"

	"example.com/cairn/store/driver"
)

var _ driver.Streamer = (*bucket)(nil)

// NewWriter implements driver.Streamer: the object is buffered and stored
// by Commit, as one Write (with its faults, retried under the bucket's
// policy). Memstore holds every object in memory anyway.
func (b *bucket) NewWriter(ctx context.Context, key string, opts *driver.WriterOptions) (driver.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &writer{ctx: ctx, b: b, key: key, opts: opts}, nil
}

type writer struct {
	ctx  context.Context
	b    *bucket
	key  string
	opts *driver.WriterOptions
	buf  bytes.Buffer
}

func (w *writer) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.buf.Write(p)
}

func (w *writer) Commit() (driver.Version, error) {
	// Write copies the bytes; the buffer is dropped with the writer.
	var v driver.Version
	err := w.opts.Retry(w.ctx, "write", func() error {
		var err error
		v, err = w.b.Write(w.ctx, w.key, w.buf.Bytes(), driver.Condition{})
		return err
	})
	return v, err
}

func (w *writer) Abort() error {
	w.buf = bytes.Buffer{}
	return nil
}

// NewRangeReader implements driver.Streamer. Stored objects are never
// modified, so the reader reads the version current when it was opened.
func (b *bucket) NewRangeReader(ctx context.Context, key string, off, length int64) (driver.Reader, error) {
	k := b.prefix + key
	if err := b.ns.before(ctx, "read", k, false); err != nil {
		return nil, err
	}
	b.ns.mu.Lock()
	o, ok := b.ns.objects[k]
	b.ns.mu.Unlock()
	if !ok {
		return nil, errNotExist
	}
	size := int64(len(o.data))
	data := o.data[min(off, size):]
	if length >= 0 && length < int64(len(data)) {
		data = data[:length]
	}
	return &reader{
		Reader: bytes.NewReader(data),
		attrs:  driver.Attributes{Size: size, Version: formatVersion(o.version), ModTime: o.modTime},
	}, nil
}

type reader struct {
	*bytes.Reader
	attrs driver.Attributes
}

func (r *reader) Close() error                  { return nil }
func (r *reader) Attributes() driver.Attributes { return r.attrs }
