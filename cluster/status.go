package cluster

import "example.com/cairn/cluster/driver"

// Status is a job's state (Fray's JobStatus).
type Status int

const (
	// Pending: submitted, not yet running (also while waiting to be retried).
	Pending Status = iota
	// Running: at least one replica is running.
	Running
	// Succeeded: finished; every replica exited 0.
	Succeeded
	// Failed: finished without succeeding, retries exhausted.
	Failed
	// Stopped: cancelled.
	Stopped
)

var statusNames = [...]string{Pending: "pending", Running: "running", Succeeded: "succeeded", Failed: "failed", Stopped: "stopped"}

// String returns Fray's name of the status: "pending", "running",
// "succeeded", "failed" or "stopped".
func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Finished reports whether s is final: succeeded, failed or stopped.
func (s Status) Finished() bool { return s == Succeeded || s == Failed || s == Stopped }

func fromDriver(s driver.State) Status {
	switch s {
	case driver.Running:
		return Running
	case driver.Succeeded:
		return Succeeded
	case driver.Failed, driver.Gone:
		return Failed
	case driver.Stopped:
		return Stopped
	}
	return Pending
}
