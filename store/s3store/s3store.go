// Package s3store provides a storage backend on Amazon S3 and S3-compatible
// object stores (Cloudflare R2, MinIO, Ceph, CoreWeave, versitygw...),
// through the official AWS SDK for Go v2.
//
// [Open] returns a *store.Bucket rooted at a key prefix of a bucket;
// [URLOpener] opens "s3://bucket/prefix" URLs for a store.URLMux. The key
// "a/b" of a bucket rooted at "s3://data/runs" is the object "runs/a/b" of
// the bucket "data".
//
// # Conditional writes and versions
//
// An object's version is its ETag, as S3 returns it (with its quotes).
// Create-if-absent is a PUT with "If-None-Match: *"; replace-if-version is
// a PUT with "If-Match: <etag>"; delete-if-version is a HEAD (so that a
// missing key or another version fails at once, whatever the server does
// with a conditional DELETE of a missing key) followed by a DELETE with
// "If-Match: <etag>". S3 applies each atomically: of any number of racing
// writers, exactly one wins, and the others get 412 Precondition Failed
// (store.ErrPrecondition). A 409 ConditionalRequestConflict (two conditional
// requests in flight at once) is transient and retried.
//
// The ETag of an object written in one PUT is the MD5 of its bytes, so
// writing the same bytes again gives the same version (the ABA problem): a
// replace-if-version cannot tell "unchanged" from "changed and changed
// back". Cairn's lease records carry a unique holder and a microsecond
// timestamp, so no two writes of one lease have the same bytes.
//
// Conditional deletes need a server that honours If-Match on DELETE: AWS
// S3 (since 2024), versitygw and SeaweedFS do; some fakes ignore it and
// delete unconditionally. Cairn deletes a lease conditionally only to
// release it; on a server that ignores the condition, a runner that lost
// its lease between its last check and its release could delete its
// successor's lease, letting a third runner start the step while the
// successor still runs it. Use a server that honours it.
//
// # Reads
//
// [store.Bucket.Read] is one GET: the bytes and the ETag come from the same
// response, so the version always belongs to the bytes. (A HEAD for the
// ETag followed by a GET can see two different objects if a writer gets in
// between; Marin's S3 reader had to handle that case.) A server may still
// pair bytes and ETag loosely: versitygw's posix backend reads the ETag
// before it opens the file, so a GET racing a PUT can return the new bytes
// with the previous ETag. That direction is safe for read-modify-write, as
// a conditional write with the previous ETag fails; the opposite one (old
// bytes, new ETag) would not be, and no server tested does it.
//
// # Credentials, endpoints and regions
//
// Credentials come from the SDK's default chain: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), AWS_PROFILE with the
// shared config and credentials files, web identity, SSO, container and EC2
// instance roles. The endpoint is [Options.Endpoint] if set, else the SDK's
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (or endpoint_url in the config
// file), else AWS. The region is [Options.Region], else AWS_REGION or the
// config file, else us-east-1. A custom endpoint is addressed path-style
// (https://endpoint/bucket/key) unless [Options.Addressing] says otherwise,
// since every S3-compatible server accepts that; AWS itself is addressed
// virtual-hosted-style.
//
// With a custom endpoint, request checksums are sent and response
// checksums validated only when the operation requires them: several
// S3-compatible servers reject the SDK's default trailing checksums.
//
// The SDK's own retries are turned off: the *store.Bucket retries transient
// errors (see store.RetryPolicy), so that one policy applies and a retried
// conditional write is resolved (see package store).
//
// # URLs
//
//	s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&addressing=path|virtual]
//
// The query parameters override the corresponding [Options] fields. The
// opener reads the well-known AWS environment variables above through the
// SDK, and nothing else.
//
// # Errors
//
// Errors satisfy errors.Is with store.ErrNotExist (no such key),
// store.ErrPrecondition (a condition did not hold), store.ErrPermission (no
// such bucket, access denied, missing or invalid credentials: each with a
// message that says what to fix) or store.ErrTransient (5xx, 429/SlowDown,
// timeouts, reset connections). The SDK's error stays reachable with
// errors.As (for example smithy.APIError).
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"example.com/cairn/store"
	"example.com/cairn/store/driver"
)

