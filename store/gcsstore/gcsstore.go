// Package gcsstore provides a storage backend on Google Cloud Storage,
// through the official client, cloud.google.com/go/storage.
//
// [Open] returns a *store.Bucket rooted at a key prefix of a bucket;
// [URLOpener] opens "gs://bucket/prefix" URLs for a store.URLMux. The key
// "a/b" of a bucket rooted at "gs://data/runs" is the object "runs/a/b" of
// the bucket "data".
//
// # Conditional writes and versions
//
// An object's version is its generation, in decimal. Every write of an
// object, even of the same bytes, gets a new generation, so versions never
// repeat (no ABA). Create-if-absent is an upload with ifGenerationMatch=0
// (storage.Conditions{DoesNotExist: true}); replace-if-version is an
// upload with ifGenerationMatch=<generation>; delete-if-version is a
// DELETE with ifGenerationMatch=<generation>. GCS checks each atomically:
// of any number of racing writers exactly one wins, and the others get 412
// Precondition Failed (store.ErrPrecondition).
//
// Conditional deletes and the GCS emulator: fake-gcs-server honours
// ifGenerationMatch on uploads but ignores it on DELETE (and ignores
// metageneration conditions everywhere). This package uses generations
// only, and sends the condition on DELETE as GCS requires; the emulator
// deletes regardless. Cairn's lease deletes conditionally only to release
// a lease, and relies on the condition only when a runner lost its lease
// between its last check and its release. So the lease is correct on GCS;
// against the emulator, the conformance cases for conditional deletes are
// skipped (storetest.Harness.UncheckedDeleteConditions), a test checks that
// the condition is on the wire, and the cases run against a real bucket
// when CAIRN_TEST_GCS_BUCKET names one.
//
// # Reads
//
// [store.Bucket.Read] is one download request whose response carries the
// generation of the bytes it returns, so the version always belongs to the
// bytes (reference §2.2 item 5: a metadata read followed by a download can
// see two different objects).
//
// # Credentials and endpoints
//
// Credentials are Application Default Credentials: GOOGLE_APPLICATION_
// CREDENTIALS, the gcloud user's application-default login, or the
// metadata server of the machine. If STORAGE_EMULATOR_HOST is set, the
// client talks to that emulator without credentials (the storage library
// reads the variable). [Options.ClientOptions] can name a credentials file,
// an endpoint and so on.
//
// The library's own retries are turned off: the *store.Bucket retries
// transient errors (see store.RetryPolicy), so that one policy applies and a
// retried conditional write is resolved (see package store). Uploads are
// single requests (no resumable sessions): a store.Bucket writes whole
// objects from memory.
//
// # URLs
//
//	gs://BUCKET[/PREFIX]
//
// The opener reads GOOGLE_APPLICATION_CREDENTIALS and STORAGE_EMULATOR_HOST
// through the storage library and google.golang.org/api, and nothing else.
//
// # Errors
//
// Errors satisfy errors.Is with store.ErrNotExist (no such object),
// store.ErrPrecondition (a condition did not hold), store.ErrPermission (no
// such bucket, access denied, no credentials: each with a message that says
// what to fix) or store.ErrTransient (5xx, 429, timeouts, reset
// connections). The library's error stays reachable with errors.As (for
// example *googleapi.Error).
package gcsstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"example.com/cairn/store"
	"example.com/cairn/store/driver"
)

// DefaultResponseTimeout is how long a request waits for the server to
// start answering once it has been sent, when Options.ResponseTimeout is 0.
const DefaultResponseTimeout = 30 * time.Second

// Options configure a bucket. A nil *Options means all defaults.
type Options struct {
	// Client, if set, is the storage client to use, and ClientOptions and
	// ResponseTimeout are ignored. Its retries should be off
	// (storage.RetryNever): the store.Bucket retries.
	Client *storage.Client

	// ClientOptions are passed to storage.NewClient, for example
	// option.WithCredentialsFile or option.WithEndpoint.
	ClientOptions []option.ClientOption

	// ResponseTimeout bounds the wait for a response's headers after a
	// request was sent, so that a dropped request fails (transiently, and is
	// retried) instead of hanging; 0 means DefaultResponseTimeout. It does not
	// limit how long a large body takes to transfer.
	ResponseTimeout time.Duration

	// Bucket configures the returned *store.Bucket (retries); nil means
	// defaults.
	Bucket *store.Options
}

