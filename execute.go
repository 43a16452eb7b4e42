package cairn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
)

// BucketOpener opens the storage rooted at a location (a local path or a
// URL). *store.URLMux implements it.
type BucketOpener interface {
	OpenBucket(ctx context.Context, location string) (*store.Bucket, error)
}

// Output is what a step's function receives: where to write, and how to read
// its dependencies' artifacts.
type Output struct {
	// ID is the running step's name_with_hash.
	ID string
	// Path is the step's output path: a local directory or a URL.
	Path string
	// Bucket is the storage rooted at Path. Control files (names starting
	// with ".executor" or ".cairn", and ".artifact") belong to cairn: Bucket
	// refuses to write or delete them (store.ErrReserved) and List does not
	// show them.
	Bucket *store.Bucket
	// Logger logs with the step's ID attached, to the run's logger and,
	// for a step running in the runner's process, to the attempt's log
	// (.cairn_logs/attempt-N.log under Path, at every level; see
	// steplog.go). In a cluster job it logs to the job's output, which is
	// the attempt's log.
	Logger *slog.Logger
	// WorkerID identifies this attempt in the step's lease.
	WorkerID string

	storage BucketOpener
	prefix  string

	// Remote execution (remote.go): remote runs the step's job; worker is
	// set inside that job (RunWorker); tookOver says the step was taken
	// over, so its job may still be running; remoteUsed and artifactSaved
	// record that the job ran and saved the artifact.
	remote        *remoteRunner
	worker        bool
	tookOver      bool
	remoteUsed    bool
	artifactSaved bool
	// fence is the version of this attempt's RUNNING record: the artifact
	// is saved only while the status file still has it.
	fence store.Version
	// label names the step in logs and events (Label).
	label string
	// events receives the attempt's progress (remote jobs' states);
	// startLogged says the "step started" line was logged (a remote step
	// logs it once its job has an id).
	events      *eventSink
	startLogged bool
	// logKey is the key of the attempt's latest log under Path
	// (statusfile.LogKey), "" if it has none; alog is the in-process
	// attempt's log, nil if none (steplog.go).
	logKey string
	alog   *attemptLog
}

// OpenDep opens the output of dep (normally one of the running step's
// dependencies) for reading.
func (o *Output) OpenDep(ctx context.Context, dep *Step) (*store.Bucket, error) {
	path, err := dep.OutputPath(o.prefix)
	if err != nil {
		return nil, err
	}
	return o.storage.OpenBucket(ctx, path)
}

// Open opens the storage rooted at location (a local path or a URL) with
// the run's BucketOpener, for inputs that are not a dependency's output
// (package recipe's hard-coded paths and sub-paths).
func (o *Output) Open(ctx context.Context, location string) (*store.Bucket, error) {
	return o.storage.OpenBucket(ctx, location)
}

// Load decodes the artifact of dep, a dependency of the running step, into a
// value of type T. A step that returned nil saved null, which loads as nil
// into a pointer, map, slice or interface. Load fails with an error
// satisfying errors.Is(err, ErrNoArtifact) if dep saved none, or saved null
// and T cannot be nil; and with an error naming the artifact if the JSON
// does not fit T: a key T has no field for, a value of the wrong kind, or a
// missing field that an artifact saved from a T always has (one without
// omitempty or omitzero; see artifact.go).
func Load[T any](ctx context.Context, out *Output, dep *Step) (T, error) {
	return LoadArtifact[T](ctx, out.storage, out.prefix, dep)
}

// LoadArtifact decodes the artifact of step s, stored under prefix, into a
// value of type T. Use it outside step functions, for example after Run.
func LoadArtifact[T any](ctx context.Context, storage BucketOpener, prefix string, s *Step) (T, error) {
	var v T
	path, err := s.OutputPath(prefix)
	if err != nil {
		return v, err
	}
	b, err := storage.OpenBucket(ctx, path)
	if err != nil {
		return v, err
	}
	v, found, err := decodeArtifact[T](ctx, b)
	switch {
	case !found && err == nil:
		return v, fmt.Errorf("load %s: %w", s, ErrNoArtifact)
	case err != nil:
		return v, fmt.Errorf("load %s: %w", s, err)
	}
	return v, nil
}

