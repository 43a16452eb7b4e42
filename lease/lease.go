// Package lease implements the step lease: a small JSON record on shared
// storage that says which worker is executing a step, refreshed by a
// heartbeat and taken over by another worker once it goes stale.
//
// The record is byte-compatible with Marin's `.executor_status.lock`:
//
//	{"worker_id": "host-123-4f2a.7", "timestamp": 1740000000.123456}
//
// where timestamp is the writer's wall-clock time of its last refresh, in
// Unix seconds. The holder refreshes the record every Interval (default
// 30 s).
//
// Every change is a conditional write on a [store.Bucket]: creating the record
// only if absent, replacing or deleting it only if it still has the version
// last seen. Two workers racing for a free or stale lease therefore cannot
// both win, and a holder whose lease was taken over learns it at its next
// refresh instead of overwriting the new holder.
//
// # Clocks
//
// Correctness does not depend on the clocks of different hosts agreeing.
// Marin judges a lease stale when the reader's wall clock minus the writer's
// timestamp exceeds 90 s; a host whose clock runs two minutes ahead then
// takes over every live lease, and a record dated in the future blocks its
// step forever. Here a reader judges staleness by its own observation: a
// record is stale once the reader has seen the same version of it, unchanged,
// for StaleAfter on its own monotonic clock (a [Watch] remembers when each
// version was first seen). The writer's timestamp is used for one thing
// only, to skip that wait when the record is unambiguously ancient: older
// than AncientAfter (default 24 h) by the reader's clock. A timestamp in the
// future is never trusted. The remaining assumptions are that monotonic
// clocks of different hosts advance at about the same rate (they do, to
// parts per million) and that no two clocks differ by more than
// AncientAfter − Interval; set AncientAfter negative to drop even that,
// at the price of waiting StaleAfter before taking over any lease.
//
// The holder declares its lease lost StaleAfter − Interval/2 after the start
// of its last successful refresh, by a timer that does not wait for a
// hanging storage call to return, half an Interval before any reader can
// have watched the refreshed record for StaleAfter. The work done under it
// ([Lease.Context]) is cancelled then.
//
// A holder that is paused (a stopped process, a frozen VM) can still wake
// after another worker took over, believing for a moment that it holds the
// lease. The lease alone cannot stop such a holder's writes; the writes a
// step commits must therefore be conditional on something the new holder
// changes (package cairn conditions them on the step's RUNNING status record,
// unique to each attempt).
//
// # Concurrency
//
// A [Lease] is safe for concurrent use. The heartbeat goroutine started by
// [Acquire] is owned by the Lease and stopped by [Lease.Release] or
// [Lease.Stop]. A [Watch] is safe for concurrent use.
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

// Default timings. Interval and StaleAfter are Marin's (HEARTBEAT_INTERVAL,
// HEARTBEAT_TIMEOUT); AncientAfter is cairn's (see the package doc, Clocks).
const (
	DefaultInterval     = 30 * time.Second
	DefaultStaleAfter   = 90 * time.Second
	DefaultAncientAfter = 24 * time.Hour
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
	// Timestamp is the time of the last acquisition or refresh, by the
	// holder's wall clock.
	Timestamp time.Time
}

// Age returns how long ago the record was last refreshed according to its
// writer's timestamp and the clock reading now. It is negative for a
// timestamp in the future. Because it compares two hosts' clocks it is a
// hint for people, never a basis for taking a lease over.
func (r Record) Age(now time.Time) time.Duration { return now.Sub(r.Timestamp) }

// Ancient reports whether the record's timestamp is more than ancientAfter
// older than now: old enough that no plausible clock difference can explain
// it, so that its writer is surely dead. A non-positive ancientAfter means
// never.
func (r Record) Ancient(now time.Time, ancientAfter time.Duration) bool {
	return ancientAfter > 0 && r.Age(now) > ancientAfter
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
	case math.Abs(*raw.Timestamp) > 1e15:
		// Beyond what time.Unix represents sensibly (about 30 million years).
		return Record{}, fmt.Errorf("%w: timestamp %g out of range", ErrCorrupt, *raw.Timestamp)
	}
	sec, frac := math.Modf(*raw.Timestamp)
	return Record{WorkerID: *id, Timestamp: time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3)}, nil
}

