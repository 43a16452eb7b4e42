package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Options configure a Bucket. A nil *Options means all defaults, and the
// zero value of every field is a useful default.
type Options struct {
	// Retry says how operations that fail with a transient error are
	// retried; the zero value means the defaults documented on RetryPolicy.
	Retry RetryPolicy

	// OnRetry, if set, is called before each retry with the operation
	// ("read", "stat", "write", "delete" or "list"), the key relative to the
	// bucket, the number of the attempt that failed (1 for the first) and its
	// error. It may be called from many goroutines at once. Use it to log or
	// count retries.
	OnRetry func(op, key string, attempt int, err error)
}

// Defaults of RetryPolicy.
const (
	// DefaultMaxElapsed bounds the time an operation keeps retrying.
	DefaultMaxElapsed = 30 * time.Second
	// DefaultBackoffBase is the wait before the first retry, before jitter.
	DefaultBackoffBase = 50 * time.Millisecond
	// DefaultBackoffCap is the longest wait between two attempts.
	DefaultBackoffCap = 5 * time.Second
)

// RetryPolicy says which failed operations a Bucket retries, how long it
// waits in between and when it gives up. The zero value is the default
// policy: retry errors satisfying errors.Is(err, ErrTransient), waiting
// [DefaultBackoff], for at most [DefaultMaxElapsed].
//
// An operation is never retried once its context is done, and a wait that
// would outlast the context's deadline is not started.
type RetryPolicy struct {
	// MaxElapsed is the time after an operation's first attempt during which
	// it may start another; 0 means DefaultMaxElapsed.
	MaxElapsed time.Duration

	// MaxAttempts bounds the number of attempts of one operation; 0 means
	// no bound other than MaxElapsed, and 1 disables retries.
	MaxAttempts int

	// Backoff returns how long to wait before retry n (1 for the first
	// retry); nil means DefaultBackoff.
	Backoff func(n int) time.Duration

	// Retryable reports whether an attempt that failed with err, as the
	// Bucket returns it (so errors.Is works with ErrTransient and the other
	// sentinels), should be retried; nil means DefaultRetryable.
	Retryable func(err error) bool
}

// DefaultRetryable retries exactly the errors that satisfy
// errors.Is(err, ErrTransient).
func DefaultRetryable(err error) bool { return errors.Is(err, ErrTransient) }

// DefaultBackoff is exponential backoff with jitter: before retry n it waits
// a random time between half of and all of DefaultBackoffBase·2ⁿ⁻¹, capped
// at DefaultBackoffCap. The randomness keeps many runners that failed
// together from retrying together.
func DefaultBackoff(n int) time.Duration {
	d := DefaultBackoffCap
	if n < 20 { // beyond that the shift would overflow; the cap applies anyway
		d = min(DefaultBackoffCap, DefaultBackoffBase<<max(n-1, 0))
	}
	return d/2 + rand.N(d/2+1)
}

func (p RetryPolicy) maxElapsed() time.Duration {
	if p.MaxElapsed <= 0 {
		return DefaultMaxElapsed
	}
	return p.MaxElapsed
}

func (p RetryPolicy) backoff(n int) time.Duration {
	if p.Backoff == nil {
		return DefaultBackoff(n)
	}
	return p.Backoff(n)
}

func (p RetryPolicy) retryable(err error) bool {
	if p.Retryable == nil {
		return DefaultRetryable(err)
	}
	return p.Retryable(err)
}

// retry calls attempt, which returns an error already wrapped by b.wrap,
// until it succeeds, fails with an error the policy does not retry, or the
// policy gives up. It returns the last attempt's error, and whether an
// earlier attempt had failed with a retryable error: then the operation may
// have been applied more than once, or applied by an attempt whose answer
// was lost.
func (b *Bucket) retry(ctx context.Context, op, key string, attempt func() error) (retried bool, err error) {
	p := b.opts.Retry
	start := time.Now()
	for n := 1; ; n++ {
		err = attempt()
		if err == nil || !p.retryable(err) || ctx.Err() != nil {
			return n > 1, err
		}
		if p.MaxAttempts > 0 && n >= p.MaxAttempts {
			return n > 1, giveUp(err, n, start)
		}
		wait := p.backoff(n)
		elapsed := time.Since(start)
		if elapsed+wait > p.maxElapsed() {
			return n > 1, giveUp(err, n, start)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return n > 1, giveUp(err, n, start)
		}
		if b.opts.OnRetry != nil {
			b.opts.OnRetry(op, key, n, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return n > 1, giveUp(err, n, start)
		}
	}
}

// giveUp adds the attempt count to the last error of a retried operation.
func giveUp(err error, attempts int, start time.Time) error {
	if attempts == 1 {
		return err
	}
	return fmt.Errorf("%w (gave up after %d attempts in %s)", err, attempts, time.Since(start).Round(time.Millisecond))
}
