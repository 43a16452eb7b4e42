package cairn_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/lease"
)

// overlapLog records step executions and counts, per step, how many run at
// the same moment.
type overlapLog struct {
	mu      sync.Mutex
	running map[string]int
	runs    map[string]int
	overlap []string
}

func newOverlapLog() *overlapLog {
	return &overlapLog{running: map[string]int{}, runs: map[string]int{}}
}

// step returns a function that runs for d (or until its context ends),
// recording the execution.
func (o *overlapLog) step(name string, d time.Duration) cairn.Func {
	return func(ctx context.Context, out *cairn.Output) (any, error) {
		o.mu.Lock()
		o.running[name]++
		o.runs[name]++
		if o.running[name] > 1 {
			o.overlap = append(o.overlap, fmt.Sprintf("%s by %s", name, out.WorkerID))
		}
		o.mu.Unlock()
		defer func() {
			o.mu.Lock()
			o.running[name]--
			o.mu.Unlock()
		}()
		select {
		case <-time.After(d):
			return out.WorkerID, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// steps returns n independent steps named prefix0, prefix1... that each
// run for d.
func (o *overlapLog) steps(prefix string, n int, d time.Duration) []*cairn.Step {
	var steps []*cairn.Step
	for i := range n {
		name := fmt.Sprintf("%s%02d", prefix, i)
		steps = append(steps, &cairn.Step{Name: name, Func: o.step(name, d)})
	}
	return steps
}

func (o *overlapLog) check(t *testing.T, steps []*cairn.Step) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.overlap) > 0 {
		t.Errorf("overlapping executions: %v", o.overlap)
	}
	for _, s := range steps {
		if o.runs[s.Name] == 0 {
			t.Errorf("%s never ran", s.Name)
		}
	}
}

// Several runners share a prefix, one of them with a clock off by ±2 min or
// ±1 h: no live lease is taken over, so no step runs twice at once, and
// every runner succeeds. Before leases were judged by observation, a
// runner ahead took over every live lease at once, and one behind had its
// leases taken.
func TestSkewedRunnerAmongSeveral(t *testing.T) {
	for _, skew := range []time.Duration{-time.Hour, -2 * time.Minute, 2 * time.Minute, time.Hour} {
		t.Run(fmt.Sprintf("%+v", skew), func(t *testing.T) {
			st := cairntest.NewStorage(t)
			log := newOverlapLog()
			steps := log.steps("s", 12, 30*time.Millisecond)
			var wg sync.WaitGroup
			for r := range 4 {
				wg.Go(func() {
					opts := st.Options()
					opts.MaxConcurrent = 3
					opts.PollInterval = 5 * time.Millisecond
					// Generous timings: a loaded machine must not make a live
					// holder look dead. The skewed clock would, at once.
					opts.Lease = &lease.Options{Interval: 200 * time.Millisecond, StaleAfter: 5 * time.Second}
					if r == 0 {
						opts.Lease.WallClock = func() time.Time { return time.Now().Add(skew) }
					}
					if _, err := run(t, st, opts, steps...); err != nil {
						t.Errorf("runner %d: %v", r, err)
					}
				})
			}
			wg.Wait()
			log.check(t, steps)
		})
	}
}

// Two runs given the same RunOptions.WorkerID still get distinct worker
// ids per attempt: neither mistakes the other's lease for its own (the
// re-entrant path), so no step runs twice at once.
func TestSameWorkerIDNeverSharesALease(t *testing.T) {
	st := cairntest.NewStorage(t)
	log := newOverlapLog()
	steps := log.steps("w", 6, 20*time.Millisecond)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Go(func() {
			opts := st.Options()
			opts.WorkerID = "X"
			opts.PollInterval = 2 * time.Millisecond
			if _, err := run(t, st, opts, steps...); err != nil {
				t.Errorf("runner %d: %v", r, err)
			}
		})
	}
	wg.Wait()
	log.check(t, steps)
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, s := range steps {
		if n := log.runs[s.Name]; n != 1 {
			t.Errorf("%s ran %d times", s.Name, n)
		}
	}
}