// HeldError reports that another worker holds a lease that is not (yet)
// stale.
type HeldError struct {
	Key    string
	Holder Record
	// Age is the record's age by its writer's timestamp and this host's
	// clock: a hint only (it is negative for a timestamp in the future).
	Age time.Duration
	// Unchanged is how long this process has watched the record stay the
	// same (0 at first sight), and StaleIn how much longer it must stay so
	// before it may be taken over.
	Unchanged, StaleIn time.Duration
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lease %s held by %s (refreshed %s ago by its clock; stale in %s unless refreshed)",
		e.Key, e.Holder.WorkerID, e.Age.Round(time.Millisecond), e.StaleIn.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Options configure a lease. A nil *Options means all defaults.
type Options struct {
	// Interval is the time between heartbeat refreshes; 0 means 30 s.
	Interval time.Duration
	// StaleAfter is how long a reader must see a record unchanged before it
	// may take the lease over; 0 means 90 s. It must exceed Interval.
	StaleAfter time.Duration
	// AncientAfter: a record whose writer's timestamp is older than this by
	// the reader's clock may be taken over at first sight. 0 means
	// DefaultAncientAfter; a negative value means never (always watch for
	// StaleAfter). It must exceed StaleAfter when positive.
	AncientAfter time.Duration
	// Watch remembers the records this process has seen, so that repeated
	// Acquire calls for one key can judge staleness; nil means a Watch of
	// the single Acquire call, for which only an ancient or abandoned
	// record is stale.
	Watch *Watch
	// WallClock returns the time written into records and compared with
	// other records' timestamps; nil means time.Now. Tests inject clock
	// skew with it. Durations are always measured on the monotonic clock.
	WallClock func() time.Time
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
	c.Interval, c.StaleAfter, c.AncientAfter = o.interval(), o.staleAfter(), o.ancientAfter()
	if c.WallClock == nil {
		c.WallClock = time.Now
	}
	return c
}

// Validate reports options that cannot work together.
func (o *Options) Validate() error {
	c := o.WithDefaults()
	switch {
	case o != nil && (o.Interval < 0 || o.StaleAfter < 0):
		return fmt.Errorf("lease: negative Interval (%s) or StaleAfter (%s)", o.Interval, o.StaleAfter)
	case c.StaleAfter <= c.Interval:
		return fmt.Errorf("lease: StaleAfter (%s) must exceed Interval (%s)", c.StaleAfter, c.Interval)
	case c.AncientAfter > 0 && c.AncientAfter <= c.StaleAfter:
		return fmt.Errorf("lease: AncientAfter (%s) must exceed StaleAfter (%s)", c.AncientAfter, c.StaleAfter)
	}
	return nil
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

func (o *Options) ancientAfter() time.Duration {
	if o == nil || o.AncientAfter == 0 {
		return DefaultAncientAfter
	}
	return o.AncientAfter
}

// MaxRecordSize bounds the size of a lease record that is read: a record
// is well under a kilobyte, and a larger object (or, on a file system, a
// FIFO, directory or symbolic link, which the store refuses with
// store.ErrNotRegular) is a corrupt lease, reported as an error rather than
// read without bound or taken for "no lease".
const MaxRecordSize = 1 << 20

// Inspect reads the lease at key. It returns ok == false if there is none.
func Inspect(ctx context.Context, b *store.Bucket, key string) (rec Record, ok bool, err error) {
	rec, _, ok, err = inspect(ctx, b, key)
	return rec, ok, err
}

// inspect is Inspect that also returns the record's version.
func inspect(ctx context.Context, b *store.Bucket, key string) (Record, store.Version, bool, error) {
	data, ver, err := b.ReadLimit(ctx, key, MaxRecordSize)
	if errors.Is(err, store.ErrNotExist) {
		return Record{}, "", false, nil
	}
	if errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrNotRegular) {
		return Record{}, "", false, fmt.Errorf("%w: %w; delete it if no runner is active", ErrCorrupt, err)
	}
	if err != nil {
		return Record{}, "", false, err
	}
	rec, err := ParseRecord(data)
	if err != nil {
		return Record{}, "", false, fmt.Errorf("lease %s: %w; if no runner is active, delete the file", b.URL(key), err)
	}
	return rec, ver, true, nil
}

// A Watch remembers, on this process's monotonic clock, since when it has
// seen each lease record unchanged, and which of this process's own workers
// gave up their leases. It is the reader's half of clock-independent
// staleness (see the package doc). One Watch serves any number of keys and
// goroutines; a runner keeps one for its whole run.
type Watch struct {
	mu        sync.Mutex
	seen      map[string]sighting // by the record's URL
	abandoned map[string]bool     // worker ids
}

type sighting struct {
	version store.Version
	since   time.Time // monotonic
}

// NewWatch returns an empty Watch.
func NewWatch() *Watch {
	return &Watch{seen: map[string]sighting{}, abandoned: map[string]bool{}}
}

// Observe records that the record at url has version v now, and returns
// how long it has been seen with that version without a change (0 the
// first time, or after it changed).
func (w *Watch) Observe(url string, v store.Version) time.Duration {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.seen[url]
	if !ok || s.version != v {
		w.seen[url] = sighting{version: v, since: now}
		return 0
	}
	return now.Sub(s.since)
}

// Forget drops what w knows of the record at url (after this process took
// it, or the step finished).
func (w *Watch) Forget(url string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.seen, url)
}