// decodeArtifact reads the artifact under b and decodes it as a T. found is
// false, with no error, if there is none, or if it is JSON null: Marin saves
// a function's None as null where cairn saves nothing, and both mean "no
// artifact". A struct T must find all its always-written fields
// (checkArtifactFields).
func decodeArtifact[T any](ctx context.Context, b *store.Bucket) (v T, found bool, err error) {
	data, err := statusfile.ReadArtifact(ctx, b)
	if errors.Is(err, store.ErrNotExist) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	v, err = DecodeArtifact[T](data, b.URL(statusfile.ArtifactKey))
	return v, true, err
}

// DecodeArtifact decodes data, the JSON of the artifact at location (for
// messages), as a T, as strictly as Load: see decodeArtifactData. Layers
// that read artifacts themselves (package recipe) use it.
func DecodeArtifact[T any](data []byte, location string) (T, error) {
	var v T
	err := decodeArtifactData(data, &v, location)
	return v, err
}

// decodeArtifactData decodes data, the artifact at url, into *v, strictly:
// it fails, naming the artifact and the mismatch, when the JSON does not
// fit T — a key T has no field for, a field an artifact saved from a T
// always has missing (artifact.go), a value of the wrong kind, or null
// (a step that returned nothing) for a type that cannot be nil. The last
// also satisfies errors.Is(err, ErrNoArtifact). On error *v is zero.
func decodeArtifactData[T any](data []byte, v *T, url string) error {
	t := reflect.TypeFor[T]()
	fail := func(err error) error {
		var zero T
		*v = zero
		return fmt.Errorf("artifact %s does not fit %s: %w", url, t, err)
	}
	if string(bytes.TrimSpace(data)) == "null" {
		switch t.Kind() {
		case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
			return nil
		}
		return fail(fmt.Errorf("%w: it is null (the step returned no value); load it as a pointer, or as any", ErrNoArtifact))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail(err)
	}
	if dec.More() {
		return fail(errors.New("data after the JSON value"))
	}
	if err := checkArtifactFields[T](data); err != nil {
		return fail(err)
	}
	return nil
}

// executor runs single steps with the cache, lease and status protocol. It is
// the step's execution strategy: the scheduler in run.go only calls attempt
// and waits, knowing nothing of caches or leases.
type executor struct {
	storage      BucketOpener
	prefix       string
	leaseOpts    lease.Options
	rejectFailed bool
	logger       *slog.Logger
	events       *eventSink      // nil: no RunOptions.OnEvent
	stopGrace    time.Duration   // RunOptions.StopGrace
	stopNow      <-chan struct{} // RunOptions.StopNow

	workerBase string        // host-pid-token, unique per executor
	attempts   atomic.Uint64 // attempt counter for worker ids

	remote *remoteRunner // nil: remote steps run in this process
	retry  *RetryPolicy  // RunOptions.Retry
}

func newExecutor(opts *RunOptions) *executor {
	x := &executor{
		storage:      opts.Storage,
		prefix:       opts.Prefix,
		rejectFailed: opts.RejectPreviouslyFailed,
		logger:       opts.logger(),
		events:       newEventSink(opts.OnEvent),
		stopGrace:    opts.StopGrace,
		stopNow:      opts.StopNow,
	}
	if opts.Lease != nil {
		x.leaseOpts = *opts.Lease
	}
	if x.leaseOpts.Watch == nil {
		x.leaseOpts.Watch = lease.NewWatch()
	}
	x.remote = newRemoteRunner(opts.Remote, opts.Storage, x.logger)
	x.retry = opts.Retry
	x.workerBase = workerBase(opts.WorkerID)
	return x
}

