package e2e_test

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/internal/faultproxy"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
)

// faults is the mix injected while the pipeline runs: about one request in
// six misbehaves, half of them after the server applied the request.
var faults = faultproxy.Options{
	Fail503:    0.03,
	Throttle:   0.02,
	Reset:      0.02,
	Drop:       0.005,
	DropFor:    3 * time.Second, // past the clients' 1 s response timeout
	FailAfter:  0.03,
	ResetAfter: 0.03,
	Delay:      0.10,
	MaxDelay:   20 * time.Millisecond,
	Seed:       4,
}

// TestPipelineUnderFaults runs a pipeline with three concurrent runners on
// one object-store prefix through a proxy that drops, delays and fails
// requests, with few retries so that some operations do fail. Then:
//   - every step a runner reported as succeeded has status SUCCESS, and
//     every step with status SUCCESS has its info, artifact and output;
//   - every other step ended clearly failed or skipped, with an error;
//   - no step's function ever ran twice at once;
//   - a re-run without faults completes the rest, running only steps
//     that had not succeeded.
func TestPipelineUnderFaults(t *testing.T) {
	forEachBackend(t, false, func(t *testing.T, be backend) {
		n := 60
		if testing.Short() {
			n = 30
		}
		p, endpoint := proxy(t, be, &faults)
		var retries atomic.Int64
		flaky := &store.Options{
			// Few attempts, so that some operations exhaust them.
			Retry:   store.RetryPolicy{MaxAttempts: 2},
			OnRetry: func(string, string, int, error) { retries.Add(1) },
		}
		root := be.root(t)
		log := &memLog{}
		steps := pipeline(n, 20*time.Millisecond, log, 0)
		opts := func(storage cairn.BucketOpener, worker string) *cairn.RunOptions {
			return &cairn.RunOptions{
				Prefix:        root,
				Storage:       storage,
				MaxConcurrent: 6,
				Lease:         &lease.Options{Interval: 300 * time.Millisecond, StaleAfter: 1500 * time.Millisecond},
				PollInterval:  50 * time.Millisecond,
				WorkerID:      worker,
				Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
			}
		}

		// Phase 1: three runners, each with its own clients, under faults.
		const runners = 3
		reports := make([]*cairn.Report, runners)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range runners {
			wg.Go(func() {
				reports[i], _ = cairn.Run(t.Context(), cairn.Steps(steps...), opts(be.storage(endpoint, flaky), fmt.Sprintf("runner%d", i)))
			})
		}
		wg.Wait()
		phase1 := time.Since(start)
		stats := p.Stats()

		// Check the stored state against the reports, without faults.
		p.SetOptions(nil)
		check := be.storage(endpoint, nil)
		status := map[string]string{}
		for _, s := range steps {
			path, _ := s.OutputPath(root)
			b, err := check.OpenBucket(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			id, _ := s.ID()
			st, err := statusfile.ReadStatus(t.Context(), b)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			status[id] = st
			if st != statusfile.Success {
				continue
			}
			for _, k := range []string{statusfile.InfoKey, statusfile.ArtifactKey, "out.txt"} {
				if ok, err := b.Exists(t.Context(), k); !ok || err != nil {
					t.Errorf("%s has status SUCCESS but no %s (%v)", id, k, err)
				}
			}
		}
		outcomes := map[cairn.Outcome]int{}
		for i, r := range reports {
			if r == nil {
				t.Fatalf("runner %d: no report", i)
			}
			for _, sr := range r.Steps {
				outcomes[sr.Outcome]++
				switch {
				case sr.Outcome.Succeeded():
					if status[sr.Step] != statusfile.Success {
						t.Errorf("runner %d reported %s as %s, but its status is %q", i, sr.Step, sr.Outcome, status[sr.Step])
					}
				case sr.Outcome == cairn.Failed || sr.Outcome == cairn.Skipped:
					if sr.Err == nil {
						t.Errorf("runner %d: %s %s without an error", i, sr.Step, sr.Outcome)
					}
				default:
					t.Errorf("runner %d: %s ended %s, want succeeded, failed or skipped", i, sr.Step, sr.Outcome)
				}
			}
		}
		done := 0
		for _, st := range status {
			if st == statusfile.Success {
				done++
			}
		}

		// Phase 2: one runner, no faults, default retries.
		before := len(executions(t, log.lines))
		report, err := cairn.Run(t.Context(), cairn.Steps(steps...), opts(be.storage(endpoint, nil), "rerun"))
		if err != nil {
			t.Fatalf("re-run without faults: %v", err)
		}
		if got := report.Count(cairn.Cached); got < done {
			t.Errorf("re-run found %d steps cached, want at least the %d that had succeeded", got, done)
		}
		execs := executions(t, log.lines)
		for _, e := range execs[before:] {
			if status[e.step] == statusfile.Success {
				t.Errorf("re-run executed %s again although it had succeeded", e.step)
			}
		}
		counts := checkNoOverlap(t, execs, 0)
		dups := 0
		for _, c := range counts {
			if c > 1 {
				dups++
			}
		}
		t.Logf("%s: %d steps, 3 runners under faults for %s: %d requests, faults %v, %d retries; "+
			"outcomes %v; %d/%d SUCCESS after phase 1; re-run: %d ran, %d cached; %d steps executed more than once, never concurrently",
			be.name, n, phase1.Round(time.Millisecond), stats.Requests, stats.ByFault, retries.Load(),
			outcomes, done, n, report.Count(cairn.Ran)+report.Count(cairn.TookOver), report.Count(cairn.Cached), dups)
		if stats.ByFault[faultproxy.FailAfter]+stats.ByFault[faultproxy.ResetAfter] == 0 {
			t.Error("no lost answers were injected; the test tests less than it claims")
		}
	})
}