// Abandon records that this process's worker gave its lease up and that
// the work done under it has stopped: a record still naming that worker is
// dead and may be taken over at once, by any worker of this process.
func (w *Watch) Abandon(worker string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.abandoned[worker] = true
}

func (w *Watch) isAbandoned(worker string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.abandoned[worker]
}

// settled forgets what w knows once the record at url was taken over from
// previous by this process.
func (w *Watch) settled(url, previous string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.seen, url)
	delete(w.abandoned, previous)
}

// errVanished: the record was deleted between a failed create and a read.
var errVanished = errors.New("lease record vanished")

// Lease is a lease held by this worker. Obtain one with [Acquire].
type Lease struct {
	bucket *store.Bucket
	key    string
	worker string
	opts   Options // WithDefaults applied

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
	renewed  time.Time   // start of the last successful refresh (monotonic)
	deadline *time.Timer // declares the lease lost giveUpAfter past renewed
	lostErr  error
	released bool
}

// Acquire takes the lease at key for worker, or fails:
//   - another worker holds a lease that is not stale: an error satisfying
//     errors.Is(err, ErrHeld) (and errors.As *HeldError), also when another
//     worker won a race for a free or stale lease;
//   - the existing record cannot be parsed: ErrCorrupt, naming the file;
//   - storage errors, wrapped.
//
// A record is stale when opts.Watch has seen it unchanged for StaleAfter,
// when its timestamp is ancient, or when it names a worker abandoned in
// opts.Watch (see the package doc). Call Acquire again, with the same
// Watch, to wait for a held lease to go stale.
//
// Acquiring a lease the same worker already holds refreshes it (re-entrant);
// worker ids must therefore be unique to one attempt. A stale lease is taken
// over; [Lease.TookOver] reports it. On success a heartbeat goroutine
// refreshes the lease every Interval until [Lease.Release] or [Lease.Stop].
func Acquire(ctx context.Context, b *store.Bucket, key, worker string, opts *Options) (*Lease, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	l := &Lease{bucket: b, key: key, worker: worker, opts: opts.WithDefaults(), lost: make(chan struct{}), stop: make(chan struct{})}
	if l.opts.Watch == nil {
		l.opts.Watch = NewWatch()
	}
	// Most steps are fresh: try to create the record first and read only if
	// one exists.
	var (
		v       store.Version
		started time.Time
		err     error
	)
	for range 5 { // retried only while the record vanishes under us
		started = time.Now()
		v, err = b.WriteIf(ctx, key, l.record(), store.IfAbsent())
		if errors.Is(err, store.ErrPrecondition) {
			v, started, err = l.replace(ctx)
		}
		if !errors.Is(err, errVanished) {
			break
		}
	}
	if errors.Is(err, errVanished) {
		return nil, &HeldError{Key: b.URL(key), Holder: Record{WorkerID: "(unknown: the lease changes hands too fast)"}, StaleIn: l.opts.StaleAfter}
	}
	if err != nil {
		return nil, err
	}
	// The timer may fire at once (an acquisition slower than giveUpAfter):
	// its callback takes l.mu, so it sees the fields set.
	l.mu.Lock()
	l.version, l.renewed = v, started
	l.deadline = time.AfterFunc(l.giveUpAfter()-time.Since(started), l.expire)
	l.mu.Unlock()
	l.wg.Go(l.heartbeat)
	return l, nil
}