// workerBase names one executor: the given name, or host and pid, then a
// random token. The token is always there, because worker ids must be
// unique to one attempt whatever RunOptions.WorkerID says: a lease that
// names this worker is taken as this worker's own (re-entrant), so two runs
// sharing an id would both run the step at once. It also tells apart two
// processes with the same pid on hosts with the same name (common in
// containers).
func workerBase(name string) string {
	var tok [3]byte
	_, _ = rand.Read(tok[:]) // crypto/rand.Read never fails on Linux
	if name == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "unknown-host"
		}
		name = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return name + "-" + hex.EncodeToString(tok[:])
}

// defaultWorkerBase names this process: see workerBase.
func defaultWorkerBase() string { return workerBase("") }

// newWorkerID returns a worker id unique to one attempt of one step.
func (x *executor) newWorkerID() string {
	return fmt.Sprintf("%s.%d", x.workerBase, x.attempts.Add(1))
}

// observed is a step's status as read, with the status file's version
// ("" if there is none), for a conditional write that follows.
type observed struct {
	status  string
	version store.Version
}

// readAhead reads the status of the step whose output is b, for the
// scheduler to overlap status reads ahead of attempts (lookahead.go). It
// reports whether the read succeeded; the scheduler passes the status back
// to attempt, and treats SUCCESS, which is terminal, as final.
func (x *executor) readAhead(ctx context.Context, b *store.Bucket) (observed, bool) {
	status, v, err := statusfile.ReadStatusVersion(ctx, b)
	return observed{status, v}, err == nil
}

// decide returns the result of an attempt that a status alone settles: a
// succeeded step is cached; a failed one is an error when failures are not
// re-run.
func (x *executor) decide(status string, cached Outcome) (attemptResult, bool) {
	switch status {
	case statusfile.Success:
		return attemptResult{outcome: cached}, true
	case statusfile.Failed, statusfile.DepFailed:
		if x.rejectFailed {
			return attemptResult{outcome: Failed, err: fmt.Errorf("%w (status %s); re-run with force-run-failed to retry it", ErrPreviouslyFailed, status)}, true
		}
	}
	return attemptResult{}, false
}

// probe reports, without writing anything, what running the step at b would
// do. It is the dry-run half of the step's execution strategy.
func (x *executor) probe(ctx context.Context, b *store.Bucket) attemptResult {
	status, err := statusfile.ReadStatus(ctx, b)
	if err != nil {
		return attemptResult{outcome: Failed, err: err}
	}
	if status == statusfile.Success {
		return attemptResult{outcome: Cached}
	}
	rec, ok, err := lease.Inspect(ctx, b, statusfile.LockKey)
	if err != nil {
		return attemptResult{outcome: Failed, err: err}
	}
	// One look cannot tell a live holder from a dead one (see package
	// lease, Clocks): a record that is not ancient counts as held.
	now := time.Now()
	if ok && !rec.Ancient(now, x.leaseOpts.WithDefaults().AncientAfter) {
		return attemptResult{outcome: RunningElsewhere, holder: rec.WorkerID, leaseAge: rec.Age(now)}
	}
	if status == statusfile.Failed || status == statusfile.DepFailed {
		if x.rejectFailed {
			return attemptResult{outcome: Failed, err: fmt.Errorf("%w (status %s)", ErrPreviouslyFailed, status)}
		}
		return attemptResult{outcome: FailedBefore}
	}
	return attemptResult{outcome: WouldRun}
}

// attemptResult is the result of one attempt. held != nil means another
// worker holds the step: the caller should retry later.
type attemptResult struct {
	outcome  Outcome
	err      error
	held     *lease.HeldError
	lost     error // with held: this attempt lost the lease it held
	holder   string
	leaseAge time.Duration
	duration time.Duration
}

