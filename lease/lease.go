// Package lease implements the step lease: a small JSON record on shared
// storage that says which worker is executing a step, refreshed by a
// heartbeat and taken over by another worker once it goes stale.
//
// The record is byte-compatible with Marin's `.executor_status.lock`:
//
//	{"worker_id": "host-123-4f2a.7", "timestamp": 1740000000.123456}
//
// where timestamp is the last refresh in Unix seconds. A lease is stale when
// now - timestamp > StaleAfter (default 90 s); the holder refreshes it every
// Interval (default 30 s).
//
// Every change is a conditional write on a [store.Bucket]: creating the record
// only if absent, replacing or deleting it only if it still has the version
// last seen. Two workers racing for a free or stale lease therefore cannot
// both win, and a holder whose lease was taken over learns it at its next
// refresh instead of overwriting the new holder.
//
// # Concurrency
//
// A [Lease] is safe for concurrent use. The heartbeat goroutine started by
// [Acquire] is owned by the Lease and stopped by [Lease.Release] or
// [Lease.Stop].
//
// A holder whose refreshes keep failing declares its lease lost
// StaleAfter − Interval/2 after its last successful refresh, half an
// Interval before another worker may take it over, so that the work done
// under it ([Lease.Context]) stops before anyone else starts it.
//
// # Errors
//
// [Acquire] fails with an error satisfying errors.Is(err, ErrHeld) when
// another worker holds a fresh lease; errors.As with *HeldError gives the
// holder. A lease that was taken over or deleted is reported with ErrLost.
// A record that cannot be parsed is reported with ErrCorrupt.
package lease

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"example.com/cairn/store"
)

// Default timings, as in Marin (HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT).
const (
	DefaultInterval   = 30 * time.Second
	DefaultStaleAfter = 90 * time.Second
)

var (
	// ErrHeld means another worker holds a fresh lease.
	ErrHeld = errors.New("lease held by another worker")
	// ErrLost means a lease this worker held was taken over, deleted, or could
	// not be refreshed before it went stale. Work done under it must stop.
	ErrLost = errors.New("lease lost")
	// ErrCorrupt means the lease record could not be parsed.
	ErrCorrupt = errors.New("corrupt lease record")
)

// Record is the stored lease.
type Record struct {
	// WorkerID names the holder.
	WorkerID string
	// Timestamp is the time of the last acquisition or refresh.
	Timestamp time.Time
}

// Age returns how long ago the record was last refreshed.
func (r Record) Age(now time.Time) time.Duration { return now.Sub(r.Timestamp) }

// Stale reports whether the record has not been refreshed for more than
// staleAfter.
func (r Record) Stale(now time.Time, staleAfter time.Duration) bool {
	return r.Age(now) > staleAfter
}

// Marshal encodes r in Marin's format: {"worker_id": ..., "timestamp": ...},
// with microsecond precision.
func (r Record) Marshal() []byte {
	id, _ := json.Marshal(r.WorkerID) // a string always encodes
	ts := strconv.FormatFloat(float64(r.Timestamp.UnixMicro())/1e6, 'f', -1, 64)
	if !strings.ContainsAny(ts, ".eE") {
		ts += ".0" // Python writes floats with a decimal point
	}
	return []byte(`{"worker_id": ` + string(id) + `, "timestamp": ` + ts + `}`)
}

