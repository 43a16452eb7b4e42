package cairn

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"example.com/cairn/lease"
)

var (
	// ErrInvalidPipeline marks a definition error: an invalid name, attributes
	// that cannot be hashed, a dependency cycle, two different steps with one
	// output path, or invalid options. Nothing is written for such a pipeline.
	ErrInvalidPipeline = errors.New("invalid pipeline")

	// ErrPreviouslyFailed is returned for a step whose status is FAILED or
	// DEP_FAILED from an earlier run when RunOptions.RejectPreviouslyFailed
	// is set.
	ErrPreviouslyFailed = errors.New("step failed previously")

	// ErrDepFailed is the cause recorded for a step that was skipped because
	// one of its dependencies failed.
	ErrDepFailed = errors.New("dependency failed")

	// ErrLeaseLost is the cause of a step failure when another worker took
	// over the step's lease while it ran (for example because this process
	// could not refresh it in time). It is lease.ErrLost.
	ErrLeaseLost = lease.ErrLost

	// ErrNoArtifact is returned by Load for a step that saved no artifact,
	// or that saved JSON null (it returned nothing, as Marin records None)
	// when the requested type cannot be nil.
	ErrNoArtifact = errors.New("step has no artifact")
)

// StepError is the failure of one step. Err is the root cause: the error the
// step's function returned, a *PanicError, a *GoexitError, or an error
// satisfying ErrLeaseLost, ErrPreviouslyFailed or ErrDepFailed.
type StepError struct {
	// Step is the step's ID (name_with_hash).
	Step string
	// Path is the step's output path.
	Path string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %s: %v", e.Step, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// RunError aggregates the failures of a run. Unwrap exposes every
// *StepError, so errors.Is and errors.As reach each root cause.
type RunError struct {
	// Failed are the steps that failed, in the order they failed.
	Failed []*StepError
	// Skipped are the IDs of steps not run because a dependency failed.
	Skipped []string
}

func (e *RunError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d step(s) failed", len(e.Failed))
	if len(e.Skipped) > 0 {
		fmt.Fprintf(&b, " and %d dependent step(s) were skipped", len(e.Skipped))
	}
	for i, f := range e.Failed {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-i)
			break
		}
		fmt.Fprintf(&b, "; %v", f)
	}
	return b.String()
}

// Unwrap returns the step errors.
func (e *RunError) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f
	}
	return errs
}

// PanicError is the cause of a step failure when its function panicked. The
// runner recovers such panics so that one step cannot take down a process
// that holds other steps' leases (they would stall until their leases went
// stale); errgroup makes the opposite choice for a general-purpose group.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// GoexitError is the cause of a step failure when its function ended its
// goroutine with runtime.Goexit instead of returning, most often through
// t.FailNow, t.Fatal or t.SkipNow called from a step in a test. Such a
// function returned no value and no error, so the runner cannot tell success
// from failure; it counts the step failed rather than waiting forever for a
// return that will never come (issue 8).
type GoexitError struct {
	// Caller is the function that called runtime.Goexit, outside packages
	// runtime and testing, as "pkg.Func (file:line)"; "" if not found.
	Caller string
	// Stack is the goroutine's stack when it exited.
	Stack []byte
}

func (e *GoexitError) Error() string {
	from := ""
	if e.Caller != "" {
		from = " from " + e.Caller
	}
	return "step function called runtime.Goexit" + from + " instead of returning (t.FailNow, t.Fatal or t.SkipNow in a step?)"
}

// newGoexitError describes a runtime.Goexit; call it from a function
// deferred by the goroutine that exits.
func newGoexitError() error {
	e := &GoexitError{Stack: debug.Stack()}
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	seenGoexit := false
	for {
		fr, more := frames.Next()
		if fr.Function == "runtime.Goexit" {
			seenGoexit = true
		} else if seenGoexit && !strings.HasPrefix(fr.Function, "runtime.") && !strings.HasPrefix(fr.Function, "testing.") {
			e.Caller = fmt.Sprintf("%s (%s:%d)", fr.Function, filepath.Base(fr.File), fr.Line)
			break
		}
		if !more {
			break
		}
	}
	return e
}
