package cairn

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RetryPolicy retries a step's function, within the step's attempt and
// under its lease, when it fails. The default (no policy) is no retry, as
// in Marin.
//
// Each failed try is logged through the step's Output.Logger ("step failed;
// retrying", with the try, the error and the delay), so it is recorded in
// the step's log; the step's result is that of the last try.
type RetryPolicy struct {
	// Attempts is the number of tries, the first included; 0 or 1 means
	// none is retried.
	Attempts int
	// Backoff is the delay before the second try, doubled before each
	// further one up to MaxBackoff; 0 means 1 s, and MaxBackoff 0 means
	// 5 min.
	Backoff, MaxBackoff time.Duration
	// Retryable reports whether a failure is worth another try; nil means
	// every error except a panic (*PanicError), a Goexit (*GoexitError),
	// an invalid pipeline and the step's context ending (interruption or
	// a lost lease), which are never retried whatever Retryable says.
	Retryable func(error) bool
}

func (p *RetryPolicy) validate() error {
	switch {
	case p == nil:
		return nil
	case p.Attempts < 0:
		return fmt.Errorf("negative Attempts %d", p.Attempts)
	case p.Backoff < 0 || p.MaxBackoff < 0:
		return fmt.Errorf("negative Backoff (%s) or MaxBackoff (%s)", p.Backoff, p.MaxBackoff)
	}
	return nil
}

// retryable reports whether err, returned by a try whose context is ctx,
// may be retried.
func (p *RetryPolicy) retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrInvalidPipeline) {
		return false
	}
	if _, ok := errors.AsType[*PanicError](err); ok {
		return false
	}
	if _, ok := errors.AsType[*GoexitError](err); ok {
		return false
	}
	return p.Retryable == nil || p.Retryable(err)
}

// callWithRetries runs s's function (executor.call) under the step's retry
// policy.
func (x *executor) callWithRetries(ctx context.Context, s *Step, out *Output) (any, error) {
	p := s.Retry
	if p == nil {
		p = x.retry
	}
	if p == nil || p.Attempts <= 1 || s.Remote != nil && x.remote != nil {
		return x.call(ctx, s, out)
	}
	delay := p.Backoff
	if delay == 0 {
		delay = time.Second
	}
	maxDelay := p.MaxBackoff
	if maxDelay == 0 {
		maxDelay = 5 * time.Minute
	}
	for try := 1; ; try++ {
		val, err := x.call(ctx, s, out)
		// A try that ran a cluster job used that job's own retries.
		if err == nil || try >= p.Attempts || out.remoteUsed || !p.retryable(ctx, err) {
			return val, err
		}
		delay = min(delay, maxDelay)
		out.Logger.Warn("step failed; retrying", "try", try, "of", p.Attempts, "error", err, "backoff", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return val, err
		case <-t.C:
		}
		delay *= 2
	}
}