// cleanupTimeout bounds the status and lease writes made after a step's
// function returns, including after the run was cancelled.
const cleanupTimeout = 30 * time.Second

// attempt makes one attempt at step s (ID id) whose output is b: cache check,
// lease, function, artifact, terminal status, release. waited says an earlier
// attempt found the step held by another worker.
//
// early, if not nil, is the step's status and its version as read ahead of
// the attempt (lookahead.go); it stands in for the first read, which only
// avoids taking the lease of a step that is already decided. Under the
// lease, the attempt's RUNNING record is written conditionally on the
// status it read (see below): on the early read's version if there was
// one, so that a status unchanged since costs no second read, and the
// conditional write itself proves it unchanged. If the write's condition
// fails, the status changed after the early read: the attempt reads it
// again under the lease and decides from that, exactly as without an
// early read. A stale early status thus costs at most a lease taken and
// given back, or one more read.
//
// force (RunOptions.Force) runs the step even if it already succeeded: the
// new run takes the lease and replaces the status and artifact like any
// other attempt.
func (x *executor) attempt(ctx context.Context, s *Step, id, path string, b *store.Bucket, waited bool, early *observed, force bool) attemptResult {
	cached := Cached
	if waited {
		cached = CompletedElsewhere
	}
	var first observed
	if early != nil {
		first = *early
	} else {
		var err error
		if first.status, first.version, err = statusfile.ReadStatusVersion(ctx, b); err != nil {
			return attemptResult{outcome: Failed, err: err}
		}
	}
	if res, decided := x.decide(first.status, cached); decided && !(force && first.status == statusfile.Success) {
		return res
	}
	if s.Func == nil {
		return attemptResult{outcome: Failed, err: fmt.Errorf("%w: step %s has no Func", ErrInvalidPipeline, id)}
	}
	// label names the step in logs and events: its directory under the
	// prefix, as the scheduler's events do (Label).
	label := Label(x.prefix, id, path)
	worker := x.newWorkerID()
	l, err := lease.Acquire(ctx, b, statusfile.LockKey, worker, &x.leaseOpts)
	if held, ok := errors.AsType[*lease.HeldError](err); ok {
		return heldResult(held)
	}
	if err != nil {
		return attemptResult{outcome: Failed, err: err}
	}
	cleanupCtx, cancelCleanup := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancelCleanup()
	release := func(r attemptResult) attemptResult {
		// A lease lost after the attempt's conditional writes succeeded
		// changes nothing: they prove nobody else has started the step.
		if err := l.Release(cleanupCtx); err != nil && r.err == nil && !errors.Is(err, lease.ErrLost) {
			r.outcome, r.err = Failed, err
		}
		return r
	}

	// Double-check under the lease: another worker may have finished between
	// our status read and our acquisition. The RUNNING record replaces the
	// status only if it is still the version read (or still absent), so the
	// status read before the lease serves, unless the write says it changed:
	// then it is read again, now under the lease, and the decision made
	// again. The version read is what our RUNNING record may replace.
	status, prevVersion := first.status, first.version
	infoWritten := false
	var fence store.Version
	for reread := false; ; reread = true {
		if res, decided := x.decide(status, cached); decided && !(force && status == statusfile.Success) {
			return release(res)
		}
		if !infoWritten {
			if _, err := statusfile.WriteInfoIfAbsent(ctx, b, x.info(s, path)); err != nil {
				return release(attemptResult{outcome: Failed, err: err})
			}
			infoWritten = true
		}
		cond := store.IfAbsent()
		if prevVersion != "" {
			cond = store.IfVersion(prevVersion)
		}
		fence, err = statusfile.WriteStatusIf(ctx, b, statusfile.RunningRecord(worker, time.Now()), cond)
		if errors.Is(err, store.ErrPrecondition) && !reread {
			// Changed since the first read: read it under the lease.
			if status, prevVersion, err = statusfile.ReadStatusVersion(ctx, b); err != nil {
				return release(attemptResult{outcome: Failed, err: err})
			}
			continue
		}
		break
	}
	if errors.Is(err, store.ErrPrecondition) {
		// A worker that lost the lease before we took it wrote its status
		// after our read under the lease: decide again from the next
		// attempt.
		return release(attemptResult{held: &lease.HeldError{Key: b.URL(statusfile.StatusKey), Holder: lease.Record{WorkerID: "(the previous holder, finishing)"}}})
	}
	if err != nil {
		return release(attemptResult{outcome: Failed, err: err})
	}
	if force && status == statusfile.Success {
		x.logger.Info("step forced: running it again", "step", label)
	}
	res := attemptResult{outcome: Ran}
	if l.TookOver || status == statusfile.Running {
		res.outcome = TookOver
		res.holder = l.Previous.WorkerID
		if l.TookOver {
			res.leaseAge = l.Previous.Age(time.Now())
		}
	}
	if force && status == statusfile.Success {
		if err := clearArtifact(ctx, b, fence); errors.Is(err, statusfile.ErrFenced) {
			return x.lost(label, l, err, 0)
		} else if err != nil {
			return release(attemptResult{outcome: Failed, err: fmt.Errorf("forced run: remove the earlier artifact: %w", err)})
		}
	}

	start := time.Now()
	stepCtx, cancel := l.Context(ctx)
	remote := s.Remote != nil && x.remote != nil
	running := Event{Kind: StepRunning, Step: label, Path: path, Worker: worker, Remote: remote}
	var opened func(key string)
	if dir, ok := localPath(path); ok {
		opened = func(key string) { // the live view tails it
			e := running
			e.LogPath = filepath.Join(dir, key)
			x.events.emit(e)
		}
	}
	alog, fileLog := x.openLog(s, label, b, path, worker, opened)
	logger, _ := stepLogger(x.logger, label, alog)
	out := &Output{
		ID:       id,
		Path:     path,
		label:    label,
		Bucket:   b.WithReserved(statusfile.Owner, statusfile.IsControl), // issue 8 item 11
		Logger:   logger,
		WorkerID: worker,
		storage:  x.storage,
		prefix:   x.prefix,
		remote:   x.remote,
		tookOver: res.outcome == TookOver,
		fence:    fence,
		events:   x.events,
	}
	if alog != nil {
		out.alog = alog
	}
	x.events.emit(running)
	if !remote { // a remote step logs it with its job id (remote.go)
		out.startLogged = true
		x.logger.Info("step started", "step", label, "worker", worker)
	}
	val, ferr := x.awaitOrAbandon(ctx, label, func() (any, error) { return x.callWithRetries(stepCtx, s, out) })
	lostCause := context.Cause(stepCtx)
	cancel()
	res.duration = time.Since(start)
	// The writes after the function get cleanupTimeout from now: the step
	// may have run (or waited in a cluster's queue) for longer than that.
	finalCtx, cancelFinal := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancelFinal()
	cleanupCtx = finalCtx // release uses it too
	x.closeLog(cleanupCtx, label, out, fileLog, ferr)

	if ferr != nil && errors.Is(lostCause, lease.ErrLost) && ctx.Err() == nil {
		// The step was stopped because the lease was lost: it is not a
		// failure of the step. Whoever holds the step now finishes it.
		return x.lost(label, l, lostCause, res.duration)
	}
	if ferr != nil && ctx.Err() != nil {
		// Interrupted: put the status back as it was so the next run starts
		// the step at once instead of waiting for a stale lease.
		if status == "" {
			err = b.DeleteIf(cleanupCtx, statusfile.StatusKey, store.IfVersion(fence))
		} else {
			_, err = statusfile.WriteStatusIf(cleanupCtx, b, []byte(status), store.IfVersion(fence))
		}
		if errors.Is(err, store.ErrPrecondition) {
			err = nil // another worker owns the step now
		}
		return release(attemptResult{outcome: Interrupted, err: errors.Join(context.Cause(ctx), err), duration: res.duration})
	}
	if ferr == nil && !out.artifactSaved {
		// A nil result is saved too, as null, as Marin saves None: a
		// dependent can tell "returned nothing" from "never saved".
		data, err := statusfile.EncodeArtifact(val)
		if err == nil {
			err = statusfile.CommitArtifact(cleanupCtx, b, data, fence)
		}
		if errors.Is(err, statusfile.ErrFenced) {
			return x.lost(label, l, err, res.duration)
		}
		if err != nil {
			ferr = fmt.Errorf("save artifact: %w", err)
		}
	}
	if ferr != nil {
		_, err := statusfile.WriteStatusIf(cleanupCtx, b, []byte(statusfile.Failed), store.IfVersion(fence))
		if errors.Is(err, store.ErrPrecondition) {
			return x.lost(label, l, fmt.Errorf("%w (the step failed here: %v)", statusfile.ErrFenced, ferr), res.duration)
		}
		f := statusfile.Failure{Error: ferr.Error(), WorkerID: worker, Time: time.Now().UTC(), Log: out.logKey}
		if pe, ok := errors.AsType[*PanicError](ferr); ok {
			f.Stack = string(pe.Stack)
		} else if ge, ok := errors.AsType[*GoexitError](ferr); ok {
			f.Stack = string(ge.Stack)
		}
		// The failure record is best effort; the status is what matters.
		_ = statusfile.WriteFailure(cleanupCtx, b, f)
		return release(attemptResult{outcome: Failed, err: errors.Join(ferr, err), duration: res.duration})
	}
	_, err = statusfile.WriteStatusIf(cleanupCtx, b, []byte(statusfile.Success), store.IfVersion(fence))
	if errors.Is(err, store.ErrPrecondition) {
		return x.lost(label, l, fmt.Errorf("%w: %s changed while the step ran", statusfile.ErrFenced, b.URL(statusfile.StatusKey)), res.duration)
	}
	if err != nil {
		return release(attemptResult{outcome: Failed, err: err, duration: res.duration})
	}
	return release(res)
}