// Open returns a bucket rooted at prefix (a slash-separated key prefix,
// possibly empty) in the GCS bucket named bucket. It makes no request: a
// missing bucket or bad credentials show up at the first operation, as
// store.ErrPermission.
func Open(ctx context.Context, bucket, prefix string, opts *Options) (*store.Bucket, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	client := o.Client
	if client == nil {
		var err error
		if client, err = NewClient(ctx, &o); err != nil {
			return nil, fmt.Errorf("gcsstore: open gs://%s: %w", bucket, err)
		}
	}
	return newBucket(client, bucket, prefix, o.Bucket)
}

// NewClient makes the storage client Open uses when Options.Client is nil:
// Application Default Credentials (or none, with STORAGE_EMULATOR_HOST),
// opts.ClientOptions, the response timeout, and the library's retries off.
// Share one client between the buckets of a program.
func NewClient(ctx context.Context, opts *Options) (*storage.Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	timeout := o.ResponseTimeout
	if timeout <= 0 {
		timeout = DefaultResponseTimeout
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.ResponseHeaderTimeout = timeout
	// A run checks many steps' statuses at once; keep their connections.
	base.MaxIdleConnsPerHost = 256
	base.MaxIdleConns = 256

	var rt http.RoundTripper = base
	if os.Getenv("STORAGE_EMULATOR_HOST") == "" {
		// The library would build this transport itself, but without the
		// timeout; wrap the base in the usual authentication instead.
		var err error
		authOpts := append([]option.ClientOption{option.WithScopes(storage.ScopeFullControl)}, o.ClientOptions...)
		if rt, err = htransport.NewTransport(ctx, base, authOpts...); err != nil {
			return nil, fmt.Errorf("%w (set up Application Default Credentials: gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)", err)
		}
	}
	copts := append(append([]option.ClientOption{}, o.ClientOptions...),
		option.WithHTTPClient(&http.Client{Transport: rt}),
		storage.WithJSONReads(),
		storage.WithDisabledClientMetrics())
	client, err := storage.NewClient(ctx, copts...)
	if err != nil {
		return nil, err
	}
	client.SetRetry(storage.WithPolicy(storage.RetryNever))
	return client, nil
}

func newBucket(client *storage.Client, bucket, prefix string, opts *store.Options) (*store.Bucket, error) {
	if bucket == "" {
		return nil, errors.New("gcsstore: empty bucket name")
	}
	// The bucket's root is the whole bucket; store.Bucket.Sub roots it at
	// prefix, so the driver itself never sees the prefix.
	root := "gs://" + bucket
	b, err := store.NewBucket(&gcsBucket{bkt: client.Bucket(bucket), name: bucket}, root, opts).Sub(prefix)
	if err != nil {
		return nil, fmt.Errorf("gcsstore: open %s: %w", root, err)
	}
	return b, nil
}

// URLOpener opens "gs://bucket/prefix" URLs for a store.URLMux. It makes
// one storage client, on first use, and shares it between the buckets it
// opens, so the many step directories a run opens share connections. Use it
// by pointer; the zero value is ready to use. It is safe for concurrent
// use.
type URLOpener struct {
	// Options apply to every URL.
	Options Options

	mu     sync.Mutex // guards client
	client *storage.Client
}

// OpenBucketURL implements store.BucketURLOpener.
func (o *URLOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*store.Bucket, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("gcsstore: open %s: no bucket name (want gs://BUCKET/PREFIX)", u.Redacted())
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("gcsstore: open %s: query parameters are not supported", u.Redacted())
	}
	client := o.Options.Client
	if client == nil {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.client == nil {
			c, err := NewClient(ctx, &o.Options)
			if err != nil {
				return nil, fmt.Errorf("gcsstore: open %s: %w", u.Redacted(), err)
			}
			o.client = c
		}
		client = o.client
	}
	return newBucket(client, u.Host, u.Path, o.Options.Bucket)
}

// gcsBucket is the driver.Bucket of a whole GCS bucket.
type gcsBucket struct {
	bkt  *storage.BucketHandle
	name string
}

var _ driver.Bucket = (*gcsBucket)(nil)