// record returns this worker's record, stamped now.
func (l *Lease) record() []byte {
	return Record{WorkerID: l.worker, Timestamp: l.opts.WallClock()}.Marshal()
}

// replace takes over an existing record if it is stale or already ours. It
// returns the new version and when the write was started.
func (l *Lease) replace(ctx context.Context) (store.Version, time.Time, error) {
	b, key, w := l.bucket, l.key, l.opts.Watch
	url := b.URL(key)
	rec, ver, ok, err := inspect(ctx, b, key)
	switch {
	case err != nil:
		return "", time.Time{}, fmt.Errorf("lease: acquire: %w", err)
	case !ok:
		return "", time.Time{}, errVanished
	}
	if rec.WorkerID != l.worker {
		unchanged := w.Observe(url, ver)
		now := l.opts.WallClock()
		stale := unchanged > l.opts.StaleAfter || rec.Ancient(now, l.opts.AncientAfter) || w.isAbandoned(rec.WorkerID)
		if !stale {
			return "", time.Time{}, &HeldError{Key: url, Holder: rec, Age: rec.Age(now), Unchanged: unchanged, StaleIn: l.opts.StaleAfter - unchanged}
		}
		l.TookOver, l.Previous = true, rec
	}
	started := time.Now()
	v, err := b.WriteIf(ctx, key, l.record(), store.IfVersion(ver))
	if errors.Is(err, store.ErrPrecondition) {
		// Someone else won the race; report who, if we can still see them.
		if rec, ver, ok, ierr := inspect(ctx, b, key); ierr == nil && ok {
			unchanged := w.Observe(url, ver)
			return "", time.Time{}, &HeldError{Key: url, Holder: rec, Age: rec.Age(l.opts.WallClock()), Unchanged: unchanged, StaleIn: l.opts.StaleAfter - unchanged}
		}
		return "", time.Time{}, &HeldError{Key: url, Holder: Record{WorkerID: "(unknown: lost a race)"}, StaleIn: l.opts.StaleAfter}
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("lease: acquire: %w", err)
	}
	if l.TookOver {
		w.settled(url, l.Previous.WorkerID)
	}
	return v, started, nil
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
	if l.deadline != nil {
		l.deadline.Stop()
	}
}

// expire runs when the deadline timer fires: no refresh has succeeded for
// giveUpAfter, whatever the storage calls in flight are doing.
func (l *Lease) expire() {
	l.mu.Lock()
	since, released := time.Since(l.renewed), l.released
	l.mu.Unlock()
	if released {
		return
	}
	if since < l.giveUpAfter() {
		// A refresh succeeded while the timer fired; it was re-armed.
		return
	}
	l.markLost(fmt.Errorf("%w: not refreshed for %s (a reader may take it over %s after its last refresh)",
		ErrLost, since.Round(time.Millisecond), l.opts.StaleAfter))
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
	started := time.Now()
	v, err := l.bucket.WriteIf(ctx, l.key, l.record(), store.IfVersion(ver))
	if errors.Is(err, store.ErrPrecondition) {
		cur, ours, _, lost := l.stillOurs(ctx)
		if !ours {
			l.markLost(lost)
			return lost
		}
		started = time.Now()
		v, err = l.bucket.WriteIf(ctx, l.key, l.record(), store.IfVersion(cur))
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
	defer l.mu.Unlock()
	if l.lostErr != nil {
		// The deadline passed while the write was in flight: the work under
		// the lease has been told to stop, and readers may already treat
		// the record as stale. A late success cannot undo that.
		return l.lostErr
	}
	l.version, l.renewed = v, started
	l.deadline.Reset(l.giveUpAfter() - time.Since(started))
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
		return &TakenError{Key: l.bucket.URL(l.key), Holder: rec, Expected: l.worker}
	}
}

