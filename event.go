package cairn

import (
	"strings"
	"sync"
	"time"
)

// Outcome is what happened to a step in a run, or, in a dry run, what would
// happen.
type Outcome int

const (
	// Unfinished: the run ended (interrupted or stopped by an invalid
	// definition) before the step was decided.
	Unfinished Outcome = iota
	// Ran: this run executed the step and it succeeded.
	Ran
	// TookOver: this run executed the step after taking over from a worker
	// whose lease had gone stale, or that was interrupted.
	TookOver
	// Cached: the step had already succeeded; nothing was run.
	Cached
	// CompletedElsewhere: another worker was executing the step; this run
	// waited and the other worker succeeded.
	CompletedElsewhere
	// Failed: the step failed (see StepResult.Err).
	Failed
	// Skipped: not run because a dependency failed.
	Skipped
	// Interrupted: the run was cancelled while the step ran; its lease was
	// released and its status restored so the next run starts it at once.
	Interrupted

	// Dry-run outcomes.

	// WouldRun: the step has no output yet and would run.
	WouldRun
	// RunningElsewhere: another worker holds a fresh lease on the step.
	RunningElsewhere
	// FailedBefore: the step failed in an earlier run and would run again
	// (or be an error with RejectPreviouslyFailed).
	FailedBefore
)

var outcomeNames = [...]string{
	Unfinished:         "unfinished",
	Ran:                "ran",
	TookOver:           "took over",
	Cached:             "cached",
	CompletedElsewhere: "completed by another worker",
	Failed:             "failed",
	Skipped:            "skipped (dependency failed)",
	Interrupted:        "interrupted",
	WouldRun:           "would run",
	RunningElsewhere:   "running elsewhere",
	FailedBefore:       "failed before",
}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Succeeded reports whether the outcome leaves the step's output in place.
func (o Outcome) Succeeded() bool {
	return o == Ran || o == TookOver || o == Cached || o == CompletedElsewhere
}

// EventKind says what an Event reports.
type EventKind int

const (
	// StepStarted: the step got one of the run's slots and is about to be
	// attempted: its status is checked (it may turn out cached) and its
	// lease taken. Sent once per step, not again after waiting.
	StepStarted EventKind = iota
	// StepWaiting: another worker holds the step; this run waits for it.
	// Sent after every poll that finds it still held (every
	// RunOptions.PollInterval), with Holder, LeaseAge and StaleIn.
	StepWaiting
	// StepFinished: the step reached its outcome.
	StepFinished
	// StepPlanned: dry run; Outcome says what would happen.
	StepPlanned
	// StepRunning: this run holds the step's lease, wrote its RUNNING
	// status and is calling its function now (StepStarted comes earlier,
	// before the cache check). Worker is the attempt's worker id; Remote
	// says the function runs as a cluster job, whose progress follows in
	// StepJob events. It is sent again for the same attempt (same Worker),
	// with LogPath, when the attempt's log file is created, at the step's
	// first log record.
	StepRunning
	// StepJob: a remote step's cluster job was submitted (or adopted) or
	// changed scheduler state. Cluster, JobID, JobState, Submitted and
	// LogPath describe it; one is sent per change, not per poll.
	StepJob
)

var eventKindNames = [...]string{
	StepStarted:  "started",
	StepWaiting:  "waiting",
	StepFinished: "finished",
	StepPlanned:  "planned",
	StepRunning:  "running",
	StepJob:      "job",
}

func (k EventKind) String() string {
	if int(k) < len(eventKindNames) {
		return eventKindNames[k]
	}
	return "unknown"
}