// DefaultResponseTimeout is how long a request waits for the server to
// start answering once it has been sent, when Options.ResponseTimeout is 0.
const DefaultResponseTimeout = 30 * time.Second

// DefaultRegion is the region used when none is configured.
const DefaultRegion = "us-east-1"

// Addressing says how requests name the bucket.
type Addressing int

const (
	// AddressingAuto is path-style with a custom endpoint and
	// virtual-hosted-style with AWS's own endpoints.
	AddressingAuto Addressing = iota
	// AddressingPath puts the bucket in the path: https://endpoint/bucket/key.
	AddressingPath
	// AddressingVirtual puts the bucket in the host name:
	// https://bucket.endpoint/key.
	AddressingVirtual
)

// Options configure a bucket. A nil *Options means all defaults.
type Options struct {
	// Client, if set, is the S3 client to use, and the fields Endpoint,
	// Region, Credentials, Addressing and ResponseTimeout are ignored. Its retryer should
	// not retry (aws.NopRetryer): the store.Bucket does.
	Client *s3.Client

	// Endpoint is the S3 endpoint URL, for example "http://127.0.0.1:7070"
	// or "https://ACCOUNT.r2.cloudflarestorage.com"; "" means the SDK's
	// configuration (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), else AWS.
	Endpoint string

	// Region signs requests; "" means the SDK's configuration (AWS_REGION),
	// else DefaultRegion.
	Region string

	// Credentials, if set, replaces the SDK's default credential chain, for
	// example credentials.NewStaticCredentialsProvider(key, secret, "").
	Credentials aws.CredentialsProvider

	// Addressing chooses path-style or virtual-hosted-style requests; the
	// zero value is AddressingAuto.
	Addressing Addressing

	// ResponseTimeout bounds the wait for a response's headers after a
	// request was sent, so that a dropped request fails (transiently, and is
	// retried) instead of hanging; 0 means DefaultResponseTimeout. It does not
	// limit how long a large body takes to transfer.
	ResponseTimeout time.Duration

	// PartSize is the size of the parts of a streaming write
	// (store.Bucket.NewWriter), which uses a multipart upload; 0 means
	// DefaultPartSize, and sizes under S3's minimum of 5 MiB are raised to
	// it. An object smaller than one part is sent in one PutObject.
	PartSize int64

	// PartConcurrency is the number of parts of one streaming write
	// uploaded at once; 0 means DefaultPartConcurrency. A writer holds at
	// most PartConcurrency+1 part buffers, so its memory is bounded by
	// (PartConcurrency+1)·PartSize whatever the object's size.
	PartConcurrency int

	// Bucket configures the returned *store.Bucket (retries); nil means
	// defaults.
	Bucket *store.Options
}

// Open returns a bucket rooted at prefix (a slash-separated key prefix,
// possibly empty) in the S3 bucket named bucket. It makes no request: a
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
		if client, err = newClient(ctx, o); err != nil {
			return nil, fmt.Errorf("s3store: open s3://%s: %w", bucket, err)
		}
	}
	return newBucket(client, bucket, prefix, o)
}

func newBucket(client *s3.Client, bucket, prefix string, o Options) (*store.Bucket, error) {
	if bucket == "" {
		return nil, errors.New("s3store: empty bucket name")
	}
	// The bucket's root is the whole bucket; store.Bucket.Sub roots it at
	// prefix, so the driver itself never sees the prefix.
	root := "s3://" + bucket
	drv := &s3Bucket{client: client, bucket: bucket, partSize: o.PartSize, partConcurrency: o.PartConcurrency}
	if drv.partSize <= 0 {
		drv.partSize = DefaultPartSize
	}
	drv.partSize = max(drv.partSize, minPartSize)
	if drv.partConcurrency <= 0 {
		drv.partConcurrency = DefaultPartConcurrency
	}
	b, err := store.NewBucket(drv, root, o.Bucket).Sub(prefix)
	if err != nil {
		return nil, fmt.Errorf("s3store: open %s: %w", root, err)
	}
	return b, nil
}

