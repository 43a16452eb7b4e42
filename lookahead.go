package cairn

import (
	"context"
	"sync"

	"example.com/cairn/store"
)

// lookAhead is how many status reads a run makes at once ahead of
// execution.
//
// Why: a step's status is read when the step becomes ready, by one of
// MaxConcurrent workers. On object storage each read is a round trip
// (about 0.5-1.5 ms on loopback, tens of ms to a cloud region), so a fully
// cached re-run was bound by them: 1,000 steps in a chain made 1,000
// sequential reads. Reading every selected step's status as soon as it is
// selected, lookAhead at a time, overlaps them. The status read ahead takes
// the place of the attempt's first read (the one before the lease), so a
// cold run makes no more reads than before: a SUCCESS, which is terminal,
// ends the attempt at once; any other status is only a hint, which the
// attempt's conditional RUNNING write checks under the lease: it fails if
// the status changed since, and the attempt then reads it again (issue 4,
// issue 12).
const lookAhead = 32

// lookahead reads steps' statuses ahead of their attempts. Its goroutines
// are owned by the run that started it, which stops them.
type lookahead struct {
	storage BucketOpener
	// readAhead is the step strategy's read-only check
	// (executor.readAhead): the scheduler itself knows nothing of status
	// files.
	readAhead func(ctx context.Context, b *store.Bucket) (status observed, ok bool)
	ctx       context.Context
	cancel    context.CancelFunc
	queue     chan *node
	wg        sync.WaitGroup
}

// statusProbe is the result of one read ahead.
type statusProbe struct {
	done   chan struct{} // closed when the fields below are set
	bucket *store.Bucket // nil if the bucket could not be opened
	status observed      // the status read, and its version, if ok
	ok     bool          // the read succeeded
}

// startLookahead starts lookAhead readers; at most capacity nodes wait for
// one, and add drops the rest.
func startLookahead(ctx context.Context, storage BucketOpener, readAhead func(context.Context, *store.Bucket) (observed, bool), capacity int) *lookahead {
	la := &lookahead{storage: storage, readAhead: readAhead, queue: make(chan *node, capacity)}
	la.ctx, la.cancel = context.WithCancel(ctx)
	for range lookAhead {
		la.wg.Go(func() {
			for n := range la.queue {
				la.read(n.probe, n.path)
			}
		})
	}
	return la
}

func (la *lookahead) read(p *statusProbe, path string) {
	defer close(p.done)
	if la.ctx.Err() != nil {
		return
	}
	b, err := la.storage.OpenBucket(la.ctx, path)
	if err != nil {
		return
	}
	p.bucket = b
	p.status, p.ok = la.readAhead(la.ctx, b)
}

// add queues n, which the scheduler just selected, for a read ahead. It
// never blocks: if the queue is full, n is left to its attempt. la may be
// nil (a dry run, which probes every step at once anyway).
func (la *lookahead) add(n *node) {
	if la == nil || n.probe != nil {
		return
	}
	n.probe = &statusProbe{done: make(chan struct{})} // before a reader can see n
	select {
	case la.queue <- n:
	default:
		n.probe = nil
	}
}

// stop ends the reads and waits for the readers.
func (la *lookahead) stop() {
	if la == nil {
		return
	}
	la.cancel()
	close(la.queue)
	la.wg.Wait()
}

// take returns what was read ahead for n, waiting for the read if it is in
// flight: the bucket it opened (nil if none) and the status, nil if it was
// not read.
func (p *statusProbe) take() (*store.Bucket, *observed) {
	if p == nil {
		return nil, nil
	}
	<-p.done
	if !p.ok {
		return p.bucket, nil
	}
	return p.bucket, &p.status
}
