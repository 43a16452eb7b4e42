package cairn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
)

// Attempt logs of in-process steps (see statusfile.LogKey for the
// numbering, shared with cluster jobs).
//
// An attempt that runs the step's function in this process claims the next
// attempt-N.log under the step's output path and tees what the step logs
// through Output.Logger to it, at every level, as text: the run's logger
// still gets every record it would have got. The log is created at the
// step's first record (or its failure), not before: a step that logs
// nothing and succeeds has no log (attemptLog). What the function prints to
// stdout or stderr is not captured: the process's standard streams are
// shared by every step running in it, so there is no clean way to tell
// whose line is whose. (A remote step's log holds everything its job
// printed.)
//
// The file is written through the runner's own bucket (which may write
// control files), never through the step's Output.Bucket. On a local disk
// every record is appended to the file as it is logged, so the log can be
// followed while the step runs. On an object store, which cannot append,
// the records are kept in memory and the whole log is uploaded every
// LogUploadInterval while it changes, and when the attempt ends; a log
// beyond maxObjectLog bytes keeps its start and says it was cut. There the
// log's number is claimed by its first upload (created only if absent,
// with the log so far), so that a short step costs one request for its
// log, not two.

// LogUploadInterval is how often the log of a step running in this process
// is uploaded while it changes, when its output is on an object store.
const LogUploadInterval = 5 * time.Second

// maxObjectLog bounds the in-memory log of a step whose output is on an
// object store.
const maxObjectLog = 16 << 20

// attemptLog is the log of one in-process attempt. It is created lazily,
// at the first record after its "attempt started" header (which is kept
// until then), or when a cluster job needs its number (release): a step
// that logs nothing and succeeds leaves no log, and costs no log's
// directory, file or request (issue 12 §2). A failed step always has one:
// its error is logged to it.
type attemptLog struct {
	b *store.Bucket
	// open creates the log (openAttemptLog); opened, if set, is called
	// with its key once it exists and has a number; warn reports a log
	// that cannot be created (its records then go to the run's log only).
	open   func(ctx context.Context) (*logBackend, error)
	opened func(key string)
	warn   func(error)

	// mu guards the fields below.
	mu      sync.Mutex
	be      *logBackend // nil until created
	openErr error       // why it could not be created
	pending []byte      // records written before it was created
	records int         // records written (the header included)
	closed  bool        // nothing more is written
}

// logBackend is a created attempt log.
type logBackend struct {
	w io.Writer
	// closeFn flushes and closes the log; abortFn closes it without a
	// last upload.
	closeFn func(ctx context.Context) error
	abortFn func() error
	// claim returns the log's number, claiming one if it has none yet
	// (uploaded logs claim theirs lazily); number returns it, 0 if none.
	claim  func(ctx context.Context) (int, error)
	number func() int
}

// newAttemptLog returns the lazily created log of an attempt at the step
// whose output is b (at path).
func newAttemptLog(b *store.Bucket, path string, opened func(key string), warn func(error)) *attemptLog {
	return &attemptLog{b: b, opened: opened, warn: warn,
		open: func(ctx context.Context) (*logBackend, error) { return openAttemptLog(ctx, b, path) }}
}

// Write writes one record, unless the log is closed (records logged after
// a handover go to the run's log only). The first record, the header, is
// kept until a second one creates the log.
func (l *attemptLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	if l.closed || l.openErr != nil {
		l.mu.Unlock()
		return len(p), nil
	}
	l.records++
	if l.be == nil && l.records == 1 {
		l.pending = append(l.pending, p...)
		l.mu.Unlock()
		return len(p), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	created, err := l.create(ctx)
	if err != nil {
		l.mu.Unlock()
		return len(p), nil // reported by create; the run's log has the record
	}
	n, err := l.be.w.Write(p)
	l.mu.Unlock()
	if created {
		l.notify()
	}
	return n, err
}

// create creates the log if it does not exist yet, with the records kept
// so far, and reports whether it did. l.mu is held.
func (l *attemptLog) create(ctx context.Context) (bool, error) {
	if l.be != nil {
		return false, nil
	}
	if l.openErr != nil {
		return false, l.openErr
	}
	be, err := l.open(ctx)
	if err != nil {
		l.openErr = err
		if l.warn != nil {
			l.warn(err)
		}
		return false, err
	}
	l.be = be
	if len(l.pending) > 0 {
		_, err = be.w.Write(l.pending)
		l.pending = nil
	}
	return true, err
}

// notify calls opened with the new log's key, if it has a number yet.
func (l *attemptLog) notify() {
	if k := l.key(); k != "" && l.opened != nil {
		l.opened(k)
	}
}

// exists reports whether the log was created.
func (l *attemptLog) exists() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.be != nil
}

// close flushes and closes the log, once.
func (l *attemptLog) close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	be := l.be
	l.mu.Unlock()
	if be == nil {
		return nil
	}
	return be.closeFn(ctx)
}

