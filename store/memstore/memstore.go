// Package memstore provides an in-memory storage backend for tests and dry
// runs.
//
// A [Namespace] is one shared object space held in memory. Buckets made by
// [Namespace.Bucket] (or opened from "mem://" URLs through the Namespace's
// [Namespace.OpenBucketURL]) are views of it rooted at a key prefix; every
// bucket of a namespace sees the writes of the others. Nothing is shared
// between namespaces and nothing outlives the process.
//
// Memstore passes the same conformance suite (package storetest) as the
// disk backend, including its contention cases: conditional writes are
// applied under one mutex per namespace, so exactly one of any number of
// racing writers wins.
//
// # Versions
//
// Every successful write takes the next value of a per-namespace counter as
// its version. Versions are therefore unique for the life of the namespace,
// even when identical bytes are written again (no ABA).
//
// # Fault injection
//
// [Namespace.SetFaults] makes a namespace fail or slow down operations, per
// instance: fail the next N conditional writes with a transient error, add
// latency to every operation, call a hook before every operation that may
// return an error of its choice, or one after every applied write that may
// replace its success by an error (a lost answer). See [Faults]. A *store.Bucket retries
// transient errors (see store.RetryPolicy), so an injected transient error
// reaches the caller only when the bucket's retries are exhausted; use
// [store.Bucket.WithOptions] with RetryPolicy{MaxAttempts: 1} to see every
// one.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"example.com/cairn/store"
	"example.com/cairn/store/driver"
)

// ErrInjectedTransient is the error injected by [Faults.FailConditional].
// Hooks ([Faults.BeforeOp]) may return it, or wrap it, to inject a transient
// failure: a *store.Bucket retries it, and once it gives up the error
// satisfies errors.Is(err, store.ErrTransient).
var ErrInjectedTransient = errors.New("memstore: injected transient error")

// Errors the driver returns; classified by ErrorCode.
var (
	errNotExist = errors.New("object does not exist")
	// Precondition failures.
	errExists  = errors.New("object exists")
	errAbsent  = errors.New("object does not exist, want a version")
	errVersion = errors.New("version does not match")
)

// Faults configures the failures a [Namespace] injects. The zero value
// injects nothing.
type Faults struct {
	// FailConditional is the number of upcoming conditional operations (a
	// write with IfAbsent or IfVersion, or a delete with IfVersion) that fail
	// without being applied. Each failure consumes one; the error satisfies
	// errors.Is(err, ErrInjectedTransient), and errors.Is(err,
	// store.ErrTransient) through a *store.Bucket, which retries it (each
	// retry consumes another). Zero fails none.
	FailConditional int

	// Latency is added at the start of every operation. If the operation's
	// context is done first, the operation returns the context's error and
	// has no effect. Zero adds none.
	Latency time.Duration

	// BeforeOp, if non-nil, is called before every operation (every attempt,
	// when a *store.Bucket retries), after Latency
	// and before FailConditional is consulted, with the operation name
	// ("read", "stat", "write", "delete" or "list") and the key within the
	// namespace (for "list", the key prefix). If it returns an error the
	// operation has no effect and returns that error. Return
	// ErrInjectedTransient (or an error wrapping it) for a transient failure,
	// or wrap store.ErrNotExist, store.ErrPrecondition or store.ErrPermission
	// to inject those outcomes; anything else is an unclassified error.
	//
	// BeforeOp is called without any lock held, possibly from many goroutines
	// at once; it may itself operate on the namespace, for example to make
	// another writer win a race deterministically.
	BeforeOp func(op, key string) error

	// AfterWrite, if non-nil, is called after every write and delete that
	// was applied (the object changed), with the operation name ("write" or
	// "delete") and the key within the namespace. If it returns an error,
	// the operation keeps its effect but returns that error instead of
	// succeeding: the request reached the store and its answer was lost,
	// which is the ambiguous failure a retried conditional write must
	// resolve (see package store). Return ErrInjectedTransient (or wrap it)
	// for a transient failure. It is called without any lock held.
	AfterWrite func(op, key string) error
}

// Namespace is an in-memory object space. The zero value is not usable; call
// [New]. A Namespace is safe for concurrent use by multiple goroutines.
type Namespace struct {
	// mu guards the fields below.
	mu      sync.Mutex
	objects map[string]object
	last    uint64 // the version of the most recent write
	faults  Faults
	failN   int // remaining FailConditional failures
}

