package cairn

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"example.com/cairn/internal/dag"
	"example.com/cairn/lease"
	"example.com/cairn/store"
)

// DefaultMaxConcurrent is the number of steps a run executes at once when
// RunOptions.MaxConcurrent is 0.
const DefaultMaxConcurrent = 8

// DefaultPollInterval is how often a run re-checks a step that another
// worker holds.
const DefaultPollInterval = 5 * time.Second

// RunOptions configure Run and RunStep. A nil *RunOptions is not valid for
// Run because Storage is required.
type RunOptions struct {
	// Prefix is the storage root: a local directory or a URL. Steps write
	// under PREFIX/NAME_HASH unless they carry their own Prefix or an
	// absolute OverridePath.
	Prefix string
	// Storage opens buckets for output paths. Required; package cli wires
	// one with the local-disk and in-memory backends.
	Storage BucketOpener
	// MaxConcurrent bounds the steps executing at once in this process; 0
	// means DefaultMaxConcurrent, a negative value is an error.
	MaxConcurrent int
	// DryRun reports, for every step, what would happen, and writes nothing.
	DryRun bool
	// RejectPreviouslyFailed makes a step that failed in an earlier run an
	// error (ErrPreviouslyFailed) instead of running it again. Marin calls
	// the opposite force_run_failed, which defaults to true.
	RejectPreviouslyFailed bool
	// RunOnly, if not empty, restricts the run to steps whose name matches
	// one of the patterns (anywhere in the name, as regexp.MatchString does),
	// plus the dependencies they need. It is an error if no step matches.
	RunOnly []*regexp.Regexp
	// Force re-runs the steps whose name matches one of the patterns even
	// if they already succeeded, under the lease as any run does: the new
	// run replaces the step's artifact and status. Their dependents run
	// again only if their identity changes, unless ForceDownstream is set,
	// which forces every transitive dependent of a forced step too. A step
	// found running elsewhere is waited for, and its result accepted.
	Force           []*regexp.Regexp
	ForceDownstream bool
	// Lease configures the lease heartbeat and staleness; nil means Marin's
	// defaults (refresh every 30 s, stale after 90 s).
	Lease *lease.Options
	// PollInterval is how often a step held by another worker is re-checked;
	// 0 means DefaultPollInterval.
	PollInterval time.Duration
	// WorkerID, if set, is the prefix of this run's lease holder ids;
	// the default is "HOST-PID-RANDOM". Each step attempt appends ".N".
	WorkerID string
	// Logger receives structured logs naming each step by its ID; nil means
	// slog.Default().
	Logger *slog.Logger
	// OnEvent, if set, receives progress events, from one goroutine at a time.
	OnEvent func(Event)
	// Remote runs steps marked remote (Step.Remote, RemoteFunc) as cluster
	// jobs; nil runs them in this process, as Fray's local client does.
	Remote *RemoteOptions
	// Retry is the retry policy of steps whose Step.Retry is nil; nil
	// means no retry.
	Retry *RetryPolicy
	// StopGrace is how long, once ctx is cancelled, a step's function may
	// keep running before the run stops waiting for it: the attempt then
	// ends as Interrupted (its status restored, its lease released) while
	// the function, which ignores its context, is left running on its
	// goroutine until the process exits. 0 means wait for every function
	// to return, however long it takes.
	StopGrace time.Duration
	// StopNow, if not nil, ends the grace period early when it is closed:
	// once ctx is cancelled, running steps are abandoned at once, as at
	// the end of StopGrace (a second Ctrl-C).
	StopNow <-chan struct{}
}

func (o *RunOptions) validate() error {
	switch {
	case o.Storage == nil:
		return fmt.Errorf("%w: RunOptions.Storage is nil", ErrInvalidPipeline)
	case o.MaxConcurrent < 0:
		return fmt.Errorf("%w: max_concurrent must be >= 1, got %d", ErrInvalidPipeline, o.MaxConcurrent)
	case o.PollInterval < 0:
		return fmt.Errorf("%w: negative PollInterval %s", ErrInvalidPipeline, o.PollInterval)
	}
	if err := o.Retry.validate(); err != nil {
		return fmt.Errorf("%w: RunOptions.Retry: %v", ErrInvalidPipeline, err)
	}
	return nil
}