// release gives up the log if the step has logged nothing to it yet (it
// holds only its header), for the step's cluster job: handover closes it
// and returns its number for the job's first attempt to log to (creating
// it if need be), so that a remote step's attempt has one log, the job's;
// drop (a job adopted, with its own logs) deletes it. ok is false if the
// step already logged.
func (l *attemptLog) release(ctx context.Context, drop bool) (n int, ok bool) {
	l.mu.Lock()
	if l.closed || l.records > 1 {
		l.mu.Unlock()
		return 0, false
	}
	l.closed = true
	if drop {
		be := l.be
		l.mu.Unlock()
		if be == nil {
			return 0, true // never created: nothing to delete
		}
		err := be.abortFn()
		n := be.number()
		if n > 0 {
			err = errors.Join(err, l.b.Delete(ctx, statusfile.LogKey(n)))
		}
		return n, err == nil
	}
	created, err := l.create(ctx)
	be := l.be
	l.mu.Unlock()
	if err != nil {
		return 0, false
	}
	n, err = be.claim(ctx)
	err = errors.Join(err, be.closeFn(ctx))
	if created {
		l.notify()
	}
	return n, err == nil
}

// key returns the log's key, "" if it has no number yet.
func (l *attemptLog) key() string {
	l.mu.Lock()
	be := l.be
	l.mu.Unlock()
	if be == nil {
		return ""
	}
	if n := be.number(); n > 0 {
		return statusfile.LogKey(n)
	}
	return ""
}

// openAttemptLog creates the next attempt log of the step at path, whose
// bucket b may write control files: claimed at once on a local disk, at
// its first upload on an object store.
func openAttemptLog(ctx context.Context, b *store.Bucket, path string) (*logBackend, error) {
	if dir, ok := localPath(path); ok {
		n, err := statusfile.ClaimLog(ctx, b)
		if err != nil {
			return nil, err
		}
		key := statusfile.LogKey(n)
		// os.Root refuses to leave dir through a symbolic link.
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		f, err := root.OpenFile(filepath.FromSlash(key), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, err
		}
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, errors.New("attempt log " + b.URL(key) + " is not a regular file")
		}
		return &logBackend{w: f, closeFn: func(context.Context) error { return f.Close() }, abortFn: f.Close,
			claim: func(context.Context) (int, error) { return n, nil }, number: func() int { return n }}, nil
	}
	u := &uploadedLog{b: b, stop: make(chan struct{})}
	u.wg.Go(u.loop)
	return &logBackend{w: u, closeFn: u.close, abortFn: u.abort, claim: u.claim, number: u.number}, nil
}

// uploadedLog is an attempt log on an object store: kept in memory,
// uploaded whole.
type uploadedLog struct {
	b    *store.Bucket
	stop chan struct{}
	wg   sync.WaitGroup

	// upMu serialises uploads (and the claim).
	upMu sync.Mutex
	// mu guards the fields below.
	mu        sync.Mutex
	n         int // the log's number; 0 until claimed
	buf       []byte
	truncated bool
	dirty     bool
}

func (u *uploadedLog) number() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.n
}

// claim claims the log's number, uploading the log so far, if it has none.
func (u *uploadedLog) claim(ctx context.Context) (int, error) {
	if err := u.upload(ctx, true); err != nil {
		return 0, err
	}
	return u.number(), nil
}

func (u *uploadedLog) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.buf)+len(p) > maxObjectLog {
		if !u.truncated {
			u.truncated = true
			u.buf = append(u.buf, "[cairn: the log was cut here: it exceeds the in-memory limit for object-store logs]\n"...)
			u.dirty = true
		}
		return len(p), nil
	}
	u.buf = append(u.buf, p...)
	u.dirty = true
	return len(p), nil
}

// loop uploads the log while it changes, until close.
func (u *uploadedLog) loop() {
	t := time.NewTicker(LogUploadInterval)
	defer t.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			_ = u.upload(ctx, false) // best effort: the final upload reports
			cancel()
		}
	}
}

// upload writes the log if it changed since the last upload (or, with
// force, if it has no number yet), claiming a number at the first.
func (u *uploadedLog) upload(ctx context.Context, force bool) error {
	u.upMu.Lock()
	defer u.upMu.Unlock()
	u.mu.Lock()
	n := u.n
	if !u.dirty && !(force && n == 0) {
		u.mu.Unlock()
		return nil
	}
	data := append([]byte(nil), u.buf...)
	u.dirty = false
	u.mu.Unlock()
	var err error
	if n == 0 {
		n, err = statusfile.ClaimLogWith(ctx, u.b, data)
	} else {
		_, err = u.b.Write(ctx, statusfile.LogKey(n), data)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.dirty = true
		return err
	}
	u.n = n
	return nil
}

// abort stops the periodic uploads.
func (u *uploadedLog) abort() error {
	close(u.stop)
	u.wg.Wait()
	return nil
}

// close stops the periodic uploads and uploads the log a last time,
// claiming its number if no upload has yet.
func (u *uploadedLog) close(ctx context.Context) error {
	close(u.stop)
	u.wg.Wait()
	return u.upload(ctx, true)
}