// lost ends an attempt whose step another worker took over, or whose lease
// this worker could not keep, after its function returned: nothing more is
// written, and the step goes back to waiting on its holder (a held result),
// who finishes it or, if it dies too, is taken over again. If the lease
// record still names this worker (it was lost through refreshes too slow,
// with nobody taking over), the worker is abandoned in the run's Watch so
// that the next attempt takes over at once instead of waiting StaleAfter.
func (x *executor) lost(id string, l *lease.Lease, cause error, ran time.Duration) attemptResult {
	l.Stop()
	x.leaseOpts.Watch.Abandon(l.Worker())
	x.logger.Warn("lease lost; the step goes back to waiting for its holder", "step", id, "worker", l.Worker(), "cause", cause, "ran", ran.Round(time.Millisecond))
	return attemptResult{held: &lease.HeldError{Holder: lease.Record{WorkerID: "(the worker that took over)"}}, lost: cause, duration: ran}
}

// heldResult is the result of an attempt that found the step held.
func heldResult(h *lease.HeldError) attemptResult {
	return attemptResult{held: h, holder: h.Holder.WorkerID, leaseAge: h.Age}
}

// call runs s's function: as a cluster job if s is remote and the run has
// a cluster (the job saves the artifact), else in this process.
func (x *executor) call(ctx context.Context, s *Step, out *Output) (any, error) {
	if s.Remote == nil || x.remote == nil {
		return callFunc(ctx, s.Func, out)
	}
	return nil, out.runRemote(ctx, s.Remote)
}