// newClient makes an S3 client from the SDK's default configuration and o.
func newClient(ctx context.Context, o Options) (*s3.Client, error) {
	timeout := o.ResponseTimeout
	if timeout <= 0 {
		timeout = DefaultResponseTimeout
	}
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.ResponseHeaderTimeout = timeout
		// A run checks many steps' statuses at once; keep their connections.
		t.MaxIdleConnsPerHost = 256
		t.MaxIdleConns = 256
	})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(hc),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
	}
	if o.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		custom := so.BaseEndpoint != nil
		switch o.Addressing {
		case AddressingPath:
			so.UsePathStyle = true
		case AddressingVirtual:
			so.UsePathStyle = false
		default:
			so.UsePathStyle = so.UsePathStyle || custom
		}
		if custom {
			so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	}), nil
}

// URLOpener opens "s3://bucket/prefix" URLs (see the package doc) for a
// store.URLMux. It makes one S3 client per endpoint, region and addressing
// and shares it between the buckets it opens, so the many step directories
// a run opens share connections and configuration. Use it by pointer; the
// zero value is ready to use. It is safe for concurrent use.
type URLOpener struct {
	// Options are the defaults for every URL; query parameters override
	// Endpoint, Region and Addressing.
	Options Options

	mu      sync.Mutex // guards clients
	clients map[clientKey]*s3.Client
}

type clientKey struct {
	endpoint, region string
	addressing       Addressing
}

// OpenBucketURL implements store.BucketURLOpener.
func (o *URLOpener) OpenBucketURL(ctx context.Context, u *url.URL) (*store.Bucket, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("s3store: open %s: no bucket name (want s3://BUCKET/PREFIX)", u.Redacted())
	}
	opts := o.Options
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			opts.Endpoint = v
		case "region":
			opts.Region = v
		case "addressing":
			switch v {
			case "path":
				opts.Addressing = AddressingPath
			case "virtual":
				opts.Addressing = AddressingVirtual
			default:
				return nil, fmt.Errorf("s3store: open %s: addressing=%q, want path or virtual", u.Redacted(), v)
			}
		default:
			return nil, fmt.Errorf("s3store: open %s: unknown query parameter %q (want endpoint, region or addressing)", u.Redacted(), k)
		}
	}
	client := opts.Client
	if client == nil {
		key := clientKey{opts.Endpoint, opts.Region, opts.Addressing}
		o.mu.Lock()
		defer o.mu.Unlock()
		if client = o.clients[key]; client == nil {
			var err error
			if client, err = newClient(ctx, opts); err != nil {
				return nil, fmt.Errorf("s3store: open %s: %w", u.Redacted(), err)
			}
			if o.clients == nil {
				o.clients = make(map[clientKey]*s3.Client)
			}
			o.clients[key] = client
		}
	}
	return newBucket(client, u.Host, u.Path, opts)
}

// s3Bucket is the driver.Bucket of a whole S3 bucket.
type s3Bucket struct {
	client          *s3.Client
	bucket          string
	partSize        int64
	partConcurrency int
}

var _ driver.Bucket = (*s3Bucket)(nil)

// Errors made by the driver itself.
var (
	errNoETag       = errors.New("the server returned no ETag")
	errEmptyVersion = errors.New("no object has the empty version")
	errBadCondition = errors.New("unknown condition kind")
)

// preconditionError is a condition that failed without asking the server,
// or a 404 that means the condition failed.
type preconditionError struct{ err error }

