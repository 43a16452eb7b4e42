package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"example.com/cairn/store/driver"
)

// Defaults of the streaming writer (Options.PartSize, PartConcurrency).
const (
	DefaultPartSize        = 8 << 20
	DefaultPartConcurrency = 4
	minPartSize            = 5 << 20 // S3's minimum for every part but the last
)

// abortTimeout bounds the AbortMultipartUpload sent after the writer's
// context is done.
const abortTimeout = 30 * time.Second

var _ driver.Streamer = (*s3Bucket)(nil)

// NewWriter implements driver.Streamer with a multipart upload, started
// when the first part is full: parts are uploaded concurrently (at most
// partConcurrency at once, from at most partConcurrency+1 buffers, so
// memory does not grow with the object), each retried on its own through
// opts.Retry. Commit completes the upload, which makes the object appear
// whole; an object smaller than one part is sent by Commit with one
// PutObject. Abort, a part that fails for good, or a done context aborts the
// multipart upload, so that the server frees the parts.
func (b *s3Bucket) NewWriter(ctx context.Context, key string, opts *driver.WriterOptions) (driver.Writer, error) {
	wctx, cancel := context.WithCancelCause(ctx)
	return &writer{
		ctx: wctx, parent: ctx, cancel: cancel, b: b, key: key, retry: opts.Retry,
		free: make(chan []byte, b.partConcurrency+1),
		sem:  make(chan struct{}, b.partConcurrency),
	}, nil
}

type writer struct {
	ctx    context.Context // cancelled by a failed part or Abort
	parent context.Context
	cancel context.CancelCauseFunc
	b      *s3Bucket
	key    string
	retry  func(ctx context.Context, op string, attempt func() error) error

	buf   []byte        // the part being filled
	nbuf  int           // buffers allocated
	free  chan []byte   // buffers whose upload finished
	sem   chan struct{} // one token per part being uploaded
	id    *string       // the multipart upload, once started
	parts int32         // parts started

	wg        sync.WaitGroup
	mu        sync.Mutex // guards the fields below
	completed []types.CompletedPart
	err       error // the first failure of a part
}

func (w *writer) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// buffer returns an empty part buffer, allocating one while fewer than
// partConcurrency+1 exist and otherwise waiting for an upload to finish.
func (w *writer) buffer() ([]byte, error) {
	select {
	case buf := <-w.free:
		return buf[:0], nil
	default:
	}
	if w.nbuf < cap(w.free) {
		w.nbuf++
		return make([]byte, 0, w.b.partSize), nil
	}
	select {
	case buf := <-w.free:
		return buf[:0], nil
	case <-w.ctx.Done():
		return nil, w.ctxErr()
	}
}

// ctxErr is the error of the writer's done context: a part's failure if
// that was the cause.
func (w *writer) ctxErr() error {
	if err := w.failure(); err != nil {
		return err
	}
	return w.ctx.Err()
}

func (w *writer) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := w.failure(); err != nil {
			return n, err
		}
		if w.buf == nil {
			buf, err := w.buffer()
			if err != nil {
				return n, err
			}
			w.buf = buf
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		n += c
		p = p[c:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush starts the upload of the current buffer as the next part.
func (w *writer) flush() error {
	if w.id == nil {
		var out *s3.CreateMultipartUploadOutput
		err := w.retry(w.ctx, "write", func() error {
			var err error
			out, err = w.b.client.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{Bucket: &w.b.bucket, Key: &w.key})
			return w.b.explain(err)
		})
		if err != nil {
			return err
		}
		w.id = out.UploadId
	}
	select {
	case w.sem <- struct{}{}:
	case <-w.ctx.Done():
		return w.ctxErr()
	}
	w.parts++
	num, buf := w.parts, w.buf
	w.buf = nil
	w.wg.Go(func() {
		defer func() { <-w.sem }()
		var etag *string
		err := w.retry(w.ctx, "write part", func() error {
			out, err := w.b.client.UploadPart(w.ctx, &s3.UploadPartInput{
				Bucket: &w.b.bucket, Key: &w.key, UploadId: w.id, PartNumber: aws.Int32(num),
				Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf))),
			}, unsignedPayload)
			if err != nil {
				return w.b.explain(err)
			}
			etag = out.ETag
			return nil
		})
		w.free <- buf
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			if w.err == nil {
				w.err = fmt.Errorf("part %d: %w", num, err)
				w.cancel(w.err)
			}
			return
		}
		w.completed = append(w.completed, types.CompletedPart{ETag: etag, PartNumber: aws.Int32(num)})
	})
	return nil
}

