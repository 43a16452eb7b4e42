// Package store provides portable access to the shared storage under a
// pipeline prefix: a local directory, an in-memory namespace, and (through
// further backends) object stores.
//
// A [Bucket] is a view of a backend rooted at a key prefix. Every operation
// takes a slash-separated key relative to that root. Conditional writes
// ([Bucket.WriteIf]) are atomic with respect to every other writer, in this
// process or another; the lease protocol of package lease depends on it.
//
// # Errors
//
// Errors returned by a Bucket wrap the driver's error once and satisfy
// errors.Is with one of [ErrNotExist], [ErrPrecondition], [ErrTransient],
// [ErrPermission], [ErrNotRegular] or [ErrTooLarge] when the driver can
// classify them. The driver's own error stays reachable with errors.As.
// Writes refused by a view made with [Bucket.WithReserved] satisfy
// [ErrReserved].
//
// # Retries
//
// Operations that fail with a transient error (a 5xx or 429 answer, a
// timeout, a reset connection: whatever the driver classifies as
// [driver.Transient]) are retried with exponential backoff and jitter
// under an overall deadline, as [RetryPolicy] says. Permanent errors (no
// such bucket, permission denied, bad credentials, a failed precondition)
// are returned at once.
//
// A retried conditional write is ambiguous: the attempt that failed may
// have been applied, with only its answer lost, so that the retry fails its
// precondition against the very object it wrote. [Bucket.WriteIf] resolves
// this by reading the object back: if it holds exactly the bytes being
// written, the write is reported as successful, with the version read.
// This is sound when no two writers ever write identical bytes under a
// condition, which holds for cairn's lease records (worker id and a
// microsecond timestamp) and info records; callers whose conditional writes
// can repeat another writer's bytes must not rely on it. See
// [Bucket.WriteIf] and [Bucket.DeleteIf] for the exact outcomes.
//
// # Streaming
//
// [Bucket.NewWriter] and [Bucket.NewReader] (and [Bucket.NewRangeReader])
// stream objects too large to hold in memory; [Bucket.UploadDir] and
// [Bucket.DownloadDir] copy a local directory tree to or from a key prefix,
// several files at once. A streamed object appears only when its writer's
// Close succeeds; a cancelled or failed write leaves nothing behind. How
// each backend streams, and what a transient failure repeats (a part, a
// chunk, never the whole object where the SDK allows it), is described at
// [Bucket.NewWriter].
//
// # URLs
//
// [URLMux] opens buckets from URLs ("file:///data/x", "/data/x", "mem://ns/x",
// "gs://bucket/x", "s3://bucket/x") through openers the caller registers
// explicitly; there is no default mux.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"unicode/utf8"

	"example.com/cairn/store/driver"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotExist: the key does not exist.
	ErrNotExist = errors.New("object does not exist")
	// ErrPrecondition: the condition of a conditional write or delete did not hold.
	ErrPrecondition = errors.New("precondition failed")
	// ErrTransient: the backend failed in a way that may succeed if retried.
	ErrTransient = errors.New("transient storage error")
	// ErrPermission: access denied or the bucket does not exist.
	ErrPermission = errors.New("storage permission denied")
	// ErrInvalidKey: the key is not a valid relative slash-separated path.
	ErrInvalidKey = errors.New("invalid key")
	// ErrNotRegular: the key names something that is not an object — on a
	// file system a directory, a symbolic link, a FIFO, a socket or a
	// device — so it can be neither read nor replaced. It is not
	// ErrNotExist: a control file in that state is corrupt, not absent.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: a read made with [Bucket.ReadLimit] found an object
	// larger than its limit.
	ErrTooLarge = errors.New("object too large")
	// ErrReserved: a write or delete through a view made with
	// [Bucket.WithReserved] named a reserved key.
	ErrReserved = errors.New("reserved key")
)

// Version re-exports driver.Version: an opaque revision identifier.
type Version = driver.Version

// Condition re-exports driver.Condition.
type Condition = driver.Condition

// Attributes re-exports driver.Attributes.
type Attributes = driver.Attributes

// IfAbsent is the condition "only if the key does not exist".
func IfAbsent() Condition { return Condition{Kind: driver.IfAbsent} }

