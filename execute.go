package cairn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
	// Logger logs with the step's ID attached.
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
// value of type T. It fails with an error satisfying
// errors.Is(err, ErrNoArtifact) if dep saved none.
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
// false, with no error, if there is none.
func decodeArtifact[T any](ctx context.Context, b *store.Bucket) (v T, found bool, err error) {
	data, err := statusfile.ReadArtifact(ctx, b)
	if errors.Is(err, store.ErrNotExist) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, true, fmt.Errorf("decode artifact as %s: %w", reflect.TypeFor[T](), err)
	}
	return v, true, nil
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

	workerBase string        // host-pid-token, unique per executor
	attempts   atomic.Uint64 // attempt counter for worker ids

	remote *remoteRunner // nil: remote steps run in this process
}

func newExecutor(opts *RunOptions) *executor {
	x := &executor{
		storage:      opts.Storage,
		prefix:       opts.Prefix,
		rejectFailed: opts.RejectPreviouslyFailed,
		logger:       opts.logger(),
		workerBase:   opts.WorkerID,
	}
	if opts.Lease != nil {
		x.leaseOpts = *opts.Lease
	}
	x.remote = newRemoteRunner(opts.Remote, opts.Storage, x.logger)
	if x.workerBase == "" {
		x.workerBase = defaultWorkerBase()
	}
	return x
}

// defaultWorkerBase names this process: host, pid and a random token, so
// that two processes with the same pid on hosts with the same name (common
// in containers) still differ.
func defaultWorkerBase() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	var tok [3]byte
	_, _ = rand.Read(tok[:]) // crypto/rand.Read never fails on Linux
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(tok[:]))
}

// newWorkerID returns a worker id unique to one attempt of one step.
func (x *executor) newWorkerID() string {
	return fmt.Sprintf("%s.%d", x.workerBase, x.attempts.Add(1))
}