var (
	errBadCondition = errors.New("unknown condition kind")
	crc32c          = crc32.MakeTable(crc32.Castagnoli)
)

// preconditionError is a condition that failed without asking the server
// (a version that is not a generation), or a 404 that means the condition
// failed.
type preconditionError struct{ err error }

func (e *preconditionError) Error() string { return "precondition failed: " + e.err.Error() }
func (e *preconditionError) Unwrap() error { return e.err }

func version(gen int64) driver.Version { return driver.Version(strconv.FormatInt(gen, 10)) }

// generation parses a version; a version that is no generation matches no
// object.
func generation(v driver.Version) (int64, error) {
	g, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil || g <= 0 {
		return 0, &preconditionError{fmt.Errorf("no object has version %q", v)}
	}
	return g, nil
}

func (b *gcsBucket) Read(ctx context.Context, key string) ([]byte, driver.Version, error) {
	return b.read(ctx, key, -1)
}

// ReadLimit implements driver.LimitReader: an object whose size is more
// than max is refused before its content is read.
func (b *gcsBucket) ReadLimit(ctx context.Context, key string, max int64) ([]byte, driver.Version, error) {
	return b.read(ctx, key, max)
}

// read reads key whole, or, if max >= 0, only if it has at most max bytes.
func (b *gcsBucket) read(ctx context.Context, key string, max int64) ([]byte, driver.Version, error) {
	r, err := b.bkt.Object(key).NewReader(ctx)
	if err != nil {
		return nil, "", b.explain(err)
	}
	defer r.Close()
	var body io.Reader = r
	if max >= 0 {
		if r.Attrs.Size > max {
			return nil, "", &driver.TooLargeError{Size: r.Attrs.Size, Max: max}
		}
		body = io.LimitReader(r, max+1)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, "", err
	}
	if max >= 0 && int64(len(data)) > max {
		return nil, "", &driver.TooLargeError{Size: int64(len(data)), Max: max}
	}
	return data, version(r.Attrs.Generation), nil
}

func (b *gcsBucket) Stat(ctx context.Context, key string) (driver.Attributes, error) {
	a, err := b.bkt.Object(key).Attrs(ctx)
	if err != nil {
		return driver.Attributes{}, b.explain(err)
	}
	return driver.Attributes{Size: a.Size, Version: version(a.Generation), ModTime: a.Updated.UnixNano()}, nil
}

func (b *gcsBucket) Write(ctx context.Context, key string, data []byte, cond driver.Condition) (driver.Version, error) {
	obj := b.bkt.Object(key)
	switch cond.Kind {
	case driver.Always:
	case driver.IfAbsent:
		obj = obj.If(storage.Conditions{DoesNotExist: true})
	case driver.IfVersion:
		g, err := generation(cond.Version)
		if err != nil {
			return "", err
		}
		obj = obj.If(storage.Conditions{GenerationMatch: g})
	default:
		return "", fmt.Errorf("%w %d", errBadCondition, cond.Kind)
	}
	// The writer's context ends the upload; cancel it if Write returns
	// early, so no goroutine is left behind.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.NewWriter(wctx)
	w.ChunkSize = 0 // one request, no resumable session
	w.CRC32C = crc32.Checksum(data, crc32c)
	w.SendCRC32C = true // GCS rejects a body damaged on the way
	if _, err := w.Write(data); err != nil {
		w.Close()
		return "", b.writeError(cond, err)
	}
	if err := w.Close(); err != nil {
		return "", b.writeError(cond, err)
	}
	return version(w.Attrs().Generation), nil
}

func (b *gcsBucket) writeError(cond driver.Condition, err error) error {
	if isNotFound(err) {
		if cond.Kind == driver.IfVersion {
			return &preconditionError{err} // no object, so not that generation
		}
		// An upload creates the object: only the bucket can be missing.
		return &permissionHint{hint: b.noBucket(), err: err}
	}
	return b.explain(err)
}

func (b *gcsBucket) noBucket() string {
	return fmt.Sprintf("bucket %q does not exist: create it, or fix the bucket name", b.name)
}

