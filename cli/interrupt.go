package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"example.com/cairn"
)

// DefaultStopGrace is how long, after the first Ctrl-C (SIGINT) or SIGTERM,
// a run waits for its running steps to stop before it abandons those that
// ignore their context (--stop-grace).
const DefaultStopGrace = 10 * time.Second

// secondStopWait bounds how long, after a second Ctrl-C, the CLI waits for
// the run to release the leases of the steps it abandons.
const secondStopWait = time.Second

// cleanupAllowance is how long after the grace period the CLI still waits
// for the run to restore the abandoned steps' statuses and release their
// leases, before it exits anyway.
const cleanupAllowance = 5 * time.Second

// runResult is what cairn.Run returned.
type runResult struct {
	report *cairn.Report
	err    error
}

// runInterruptible runs run(ctx), and calls cancel, which must cancel
// ctx, at the first SIGINT or SIGTERM (issue 9):
//
//   - the first signal prints which steps are being stopped; the run then
//     stops them, abandoning after grace (RunOptions.StopGrace) any that
//     ignore their context, restores their statuses and releases their
//     leases;
//   - at a second signal it closes stopNow (RunOptions.StopNow: the run
//     abandons its steps at once), waits at most secondStopWait for the
//     run to release their leases, and returns what it returned, or
//     with abandoned set if it did not;
//   - if the run has still not returned cleanupAllowance after the grace
//     period, it prints the steps still running and returns with
//     abandoned set.
//
// The caller then exits with ExitInterrupted; leases not released go
// stale, and other runners take the steps over.
func runInterruptible(ctx context.Context, cancel context.CancelCauseFunc, stopNow chan<- struct{}, v *runView, grace time.Duration, run func(ctx context.Context) (*cairn.Report, error)) (res runResult, abandoned bool) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan runResult, 1)
	go func() {
		r, err := run(ctx)
		done <- runResult{r, err}
	}()
	var (
		deadline    <-chan time.Time
		interrupted bool // not ctx.Err(): a signal.NotifyContext of the caller may cancel it first
	)
	for {
		select {
		case r := <-done:
			return r, false
		case sig := <-sigs:
			if !interrupted {
				interrupted = true
				cancel(fmt.Errorf("%w: %v received", context.Canceled, sig))
				v.printf("cairn: %v: stopping %s (up to %s; press Ctrl-C again to exit at once)\n",
					sig, describe(v.board.Running(), "no running step"), grace)
				deadline = time.After(grace + cleanupAllowance)
				continue
			}
			v.printf("cairn: %v again: exiting now; abandoning %s\n", sig, describe(v.board.Running(), "no running step"))
			close(stopNow)
			select {
			case r := <-done:
				return r, false
			case <-time.After(secondStopWait):
			}
			return runResult{}, true
		case <-deadline:
			v.printf("cairn: still running %s after the interrupt: %s; exiting without waiting (their leases go stale)\n",
				grace+cleanupAllowance, describe(v.board.Running(), "none"))
			return runResult{}, true
		}
	}
}

// describe names steps: "step(s) a, b", or none if there are none.
func describe(ids []string, none string) string {
	if len(ids) == 0 {
		return none
	}
	const most = 8
	s := strings.Join(ids[:min(len(ids), most)], ", ")
	if len(ids) > most {
		s += fmt.Sprintf(" and %d more", len(ids)-most)
	}
	return fmt.Sprintf("%d running step(s): %s", len(ids), s)
}
