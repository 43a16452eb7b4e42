package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"example.com/cairn/cluster/driver"
)

// Default polling intervals.
const (
	DefaultPollMin = 50 * time.Millisecond
	// DefaultPollMax keeps the delay between a job's end and its runner
	// noticing small next to Slurm's own ~1 s scheduling tick, at a cost of
	// at most 4 batched status requests a second per client.
	DefaultPollMax = 250 * time.Millisecond
)

// requestTimeout bounds one call into the driver made by the poller.
const requestTimeout = time.Minute

// Options configure a Client. A nil *Options means all defaults.
type Options struct {
	// Name names the backend in messages ("local", "slurm"); "" means
	// "cluster".
	Name string
	// PollMin and PollMax bound the interval between status requests: it
	// starts at PollMin after a submission or a change of state and grows
	// by half each quiet tick up to PollMax. 0 means DefaultPollMin and
	// DefaultPollMax.
	PollMin, PollMax time.Duration
	// LogRoot is the parent of the log directories of jobs submitted
	// without JobSpec.LogDir; "" means os.TempDir()/cairn-jobs.
	LogRoot string
	// Logger receives retries and polling problems; nil means
	// slog.Default().
	Logger *slog.Logger
	// MaxPack bounds how many jobs with the same request (see
	// driver.Packable) Submit packs into one scheduler request on a backend
	// that can (driver.Packer: Slurm job arrays): 0 means the backend's
	// limit, 1 turns packing off. Jobs are packed only when they arrive
	// while a submission of their request is in flight, so a lone job is
	// never delayed (see pack.go).
	MaxPack int
	// PackWindow, if positive, holds the first job of a group of packable
	// jobs for that long before submitting it, so that jobs arriving just
	// after it join its pack. 0 (the default) never holds a job back.
	PackWindow time.Duration
}

// Client submits jobs to one cluster backend and watches them. Create one
// with NewClient or Mux.Open; close it with Close.
type Client struct {
	drv     driver.Scheduler
	name    string
	pollMin time.Duration
	pollMax time.Duration
	logRoot string
	log     *slog.Logger
	packer  *packer // nil: one submission per job

	pollFailures int // consecutive failed status requests; poller only

	wake   chan struct{} // a job was added: poll soon
	quit   chan struct{} // closed by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the fields below.
	mu     sync.Mutex
	active map[*Job]struct{}
	closed bool
}

// NewClient returns a client over drv and starts its polling goroutine.
// The client owns drv: Close closes it.
func NewClient(drv driver.Scheduler, opts *Options) *Client {
	var o Options
	if opts != nil {
		o = *opts
	}
	c := &Client{
		drv:     drv,
		name:    o.Name,
		pollMin: o.PollMin,
		pollMax: o.PollMax,
		logRoot: o.LogRoot,
		log:     o.Logger,
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		active:  make(map[*Job]struct{}),
		packer:  newPacker(drv, o.MaxPack, o.PackWindow),
	}
	if c.name == "" {
		c.name = "cluster"
	}
	if c.pollMin <= 0 {
		c.pollMin = DefaultPollMin
	}
	if c.pollMax <= 0 {
		c.pollMax = DefaultPollMax
	}
	c.pollMax = max(c.pollMax, c.pollMin)
	if c.logRoot == "" {
		c.logRoot = filepath.Join(os.TempDir(), "cairn-jobs")
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Go(func() { c.poll(ctx) })
	return c
}

// Name returns the backend's name, as given in Options.Name.
func (c *Client) Name() string { return c.name }

// Close stops watching jobs and closes the driver. Jobs keep running on
// backends whose jobs outlive their client (Slurm); Wait on a job of a
// closed client returns ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.quit)
	c.cancel()
	c.wg.Wait()
	return c.drv.Close()
}

// Submit validates spec, completes it with defaults and submits its first
// attempt. It returns once the scheduler has accepted the job. Jobs
// submitted concurrently with the same request may be packed into one
// scheduler request (Options.MaxPack); each is still its own Job. A request
// the scheduler rejects outright fails with an error satisfying
// errors.Is(err, ErrUnsatisfiable) that carries the scheduler's reason.
func (c *Client) Submit(ctx context.Context, spec JobSpec) (*Job, error) {
	ds, err := c.prepare(&spec)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(ds.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster %s: submit %s: log directory: %w", c.name, ds.Name, err)
	}
	id, err := c.submitPacked(ctx, ds)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return nil, fmt.Errorf("cluster %s: %w", c.name, err)
		}
		return nil, c.wrap("submit "+ds.Name, err)
	}
	j := c.newJob(spec, ds, id)
	if err := c.watch(j); err != nil {
		_ = c.drv.Cancel(context.WithoutCancel(ctx), id)
		return nil, err
	}
	return j, nil
}

