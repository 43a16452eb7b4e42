package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"example.com/cairn/cluster/driver"
)

// goneLimit is how many consecutive polls may not find a job before it
// counts as lost: a scheduler may take a moment to show a new job.
const goneLimit = 3

// logTailBytes bounds the log tail carried by a JobError.
const logTailBytes = 4 << 10

// Attempt is one submission of a job, or one in-place restart of it by the
// scheduler.
type Attempt struct {
	// N numbers attempts from 1.
	N int
	// ID is the scheduler's job ID (in-place restarts share it).
	ID string
	// LogPath is the file holding the attempt's output.
	LogPath string
	// Status is the attempt's last known status; Cause and ExitCode say
	// why a finished attempt did not succeed.
	Status   Status
	Cause    string
	ExitCode int
	// Resources is what the attempt requested (JobSpec.Resize may grow it
	// from one attempt to the next).
	Resources Resources
}

// Job is a submitted (or adopted) job. Its methods are safe for concurrent
// use.
type Job struct {
	c    *Client
	spec JobSpec
	res  Resources     // of the current attempt; guarded by mu
	done chan struct{} // closed when the job is finished or abandoned

	// mu guards the fields below.
	mu          sync.Mutex
	ds          *driver.JobSpec // the current attempt as submitted
	id          string
	adopted     bool
	status      Status
	last        driver.Status
	attempts    []Attempt
	restarts    int // in-place restarts of the current submission seen
	failures    int // failure retries left
	preemptions int // preemption retries left
	gone        int // consecutive polls that did not find the job
	cancelled   bool
	err         error // final error, set when done is closed
}

// Name returns the job's sanitised name.
func (j *Job) Name() string { return j.ds.Name }

// ID returns the scheduler's ID of the job's current attempt.
func (j *Job) ID() string { return j.currentID() }

func (j *Job) currentID() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.id
}

// Adopted reports whether the job was found by Client.Adopt rather than
// submitted by this client.
func (j *Job) Adopted() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.adopted
}

// Status returns the job's last known status without asking the
// scheduler.
func (j *Job) Status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.status
}

// Attempts returns the job's attempts so far, oldest first.
func (j *Job) Attempts() []Attempt {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.attempts)
}

// LogDir returns the directory of the job's attempt logs.
func (j *Job) LogDir() string { return j.spec.LogDir }

// Logs opens the log of the job's latest attempt. The file may still be
// growing, or not exist yet (errors.Is(err, fs.ErrNotExist)) while the job
// is pending.
func (j *Job) Logs() (io.ReadCloser, error) {
	j.mu.Lock()
	p := j.attempts[len(j.attempts)-1].LogPath
	j.mu.Unlock()
	return os.Open(p)
}

// Done returns a channel closed when the job is finished (or the client
// closed).
func (j *Job) Done() <-chan struct{} { return j.done }

// Wait blocks until the job is finished or ctx is done, and returns its
// status. It returns nil error only for Succeeded. A job that failed or was
// stopped gives a *JobError; if ctx ends first, Wait returns the current
// status and context.Cause(ctx), and the job goes on (see Cancel).
func (j *Job) Wait(ctx context.Context) (Status, error) {
	select {
	case <-j.done:
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.status, j.err
	case <-ctx.Done():
		return j.Status(), context.Cause(ctx)
	}
}

// Cancel asks the scheduler to stop the job; Wait then reports Stopped.
// Cancelling a finished job does nothing.
func (j *Job) Cancel(ctx context.Context) error {
	j.mu.Lock()
	if j.status.Finished() {
		j.mu.Unlock()
		return nil
	}
	j.cancelled = true
	id := j.id
	j.mu.Unlock()
	err := j.c.drv.Cancel(ctx, id)
	if err != nil && j.c.drv.ErrorCode(err) != driver.NotFound {
		return j.c.wrap("cancel "+j.ds.Name, err)
	}
	j.c.poke() // poll now: the job should be stopped soon
	return nil
}

// WaitAll waits for every job and returns their statuses in order. The
// error joins the errors of the jobs that did not succeed (each a
// *JobError), or is the context's cause if ctx ends first.
func WaitAll(ctx context.Context, jobs ...*Job) ([]Status, error) {
	sts := make([]Status, len(jobs))
	var errs []error
	for i, j := range jobs {
		s, err := j.Wait(ctx)
		sts[i] = s
		if err != nil {
			if ctx.Err() != nil {
				return sts, err
			}
			errs = append(errs, err)
		}
	}
	return sts, errors.Join(errs...)
}

