package cairn

import (
	"context"
	"fmt"
	"time"
)

// awaitOrAbandon returns what call returns, unless ctx (the run's context)
// is cancelled and call has not returned StopGrace later (or when StopNow
// is closed, whichever comes first): it then gives up
// on call, which keeps running on its goroutine, and returns an error
// wrapping ctx's cause, so that the attempt ends as Interrupted (status
// restored, lease released) and the run can end. A step function that
// ignores its context would otherwise keep an interrupted run, and the
// user's Ctrl-C, waiting for as long as it runs (issue 9).
func (x *executor) awaitOrAbandon(ctx context.Context, label string, call func() (any, error)) (any, error) {
	if x.stopGrace <= 0 && x.stopNow == nil {
		return call()
	}
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := call()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
	}
	var expired <-chan time.Time
	if x.stopGrace > 0 {
		t := time.NewTimer(x.stopGrace)
		defer t.Stop()
		expired = t.C
	}
	select {
	case r := <-done:
		return r.v, r.err
	case <-expired:
		x.logger.Warn("step still running after the stop grace period; abandoning it", "step", label, "grace", x.stopGrace)
		return nil, fmt.Errorf("%w: step %s did not stop within %s", context.Cause(ctx), label, x.stopGrace)
	case <-x.stopNow:
		x.logger.Warn("step still running; abandoning it", "step", label)
		return nil, fmt.Errorf("%w: step %s abandoned before it stopped", context.Cause(ctx), label)
	}
}