type object struct {
	data    []byte
	version uint64
	modTime int64 // Unix nanoseconds
}

// New returns an empty namespace with no faults.
func New() *Namespace {
	return &Namespace{objects: make(map[string]object)}
}

// SetFaults replaces the namespace's fault configuration, including the
// remaining count of FailConditional failures. Operations already past their
// fault checks are not affected. SetFaults(Faults{}) turns injection off.
func (ns *Namespace) SetFaults(f Faults) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.faults = f
	ns.failN = f.FailConditional
}

// Bucket returns a bucket rooted at the slash-separated key prefix root
// within the namespace; "" is the whole namespace. Leading and trailing
// slashes are ignored. The bucket's URL is "mem://" + root. Closing the
// bucket does not affect the namespace or its other buckets.
//
// Bucket panics if root, once trimmed of slashes, is neither empty nor a
// valid key (see store.ValidateKey): the root is fixed by the program, so an
// invalid one is a programming error. Use [Namespace.OpenBucketURL] for roots
// that come from input.
func (ns *Namespace) Bucket(root string) *store.Bucket {
	b, err := ns.bucket(root)
	if err != nil {
		panic(err)
	}
	return b
}

func (ns *Namespace) bucket(root string) (*store.Bucket, error) {
	root = strings.Trim(root, "/")
	prefix := ""
	if root != "" {
		if err := store.ValidateKey(root); err != nil {
			return nil, fmt.Errorf("memstore: root: %w", err)
		}
		prefix = root + "/"
	}
	return store.NewBucket(&bucket{ns: ns, prefix: prefix}, "mem://"+root, nil), nil
}

// OpenBucketURL implements store.BucketURLOpener for URLs of the form
// "mem://host/path": the bucket is rooted at host + path, trimmed of slashes,
// within ns ("mem://" is the whole namespace). Register ns under the "mem"
// scheme of a store.URLMux. It fails if the URL has query parameters or the
// root is not a valid key; the error then satisfies errors.Is(err,
// store.ErrInvalidKey) for an invalid root.
func (ns *Namespace) OpenBucketURL(_ context.Context, u *url.URL) (*store.Bucket, error) {
	if u.RawQuery != "" {
		return nil, fmt.Errorf("memstore: open %s: query parameters are not supported", u.Redacted())
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("memstore: open %s: want mem://host/path", u.Redacted())
	}
	b, err := ns.bucket(u.Host + u.Path)
	if err != nil {
		return nil, fmt.Errorf("memstore: open %s: %w", u.Redacted(), err)
	}
	return b, nil
}

// before applies the configured faults for an operation on the namespace
// key k. conditional says whether FailConditional applies.
func (ns *Namespace) before(ctx context.Context, op, k string, conditional bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ns.mu.Lock()
	f := ns.faults
	ns.mu.Unlock()
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if f.BeforeOp != nil {
		if err := f.BeforeOp(op, k); err != nil {
			return err
		}
	}
	if conditional {
		ns.mu.Lock()
		fail := ns.failN > 0
		if fail {
			ns.failN--
		}
		ns.mu.Unlock()
		if fail {
			return fmt.Errorf("%s %q: %w", op, k, ErrInjectedTransient)
		}
	}
	return nil
}

// bucket is the driver.Bucket of a view of a Namespace.
type bucket struct {
	ns     *Namespace
	prefix string // "" or the root followed by "/"
}

var _ driver.Bucket = (*bucket)(nil)

func (b *bucket) Read(ctx context.Context, key string) ([]byte, driver.Version, error) {
	k := b.prefix + key
	if err := b.ns.before(ctx, "read", k, false); err != nil {
		return nil, "", err
	}
	b.ns.mu.Lock()
	o, ok := b.ns.objects[k]
	b.ns.mu.Unlock()
	if !ok {
		return nil, "", errNotExist
	}
	// Stored slices are never modified after a write, so copying outside the
	// lock is safe; the copy keeps callers from aliasing the stored bytes.
	return slices.Clone(o.data), formatVersion(o.version), nil
}