func (b *gcsBucket) Delete(ctx context.Context, key string, cond driver.Condition) error {
	obj := b.bkt.Object(key)
	switch cond.Kind {
	case driver.Always:
	case driver.IfVersion:
		g, err := generation(cond.Version)
		if err != nil {
			return err
		}
		obj = obj.If(storage.Conditions{GenerationMatch: g})
	default:
		return fmt.Errorf("%w %d for a delete", errBadCondition, cond.Kind)
	}
	err := obj.Delete(ctx)
	if err != nil && isNotFound(err) {
		if cond.Kind == driver.IfVersion {
			return &preconditionError{err}
		}
		return nil
	}
	return b.explain(err)
}

func (b *gcsBucket) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		q := &storage.Query{Prefix: prefix}
		if err := q.SetAttrSelection([]string{"Name"}); err != nil {
			yield("", err)
			return
		}
		it := b.bkt.Objects(ctx, q)
		for {
			a, err := it.Next()
			if errors.Is(err, iterator.Done) {
				return
			}
			if err != nil {
				yield("", b.explain(err))
				return
			}
			// GCS lists names in lexicographic byte order, Go's string order.
			if strings.HasSuffix(a.Name, "/") {
				continue // a "folder" placeholder made by the console or another tool
			}
			if !yield(a.Name, nil) {
				return
			}
		}
	}
}

// Close does nothing: the client may be shared with other buckets.
func (b *gcsBucket) Close() error { return nil }

func httpStatus(err error) int {
	if ge, ok := errors.AsType[*googleapi.Error](err); ok {
		return ge.Code
	}
	return 0
}

func isNotFound(err error) bool {
	return errors.Is(err, storage.ErrObjectNotExist) ||
		httpStatus(err) == http.StatusNotFound && !errors.Is(err, storage.ErrBucketNotExist)
}

// permissionHint explains the permanent errors a user can fix.
type permissionHint struct {
	hint string
	err  error
}

func (e *permissionHint) Error() string { return e.hint + ": " + e.err.Error() }
func (e *permissionHint) Unwrap() error { return e.err }

// explain adds what to fix to the errors that need the user to act; others
// are returned as they are.
func (b *gcsBucket) explain(err error) error {
	if err == nil {
		return nil
	}
	var hint string
	status := httpStatus(err)
	msg := err.Error()
	switch {
	case errors.Is(err, storage.ErrBucketNotExist) || status == http.StatusNotFound && strings.Contains(msg, "bucket does not exist") ||
		errors.Is(err, storage.ErrObjectNotExist) && strings.Contains(msg, "bucket does not exist"):
		// GCS says "The specified bucket does not exist." in the body of
		// the 404; the library reports a 404 on a read as a missing object.
		hint = b.noBucket()
	case status == http.StatusUnauthorized:
		hint = "GCS rejected the credentials: refresh them (gcloud auth application-default login) or fix GOOGLE_APPLICATION_CREDENTIALS"
	case status == http.StatusForbidden:
		hint = fmt.Sprintf("access to bucket %q denied: grant these credentials read and write access to it (roles/storage.objectAdmin)", b.name)
	case strings.Contains(msg, "could not find default credentials"):
		hint = "no Google credentials: run gcloud auth application-default login, or set GOOGLE_APPLICATION_CREDENTIALS"
	default:
		return err
	}
	return &permissionHint{hint: hint, err: err}
}

// ErrorCode classifies errors of this driver.
func (b *gcsBucket) ErrorCode(err error) driver.Code {
	if _, ok := errors.AsType[*preconditionError](err); ok {
		return driver.Precondition
	}
	if _, ok := errors.AsType[*driver.TooLargeError](err); ok {
		return driver.TooLarge
	}
	if _, ok := errors.AsType[*permissionHint](err); ok {
		return driver.Permission
	}
	switch {
	case errors.Is(err, context.Canceled):
		return driver.Unknown
	case errors.Is(err, storage.ErrObjectNotExist):
		return driver.NotExist
	case errors.Is(err, storage.ErrBucketNotExist):
		return driver.Permission
	}
	switch status := httpStatus(err); {
	case status == http.StatusPreconditionFailed:
		return driver.Precondition
	case status == http.StatusNotFound:
		return driver.NotExist
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return driver.Permission
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return driver.Transient
	case status != 0:
		return driver.Unknown
	}
	// No response: the request failed on the way (refused or reset
	// connection, timeout, truncated body).
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return driver.Transient
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return driver.Transient
	}
	if strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "server closed") {
		return driver.Transient
	}
	return driver.Unknown
}
