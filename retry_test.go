package cairn_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cairntest"
)

// flaky returns a step function that fails its first n calls with err.
func flaky(n int, err error, calls *atomic.Int32) cairn.Func {
	return func(context.Context, *cairn.Output) (any, error) {
		if int(calls.Add(1)) <= n {
			return nil, err
		}
		return "ok", nil
	}
}

func TestRetryPolicy(t *testing.T) {
	transient := errors.New("connection reset")
	fast := &cairn.RetryPolicy{Attempts: 3, Backoff: time.Millisecond}
	for _, tc := range []struct {
		name      string
		policy    *cairn.RetryPolicy
		runPolicy *cairn.RetryPolicy
		fails     int
		err       error
		want      cairn.Outcome
		calls     int32
	}{
		{"no policy: no retry", nil, nil, 1, transient, cairn.Failed, 1},
		{"succeeds on the third try", fast, nil, 2, transient, cairn.Ran, 3},
		{"the run's default policy", nil, fast, 2, transient, cairn.Ran, 3},
		{"attempts exhausted", fast, nil, 3, transient, cairn.Failed, 3},
		{"not retryable", &cairn.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, Retryable: func(err error) bool { return err != transient }}, nil, 1, transient, cairn.Failed, 1},
		{"a panic is never retried", fast, nil, 1, &cairn.PanicError{Value: "boom"}, cairn.Failed, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := cairntest.NewStorage(t)
			var calls atomic.Int32
			s := &cairn.Step{Name: "flaky", Func: flaky(tc.fails, tc.err, &calls), Retry: tc.policy}
			var logs bytes.Buffer
			opts := st.Options()
			opts.Retry = tc.runPolicy
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			r, _ := run(t, st, opts, s)
			if o := outcomes(r)["flaky"]; o != tc.want || calls.Load() != tc.calls {
				t.Errorf("outcome %v after %d calls; want %v after %d", o, calls.Load(), tc.want, tc.calls)
			}
			if got, want := strings.Count(logs.String(), "step failed; retrying"), int(tc.calls)-1; tc.want == cairn.Ran && got != want {
				t.Errorf("%d retries logged, want %d:\n%s", got, want, logs.String())
			}
		})
	}
}

func TestRetryPolicyIsValidated(t *testing.T) {
	st := cairntest.NewStorage(t)
	s := &cairn.Step{Name: "bad", Func: flaky(0, nil, new(atomic.Int32)), Retry: &cairn.RetryPolicy{Attempts: -1}}
	if _, err := run(t, st, nil, s); !errors.Is(err, cairn.ErrInvalidPipeline) {
		t.Errorf("run = %v, want ErrInvalidPipeline", err)
	}
}