// IfVersion is the condition "only if the key currently has version v".
func IfVersion(v Version) Condition { return Condition{Kind: driver.IfVersion, Version: v} }

// Bucket is a portable handle on a storage backend rooted at a key prefix.
// It is safe for concurrent use. Buckets returned by [Bucket.Sub] and
// [Bucket.WithOptions] share the driver of their parent; closing any of them
// closes the shared driver.
type Bucket struct {
	drv    driver.Bucket
	prefix string // "" or a key prefix ending in "/"
	url    string // for error messages and String
	opts   Options

	// reserved, if not nil, names the keys (relative to reservedAt) that
	// this view refuses to write or delete and hides from List.
	reserved   func(key string) bool
	reservedAt string // the prefix of the view WithReserved was called on
	reservedBy string // who owns the reserved keys, for messages
}

// NewBucket wraps a driver; backends call it from their constructors. url
// names the root for messages (for example "/data/prefix" or "mem://test");
// it may be empty. A nil opts means all defaults.
func NewBucket(drv driver.Bucket, url string, opts *Options) *Bucket {
	b := &Bucket{drv: drv, url: url}
	if opts != nil {
		b.opts = *opts
	}
	return b
}

// WithOptions returns a view of b, with the same root and driver, that uses
// opts instead of b's options. A nil opts means all defaults.
func (b *Bucket) WithOptions(opts *Options) *Bucket {
	c := *b
	c.opts = Options{}
	if opts != nil {
		c.opts = *opts
	}
	return &c
}

// String returns the URL of the bucket's root.
func (b *Bucket) String() string { return b.url }

// Sub returns a view of b rooted at the relative path dir. An empty dir
// returns b itself.
func (b *Bucket) Sub(dir string) (*Bucket, error) {
	dir = strings.Trim(dir, "/")
	if dir == "" {
		return b, nil
	}
	if err := ValidateKey(dir); err != nil {
		return nil, fmt.Errorf("store: sub %q of %s: %w", dir, b.url, err)
	}
	c := *b
	c.prefix, c.url = b.prefix+dir+"/", joinURL(b.url, dir)
	return &c, nil
}

// WithReserved returns a view of b, with the same root and driver, that
// refuses to write or delete the keys for which reserved returns true, and
// that List does not yield. reserved is called with keys relative to b
// (also when the view is narrowed with Sub, so a reserved name stays
// reserved wherever it is reached from); owner names who the reserved keys
// belong to, for error messages. Refused writes and deletes fail with an
// error satisfying errors.Is(err, ErrReserved) and change nothing. Reads and
// Stat are not restricted.
//
// It is how a runner hands user code a bucket on a directory whose control
// files it keeps for itself. A view cannot be unreserved: calling
// WithReserved on it adds a further predicate.
func (b *Bucket) WithReserved(owner string, reserved func(key string) bool) *Bucket {
	c := *b
	c.reservedAt, c.reservedBy = b.prefix, owner
	if prev, prevAt := b.reserved, b.reservedAt; prev != nil {
		at := b.prefix
		c.reserved = func(key string) bool {
			return reserved(key) || prev(strings.TrimPrefix(at+key, prevAt))
		}
	} else {
		c.reserved = reserved
	}
	return &c
}

// isReserved reports whether the full driver key k is reserved in b.
func (b *Bucket) isReserved(k string) bool {
	if b.reserved == nil {
		return false
	}
	rel, ok := strings.CutPrefix(k, b.reservedAt)
	return ok && b.reserved(rel)
}

// checkReserved returns the error of a write or delete of the full driver
// key k (key relative to b) if k is reserved.
func (b *Bucket) checkReserved(op, k, key string) error {
	if !b.isReserved(k) {
		return nil
	}
	return fmt.Errorf("store: %s %s: %w: the file belongs to %s", op, b.URL(key), ErrReserved, b.reservedBy)
}

// URL returns the URL (or local path) of key under b.
func (b *Bucket) URL(key string) string { return joinURL(b.url, key) }

func joinURL(base, rel string) string {
	if base == "" {
		return rel
	}
	return strings.TrimSuffix(base, "/") + "/" + rel
}