// ParseRecord decodes a lease record. It accepts the holder under
// "worker_id" or, as an interim Marin version wrote it, "holder_id". Errors
// satisfy errors.Is(err, ErrCorrupt).
func ParseRecord(data []byte) (Record, error) {
	var raw struct {
		WorkerID  *string  `json:"worker_id"`
		HolderID  *string  `json:"holder_id"`
		Timestamp *float64 `json:"timestamp"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	id := raw.WorkerID
	if raw.HolderID != nil {
		id = raw.HolderID
	}
	switch {
	case id == nil:
		return Record{}, fmt.Errorf("%w: no worker_id", ErrCorrupt)
	case raw.Timestamp == nil:
		return Record{}, fmt.Errorf("%w: no timestamp", ErrCorrupt)
	case math.IsNaN(*raw.Timestamp) || math.IsInf(*raw.Timestamp, 0):
		return Record{}, fmt.Errorf("%w: timestamp is not finite", ErrCorrupt)
	}
	sec, frac := math.Modf(*raw.Timestamp)
	return Record{WorkerID: *id, Timestamp: time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3)}, nil
}

// HeldError reports that another worker holds a fresh lease.
type HeldError struct {
	Key    string
	Holder Record
	Age    time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lease %s held by %s (refreshed %s ago)", e.Key, e.Holder.WorkerID, e.Age.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Options configure a lease. A nil *Options means all defaults.
type Options struct {
	// Interval is the time between heartbeat refreshes; 0 means 30 s.
	Interval time.Duration
	// StaleAfter is how long after its last refresh a lease may be taken over;
	// 0 means 90 s. It must exceed Interval.
	StaleAfter time.Duration
	// OnRenewError, if set, is called from the heartbeat goroutine when a
	// refresh fails for a reason other than loss (a storage error that will
	// be retried).
	OnRenewError func(error)
}

// WithDefaults returns a copy of o (which may be nil) with zero fields set to
// their defaults.
func (o *Options) WithDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	c.Interval, c.StaleAfter = o.interval(), o.staleAfter()
	return c
}

func (o *Options) interval() time.Duration {
	if o == nil || o.Interval <= 0 {
		return DefaultInterval
	}
	return o.Interval
}

func (o *Options) staleAfter() time.Duration {
	if o == nil || o.StaleAfter <= 0 {
		return DefaultStaleAfter
	}
	return o.StaleAfter
}

// MaxRecordSize bounds the size of a lease record that is read: a record
// is well under a kilobyte, and a larger object (or, on a file system, a
// FIFO, directory or symbolic link, which the store refuses with
// store.ErrNotRegular) is a corrupt lease, reported as an error rather than
// read without bound or taken for "no lease".
const MaxRecordSize = 1 << 20

// Inspect reads the lease at key. It returns ok == false if there is none.
func Inspect(ctx context.Context, b *store.Bucket, key string) (rec Record, ok bool, err error) {
	data, _, err := b.ReadLimit(ctx, key, MaxRecordSize)
	if errors.Is(err, store.ErrNotExist) {
		return Record{}, false, nil
	}
	if errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrNotRegular) {
		return Record{}, false, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if err != nil {
		return Record{}, false, err
	}
	rec, err = ParseRecord(data)
	if err != nil {
		return Record{}, false, fmt.Errorf("lease %s: %w", b.URL(key), err)
	}
	return rec, true, nil
}

// errVanished: the record was deleted between a failed create and a read.
var errVanished = errors.New("lease record vanished")

// Lease is a lease held by this worker. Obtain one with [Acquire].
type Lease struct {
	bucket *store.Bucket
	key    string
	worker string
	opts   Options

	// TookOver is true if acquiring replaced a stale lease of another worker;
	// Previous is that worker's record.
	TookOver bool
	Previous Record

	lost     chan struct{} // closed when the lease is lost
	stop     chan struct{} // closed to stop the heartbeat
	stopOnce sync.Once
	wg       sync.WaitGroup

	// renewMu serializes Renew: the heartbeat and Confirm may refresh at
	// the same moment, and two writes conditioned on the same version would
	// make one of them fail as if the lease had been taken over.
	renewMu sync.Mutex

	mu       sync.Mutex // guards the fields below
	version  store.Version
	renewed  time.Time
	lostErr  error
	released bool
}

// Acquire takes the lease at key for worker, or fails:
//   - another worker holds a fresh lease: an error satisfying
//     errors.Is(err, ErrHeld) (and errors.As *HeldError), also when another
//     worker won a race for a free or stale lease;
//   - the existing record cannot be parsed: ErrCorrupt, naming the file;
//   - storage errors, wrapped.
//
// Acquiring a lease the same worker already holds refreshes it (re-entrant).
// A stale lease is taken over; [Lease.TookOver] reports it. On success a
// heartbeat goroutine refreshes the lease every Interval until
// [Lease.Release] or [Lease.Stop].
func Acquire(ctx context.Context, b *store.Bucket, key, worker string, opts *Options) (*Lease, error) {
	l := &Lease{bucket: b, key: key, worker: worker, lost: make(chan struct{}), stop: make(chan struct{})}
	if opts != nil {
		l.opts = *opts
	}
	if l.opts.staleAfter() <= l.opts.interval() {
		return nil, fmt.Errorf("lease: StaleAfter (%s) must exceed Interval (%s)", l.opts.staleAfter(), l.opts.interval())
	}
	// Most steps are fresh: try to create the record first and read only if
	// one exists.
	var (
		v   store.Version
		now time.Time
		err error
	)
	for range 5 { // retried only while the record vanishes under us
		now = time.Now()
		v, err = b.WriteIf(ctx, key, Record{WorkerID: worker, Timestamp: now}.Marshal(), store.IfAbsent())
		if errors.Is(err, store.ErrPrecondition) {
			v, now, err = l.replace(ctx)
		}
		if !errors.Is(err, errVanished) {
			break
		}
	}
	if errors.Is(err, errVanished) {
		return nil, &HeldError{Key: b.URL(key), Holder: Record{WorkerID: "(unknown: the lease changes hands too fast)"}}
	}
	if err != nil {
		return nil, err
	}
	l.version, l.renewed = v, now
	l.wg.Go(l.heartbeat)
	return l, nil
}

// replace takes over an existing record if it is stale or already ours.
func (l *Lease) replace(ctx context.Context) (store.Version, time.Time, error) {
	b, key := l.bucket, l.key
	data, ver, err := b.ReadLimit(ctx, key, MaxRecordSize)
	if errors.Is(err, store.ErrNotExist) {
		return "", time.Time{}, errVanished
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("lease: acquire: %w", err)
	}
	rec, err := ParseRecord(data)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("lease: acquire %s: %w; if no runner is active, delete the file", b.URL(key), err)
	}
	now := time.Now()
	if rec.WorkerID != l.worker {
		if !rec.Stale(now, l.opts.staleAfter()) {
			return "", time.Time{}, &HeldError{Key: b.URL(key), Holder: rec, Age: rec.Age(now)}
		}
		l.TookOver, l.Previous = true, rec
	}
	v, err := b.WriteIf(ctx, key, Record{WorkerID: l.worker, Timestamp: now}.Marshal(), store.IfVersion(ver))
	if errors.Is(err, store.ErrPrecondition) {
		// Someone else won the race; report who, if we can still see them.
		if rec, ok, ierr := Inspect(ctx, b, key); ierr == nil && ok {
			return "", time.Time{}, &HeldError{Key: b.URL(key), Holder: rec, Age: rec.Age(time.Now())}
		}
		return "", time.Time{}, &HeldError{Key: b.URL(key), Holder: Record{WorkerID: "(unknown: lost a race)"}}
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("lease: acquire: %w", err)
	}
	return v, now, nil
}

// Worker returns the worker id holding this lease.
func (l *Lease) Worker() string { return l.worker }

// Lost returns a channel closed when the lease is lost.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Err returns nil while the lease is held, or the error (satisfying
// errors.Is(err, ErrLost)) that explains how it was lost.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lostErr
}

// Context returns a context derived from parent that is cancelled, with a
// cause satisfying errors.Is(cause, ErrLost), when the lease is lost. The
// returned cancel function must be called to release resources.
func (l *Lease) Context(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	// The watcher exits when the lease is lost or ctx ends, which the
	// returned cancel function guarantees.
	go func() {
		select {
		case <-l.lost:
			cancel(l.Err())
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(context.Canceled) }
}

func (l *Lease) markLost(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lostErr != nil {
		return
	}
	l.lostErr = err
	close(l.lost)
}

// Renew refreshes the lease now. It fails with ErrLost if another worker has
// taken it over or it was deleted; the lease is then marked lost.
func (l *Lease) Renew(ctx context.Context) error {
	l.renewMu.Lock()
	defer l.renewMu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	ver := l.version
	l.mu.Unlock()
	now := time.Now()
	v, err := l.bucket.WriteIf(ctx, l.key, Record{WorkerID: l.worker, Timestamp: now}.Marshal(), store.IfVersion(ver))
	if errors.Is(err, store.ErrPrecondition) {
		cur, ours, _, lost := l.stillOurs(ctx)
		if !ours {
			l.markLost(lost)
			return lost
		}
		now = time.Now()
		v, err = l.bucket.WriteIf(ctx, l.key, Record{WorkerID: l.worker, Timestamp: now}.Marshal(), store.IfVersion(cur))
		if errors.Is(err, store.ErrPrecondition) {
			lost := l.explainLoss(ctx)
			l.markLost(lost)
			return lost
		}
	}
	if err != nil {
		return fmt.Errorf("lease: renew %s: %w", l.bucket.URL(l.key), err)
	}
	l.mu.Lock()
	l.version, l.renewed = v, now
	l.mu.Unlock()
	return nil
}

// stillOurs reads the record after a conditional write or delete of it
// failed. An earlier refresh that this worker gave up on (its context ended
// while the request was in flight) may have been applied after all: then
// the record is still ours, with a version we never learnt. Worker ids are
// unique to one attempt, so a record naming this worker was written by it,
// and nobody has taken over since. If the record is ours, stillOurs returns
// its version and ours; otherwise lost explains the loss (ErrLost), and
// absent says the record is gone.
func (l *Lease) stillOurs(ctx context.Context) (cur store.Version, ours, absent bool, lost error) {
	data, cur, err := l.bucket.ReadLimit(ctx, l.key, MaxRecordSize)
	if errors.Is(err, store.ErrNotExist) {
		return "", false, true, l.describeLoss(Record{}, false, nil)
	}
	if err != nil {
		return "", false, false, l.describeLoss(Record{}, false, err)
	}
	rec, err := ParseRecord(data)
	if err != nil {
		return "", false, false, l.describeLoss(Record{}, false, fmt.Errorf("lease %s: %w", l.bucket.URL(l.key), err))
	}
	if rec.WorkerID == l.worker {
		return cur, true, false, nil
	}
	return "", false, false, l.describeLoss(rec, true, nil)
}

// explainLoss reads the record to say why this worker's lease is lost.
func (l *Lease) explainLoss(ctx context.Context) error {
	rec, ok, err := Inspect(ctx, l.bucket, l.key)
	return l.describeLoss(rec, ok, err)
}

// describeLoss says why the lease is lost, given what reading the record
// returned: a record held by another worker (ok), none, or an error.
func (l *Lease) describeLoss(rec Record, ok bool, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("%w: %s changed and cannot be read: %v", ErrLost, l.bucket.URL(l.key), err)
	case !ok:
		return fmt.Errorf("%w: %s disappeared; another worker likely took over", ErrLost, l.bucket.URL(l.key))
	default:
		return fmt.Errorf("%w: %s held by %s, expected %s", ErrLost, l.bucket.URL(l.key), rec.WorkerID, l.worker)
	}
}

// heartbeat refreshes the lease every Interval. Storage errors are retried
// (by the bucket, and again at the next tick); once no refresh has succeeded
// for StaleAfter, other workers may legitimately take the lease over, so it
// is declared lost.
func (l *Lease) heartbeat() {
	t := time.NewTicker(l.opts.interval())
	defer t.Stop()
	var lastErr error
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		// A refresh, with the bucket's retries, may go on until the lease is
		// about to go stale, and no longer: once it is stale another worker
		// may take it over, and this one must have stopped its work by then.
		// Half an Interval is left for the step to notice (Lease.Context) and
		// return.
		l.mu.Lock()
		budget := min(l.opts.interval(), l.giveUpAfter()-time.Since(l.renewed))
		l.mu.Unlock()
		if budget <= 0 {
			l.markLost(fmt.Errorf("%w: not refreshed for %s (last error: %v)", ErrLost, l.giveUpAfter(), lastErr))
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		err := l.Renew(ctx)
		cancel()
		lastErr = err
		if err == nil {
			continue
		}
		if errors.Is(err, ErrLost) {
			return
		}
		if l.opts.OnRenewError != nil {
			l.opts.OnRenewError(err)
		}
		l.mu.Lock()
		since := time.Since(l.renewed)
		l.mu.Unlock()
		if since >= l.giveUpAfter() {
			l.markLost(fmt.Errorf("%w: not refreshed for %s (last error: %v)", ErrLost, since.Round(time.Millisecond), err))
			return
		}
	}
}

// giveUpAfter is how long after its last successful refresh the holder
// declares its lease lost: half an Interval before others may take it over.
func (l *Lease) giveUpAfter() time.Duration {
	return l.opts.staleAfter() - l.opts.interval()/2
}

// Confirm makes sure the lease is still ours before a final write (such as
// a step's terminal status). If the last successful refresh is recent — less
// than a third of StaleAfter ago — no other worker can have taken the lease
// over, and Confirm does no I/O; otherwise it renews. It fails with ErrLost
// if the lease is gone.
func (l *Lease) Confirm(ctx context.Context) error {
	if err := l.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	since := time.Since(l.renewed)
	l.mu.Unlock()
	if since < l.opts.staleAfter()/3 {
		return nil
	}
	return l.Renew(ctx)
}

// Stop stops the heartbeat without touching the stored record. It is
// idempotent.
func (l *Lease) Stop() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// Release stops the heartbeat and deletes the record if it is still ours. It
// returns an error satisfying errors.Is(err, ErrLost) if the lease had been
// lost to another worker (the record is then left to its new holder); a
// record that someone deleted is not an error. Release is idempotent.
func (l *Lease) Release(ctx context.Context) error {
	l.Stop()
	if err := l.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.released = true
	ver := l.version
	l.mu.Unlock()
	err := l.bucket.DeleteIf(ctx, l.key, store.IfVersion(ver))
	if errors.Is(err, store.ErrPrecondition) {
		cur, ours, absent, lost := l.stillOurs(ctx)
		switch {
		case absent:
			return nil // deleted by someone else: nothing left to release
		case !ours:
			l.markLost(lost)
			return lost
		}
		err = l.bucket.DeleteIf(ctx, l.key, store.IfVersion(cur))
		if errors.Is(err, store.ErrPrecondition) {
			lost := l.explainLoss(ctx)
			l.markLost(lost)
			return lost
		}
	}
	if err != nil {
		return fmt.Errorf("lease: release %s: %w", l.bucket.URL(l.key), err)
	}
	return nil
}