// teeHandler sends each record to every handler that takes its level.
type teeHandler []slog.Handler

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range t {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	u := make(teeHandler, len(t))
	for i, h := range t {
		u[i] = h.WithAttrs(as)
	}
	return u
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	u := make(teeHandler, len(t))
	for i, h := range t {
		u[i] = h.WithGroup(name)
	}
	return u
}

// stepLogger returns the Logger of the step id: the run's logger, and, if
// log is not nil, the attempt's log file too. The second value logs to
// the file alone (nil without a file).
func stepLogger(run *slog.Logger, id string, log *attemptLog) (*slog.Logger, *slog.Logger) {
	l := run.With("step", id)
	if log == nil {
		return l, nil
	}
	file := slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(teeHandler{l.Handler(), file}), slog.New(file)
}

// openLog starts the log of an attempt at step s (named label, its output
// b at path) by worker, whose function runs in this process; it returns nil
// for a step that runs as a cluster job (whose job writes the attempt's
// log). The log is created at the step's first record (attemptLog); opened
// is called with its key then. A log that cannot be created is logged and
// does not stop the step. The second value logs to the file alone.
func (x *executor) openLog(s *Step, label string, b *store.Bucket, path, worker string, opened func(key string)) (*attemptLog, *slog.Logger) {
	if s.Remote != nil && x.remote != nil {
		return nil, nil
	}
	log := newAttemptLog(b, path, opened, func(err error) {
		x.logger.Warn("the step's attempt log cannot be created; its records go to the run's log only", "step", label, "error", err)
	})
	_, file := stepLogger(x.logger, label, log)
	file.Info("attempt started", "step", label, "worker", worker)
	return log, file
}

// closeLog ends the attempt log of out, recording how the function ended,
// and makes it the attempt's log unless it gave its number to a job.
func (x *executor) closeLog(ctx context.Context, label string, out *Output, file *slog.Logger, ferr error) {
	log := out.alog
	if log == nil {
		return
	}
	defer func() {
		if out.logKey == "" {
			out.logKey = log.key()
		}
	}()
	switch {
	case ferr != nil:
		file.Error("step function failed", "error", ferr)
	case log.exists():
		file.Info("step function returned")
	}
	if err := log.close(ctx); err != nil {
		x.logger.Warn("the step's attempt log could not be saved", "step", label, "log", log.key(), "error", err)
	}
}

// Reading attempt logs and failure records, for tools (package cli's
// logs and status commands) that may not see cairn's control-file package.

// LogsDir is the directory of a step's attempt logs, under its output path.
const LogsDir = statusfile.LogsDir

// AttemptLogKey returns the key, under a step's output path, of the log of
// attempt n (from 1): LogsDir/attempt-N.log.
func AttemptLogKey(n int) string { return statusfile.LogKey(n) }

// AttemptLogs returns the numbers of the attempt logs under b, a step's
// output path, in increasing order; the last is the latest attempt's.
func AttemptLogs(ctx context.Context, b *store.Bucket) ([]int, error) {
	return statusfile.ListLogs(ctx, b)
}

// FailureFile is the key, under a step's output path, of the record of
// its last failure.
const FailureFile = statusfile.FailureKey

// FailureRecord is what cairn recorded about a step's last failure.
type FailureRecord struct {
	Error    string
	WorkerID string
	Time     time.Time
	// Stack is the stack of a panic or runtime.Goexit, if that was the
	// cause.
	Stack string
	// Log is the key of the failed attempt's log under the step's output
	// path (AttemptLogKey), "" if unknown.
	Log string
}

// ReadFailureRecord reads the failure record under b, a step's output
// path; ok is false if there is none.
func ReadFailureRecord(ctx context.Context, b *store.Bucket) (r FailureRecord, ok bool, err error) {
	f, ok, err := statusfile.ReadFailure(ctx, b)
	if !ok || err != nil {
		return FailureRecord{}, ok, err
	}
	return FailureRecord{Error: f.Error, WorkerID: f.WorkerID, Time: f.Time, Stack: f.Stack, Log: f.Log}, true, nil
}

// ReadStepActivity reads the status of the step whose output path is b,
// and its lease: holder is "" if there is none, else the holder's worker
// id and the lease's age by the holder's timestamp (a hint: see package
// lease, Clocks). Cheaper than Inspect for one step, for polling.
func ReadStepActivity(ctx context.Context, b *store.Bucket) (status Status, holder string, leaseAge time.Duration, err error) {
	s, err := statusfile.ReadStatus(ctx, b)
	if err != nil {
		return "", "", 0, err
	}
	rec, held, err := lease.Inspect(ctx, b, statusfile.LockKey)
	if err != nil {
		return "", "", 0, err
	}
	if held {
		holder, leaseAge = rec.WorkerID, rec.Age(time.Now())
	}
	return Status(s), holder, leaseAge, nil
}