// readAhead reads the status of the step whose output is b, for the
// scheduler to overlap status reads ahead of attempts (lookahead.go). It
// reports whether the read succeeded; the scheduler passes the status back
// to attempt, and treats SUCCESS, which is terminal, as final.
func (x *executor) readAhead(ctx context.Context, b *store.Bucket) (status string, ok bool) {
	status, err := statusfile.ReadStatus(ctx, b)
	return status, err == nil
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
	now := time.Now()
	if ok && !rec.Stale(now, x.leaseOpts.WithDefaults().StaleAfter) {
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
// early, if not nil, is the step's status as read ahead of the attempt
// (lookahead.go); it stands in for the first read, which only avoids taking
// the lease of a step that is already decided. The read under the lease is
// always made and is the one that counts, so a stale early status costs at
// most a lease taken and given back.
func (x *executor) attempt(ctx context.Context, s *Step, id, path string, b *store.Bucket, waited bool, early *string) attemptResult {
	cached := Cached
	if waited {
		cached = CompletedElsewhere
	}
	var status string
	if early != nil {
		status = *early
	} else {
		var err error
		if status, err = statusfile.ReadStatus(ctx, b); err != nil {
			return attemptResult{outcome: Failed, err: err}
		}
	}
	if res, decided := x.decide(status, cached); decided {
		return res
	}
	if s.Func == nil {
		return attemptResult{outcome: Failed, err: fmt.Errorf("%w: step %s has no Func", ErrInvalidPipeline, id)}
	}
	worker := x.newWorkerID()
	l, err := lease.Acquire(ctx, b, statusfile.LockKey, worker, &x.leaseOpts)
	if held, ok := errors.AsType[*lease.HeldError](err); ok {
		return attemptResult{held: held, holder: held.Holder.WorkerID, leaseAge: held.Age}
	}
	if err != nil {
		return attemptResult{outcome: Failed, err: err}
	}
	cleanupCtx, cancelCleanup := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancelCleanup()
	release := func(r attemptResult) attemptResult {
		if err := l.Release(cleanupCtx); err != nil && r.err == nil {
			r.outcome, r.err = Failed, err
		}
		return r
	}

	// Double-check under the lease: another worker may have finished between
	// our status read and our acquisition.
	status, err = statusfile.ReadStatus(ctx, b)
	if err != nil {
		return release(attemptResult{outcome: Failed, err: err})
	}
	if res, decided := x.decide(status, cached); decided {
		return release(res)
	}
	res := attemptResult{outcome: Ran}
	if l.TookOver || status == statusfile.Running {
		res.outcome = TookOver
		res.holder = l.Previous.WorkerID
		if l.TookOver {
			res.leaseAge = l.Previous.Age(time.Now())
		}
	}
	if _, err := statusfile.WriteInfoIfAbsent(ctx, b, x.info(s, path)); err != nil {
		return release(attemptResult{outcome: Failed, err: err})
	}
	if err := statusfile.WriteStatus(ctx, b, statusfile.Running); err != nil {
		return release(attemptResult{outcome: Failed, err: err})
	}

	start := time.Now()
	stepCtx, cancel := l.Context(ctx)
	out := &Output{
		ID:       id,
		Path:     path,
		Bucket:   b.WithReserved(statusfile.Owner, statusfile.IsControl), // issue 8 item 11
		Logger:   x.logger.With("step", id),
		WorkerID: worker,
		storage:  x.storage,
		prefix:   x.prefix,
		remote:   x.remote,
		tookOver: res.outcome == TookOver,
	}
	val, ferr := x.call(stepCtx, s, out)
	cancel()
	res.duration = time.Since(start)

	if lerr := l.Err(); lerr != nil {
		// Another worker owns the step now; its status is theirs to write.
		l.Stop()
		return attemptResult{outcome: Failed, err: lerr, duration: res.duration}
	}
	if ferr != nil && ctx.Err() != nil {
		// Interrupted: put the status back as it was so the next run starts
		// the step at once instead of waiting for a stale lease.
		if status == "" {
			err = statusfile.DeleteStatus(cleanupCtx, b)
		} else {
			err = statusfile.WriteStatus(cleanupCtx, b, status)
		}
		return release(attemptResult{outcome: Interrupted, err: errors.Join(context.Cause(ctx), err), duration: res.duration})
	}
	if ferr == nil && !out.artifactSaved && val != nil && !isNilValue(val) {
		if err := statusfile.WriteArtifact(cleanupCtx, b, val); err != nil {
			ferr = fmt.Errorf("save artifact: %w", err)
		}
	}
	if err := l.Confirm(cleanupCtx); err != nil {
		l.Stop()
		return attemptResult{outcome: Failed, err: err, duration: res.duration}
	}
	if ferr != nil {
		f := statusfile.Failure{Error: ferr.Error(), WorkerID: worker, Time: time.Now().UTC()}
		if pe, ok := errors.AsType[*PanicError](ferr); ok {
			f.Stack = string(pe.Stack)
		}
		// The failure record is best effort; the status is what matters.
		_ = statusfile.WriteFailure(cleanupCtx, b, f)
		err := statusfile.WriteStatus(cleanupCtx, b, statusfile.Failed)
		return release(attemptResult{outcome: Failed, err: errors.Join(ferr, err), duration: res.duration})
	}
	if err := statusfile.WriteStatus(cleanupCtx, b, statusfile.Success); err != nil {
		return release(attemptResult{outcome: Failed, err: err, duration: res.duration})
	}
	return release(res)
}

func isNilValue(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
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

// callFunc runs f, turning a panic into a *PanicError (see its doc for why).
func callFunc(ctx context.Context, f Func, out *Output) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return f(ctx, out)
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
	r := StepResult{Step: id, Name: s.Name, Path: path}
	waited := false
	for {
		res := x.attempt(ctx, s, id, path, b, waited, nil)
		if res.held == nil {
			r.Outcome, r.Err, r.Duration = res.outcome, res.err, res.duration
			r.Holder, r.LeaseAge = res.holder, res.leaseAge
			if r.Err != nil {
				return r, &StepError{Step: id, Path: path, Err: r.Err}
			}
			return r, nil
		}
		if !waited {
			x.logger.Info("waiting for another worker", "step", id, "holder", res.holder, "lease_age", res.leaseAge.Round(time.Millisecond))
		}
		waited = true
		select {
		case <-ctx.Done():
			r.Outcome, r.Err = Interrupted, context.Cause(ctx)
			return r, &StepError{Step: id, Path: path, Err: r.Err}
		case <-time.After(opts.pollInterval()):
		}
	}
}