func (e *preconditionError) Error() string { return "precondition failed: " + e.err.Error() }
func (e *preconditionError) Unwrap() error { return e.err }

func (b *s3Bucket) Read(ctx context.Context, key string) ([]byte, driver.Version, error) {
	return b.read(ctx, key, -1)
}

// ReadLimit implements driver.LimitReader: an object whose size is more
// than max is refused before its content is read.
func (b *s3Bucket) ReadLimit(ctx context.Context, key string, max int64) ([]byte, driver.Version, error) {
	return b.read(ctx, key, max)
}

// read reads key whole, or, if max >= 0, only if it has at most max bytes.
func (b *s3Bucket) read(ctx context.Context, key string, max int64) ([]byte, driver.Version, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: aws.String(key)})
	if err != nil {
		return nil, "", b.explain(err)
	}
	defer out.Body.Close()
	var body io.Reader = out.Body
	if max >= 0 {
		if n := aws.ToInt64(out.ContentLength); n > max {
			return nil, "", &driver.TooLargeError{Size: n, Max: max}
		}
		body = io.LimitReader(out.Body, max+1)
	}
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, "", err
	}
	if max >= 0 && int64(len(data)) > max {
		return nil, "", &driver.TooLargeError{Size: int64(len(data)), Max: max}
	}
	if out.ETag == nil {
		return nil, "", errNoETag
	}
	return data, driver.Version(*out.ETag), nil
}

func (b *s3Bucket) Stat(ctx context.Context, key string) (driver.Attributes, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: aws.String(key)})
	if err != nil {
		return driver.Attributes{}, b.explain(err)
	}
	if out.ETag == nil {
		return driver.Attributes{}, errNoETag
	}
	a := driver.Attributes{Size: aws.ToInt64(out.ContentLength), Version: driver.Version(*out.ETag)}
	if out.LastModified != nil {
		a.ModTime = out.LastModified.UnixNano()
	}
	return a, nil
}

func (b *s3Bucket) Write(ctx context.Context, key string, data []byte, cond driver.Condition) (driver.Version, error) {
	in := &s3.PutObjectInput{
		Bucket:        &b.bucket,
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	switch cond.Kind {
	case driver.Always:
	case driver.IfAbsent:
		in.IfNoneMatch = aws.String("*")
	case driver.IfVersion:
		if cond.Version == "" {
			return "", &preconditionError{errEmptyVersion}
		}
		in.IfMatch = aws.String(string(cond.Version))
	default:
		return "", fmt.Errorf("%w %d", errBadCondition, cond.Kind)
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		if cond.Kind == driver.IfVersion && isNotFound(err) {
			// If-Match on a missing key is 404 NoSuchKey: the object does not
			// have the version, so the condition failed.
			return "", &preconditionError{err}
		}
		return "", b.explain(err)
	}
	if out.ETag == nil {
		return "", errNoETag
	}
	return driver.Version(*out.ETag), nil
}

func (b *s3Bucket) Delete(ctx context.Context, key string, cond driver.Condition) error {
	in := &s3.DeleteObjectInput{Bucket: &b.bucket, Key: aws.String(key)}
	switch cond.Kind {
	case driver.Always:
	case driver.IfVersion:
		if cond.Version == "" {
			return &preconditionError{errEmptyVersion}
		}
		// Servers differ on a conditional DELETE of a missing key: AWS
		// answers 404, versitygw 204 as for any DELETE. A HEAD first makes
		// "missing" a failed precondition everywhere (and saves the DELETE when
		// the version is already stale). The DELETE stays conditional, so a
		// writer that gets in between still makes it fail; a key deleted in
		// between is reported as deleted by us, which leaves the same state.
		a, err := b.Stat(ctx, key)
		switch {
		case err != nil && isNotFound(err):
			return &preconditionError{err}
		case err != nil:
			return err
		case a.Version != cond.Version:
			return &preconditionError{fmt.Errorf("version is %s, want %s", a.Version, cond.Version)}
		}
		in.IfMatch = aws.String(string(cond.Version))
	default:
		return fmt.Errorf("%w %d for a delete", errBadCondition, cond.Kind)
	}
	_, err := b.client.DeleteObject(ctx, in)
	if err != nil && isNotFound(err) {
		if cond.Kind == driver.IfVersion {
			return &preconditionError{err}
		}
		return nil
	}
	return b.explain(err)
}

func (b *s3Bucket) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{
			Bucket: &b.bucket,
			Prefix: aws.String(prefix),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield("", b.explain(err))
				return
			}
			// S3 lists keys in UTF-8 binary order, which is Go's string order.
			for _, obj := range page.Contents {
				k := aws.ToString(obj.Key)
				if strings.HasSuffix(k, "/") {
					continue // a "directory" marker made by a console or another tool
				}
				if !yield(k, nil) {
					return
				}
			}
		}
	}
}

