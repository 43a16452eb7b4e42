package cluster

import (
	"errors"
	"fmt"
	"strings"

	"example.com/cairn/cluster/driver"
)

var (
	// ErrBadSpec: a cluster spec (CAIRN_CLUSTER) is malformed or names a
	// backend the mux does not have.
	ErrBadSpec = errors.New("bad cluster spec")
	// ErrInvalidJob: a JobSpec is not valid (empty command, bad environment
	// variable name, negative request, ...).
	ErrInvalidJob = errors.New("invalid job")
	// ErrUnsatisfiable: the cluster can never run the request.
	ErrUnsatisfiable = errors.New("unsatisfiable request")
	// ErrUnsupported: the backend lacks a requested feature.
	ErrUnsupported = errors.New("not supported by this cluster")
	// ErrNotFound: no such job.
	ErrNotFound = errors.New("job not found")
	// ErrTransient: the scheduler could not be reached.
	ErrTransient = errors.New("cluster scheduler unavailable")
	// ErrFailed: a job finished without succeeding (see JobError).
	ErrFailed = errors.New("job failed")
	// ErrStopped: a job was cancelled (see JobError).
	ErrStopped = errors.New("job stopped")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("cluster client closed")
)

// wrap wraps a driver error once, adding the sentinel its code maps to.
func (c *Client) wrap(op string, err error) error {
	var sentinel error
	switch c.drv.ErrorCode(err) {
	case driver.NotFound:
		sentinel = ErrNotFound
	case driver.Unsatisfiable:
		sentinel = ErrUnsatisfiable
	case driver.Unsupported:
		sentinel = ErrUnsupported
	case driver.Transient:
		sentinel = ErrTransient
	case driver.Invalid:
		sentinel = ErrInvalidJob
	default:
		return fmt.Errorf("cluster %s: %s: %w", c.name, op, err)
	}
	return fmt.Errorf("cluster %s: %s: %w: %w", c.name, op, sentinel, err)
}

// JobError is the error of a job that did not succeed. It satisfies
// errors.Is(err, ErrFailed) or, for a cancelled job, errors.Is(err,
// ErrStopped); a job the cluster could never schedule also satisfies
// ErrUnsatisfiable.
type JobError struct {
	// Name and ID identify the job (ID of its last attempt).
	Name, ID string
	// Status is Failed or Stopped.
	Status Status
	// Cause is what ended the last attempt: "exit", "preempted",
	// "node failure", "time limit", "out of memory", "cancelled",
	// "unsatisfiable", "deadline", "lost" or "other".
	Cause string
	// ExitCode is the program's exit status, or -1 when unknown.
	ExitCode int
	// Reason is the scheduler's own words.
	Reason string
	// Attempts is the number of attempts made.
	Attempts int
	// LogPath is the last attempt's log file; LogTail its last lines.
	LogPath string
	LogTail string
}

func (e *JobError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s (%s) %s", e.Name, e.ID, e.Status)
	if e.Cause != "" {
		fmt.Fprintf(&b, ": %s", e.Cause)
	}
	if e.ExitCode >= 0 && e.Cause == "exit" {
		fmt.Fprintf(&b, " with code %d", e.ExitCode)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " after %d attempts", e.Attempts)
	}
	if e.LogPath != "" {
		fmt.Fprintf(&b, "; log %s", e.LogPath)
	}
	if t := strings.TrimSpace(e.LogTail); t != "" {
		fmt.Fprintf(&b, "; last lines:\n%s", t)
	}
	return b.String()
}

// Is reports whether target is ErrFailed, ErrStopped or ErrUnsatisfiable
// as the job's outcome says.
func (e *JobError) Is(target error) bool {
	switch target {
	case ErrFailed:
		return e.Status == Failed
	case ErrStopped:
		return e.Status == Stopped
	case ErrUnsatisfiable:
		return e.Cause == causeNames[driver.CauseUnsatisfiable]
	}
	return false
}

var causeNames = map[driver.Cause]string{
	driver.CauseNone:          "",
	driver.CauseExit:          "exit",
	driver.CausePreempted:     "preempted",
	driver.CauseNodeFailure:   "node failure",
	driver.CauseTimeLimit:     "time limit",
	driver.CauseOutOfMemory:   "out of memory",
	driver.CauseCancelled:     "cancelled",
	driver.CauseUnsatisfiable: "unsatisfiable",
	driver.CauseDeadline:      "deadline",
	driver.CauseOther:         "other",
}