// ValidateKey reports whether key is a valid relative slash-separated path:
// non-empty, valid UTF-8, no NUL or backslash, no leading or trailing slash,
// and no empty, "." or ".." segments. The error satisfies
// errors.Is(err, ErrInvalidKey).
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w %q: not valid UTF-8", ErrInvalidKey, key)
	case strings.ContainsAny(key, "\x00\\"):
		return fmt.Errorf("%w %q: contains NUL or backslash", ErrInvalidKey, key)
	case strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/"):
		return fmt.Errorf("%w %q: leading or trailing slash", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w %q: empty, \".\" or \"..\" path segment", ErrInvalidKey, key)
		}
	}
	return nil
}

func (b *Bucket) key(op, key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("store: %s %s: %w", op, b.URL(key), err)
	}
	return b.prefix + key, nil
}

// wrap classifies a driver error once and adds the operation and location.
func (b *Bucket) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch b.drv.ErrorCode(err) {
	case driver.NotExist:
		kind = ErrNotExist
	case driver.Precondition:
		kind = ErrPrecondition
	case driver.Transient:
		kind = ErrTransient
	case driver.Permission:
		kind = ErrPermission
	case driver.NotRegular:
		kind = ErrNotRegular
	case driver.TooLarge:
		kind = ErrTooLarge
	}
	if kind == nil {
		return fmt.Errorf("store: %s %s: %w", op, b.URL(key), err)
	}
	return fmt.Errorf("store: %s %s: %w: %w", op, b.URL(key), kind, err)
}

// Read returns the content and version of key, read in one request so that
// the version is the one of the bytes returned. A missing key gives an error
// satisfying errors.Is(err, ErrNotExist). Transient failures are retried.
func (b *Bucket) Read(ctx context.Context, key string) ([]byte, Version, error) {
	k, err := b.key("read", key)
	if err != nil {
		return nil, "", err
	}
	var (
		data []byte
		v    Version
	)
	_, err = b.retry(ctx, "read", key, func() error {
		var err error
		data, v, err = b.drv.Read(ctx, k)
		return b.wrap("read", key, err)
	})
	if err != nil {
		return nil, "", err
	}
	return data, v, nil
}

// ReadLimit is [Bucket.Read] for an object expected to be small, such as
// a control file: if the object is larger than max bytes, it fails with an
// error satisfying errors.Is(err, ErrTooLarge). Drivers that implement
// [driver.LimitReader] (filestore) read at most max+1 bytes; others read the
// whole object first.
func (b *Bucket) ReadLimit(ctx context.Context, key string, max int64) ([]byte, Version, error) {
	k, err := b.key("read", key)
	if err != nil {
		return nil, "", err
	}
	lr, _ := b.drv.(driver.LimitReader)
	var (
		data []byte
		v    Version
	)
	_, err = b.retry(ctx, "read", key, func() error {
		var err error
		if lr != nil {
			data, v, err = lr.ReadLimit(ctx, k, max)
		} else {
			data, v, err = b.drv.Read(ctx, k)
		}
		return b.wrap("read", key, err)
	})
	if err != nil {
		return nil, "", err
	}
	if int64(len(data)) > max {
		return nil, "", fmt.Errorf("store: read %s: %w: more than %d bytes", b.URL(key), ErrTooLarge, max)
	}
	return data, v, nil
}

// Stat returns the attributes of key; ErrNotExist if it is missing.
// Transient failures are retried.
func (b *Bucket) Stat(ctx context.Context, key string) (Attributes, error) {
	k, err := b.key("stat", key)
	if err != nil {
		return Attributes{}, err
	}
	var a Attributes
	_, err = b.retry(ctx, "stat", key, func() error {
		var err error
		a, err = b.drv.Stat(ctx, k)
		return b.wrap("stat", key, err)
	})
	return a, err
}