func (o *RunOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

func (o *RunOptions) pollInterval() time.Duration {
	if o.PollInterval == 0 {
		return DefaultPollInterval
	}
	return o.PollInterval
}

func (o *RunOptions) maxConcurrent() int {
	if o.MaxConcurrent == 0 {
		return DefaultMaxConcurrent
	}
	return o.MaxConcurrent
}

// Run runs steps and, first, every dependency of theirs not seen before,
// in dependency order, with at most MaxConcurrent steps executing at once.
//
// steps is consumed lazily and may be unbounded: Run pulls a step only when
// it has room for more pending work, and stops when the sequence ends and
// everything pulled has finished. Steps are deduplicated by output path. A
// step starts the moment its last dependency succeeds. Steps that already
// succeeded are skipped; steps another worker is executing are waited for;
// steps whose worker died are taken over once its lease is stale.
//
// A failed step does not stop independent steps; its dependents are skipped.
// Run returns a Report of every step it considered and:
//   - nil if every step succeeded;
//   - a *RunError listing every failed step (each a *StepError whose root
//     cause is reachable with errors.Is and errors.As) and the skipped ones;
//   - an error satisfying errors.Is(err, ErrInvalidPipeline) for an invalid
//     definition (cycle, bad name or attributes, duplicate output path, no
//     step matching RunOnly); no step starts after it is found;
//   - the context's cause if ctx is cancelled; running steps are stopped,
//     their leases released and their statuses restored.
//   - an error satisfying errors.Is(err, store.ErrPermission) if the
//     storage refused an operation on a step's files (most often its
//     control files: another user's directory that this user cannot
//     write). No step starts after it; the step is reported Unfinished,
//     not failed, because no runner of this user could have run it. It is
//     joined with a *RunError if other steps failed.
func Run(ctx context.Context, steps iter.Seq[*Step], opts *RunOptions) (*Report, error) {
	if opts == nil {
		opts = &RunOptions{}
	}
	if err := opts.validate(); err != nil {
		return &Report{}, err
	}
	sc := &scheduler{
		opts:   opts,
		x:      newExecutor(opts),
		log:    opts.logger(),
		byStep: make(map[*Step]*node),
		byPath: make(map[string]*node),
		work:   make(chan *node, opts.maxConcurrent()),
		done:   make(chan completion, opts.maxConcurrent()),
		retry:  make(chan *node),
		quit:   make(chan struct{}),
	}
	if !opts.DryRun {
		sc.ahead = startLookahead(ctx, opts.Storage, sc.x.readAhead, sc.window())
	}
	defer func() {
		close(sc.quit)
		close(sc.work) // no attempt is in flight when run returns
		sc.wg.Wait()
		sc.ahead.stop()
	}()
	return sc.run(ctx, steps)
}

// Steps adapts a list of steps to the sequence Run consumes.
func Steps(steps ...*Step) iter.Seq[*Step] { return slices.Values(steps) }

type nodeState int

const (
	waiting   nodeState = iota // deps unfinished, or not selected by RunOnly
	ready                      // queued for a slot
	running                    // an attempt is in flight
	deferred                   // held by another worker; retry scheduled
	succeeded                  // done, output in place
	failed                     // done, failed or interrupted
	skipped                    // a dependency failed
)

// node is the scheduler's record of one step (one output path).
type node struct {
	step       *Step
	id, path   string // id: how users see it (Label); stepID: its ID
	stepID     string
	deps       []*node
	dependents []*node
	pending    int // deps not yet succeeded
	state      nodeState
	selected   bool
	waited     bool          // an attempt found it held by another worker
	failedDep  string        // ID of a dependency that failed or was skipped
	bucket     *store.Bucket // opened by the first attempt
	probe      *statusProbe  // its status read ahead, until an attempt takes it (lookahead.go)
	forced     bool          // RunOptions.Force selects it: run even if cached
}

type completion struct {
	n   *node
	res attemptResult
}

// scheduler is the state of one Run. All fields are owned by the goroutine
// executing run; step attempts run in their own goroutines and report back
// on done.
type scheduler struct {
	opts *RunOptions
	x    *executor
	log  *slog.Logger

	byStep map[*Step]*node
	byPath map[string]*node

	queue    []*node // ready nodes, FIFO
	inFlight int     // attempts running
	deferred int     // nodes waiting for a retry timer
	active   int     // selected nodes not yet finished

	work    chan *node // to workers; capacity MaxConcurrent
	workers int        // started so far
	wg      sync.WaitGroup

	done  chan completion
	retry chan *node
	quit  chan struct{} // closed when Run returns; stops retry timers

	ahead *lookahead // reads statuses before steps are ready; nil in a dry run

	report     Report
	failures   []*StepError
	skippedIDs []string
	matched    bool
}

// window bounds how many unfinished steps Run pulls ahead of execution, so
// that an unbounded sequence is not drained into memory.
func (sc *scheduler) window() int { return 4096 + 16*sc.opts.maxConcurrent() }

func (sc *scheduler) run(ctx context.Context, steps iter.Seq[*Step]) (*Report, error) {
	next, stopPull := iter.Pull(steps)
	defer stopPull()
	var (
		exhausted bool
		stopErr   error // definition error or interruption: start nothing new
		ctxDone   = ctx.Done()
	)
	for {
		for stopErr == nil && len(sc.queue) > 0 {
			n := sc.queue[0]
			if sc.finishSettled(n) {
				sc.queue = sc.queue[1:]
				continue
			}
			if sc.inFlight >= sc.opts.maxConcurrent() {
				break
			}
			sc.queue = sc.queue[1:]
			sc.start(ctx, n)
		}
		if stopErr == nil && !exhausted && sc.active < sc.window() {
			s, ok := next()
			if !ok {
				exhausted = true
			} else if err := sc.add(s); err != nil {
				stopErr = err
			}
			continue
		}
		if sc.inFlight == 0 && (stopErr != nil || sc.deferred == 0 && len(sc.queue) == 0) {
			break
		}
		select {
		case c := <-sc.done:
			sc.inFlight--
			if errors.Is(c.res.err, store.ErrPermission) {
				// Issue 13: storage that refuses this user is no step's
				// failure; stop the run as a storage error instead.
				c.res.outcome = Unfinished
				if stopErr == nil {
					stopErr = fmt.Errorf("cairn: stopping the run: step %s: %w", c.n.id, c.res.err)
				}
			}
			sc.finish(c.n, c.res)
		case n := <-sc.retry:
			sc.deferred--
			if stopErr == nil {
				n.state = ready
				sc.queue = append(sc.queue, n)
			}
		case <-ctxDone:
			ctxDone = nil
			stopErr = context.Cause(ctx)
		}
	}
	if stopErr == nil && ctx.Err() != nil && sc.anyInterrupted() {
		// The last completions and the cancellation were ready together
		// and select took the completions: the run was still interrupted.
		stopErr = context.Cause(ctx)
	}
	if stopErr == nil && len(sc.opts.RunOnly) > 0 && !sc.matched {
		stopErr = fmt.Errorf("%w: --run-only %s matched no step", ErrInvalidPipeline, patterns(sc.opts.RunOnly))
	}
	if stopErr == nil && sc.active > 0 {
		// Cannot happen: every selected node's deps are selected and scheduled.
		stopErr = fmt.Errorf("cairn: internal error: %d step(s) never became ready", sc.active)
	}
	for _, n := range sc.byPath {
		if n.selected && (n.state == waiting || n.state == ready || n.state == deferred) {
			sc.report.Steps = append(sc.report.Steps, StepResult{Step: n.id, Name: n.step.Name, Path: n.path, Outcome: Unfinished})
		}
	}
	switch {
	case stopErr != nil && len(sc.failures) > 0 && !errors.Is(stopErr, ErrInvalidPipeline):
		return &sc.report, errors.Join(stopErr, &RunError{Failed: sc.failures, Skipped: sc.skippedIDs})
	case stopErr != nil:
		return &sc.report, stopErr
	case len(sc.failures) > 0:
		return &sc.report, &RunError{Failed: sc.failures, Skipped: sc.skippedIDs}
	}
	return &sc.report, nil
}

// anyInterrupted reports whether a step of the run ended interrupted.
func (sc *scheduler) anyInterrupted() bool {
	for _, r := range sc.report.Steps {
		if r.Outcome == Interrupted {
			return true
		}
	}
	return false
}

func patterns(res []*regexp.Regexp) string {
	s := make([]string, len(res))
	for i, re := range res {
		s[i] = fmt.Sprintf("%q", re.String())
	}
	return strings.Join(s, ", ")
}

// add expands s and its unseen transitive dependencies into nodes, deps
// first, deduplicating by output path.
func (sc *scheduler) add(s *Step) error {
	if s == nil {
		return fmt.Errorf("%w: nil step in sequence", ErrInvalidPipeline)
	}
	if _, seen := sc.byStep[s]; seen {
		return nil
	}
	if _, err := s.ID(); err != nil { // also rejects cycles
		return err
	}
	_, err := dag.PostOrder(s,
		func(st *Step) []*Step { return st.Deps },
		func(st *Step) bool { _, seen := sc.byStep[st]; return seen },
		sc.addNode)
	return err
}

// addNode creates the node of st, whose deps all have nodes.
func (sc *scheduler) addNode(st *Step) error {
	id, _ := st.ID()
	if err := st.Retry.validate(); err != nil {
		return fmt.Errorf("%w: step %s: Retry: %v", ErrInvalidPipeline, id, err)
	}
	path, err := st.OutputPath(sc.opts.Prefix)
	if err != nil {
		return err
	}
	if n, ok := sc.byPath[path]; ok {
		if n.stepID != id {
			return fmt.Errorf("%w: steps %s and %s both write to %s; give one of them another name or OverridePath", ErrInvalidPipeline, n.stepID, id, path)
		}
		sc.byStep[st] = n
		return nil
	}
	n := &node{step: st, id: Label(sc.opts.Prefix, id, path), stepID: id, path: path, forced: matchAny(sc.opts.Force, st.Name)}
	sc.byStep[st] = n
	sc.byPath[path] = n
	for _, d := range st.Deps {
		dn := sc.byStep[d]
		n.forced = n.forced || sc.opts.ForceDownstream && dn.forced
		if slices.Contains(n.deps, dn) {
			continue
		}
		n.deps = append(n.deps, dn)
		dn.dependents = append(dn.dependents, n)
		switch dn.state {
		case succeeded:
		case failed, skipped:
			n.failedDep = dn.id
		default:
			if !sc.opts.DryRun { // a dry run probes every step at once
				n.pending++
			}
		}
	}
	if len(sc.opts.RunOnly) == 0 || sc.matches(n) {
		sc.matched = sc.matched || len(sc.opts.RunOnly) > 0
		sc.selectNode(n)
	}
	return nil
}

// matchAny reports whether name matches one of res.
func matchAny(res []*regexp.Regexp, name string) bool {
	for _, re := range res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

func (sc *scheduler) matches(n *node) bool {
	for _, re := range sc.opts.RunOnly {
		// Names only, as Marin does: a pattern such as "a" would otherwise
		// match the hex digits of many IDs.
		if re.MatchString(n.step.Name) {
			return true
		}
	}
	return false
}

// selectNode marks n and its unselected transitive deps as part of the run.
func (sc *scheduler) selectNode(n *node) {
	todo := []*node{n}
	for len(todo) > 0 {
		m := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if m.selected {
			continue
		}
		m.selected = true
		if m.state == waiting {
			if m.failedDep != "" {
				sc.markSkipped(m)
				continue
			}
			sc.active++
			sc.ahead.add(m)
			if m.pending == 0 {
				m.state = ready
				sc.queue = append(sc.queue, m)
			}
		}
		todo = append(todo, m.deps...)
	}
}

// finishSettled finishes n at once, without a slot or a worker, if the
// status read ahead for it (lookahead.go) has arrived and settles it alone
// (executor.settled: a step that succeeded is cached): a fully cached
// re-run then costs no goroutine hand-off per step. It reports whether it
// did.
func (sc *scheduler) finishSettled(n *node) bool {
	p := n.probe
	if p == nil || n.waited || n.forced || sc.opts.DryRun {
		return false
	}
	select {
	case <-p.done:
	default:
		return false // still being read: the attempt will wait for it
	}
	if !p.ok {
		return false
	}
	res, ok := sc.x.decide(p.status.status, Cached)
	if !ok {
		return false
	}
	n.probe = nil
	if n.bucket == nil {
		n.bucket = p.bucket
	}
	n.state = running
	sc.emit(Event{Kind: StepStarted, Step: n.id, Path: n.path})
	sc.finish(n, res)
	return true
}

// start hands n to a worker for one attempt (or, in a dry run, one probe).
// Workers are started on demand, at most MaxConcurrent of them; a fixed set
// of goroutines keeps their stacks grown between steps.
func (sc *scheduler) start(ctx context.Context, n *node) {
	n.state = running
	sc.inFlight++
	if !n.waited {
		sc.emit(Event{Kind: StepStarted, Step: n.id, Path: n.path})
	}
	if sc.workers < sc.inFlight {
		sc.workers++
		sc.wg.Go(func() {
			for n := range sc.work {
				sc.done <- completion{n, sc.attempt(ctx, n)}
			}
		})
	}
	sc.work <- n
}

// attempt runs in a worker goroutine. It owns n until it returns.
func (sc *scheduler) attempt(ctx context.Context, n *node) attemptResult {
	// A status read ahead (lookahead.go) serves the first attempt only: a
	// retry after waiting for another worker must read afresh.
	b, early := n.probe.take()
	n.probe = nil
	if n.bucket == nil {
		n.bucket = b
	}
	if n.bucket == nil {
		b, err := sc.opts.Storage.OpenBucket(ctx, n.path)
		if err != nil {
			return attemptResult{outcome: Failed, err: err}
		}
		n.bucket = b
	}
	if sc.opts.DryRun {
		res := sc.x.probe(ctx, n.bucket)
		if n.forced && res.outcome == Cached {
			res.outcome = WouldRun
		}
		return res
	}
	return sc.x.attempt(ctx, n.step, n.stepID, n.path, n.bucket, n.waited, early, n.forced && !n.waited)
}

// finish records the result of an attempt and releases what it unblocks.
func (sc *scheduler) finish(n *node, res attemptResult) {
	if res.held != nil {
		if !n.waited {
			sc.log.Info("waiting for another worker", "step", n.id, "holder", res.holder, "lease_age", res.leaseAge.Round(time.Millisecond), "stale_in", res.held.StaleIn.Round(time.Second))
		}
		// Every poll, so that a live view can count down to the takeover.
		sc.emit(Event{Kind: StepWaiting, Step: n.id, Path: n.path, Holder: res.holder, LeaseAge: res.leaseAge, StaleIn: res.held.StaleIn})
		n.waited = true
		n.state = deferred
		sc.deferred++
		time.AfterFunc(sc.opts.pollInterval(), func() {
			select {
			case sc.retry <- n:
			case <-sc.quit:
			}
		})
		return
	}
	sc.active--
	r := StepResult{Step: n.id, Name: n.step.Name, Path: n.path, Outcome: res.outcome, Err: res.err,
		Holder: res.holder, LeaseAge: res.leaseAge, Duration: res.duration}
	sc.addResult(r)
	kind := StepFinished
	if sc.opts.DryRun {
		kind = StepPlanned
	}
	sc.emit(Event{Kind: kind, Step: n.id, Path: n.path, Outcome: res.outcome, Err: res.err,
		Holder: res.holder, LeaseAge: res.leaseAge, Duration: res.duration})
	sc.logResult(r)
	if res.err != nil || !res.outcome.Succeeded() && !sc.opts.DryRun {
		n.state = failed
		err := res.err
		if err == nil {
			err = errors.New(res.outcome.String())
		}
		if res.outcome != Interrupted && res.outcome != Unfinished {
			sc.failures = append(sc.failures, &StepError{Step: n.id, Path: n.path, Err: err})
		}
		if res.outcome == Unfinished {
			return // the run stops (issue 13); dependents stay unfinished
		}
		for _, d := range n.dependents {
			sc.skip(d, n.id)
		}
		return
	}
	n.state = succeeded
	for _, d := range n.dependents {
		d.pending--
		if d.pending == 0 && d.selected && d.state == waiting {
			d.state = ready
			sc.queue = append(sc.queue, d)
		}
	}
}

// skip records that dep failed for n and its transitive dependents, and
// skips those that are selected and waiting. Unselected ones are skipped if
// they are selected later.
func (sc *scheduler) skip(n *node, dep string) {
	todo := []*node{n}
	for len(todo) > 0 {
		m := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if m.state != waiting || m.failedDep != "" {
			continue
		}
		m.failedDep = dep
		if m.selected {
			sc.active--
			sc.markSkipped(m)
		}
		todo = append(todo, m.dependents...)
	}
}

func (sc *scheduler) markSkipped(m *node) {
	m.state = skipped
	sc.skippedIDs = append(sc.skippedIDs, m.id)
	err := fmt.Errorf("%w: %s", ErrDepFailed, m.failedDep)
	sc.addResult(StepResult{Step: m.id, Name: m.step.Name, Path: m.path, Outcome: Skipped, Err: err})
	sc.emit(Event{Kind: StepFinished, Step: m.id, Path: m.path, Outcome: Skipped, Err: err})
	sc.log.Warn("step skipped", "step", m.id, "failed_dependency", m.failedDep)
}

// addResult appends r to the report. The report doubles when full:
// append grows a large slice by a quarter only, and copying a slice of
// 10,000 results (some 2 MB) a dozen times showed in a cached re-run's
// profile.
func (sc *scheduler) addResult(r StepResult) {
	if s := sc.report.Steps; len(s) == cap(s) {
		sc.report.Steps = slices.Grow(s, max(len(s), 64))
	}
	sc.report.Steps = append(sc.report.Steps, r)
}

func (sc *scheduler) emit(e Event) {
	sc.x.events.emit(e) // shared with the attempts, which emit from their goroutines
}

func (sc *scheduler) logResult(r StepResult) {
	attrs := []any{"step", r.Step}
	switch r.Outcome {
	case Ran:
		sc.log.Info("step ran", append(attrs, "duration", r.Duration.Round(time.Microsecond))...)
	case TookOver:
		sc.log.Info("step ran after taking over", append(attrs, "previous_holder", r.Holder, "lease_age", r.LeaseAge.Round(time.Millisecond), "duration", r.Duration.Round(time.Microsecond))...)
	case Cached:
		sc.log.Info("step cached", attrs...)
	case CompletedElsewhere:
		sc.log.Info("step completed by another worker", attrs...)
	case Failed:
		sc.log.Error("step failed", append(attrs, "path", r.Path, "error", r.Err)...)
	case Interrupted:
		sc.log.Warn("step interrupted", attrs...)
	case WouldRun, FailedBefore:
		sc.log.Info("dry run: step "+r.Outcome.String(), append(attrs, "path", r.Path)...)
	case RunningElsewhere:
		sc.log.Info("dry run: step running elsewhere", append(attrs, "holder", r.Holder, "lease_age", r.LeaseAge.Round(time.Millisecond))...)
	}
}