// Close does nothing: the client may be shared with other buckets, and
// holds nothing but idle connections.
func (b *s3Bucket) Close() error { return nil }

// errorCode returns the S3 error code and HTTP status of err, if it came
// from a response.
func errorCode(err error) (code string, status int) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

func isNotFound(err error) bool {
	code, status := errorCode(err)
	return code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound && code != "NoSuchBucket"
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
func (b *s3Bucket) explain(err error) error {
	if err == nil {
		return nil
	}
	code, status := errorCode(err)
	var hint string
	switch {
	case code == "NoSuchBucket":
		hint = fmt.Sprintf("bucket %q does not exist: create it, or fix the bucket name or the endpoint", b.bucket)
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
		hint = "the S3 server rejected the credentials: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for this endpoint"
	case code == "ExpiredToken" || code == "InvalidToken":
		hint = "the session credentials expired or are invalid: refresh them (AWS_SESSION_TOKEN, aws sso login)"
	case code == "AccessDenied" || code == "AllAccessDisabled" || status == http.StatusForbidden:
		hint = fmt.Sprintf("access to bucket %q denied: grant these credentials read and write access to it", b.bucket)
	case isCredentialsError(err):
		hint = "no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run where an instance role applies"
	default:
		return err
	}
	return &permissionHint{hint: hint, err: err}
}

// isCredentialsError reports whether err says the SDK found no credentials
// (it fails before sending anything).
func isCredentialsError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "failed to retrieve credentials") ||
		strings.Contains(s, "failed to refresh cached credentials") ||
		strings.Contains(s, "no EC2 IMDS role found")
}

// ErrorCode classifies errors of this driver.
func (b *s3Bucket) ErrorCode(err error) driver.Code {
	if _, ok := errors.AsType[*preconditionError](err); ok {
		return driver.Precondition
	}
	if _, ok := errors.AsType[*driver.TooLargeError](err); ok {
		return driver.TooLarge
	}
	if _, ok := errors.AsType[*permissionHint](err); ok {
		return driver.Permission
	}
	if errors.Is(err, context.Canceled) {
		return driver.Unknown
	}
	code, status := errorCode(err)
	switch code {
	case "PreconditionFailed":
		return driver.Precondition
	case "NoSuchKey", "NotFound":
		return driver.NotExist
	case "ConditionalRequestConflict", "SlowDown", "RequestTimeout", "InternalError",
		"ServiceUnavailable", "Throttling", "ThrottlingException", "RequestThrottled",
		"TooManyRequests", "OperationAborted":
		return driver.Transient
	}
	switch {
	case status == http.StatusPreconditionFailed:
		return driver.Precondition
	case status == http.StatusNotFound:
		return driver.NotExist
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return driver.Permission
	case status == http.StatusRequestTimeout || status == http.StatusConflict ||
		status == http.StatusTooManyRequests || status >= 500:
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
