package cairn

import (
	"context"
	"errors"
	"path"
	"slices"
	"sync"
	"time"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
)

// Status is a step's persisted status.
type Status string

// Status values, as written in `.executor_status`.
const (
	// StatusNone: no status file, an empty one, or a legacy Marin log
	// ending in WAITING; the step never ran.
	StatusNone      Status = ""
	StatusSuccess   Status = statusfile.Success
	StatusFailed    Status = statusfile.Failed
	StatusRunning   Status = statusfile.Running
	StatusDepFailed Status = statusfile.DepFailed
)

// StepState is what the control files under one step's output path say.
type StepState struct {
	// Dir is the step's output path relative to the listed prefix, normally
	// its ID (name_with_hash).
	Dir    string
	Status Status
	// Holder is the worker id in the lease, if there is a lease; LeaseAge is
	// the time since its last refresh by the holder's timestamp and this
	// host's clock, and LeaseStale whether that is more than StaleAfter. Both
	// are hints: a runner judges staleness by watching the record (package
	// lease, Clocks), which a single look cannot do.
	Holder     string
	LeaseAge   time.Duration
	LeaseStale bool
	// LastChange is when the status file was last written (zero if unknown).
	LastChange time.Time
	// Error is the recorded cause of the last failure, if cairn recorded one.
	Error string
	// Job and JobLog describe the cluster job of a remote step, if it ran
	// as one: the cluster, job name and ID, and its last attempt's log.
	Job    string
	JobLog string
	// Problem describes a control file that could not be read or parsed.
	Problem string
}

// InspectOptions configure Inspect. A nil *InspectOptions means defaults.
type InspectOptions struct {
	// StaleAfter decides LeaseStale; 0 means lease.DefaultStaleAfter.
	StaleAfter time.Duration
	// Concurrency bounds parallel reads; 0 means 16.
	Concurrency int
}

// Inspect lists every step under b — every directory holding a status, lease
// or info file, whether cairn or Marin wrote it — with its state, sorted by
// directory. Unreadable control files are reported in StepState.Problem, not
// as an error; the error is for failing to list b.
func Inspect(ctx context.Context, b *store.Bucket, opts *InspectOptions) ([]StepState, error) {
	staleAfter, conc := lease.DefaultStaleAfter, 16
	if opts != nil && opts.StaleAfter > 0 {
		staleAfter = opts.StaleAfter
	}
	if opts != nil && opts.Concurrency > 0 {
		conc = opts.Concurrency
	}
	seen := map[string]bool{}
	var dirs []string
	for key, err := range b.List(ctx, "") {
		if err != nil {
			return nil, err
		}
		switch path.Base(key) {
		case statusfile.StatusKey, statusfile.LockKey, statusfile.InfoKey:
			if d := path.Dir(key); d != "." && !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	slices.Sort(dirs)
	states := make([]StepState, len(dirs))
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i, d := range dirs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			states[i] = inspectStep(ctx, b, d, staleAfter)
		})
	}
	wg.Wait()
	return states, nil
}

func inspectStep(ctx context.Context, root *store.Bucket, dir string, staleAfter time.Duration) StepState {
	st := StepState{Dir: dir}
	b, err := root.Sub(dir)
	if err != nil {
		st.Problem = err.Error()
		return st
	}
	var problems []error
	s, err := statusfile.ReadStatus(ctx, b)
	problems = append(problems, err)
	st.Status = Status(s)
	if a, err := b.Stat(ctx, statusfile.StatusKey); err == nil && a.ModTime != 0 {
		st.LastChange = time.Unix(0, a.ModTime)
	}
	rec, ok, err := lease.Inspect(ctx, b, statusfile.LockKey)
	problems = append(problems, err)
	if ok {
		now := time.Now()
		// A single look can only go by the holder's clock: a hint.
		st.Holder, st.LeaseAge, st.LeaseStale = rec.WorkerID, rec.Age(now), rec.Age(now) > staleAfter
	}
	if st.Status == StatusFailed {
		f, ok, err := statusfile.ReadFailure(ctx, b)
		problems = append(problems, err)
		if ok {
			st.Error = f.Error
		}
	}
	if rem, ok, err := statusfile.ReadRemote(ctx, b); err != nil {
		problems = append(problems, err)
	} else if ok {
		st.Job = rem.Cluster + ":" + rem.Job
		if n := len(rem.JobIDs); n > 0 {
			st.Job += " (" + rem.JobIDs[n-1] + ")"
		}
		if n := len(rem.Logs); n > 0 {
			st.JobLog = rem.Logs[n-1]
		}
	}
	if err := errors.Join(problems...); err != nil {
		st.Problem = err.Error()
	}
	return st
}