// runRemote runs the step of out as a cluster job with spec, which saves
// the step's artifact, and records that it did.
func (o *Output) runRemote(ctx context.Context, spec *RemoteSpec) error {
	o.remoteUsed = true
	if err := o.remote.runJob(ctx, o, spec); err != nil {
		return err
	}
	o.artifactSaved = true
	return nil
}

// callFunc runs f, turning a panic into a *PanicError (see its doc for why)
// and a runtime.Goexit into a *GoexitError.
//
// f runs on a goroutine of its own that callFunc waits for: a Goexit
// cannot be stopped once it starts unwinding, and on the caller's goroutine
// it would end the attempt without ever reporting, leaving the run (and a
// SIGTERM's cancellation) waiting forever.
func callFunc(ctx context.Context, f Func, out *Output) (any, error) {
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		var res result
		returned := false
		defer func() {
			if !returned {
				if r := recover(); r != nil {
					res = result{err: &PanicError{Value: r, Stack: debug.Stack()}}
				} else {
					// Neither a return nor a panic (since Go 1.21 even
					// panic(nil) recovers non-nil): runtime.Goexit.
					res = result{err: newGoexitError()}
				}
			}
			done <- res
		}()
		v, err := f(ctx, out)
		res, returned = result{v, err}, true
	}()
	res := <-done
	return res.v, res.err
}