// advance applies one polled status; it runs on the client's goroutine. It
// reports whether anything changed.
func (j *Job) advance(ctx context.Context, st driver.Status) bool {
	// A program killed by a signal exits, as a shell reports it, with
	// 128+signal; backends report the signal as they learn it.
	if st.Cause == driver.CauseExit && st.ExitCode == 0 && st.Signal != 0 {
		st.ExitCode = 128 + st.Signal
	}
	j.mu.Lock()
	if j.status.Finished() {
		j.mu.Unlock()
		return false
	}
	changed := st.State != j.last.State || st.Restarts != j.last.Restarts
	j.last = st
	if st.State != driver.Gone {
		j.gone = 0
	}
	// In-place restarts (a Slurm requeue) are attempts that were preempted.
	for j.restarts < st.Restarts {
		j.restarts++
		cur := &j.attempts[len(j.attempts)-1]
		cur.Status, cur.Cause = Failed, causeNames[driver.CausePreempted]
		n := cur.N + 1
		a := newAttempt(j.ds.LogDir, n, j.id)
		a.Resources = j.res
		j.attempts = append(j.attempts, a)
		j.preemptions--
		j.c.log.Info("cluster: job restarted in place by the scheduler", "cluster", j.c.name, "job", j.ds.Name, "id", j.id, "attempt", n)
	}
	if j.preemptions < 0 {
		id := j.id
		j.mu.Unlock()
		_ = j.c.drv.Cancel(ctx, id)
		j.mu.Lock()
		j.finish(Failed, driver.CausePreempted, -1, "preemption retry budget exhausted")
		j.mu.Unlock()
		return true
	}
	cur := &j.attempts[len(j.attempts)-1]
	switch st.State {
	case driver.Pending, driver.Running:
		s := fromDriver(st.State)
		cur.Status, j.status = s, s
		j.mu.Unlock()
		return changed
	case driver.Gone:
		j.gone++
		if j.gone < goneLimit {
			j.mu.Unlock()
			return false
		}
		j.finish(Failed, driver.CauseOther, -1, "the scheduler no longer knows the job")
		j.err = fmt.Errorf("%w: %w", j.err, ErrNotFound)
		j.mu.Unlock()
		return true
	case driver.Succeeded:
		cur.Status, cur.ExitCode = Succeeded, 0
		j.finish(Succeeded, driver.CauseNone, 0, "")
		j.mu.Unlock()
		return true
	}
	// Failed or Stopped.
	cur.Status, cur.Cause, cur.ExitCode = fromDriver(st.State), causeNames[st.Cause], st.ExitCode
	if j.cancelled || st.State == driver.Stopped || st.Cause == driver.CauseCancelled {
		j.finish(Stopped, driver.CauseCancelled, st.ExitCode, st.Reason)
		j.mu.Unlock()
		return true
	}
	retry := false
	switch st.Cause {
	case driver.CausePreempted, driver.CauseNodeFailure:
		retry = j.preemptions > 0
		j.preemptions--
	case driver.CauseUnsatisfiable, driver.CauseDeadline:
	default:
		retry = j.failures > 0
		j.failures--
	}
	if !retry {
		j.finish(Failed, st.Cause, st.ExitCode, st.Reason)
		id := j.id
		j.mu.Unlock()
		if st.Cause == driver.CauseUnsatisfiable {
			// The scheduler may keep it queued forever: remove it.
			_ = j.c.drv.Cancel(ctx, id)
		}
		return true
	}
	next := *j.ds
	next.Attempt = cur.N + 1
	resized := st.Cause != driver.CausePreempted && st.Cause != driver.CauseNodeFailure && j.spec.Resize != nil
	if resized {
		j.res = j.spec.resized(Retry{Attempt: next.Attempt, Cause: causeNames[st.Cause], Previous: j.res})
		next.Resources = driverResources(j.res)
	}
	res := j.res
	j.mu.Unlock()

	attrs := []any{"cluster", j.c.name, "job", next.Name, "attempt", next.Attempt, "previous", causeNames[st.Cause], "reason", st.Reason}
	if resized {
		attrs = append(attrs, "cpus", res.CPUs, "memory", res.Memory, "time_limit", res.TimeLimit)
	}
	j.c.log.Info("cluster: retrying job", attrs...)
	id, err := j.c.drv.Submit(ctx, &next)

	j.mu.Lock()
	if err != nil {
		j.finish(Failed, st.Cause, st.ExitCode, st.Reason)
		j.err = fmt.Errorf("%w; resubmitting failed: %w", j.err, j.c.wrap("submit "+next.Name, err))
		j.mu.Unlock()
		return true
	}
	j.ds, j.id, j.restarts, j.status = &next, id, 0, Pending
	j.last = driver.Status{}
	a := newAttempt(next.LogDir, next.Attempt, id)
	a.Resources = j.res
	j.attempts = append(j.attempts, a)
	cancelled := j.cancelled
	j.mu.Unlock()
	if cancelled { // Cancel raced the resubmission
		_ = j.c.drv.Cancel(ctx, id)
	}
	return true
}

// finish makes the job final; j.mu is held.
func (j *Job) finish(s Status, cause driver.Cause, exit int, reason string) {
	j.status = s
	cur := &j.attempts[len(j.attempts)-1]
	cur.Status = s
	if s != Succeeded {
		if cur.Cause == "" {
			cur.Cause = causeNames[cause]
		}
		cur.ExitCode = exit
		tail, _ := readTail(cur.LogPath, logTailBytes)
		j.err = &JobError{
			Name: j.ds.Name, ID: j.id, Status: s, Cause: causeNames[cause], ExitCode: exit,
			Reason: reason, Attempts: len(j.attempts), LogPath: cur.LogPath, LogTail: tail,
		}
	}
	j.c.unwatch(j)
	close(j.done)
}

// abandon ends waits when the client closes before the job finished.
func (j *Job) abandon() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.status.Finished() {
		return
	}
	j.err = fmt.Errorf("cluster %s: job %s (%s): %w", j.c.name, j.ds.Name, j.id, ErrClosed)
	close(j.done)
}

// readTail returns up to the last n bytes of the file at path, starting at
// a line boundary.
func readTail(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := max(fi.Size()-n, 0)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return "", err
	}
	if off > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return strings.ToValidUTF8(string(buf), "\uFFFD"), nil
}