// TakenError reports that another worker now holds a lease this worker
// held. It satisfies errors.Is(err, ErrLost).
type TakenError struct {
	Key      string
	Holder   Record
	Expected string
}

func (e *TakenError) Error() string {
	return fmt.Sprintf("%v: %s held by %s, expected %s", ErrLost, e.Key, e.Holder.WorkerID, e.Expected)
}

// Is makes errors.Is(err, ErrLost) true.
func (e *TakenError) Is(target error) bool { return target == ErrLost }

// heartbeat refreshes the lease every Interval. Storage errors are retried
// (by the bucket, and again at the next tick). The deadline timer, not the
// heartbeat, declares the lease lost when no refresh succeeds in time, so
// that a refresh hanging in a storage call cannot delay it.
func (l *Lease) heartbeat() {
	t := time.NewTicker(l.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.lost:
			return
		case <-t.C:
		}
		// A refresh, with the bucket's retries, may go on until the lease is
		// declared lost, and no longer.
		l.mu.Lock()
		budget := min(l.opts.Interval, l.giveUpAfter()-time.Since(l.renewed))
		l.mu.Unlock()
		if budget <= 0 {
			continue // the deadline timer is about to fire
		}
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		done := make(chan struct{})
		go func() { // stop waiting for the refresh once the lease is lost or stopped
			select {
			case <-l.lost:
			case <-l.stop:
			case <-done:
			}
			cancel()
		}()
		err := l.Renew(ctx)
		close(done)
		if err == nil || errors.Is(err, ErrLost) {
			continue
		}
		if l.opts.OnRenewError != nil {
			l.opts.OnRenewError(err)
		}
	}
}

// giveUpAfter is how long after the start of its last successful refresh
// the holder declares its lease lost: half an Interval before any reader can
// have watched the refreshed record unchanged for StaleAfter.
func (l *Lease) giveUpAfter() time.Duration {
	return l.opts.StaleAfter - l.opts.Interval/2
}

// Confirm renews the lease, making sure it is still ours at this moment. It
// fails with ErrLost if the lease is gone. Note that a check cannot fence a
// later write by itself: a paused holder may lose the lease just after
// Confirm returns (see the package doc).
func (l *Lease) Confirm(ctx context.Context) error {
	return l.Renew(ctx)
}

// Stop stops the heartbeat and the deadline timer without touching the
// stored record. It waits for a refresh in flight to end, unless the lease
// is lost (a refresh hanging in a storage call that ignores its context
// must not hang the caller too: its conditional write can no longer harm
// anyone). It is idempotent.
func (l *Lease) Stop() {
	l.stopOnce.Do(func() {
		close(l.stop)
		l.mu.Lock()
		l.deadline.Stop()
		l.mu.Unlock()
	})
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-l.lost:
	}
}

// Release stops the heartbeat and deletes the record if it is still ours. It
// returns an error satisfying errors.Is(err, ErrLost) if the lease had been
// lost to another worker (the record is then left to its new holder); a
// record that someone deleted is not an error. Release is idempotent.
func (l *Lease) Release(ctx context.Context) error {
	l.Stop()
	if err := l.Err(); err != nil {
		// Lost by the deadline, the record may still be ours, with nobody
		// taking over: delete it so that others need not wait for it to
		// go stale. Worker ids are unique, so a record naming this worker
		// was written by it and taken by nobody since.
		if cur, ours, _, _ := l.stillOurs(ctx); ours {
			_ = l.bucket.DeleteIf(ctx, l.key, store.IfVersion(cur))
		}
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