// info builds the `.executor_info` record of s.
func (x *executor) info(s *Step, path string) statusfile.Info {
	id := s.identity()
	deps := make([]string, 0, len(s.Deps))
	for _, d := range s.Deps {
		if p, err := d.OutputPath(x.prefix); err == nil {
			deps = append(deps, p)
		}
	}
	var override *string
	if s.OverridePath != "" {
		override = &s.OverridePath
	}
	fn := "None"
	if s.Func != nil {
		if f := runtime.FuncForPC(reflect.ValueOf(s.Func).Pointer()); f != nil {
			fn = f.Name()
		}
	}
	return statusfile.Info{
		ExecutorVersion:    "step_runner",
		Name:               s.Name,
		FnName:             fn,
		Config:             json.RawMessage(id.attrs),
		OverrideOutputPath: override,
		Dependencies:       deps,
		OutputPath:         path,
	}
}

// RunStep runs the single step s with the full cache and lease protocol,
// waiting while another worker holds it. It does not run s's dependencies;
// use [Run] for that. The returned error is a *StepError.
func RunStep(ctx context.Context, s *Step, opts *RunOptions) (StepResult, error) {
	if opts == nil {
		opts = &RunOptions{}
	}
	if err := opts.validate(); err != nil {
		return StepResult{}, err
	}
	x := newExecutor(opts)
	id, err := s.ID()
	if err != nil {
		return StepResult{}, err
	}
	path, err := s.OutputPath(opts.Prefix)
	if err != nil {
		return StepResult{}, err
	}
	b, err := opts.Storage.OpenBucket(ctx, path)
	if err != nil {
		return StepResult{}, err
	}
	r := StepResult{Step: Label(opts.Prefix, id, path), Name: s.Name, Path: path}
	waited := false
	for {
		res := x.attempt(ctx, s, id, path, b, waited, nil, false)
		if res.held == nil {
			r.Outcome, r.Err, r.Duration = res.outcome, res.err, res.duration
			r.Holder, r.LeaseAge = res.holder, res.leaseAge
			if r.Err != nil {
				return r, &StepError{Step: r.Step, Path: path, Err: r.Err}
			}
			return r, nil
		}
		if !waited {
			x.logger.Info("waiting for another worker", "step", r.Step, "holder", res.holder, "lease_age", res.leaseAge.Round(time.Millisecond))
		}
		waited = true
		select {
		case <-ctx.Done():
			r.Outcome, r.Err = Interrupted, context.Cause(ctx)
			return r, &StepError{Step: r.Step, Path: path, Err: r.Err}
		case <-time.After(opts.pollInterval()):
		}
	}
}