// Exists reports whether key exists.
func (b *Bucket) Exists(ctx context.Context, key string) (bool, error) {
	_, err := b.Stat(ctx, key)
	if errors.Is(err, ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Write stores data at key unconditionally and atomically: readers see the
// old or the new content, never a mix. Transient failures are retried (an
// unconditional write is idempotent).
func (b *Bucket) Write(ctx context.Context, key string, data []byte) (Version, error) {
	return b.WriteIf(ctx, key, data, Condition{})
}

// WriteIf stores data at key only if cond holds, atomically with respect to
// every other writer. It returns the new version, or:
//   - if cond does not hold, nothing is written and the error satisfies
//     errors.Is(err, ErrPrecondition);
//   - other errors, classified as the package doc says.
//
// Transient failures are retried. If a retry of a conditional write fails
// its precondition after an earlier attempt failed transiently, the earlier
// attempt may have been applied: WriteIf then reads key and, if it holds
// exactly data, reports success with the version read. So a write that was
// applied is never reported as lost while the object still holds it; it is
// reported as ErrPrecondition if another writer replaced it before the
// check, which a conditional writer cannot tell from losing. The check
// assumes no competing writer writes the same bytes (see the package doc).
func (b *Bucket) WriteIf(ctx context.Context, key string, data []byte, cond Condition) (Version, error) {
	k, err := b.key("write", key)
	if err != nil {
		return "", err
	}
	if err := b.checkReserved("write", k, key); err != nil {
		return "", err
	}
	var v Version
	retried, err := b.retry(ctx, "write", key, func() error {
		var err error
		v, err = b.drv.Write(ctx, k, data, cond)
		return b.wrap("write", key, err)
	})
	if retried && cond.Kind != driver.Always && errors.Is(err, ErrPrecondition) {
		got, gotV, rerr := b.Read(ctx, key)
		switch {
		case rerr == nil && bytes.Equal(got, data):
			return gotV, nil // an earlier attempt was applied
		case rerr != nil && !errors.Is(rerr, ErrNotExist):
			return "", fmt.Errorf("%w (after a retry; whether an earlier attempt was applied is unknown: %v)", err, rerr)
		}
	}
	if err != nil {
		return "", err
	}
	return v, nil
}

// Delete removes key; deleting a missing key is not an error. Transient
// failures are retried.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	return b.DeleteIf(ctx, key, Condition{})
}

// DeleteIf removes key only if cond holds (a Condition made by IfVersion);
// otherwise the error satisfies errors.Is(err, ErrPrecondition).
//
// Transient failures are retried. If a retry fails its precondition after
// an earlier attempt failed transiently and key no longer exists, the
// earlier attempt may have deleted it, and DeleteIf reports success: the
// version it was asked to delete is gone either way.
func (b *Bucket) DeleteIf(ctx context.Context, key string, cond Condition) error {
	if cond.Kind == driver.IfAbsent {
		return fmt.Errorf("store: delete %s: IfAbsent is not a valid delete condition", b.URL(key))
	}
	k, err := b.key("delete", key)
	if err != nil {
		return err
	}
	if err := b.checkReserved("delete", k, key); err != nil {
		return err
	}
	retried, err := b.retry(ctx, "delete", key, func() error {
		return b.wrap("delete", key, b.drv.Delete(ctx, k, cond))
	})
	if retried && cond.Kind != driver.Always && errors.Is(err, ErrPrecondition) {
		if _, serr := b.Stat(ctx, key); errors.Is(serr, ErrNotExist) {
			return nil
		}
	}
	return err
}

// List yields the keys under dir (relative to b, "" for all), recursively and
// in lexical order, except the keys reserved by [Bucket.WithReserved]. Yielded keys are relative to b. A transient failure is
// retried by listing again and skipping the keys already yielded.
func (b *Bucket) List(ctx context.Context, dir string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		p := b.prefix
		if dir = strings.Trim(dir, "/"); dir != "" {
			if err := ValidateKey(dir); err != nil {
				yield("", fmt.Errorf("store: list %s: %w", b.URL(dir), err))
				return
			}
			p += dir + "/"
		}
		var (
			last    string // the last key yielded
			yielded bool
			stopped bool // the consumer stopped the iteration
		)
		_, err := b.retry(ctx, "list", dir, func() error {
			for k, err := range b.drv.List(ctx, p) {
				if err != nil {
					return b.wrap("list", dir, err)
				}
				if yielded && k <= last {
					continue // yielded before a retry
				}
				last, yielded = k, true
				if b.isReserved(k) {
					continue
				}
				if !yield(strings.TrimPrefix(k, b.prefix), nil) {
					stopped = true
					return nil
				}
			}
			return nil
		})
		if err != nil && !stopped {
			yield("", err)
		}
	}
}

// Close closes the underlying driver.
func (b *Bucket) Close() error { return b.drv.Close() }