func (b *bucket) Stat(ctx context.Context, key string) (driver.Attributes, error) {
	k := b.prefix + key
	if err := b.ns.before(ctx, "stat", k, false); err != nil {
		return driver.Attributes{}, err
	}
	b.ns.mu.Lock()
	o, ok := b.ns.objects[k]
	b.ns.mu.Unlock()
	if !ok {
		return driver.Attributes{}, errNotExist
	}
	return driver.Attributes{
		Size:    int64(len(o.data)),
		Version: formatVersion(o.version),
		ModTime: o.modTime,
	}, nil
}

func (b *bucket) Write(ctx context.Context, key string, data []byte, cond driver.Condition) (driver.Version, error) {
	if cond.Kind != driver.Always && cond.Kind != driver.IfAbsent && cond.Kind != driver.IfVersion {
		return "", fmt.Errorf("unknown condition kind %d", cond.Kind)
	}
	k := b.prefix + key
	if err := b.ns.before(ctx, "write", k, cond.Kind != driver.Always); err != nil {
		return "", err
	}
	// Copy before taking the lock; the caller may reuse data after we return.
	// Clone of an empty slice may be nil, which is fine: both mean "empty".
	data = slices.Clone(data)

	b.ns.mu.Lock()
	if err := b.ns.check(k, cond); err != nil {
		b.ns.mu.Unlock()
		return "", err
	}
	b.ns.last++
	v := b.ns.last
	b.ns.objects[k] = object{data: data, version: v, modTime: time.Now().UnixNano()}
	after := b.ns.faults.AfterWrite
	b.ns.mu.Unlock()
	if after != nil {
		if err := after("write", k); err != nil {
			return "", err
		}
	}
	return formatVersion(v), nil
}

func (b *bucket) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if cond.Kind != driver.Always && cond.Kind != driver.IfVersion { // IfAbsent too: store.Bucket rejects it first
		return fmt.Errorf("unknown condition kind %d", cond.Kind)
	}
	k := b.prefix + key
	if err := b.ns.before(ctx, "delete", k, cond.Kind != driver.Always); err != nil {
		return err
	}
	b.ns.mu.Lock()
	if err := b.ns.check(k, cond); err != nil {
		b.ns.mu.Unlock()
		return err
	}
	_, existed := b.ns.objects[k]
	delete(b.ns.objects, k)
	after := b.ns.faults.AfterWrite
	b.ns.mu.Unlock()
	if after != nil && existed {
		return after("delete", k)
	}
	return nil
}

// check reports whether cond holds for the namespace key k. ns.mu must be
// held.
func (ns *Namespace) check(k string, cond driver.Condition) error {
	o, exists := ns.objects[k]
	switch cond.Kind {
	case driver.IfAbsent:
		if exists {
			return errExists
		}
	case driver.IfVersion:
		if !exists {
			return errAbsent
		}
		if formatVersion(o.version) != cond.Version {
			return fmt.Errorf("%w: have %s, want %s", errVersion, formatVersion(o.version), cond.Version)
		}
	}
	return nil
}

func (b *bucket) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		p := b.prefix + prefix
		if err := b.ns.before(ctx, "list", p, false); err != nil {
			yield("", err)
			return
		}
		// Snapshot the matching keys so that yield runs without the lock: the
		// caller may operate on the namespace while iterating.
		b.ns.mu.Lock()
		var keys []string
		for k := range b.ns.objects {
			if strings.HasPrefix(k, p) {
				keys = append(keys, k[len(b.prefix):])
			}
		}
		b.ns.mu.Unlock()
		slices.Sort(keys)
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				yield("", err)
				return
			}
			if !yield(k, nil) {
				return
			}
		}
	}
}

func (b *bucket) ErrorCode(err error) driver.Code {
	switch {
	case errors.Is(err, ErrInjectedTransient), errors.Is(err, store.ErrTransient):
		return driver.Transient
	case errors.Is(err, errExists), errors.Is(err, errAbsent), errors.Is(err, errVersion),
		errors.Is(err, store.ErrPrecondition):
		return driver.Precondition
	case errors.Is(err, errNotExist), errors.Is(err, store.ErrNotExist):
		return driver.NotExist
	case errors.Is(err, store.ErrPermission):
		return driver.Permission
	}
	return driver.Unknown
}

// Close does nothing: the namespace, not the bucket, holds the objects.
func (b *bucket) Close() error { return nil }

func formatVersion(n uint64) driver.Version {
	return driver.Version(strconv.FormatUint(n, 10))
}
