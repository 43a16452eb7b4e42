package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"example.com/cairn/cluster/driver"
)

// Packing (issue 12 §4). A pipeline of hundreds of small jobs (one per
// shard) would pay one scheduler submission per job. On a backend that can
// submit several jobs in one request (driver.Packer: a Slurm job array, a
// Kubernetes Indexed Job), Client.Submit packs them, and nothing else about
// a job changes: each is still its own *Job with its own ID, status, log,
// retry budgets, cancellation and adoption (see driver.Packer for what a
// backend promises about each element).
//
// How jobs are grouped: by group commit, as databases batch their log
// writes. A job whose request (driver.Packable) matches no submission in
// progress is submitted at once, alone, on its caller's goroutine: a lone
// job is never held back waiting for company, nor handed to another
// goroutine. Jobs with that request which arrive while that
// submission is in flight queue up, and when it returns they all go in one
// request (up to MaxPack; the rest in the next). So packs form exactly when
// jobs arrive faster than the scheduler accepts them, which is when one
// submission per job costs. Options.PackWindow can hold the first job of a
// group for a few milliseconds more, for callers whose jobs trickle in.
//
// A job that fails is retried alone (Job.advance calls the driver's
// Submit), possibly with more resources: its pack-mates are not resubmitted.

// packer groups concurrent submissions of packable jobs; see above.
type packer struct {
	drv    driver.Scheduler
	pk     driver.Packer
	max    int
	window time.Duration

	// mu guards the field below.
	mu     sync.Mutex
	queues []*packQueue // one per distinct request with jobs waiting or in flight
}

// packQueue holds the jobs waiting for a submission of one request; a
// flusher goroutine runs while it is not empty.
type packQueue struct {
	rep     *driver.JobSpec // the request every job here is Packable with
	waiting []*packReq
}

type packReq struct {
	ds   *driver.JobSpec
	done chan packResult // buffered: the flusher never blocks on it
}

type packResult struct {
	id  string
	err error
}

// newPacker returns the packer of c's driver, or nil if it cannot pack or
// packing is turned off (maxPack 1).
func newPacker(drv driver.Scheduler, maxPack int, window time.Duration) *packer {
	pk, ok := drv.(driver.Packer)
	if !ok || maxPack == 1 {
		return nil
	}
	limit := pk.MaxPack()
	if maxPack > 0 {
		limit = min(limit, maxPack)
	}
	if limit < 2 {
		return nil
	}
	return &packer{drv: drv, pk: pk, max: limit, window: window}
}

// submitPacked submits ds, packed with others of its request if some arrive while
// a submission of that request is in flight. It returns the job's ID. If
// ctx ends while the job waits its turn, the job is never submitted; if it
// ends while the job's submission is in flight, the job is cancelled once
// it exists.
func (c *Client) submitPacked(ctx context.Context, ds *driver.JobSpec) (string, error) {
	p := c.packer
	if p == nil || ds.Replicas != 1 {
		return c.drv.Submit(ctx, ds)
	}
	req := &packReq{ds: ds, done: make(chan packResult, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", ErrClosed
	}
	p.mu.Lock()
	var q *packQueue
	for _, cand := range p.queues {
		if driver.Packable(cand.rep, ds) {
			q = cand
			break
		}
	}
	start := q == nil
	if start {
		q = &packQueue{rep: ds}
		p.queues = append(p.queues, q)
	}
	if start && p.window == 0 {
		// The first job of its request is submitted at once, on the
		// caller's goroutine and under its context, exactly as without
		// packing; the jobs that queue meanwhile are handed to a flusher.
		p.mu.Unlock()
		c.mu.Unlock()
		id, err := c.drv.Submit(ctx, ds)
		c.handOff(ctx, q)
		return id, err
	}
	q.waiting = append(q.waiting, req)
	p.mu.Unlock()
	if start {
		// Started under c.mu, so that Close (which sets closed under c.mu
		// before waiting for c.wg) waits for it.
		c.wg.Go(func() { p.flush(ctx, q) })
	}
	c.mu.Unlock()

	select {
	case r := <-req.done:
		return r.id, r.err
	case <-ctx.Done():
	}
	if p.withdraw(q, req) {
		return "", context.Cause(ctx)
	}
	// Already in a request: wait for it (bounded by requestTimeout), and
	// stop the job nobody will watch.
	r := <-req.done
	if r.err == nil {
		_ = c.drv.Cancel(context.WithoutCancel(ctx), r.id)
	}
	return "", context.Cause(ctx)
}

// handOff starts a flusher for the jobs that queued in q while its first
// job was being submitted, or retires q if there are none. If the client
// closed meanwhile, they fail with ErrClosed.
func (c *Client) handOff(ctx context.Context, q *packQueue) {
	p := c.packer
	c.mu.Lock()
	defer c.mu.Unlock()
	p.mu.Lock()
	var orphans []*packReq
	switch {
	case len(q.waiting) == 0:
		p.queues = slices.DeleteFunc(p.queues, func(x *packQueue) bool { return x == q })
	case c.closed:
		orphans, q.waiting = q.waiting, nil
		p.queues = slices.DeleteFunc(p.queues, func(x *packQueue) bool { return x == q })
	default:
		// Under c.mu, so that Close waits for it (see submitPacked).
		c.wg.Go(func() { p.flush(ctx, q) })
	}
	p.mu.Unlock()
	for _, r := range orphans {
		r.done <- packResult{err: ErrClosed}
	}
}

// withdraw removes req from q if it is still waiting, and reports whether
// it did.
func (p *packer) withdraw(q *packQueue, req *packReq) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.Index(q.waiting, req)
	if i < 0 {
		return false
	}
	q.waiting = slices.Delete(q.waiting, i, i+1)
	return true
}

// flush submits q's jobs, MaxPack at a time, until none is waiting, then
// retires q. ctx is the context of the job that started q: its values are
// kept, its cancellation is not (the other jobs' submissions must not fail
// because the first caller gave up).
func (p *packer) flush(ctx context.Context, q *packQueue) {
	ctx = context.WithoutCancel(ctx)
	if p.window > 0 {
		time.Sleep(p.window)
	}
	for {
		p.mu.Lock()
		n := min(len(q.waiting), p.max)
		batch := slices.Clone(q.waiting[:n])
		q.waiting = slices.Delete(q.waiting, 0, n)
		if n == 0 {
			p.queues = slices.DeleteFunc(p.queues, func(x *packQueue) bool { return x == q })
		}
		p.mu.Unlock()
		if n == 0 {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		if n == 1 {
			id, err := p.drv.Submit(rctx, batch[0].ds)
			batch[0].done <- packResult{id, err}
		} else {
			specs := make([]*driver.JobSpec, n)
			for i, r := range batch {
				specs[i] = r.ds
			}
			ids, err := p.pk.SubmitPack(rctx, specs)
			if err == nil && len(ids) != n {
				err = fmt.Errorf("driver returned %d IDs for a pack of %d jobs", len(ids), n)
				for _, id := range ids {
					_ = p.drv.Cancel(rctx, id)
				}
			}
			for i, r := range batch {
				if err != nil {
					r.done <- packResult{err: err}
				} else {
					r.done <- packResult{id: ids[i]}
				}
			}
		}
		cancel()
	}
}
