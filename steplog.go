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
// still gets every record it would have got. What the function prints to
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

// attemptLog is the log file of one in-process attempt.
type attemptLog struct {
	b *store.Bucket
	w io.Writer
	// closeFn flushes and closes the log; abortFn closes it without a
	// last upload.
	closeFn func(ctx context.Context) error
	abortFn func() error
	// claim returns the log's number, claiming one if it has none yet
	// (uploaded logs claim theirs lazily); number returns it, 0 if none.
	claim  func(ctx context.Context) (int, error)
	number func() int

	// mu guards the fields below.
	mu      sync.Mutex
	records int  // records written (the header included)
	closed  bool // nothing more is written
}

// Write writes one record, unless the log is closed (records logged after
// a handover go to the run's log only).
func (l *attemptLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return len(p), nil
	}
	l.records++
	return l.w.Write(p)
}

// close flushes and closes the log, once.
func (l *attemptLog) close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	return l.closeFn(ctx)
}

// release gives up the log if the step has logged nothing to it yet (it
// holds only its header), for the step's cluster job: handover closes it
// and returns its number for the job's first attempt to log to, so that a
// remote step's attempt has one log, the job's; drop (a job adopted, with
// its own logs) deletes it. ok is false if the step already logged.
func (l *attemptLog) release(ctx context.Context, drop bool) (n int, ok bool) {
	l.mu.Lock()
	if l.closed || l.records > 1 {
		l.mu.Unlock()
		return 0, false
	}
	l.closed = true
	l.mu.Unlock()
	if drop {
		err := l.abortFn()
		n := l.number()
		if n > 0 {
			err = errors.Join(err, l.b.Delete(ctx, statusfile.LogKey(n)))
		}
		return n, err == nil
	}
	n, err := l.claim(ctx)
	err = errors.Join(err, l.closeFn(ctx))
	return n, err == nil
}

// key returns the log's key, "" if it has no number yet.
func (l *attemptLog) key() string {
	if n := l.number(); n > 0 {
		return statusfile.LogKey(n)
	}
	return ""
}

// openAttemptLog opens the next attempt log of the step at path, whose
// bucket b may write control files: claimed at once on a local disk, at
// its first upload on an object store.
func openAttemptLog(ctx context.Context, b *store.Bucket, path string) (*attemptLog, error) {
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
		return &attemptLog{b: b, w: f, closeFn: func(context.Context) error { return f.Close() }, abortFn: f.Close,
			claim: func(context.Context) (int, error) { return n, nil }, number: func() int { return n }}, nil
	}
	u := &uploadedLog{b: b, stop: make(chan struct{})}
	u.wg.Go(u.loop)
	return &attemptLog{b: b, w: u, closeFn: u.close, abortFn: u.abort, claim: u.claim, number: u.number}, nil
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

// openLog opens the log of an attempt at step s (named label) by worker, whose
// function runs in this process; it returns nil for a step that runs as a
// cluster job (whose job writes the attempt's log), or if the log cannot
// be created, which is logged and does not stop the step. The second value
// logs to the file alone.
func (x *executor) openLog(ctx context.Context, s *Step, label string, b *store.Bucket, path, worker string) (*attemptLog, *slog.Logger) {
	if s.Remote != nil && x.remote != nil {
		return nil, nil
	}
	log, err := openAttemptLog(ctx, b, path)
	if err != nil {
		x.logger.Warn("the step's attempt log cannot be created; its records go to the run's log only", "step", label, "error", err)
		return nil, nil
	}
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
	if ferr != nil {
		file.Error("step function failed", "error", ferr)
	} else {
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