// Event reports progress. Events are delivered to RunOptions.OnEvent from one
// goroutine at a time, in order: OnEvent must not block for long, since the
// scheduler and the step attempts wait for it.
//
// A step's events, in a run that is not a dry run:
//
//	StepStarted                  once, when the step gets a slot
//	StepWaiting                  on every poll while another worker holds it
//	StepRunning                  when its function starts (this run holds the lease)
//	StepJob                      remote steps: submission, then each scheduler state change
//	StepFinished                 once, with the Outcome (cached, ran, failed, skipped, ...)
//
// A skipped step gets only StepFinished (Outcome Skipped). A step whose
// lease was lost while it ran goes back to StepWaiting, and may get
// StepRunning again when this run takes it over.
type Event struct {
	// Kind says what the event reports.
	Kind EventKind
	// Time is when the event was emitted (wall clock of this process).
	Time time.Time
	// Step names the step as users see it (Label: its directory under the
	// prefix, which is its ID unless it has an OverridePath); Path is its
	// output path.
	Step string
	Path string
	// Outcome is set for StepFinished and StepPlanned.
	Outcome Outcome
	// Err is set for failures.
	Err error
	// Holder and LeaseAge describe another worker's lease (StepWaiting,
	// RunningElsewhere, TookOver). Holder is a worker id,
	// HOST-PID-RANDOM.N by default (see HolderHost); LeaseAge is measured
	// by the holder's clock and is only a hint.
	Holder   string
	LeaseAge time.Duration
	// StaleIn is set for StepWaiting: how long, by this run's own
	// observation of the lease (lease.HeldError.StaleIn), until the lease
	// may be taken over if its holder stops refreshing it. It is refreshed
	// on every poll; 0 means the lease may be taken over at the next poll
	// (or, after this run lost the lease, that the holder is not known:
	// Holder then says so in words).
	StaleIn time.Duration
	// Duration is how long the step took (StepFinished).
	Duration time.Duration

	// Worker is this run's worker id for the attempt (StepRunning, and
	// StepJob): the id its lease and RUNNING status record carry.
	Worker string
	// Remote is set for StepRunning when the step's function runs as a
	// cluster job (Step.Remote in a run with RunOptions.Remote).
	Remote bool
	// Cluster, JobID, JobState, Submitted and LogPath describe a remote
	// step's cluster job (StepJob): the cluster's name, the scheduler's id
	// of the job's current attempt, its state as the cluster client reports
	// it, upper-cased (cluster.Status.String(): "PENDING", "RUNNING", then
	// "SUCCEEDED", "FAILED" or "STOPPED"), when it was submitted (the
	// queue time of a PENDING job is Time minus Submitted), and the path
	// of the current attempt's log
	// file (a local path on the submitting machine, which may still be
	// growing; "" if unknown). A StepRunning event may carry LogPath too,
	// when the attempt writes a log file of its own (a second StepRunning
	// of the attempt, once the file exists); a live view tails whichever
	// it was given last.
	Cluster   string
	JobID     string
	JobState  string
	Submitted time.Time
	LogPath   string
}

// HolderHost returns the host part of a worker id of the default form
// HOST-PID-RANDOM.N (Event.Holder, Event.Worker), or "" if id does not
// have that form (a RunOptions.WorkerID chosen by the user, say).
func HolderHost(id string) string {
	// HOST may itself contain dashes: PID and RANDOM are the last two
	// dash-separated fields.
	if i := strings.LastIndexByte(id, '.'); i >= 0 && allDigits(id[i+1:]) {
		id = id[:i] // the attempt number
	}
	parts := strings.Split(id, "-")
	if len(parts) < 3 {
		return ""
	}
	pid, tok := parts[len(parts)-2], parts[len(parts)-1]
	if !allDigits(pid) || len(tok) != 6 {
		return ""
	}
	return strings.Join(parts[:len(parts)-2], "-")
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// StepResult is one step's line in a Report.
type StepResult struct {
	Step     string // Label: the directory under the prefix (NAME_HASH by default)
	Name     string
	Path     string
	Outcome  Outcome
	Err      error
	Holder   string        // another worker's id, when relevant
	LeaseAge time.Duration // age of that worker's lease
	Duration time.Duration
}

// Report lists every step a run considered, in the order they were decided.
type Report struct {
	Steps []StepResult
}

// Count returns how many steps had outcome o.
func (r *Report) Count(o Outcome) int {
	n := 0
	for _, s := range r.Steps {
		if s.Outcome == o {
			n++
		}
	}
	return n
}

// Lookup returns the result for the step with the given ID.
func (r *Report) Lookup(id string) (StepResult, bool) {
	for _, s := range r.Steps {
		if s.Step == id {
			return s, true
		}
	}
	return StepResult{}, false
}

// eventSink delivers a run's events to RunOptions.OnEvent from one
// goroutine at a time: the scheduler emits some, step attempts (on their
// own goroutines) the others. A nil *eventSink drops events.
type eventSink struct {
	// mu serialises calls of fn.
	mu sync.Mutex
	fn func(Event)
}

func newEventSink(fn func(Event)) *eventSink {
	if fn == nil {
		return nil
	}
	return &eventSink{fn: fn}
}

func (s *eventSink) emit(e Event) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Time = time.Now()
	s.fn(e)
}