func (w *writer) Commit() (driver.Version, error) {
	if w.id == nil {
		// Smaller than one part: one request.
		var v driver.Version
		err := w.retry(w.ctx, "write", func() error {
			var err error
			v, err = w.b.Write(w.ctx, w.key, w.buf, driver.Condition{})
			return err
		})
		w.cancel(nil)
		return v, err
	}
	var err error
	if len(w.buf) > 0 {
		err = w.flush()
	}
	w.wg.Wait()
	if err == nil {
		err = w.failure()
	}
	if err == nil {
		err = w.ctx.Err()
	}
	if err != nil {
		w.abort()
		return "", err
	}
	slices.SortFunc(w.completed, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	var out *s3.CompleteMultipartUploadOutput
	err = w.retry(w.ctx, "write", func() error {
		var err error
		out, err = w.b.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
			Bucket: &w.b.bucket, Key: &w.key, UploadId: w.id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: w.completed},
		})
		return w.b.explain(err)
	})
	if err != nil {
		w.abort()
		return "", err
	}
	w.cancel(nil)
	if out.ETag == nil {
		return "", errNoETag
	}
	return driver.Version(*out.ETag), nil
}

func (w *writer) Abort() error {
	w.cancel(nil)
	w.wg.Wait()
	return w.abort()
}

// abort aborts the multipart upload, if one was started, once no part is
// being uploaded, retrying transient failures. It runs even when the
// writer's context is done.
func (w *writer) abort() error {
	w.cancel(nil)
	if w.id == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.parent), abortTimeout)
	defer cancel()
	return w.retry(ctx, "write", func() error {
		_, err := w.b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &w.b.bucket, Key: &w.key, UploadId: w.id})
		if err != nil && !isNotFound(err) {
			return w.b.explain(err)
		}
		return nil
	})
}

// unsignedPayload sends a part without the SHA-256 of its body in the
// signature (UNSIGNED-PAYLOAD), which the SDK otherwise computes on
// endpoints without TLS: a second pass over every byte that made uploads
// CPU-bound. The transfer manager avoids it too (it sends a trailing
// checksum instead). The request is still signed; the body is protected
// by TLS where the endpoint uses it.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// NewRangeReader implements driver.Streamer with a GetObject of a byte
// range. Its version is the object's ETag; a reopened read is checked
// against it by package store.
func (b *s3Bucket) NewRangeReader(ctx context.Context, key string, off, length int64) (driver.Reader, error) {
	if length == 0 {
		return b.emptyReader(ctx, key)
	}
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(key)}
	if off > 0 || length > 0 {
		r := "bytes=" + strconv.FormatInt(off, 10) + "-"
		if length > 0 {
			r += strconv.FormatInt(off+length-1, 10)
		}
		in.Range = aws.String(r)
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		if _, status := errorCode(err); status == http.StatusRequestedRangeNotSatisfiable {
			return b.emptyReader(ctx, key) // off is at or past the end
		}
		return nil, b.explain(err)
	}
	if out.ETag == nil {
		out.Body.Close()
		return nil, errNoETag
	}
	a := driver.Attributes{Size: aws.ToInt64(out.ContentLength), Version: driver.Version(*out.ETag)}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		// "bytes FIRST-LAST/SIZE"
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				a.Size = n
			}
		}
	}
	if out.LastModified != nil {
		a.ModTime = out.LastModified.UnixNano()
	}
	return &reader{ReadCloser: out.Body, attrs: a}, nil
}

// emptyReader reads nothing of key, which must exist.
func (b *s3Bucket) emptyReader(ctx context.Context, key string) (driver.Reader, error) {
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