// Adopt looks for a job the current user submitted earlier (possibly from
// another client or process) under spec's sanitised name and with spec's
// Tag that is still pending or running, and watches it as if this client
// had submitted it. Other users' jobs are never adopted, whatever their
// name and tag (drivers' Find returns only the user's own jobs); a Tag
// that an attacker cannot compute (see cairn's remote runner) also keeps
// the user's unrelated jobs out.
// spec must be the one the job was submitted with: it provides the log
// directory and retry budgets. If there is no such job the error satisfies
// errors.Is(err, ErrNotFound).
func (c *Client) Adopt(ctx context.Context, spec JobSpec) (*Job, error) {
	ds, err := c.prepare(&spec)
	if err != nil {
		return nil, err
	}
	found, err := c.drv.Find(ctx, ds.Name)
	if err != nil {
		return nil, c.wrap("find "+ds.Name, err)
	}
	for _, f := range found {
		if f.Tag != ds.Tag || (f.State != driver.Pending && f.State != driver.Running) {
			continue
		}
		if f.Attempt > 0 {
			ds.Attempt = f.Attempt
		}
		if a, ok := c.drv.(driver.Adopter); ok {
			if err := a.Adopt(ctx, f.ID, ds); err != nil {
				return nil, c.wrap("adopt "+ds.Name, err)
			}
		}
		j := c.newJob(spec, ds, f.ID)
		j.adopted = true
		j.status = fromDriver(f.State)
		if err := c.watch(j); err != nil {
			return nil, err
		}
		return j, nil
	}
	return nil, fmt.Errorf("cluster %s: adopt %s: %w", c.name, ds.Name, ErrNotFound)
}

// Active reports whether the scheduler lists the job with scheduler ID id
// (an Attempt.ID, possibly of a job another user submitted) as pending or
// running. It neither watches nor adopts the job: it lets a caller that
// cannot adopt a job wait for it to end.
func (c *Client) Active(ctx context.Context, id string) (bool, error) {
	sts, err := c.drv.Status(ctx, []string{id})
	if err != nil {
		return false, c.wrap("status "+id, err)
	}
	if len(sts) != 1 {
		return false, fmt.Errorf("cluster %s: status %s: driver returned %d statuses for 1 job", c.name, id, len(sts))
	}
	return sts[0].State == driver.Pending || sts[0].State == driver.Running, nil
}

// prepare validates spec and fills in its log directory.
func (c *Client) prepare(spec *JobSpec) (*driver.JobSpec, error) {
	ds, err := spec.validate()
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", c.name, err)
	}
	if ds.LogDir == "" {
		var tok [4]byte
		_, _ = rand.Read(tok[:])
		ds.LogDir = filepath.Join(c.logRoot, ds.Name+"-"+hex.EncodeToString(tok[:]))
		spec.LogDir = ds.LogDir
	}
	// The rest of what the driver's contract promises (digest form, an
	// absolute verified program): one check, the drivers' own.
	if err := ds.Validate(); err != nil {
		return nil, fmt.Errorf("cluster %s: %w: %w", c.name, ErrInvalidJob, err)
	}
	return ds, nil
}

func (c *Client) newJob(spec JobSpec, ds *driver.JobSpec, id string) *Job {
	j := &Job{
		c:           c,
		spec:        spec,
		ds:          ds,
		id:          id,
		done:        make(chan struct{}),
		failures:    spec.MaxRetriesFailure,
		preemptions: spec.preemptionBudget(),
		res:         spec.Resources,
	}
	j.attempts = []Attempt{newAttempt(ds.LogDir, ds.Attempt, id)}
	j.attempts[0].Resources = spec.Resources
	return j
}

// watch adds j to the polled jobs.
func (c *Client) watch(j *Job) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("cluster %s: %w", c.name, ErrClosed)
	}
	c.active[j] = struct{}{}
	c.poke()
	return nil
}

func (c *Client) unwatch(j *Job) {
	c.mu.Lock()
	delete(c.active, j)
	c.mu.Unlock()
}

// poll is the client's goroutine: it asks the driver about every watched
// job in one request per tick and advances each job.
// ctx is cancelled by Close.
func (c *Client) poll(ctx context.Context) {
	interval := c.pollMin
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer c.abandon()
	for {
		c.mu.Lock()
		jobs := make([]*Job, 0, len(c.active))
		for j := range c.active {
			jobs = append(jobs, j)
		}
		c.mu.Unlock()
		if len(jobs) == 0 {
			select {
			case <-c.wake:
				interval = c.pollMin
				continue
			case <-c.quit:
				return
			}
		}
		if c.tick(ctx, jobs) {
			interval = c.pollMin
		} else {
			interval = min(interval*3/2, c.pollMax)
		}
		timer.Reset(interval)
		select {
		case <-timer.C:
		case <-c.wake:
			interval = c.pollMin
			timer.Stop() // no stale tick can be received after Stop (Go 1.23 timers)
		case <-c.quit:
			return
		}
	}
}

// tick polls jobs once and reports whether any changed.
func (c *Client) tick(ctx context.Context, jobs []*Job) bool {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.currentID()
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	sts, err := c.drv.Status(rctx, ids)
	cancel()
	if err == nil && len(sts) != len(ids) {
		err = fmt.Errorf("driver returned %d statuses for %d jobs", len(sts), len(ids))
	}
	if err != nil {
		// Log the first failure of a streak and every 20th, not every tick.
		if c.pollFailures++; ctx.Err() == nil && c.pollFailures%20 == 1 {
			c.log.Warn("cluster: polling job status failed; retrying", "cluster", c.name, "failures", c.pollFailures, "error", err)
		}
		return false
	}
	c.pollFailures = 0
	changed := false
	for i, j := range jobs {
		if j.advance(ctx, sts[i]) {
			changed = true
		}
	}
	return changed
}

// abandon ends the watched jobs' waits when the client closes.
func (c *Client) abandon() {
	c.mu.Lock()
	jobs := c.active
	c.active = map[*Job]struct{}{}
	c.mu.Unlock()
	for j := range jobs {
		j.abandon()
	}
}

// poke makes the poller poll now, unless a poll is already due.
func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// newAttempt describes attempt n of a job, whose log goes to logDir.
func newAttempt(logDir string, n int, id string) Attempt {
	return Attempt{N: n, ID: id, LogPath: filepath.Join(logDir, driver.LogName(n))}
}
