package cairn

import "time"

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
	// StepStarted: the step's function is about to be attempted.
	StepStarted EventKind = iota
	// StepWaiting: another worker holds the step; this run waits for it.
	StepWaiting
	// StepFinished: the step reached its outcome.
	StepFinished
	// StepPlanned: dry run; Outcome says what would happen.
	StepPlanned
)

// Event reports progress. Events are delivered to RunOptions.OnEvent from one
// goroutine at a time, in order.
type Event struct {
	Kind EventKind
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
	// RunningElsewhere, TookOver).
	Holder   string
	LeaseAge time.Duration
	// Duration is how long the step took (StepFinished).
	Duration time.Duration
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
