package e2e_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/lease"
)

// shapes of 1,000-step pipelines for the cached re-run.
var shapes = map[string]func(n int) []*cairn.Step{
	// chain: each step depends on the one before: no two status checks can
	// overlap unless the runner looks ahead.
	"chain": func(n int) []*cairn.Step {
		var steps []*cairn.Step
		var prev *cairn.Step
		for i := range n {
			s := &cairn.Step{Name: fmt.Sprintf("c%04d", i), Func: noop}
			if prev != nil {
				s.Deps = []*cairn.Step{prev}
			}
			steps, prev = append(steps, s), s
		}
		return steps
	},
	// fanout: one root and n-1 leaves that depend on it.
	"fanout": func(n int) []*cairn.Step {
		root := &cairn.Step{Name: "root", Func: noop}
		steps := []*cairn.Step{root}
		for i := 1; i < n; i++ {
			steps = append(steps, &cairn.Step{Name: fmt.Sprintf("f%04d", i), Deps: []*cairn.Step{root}, Func: noop})
		}
		return steps
	},
	// layers: layers of 30, each step depending on two of the layer before.
	"layers": func(n int) []*cairn.Step { return pipeline(n, 0, &memLog{}, 0) },
}

func noop(context.Context, *cairn.Output) (any, error) { return nil, nil }

// TestCachedRerun measures a fully cached re-run of 1,000 steps on the S3
// server (200 on the GCS emulator), through a counting proxy: its wall time and the requests it
// makes per step. A cached step needs one request (its status); the run
// must not need more than two per step.
func TestCachedRerun(t *testing.T) {
	forEachBackend(t, false, func(t *testing.T, be backend) {
		n := 1000
		if be.name == "gcs" {
			// fake-gcs-server slows down as a bucket fills (each upload is
			// O(objects)); the cold runs would dominate the test.
			n = 200
		}
		if testing.Short() {
			n /= 5
		}
		for _, shape := range []string{"fanout", "chain"} {
			t.Run(shape, func(t *testing.T) {
				p, endpoint := proxy(t, be, nil)
				storage := be.storage(endpoint, nil)
				steps := shapes[shape](n)
				opts := &cairn.RunOptions{
					Prefix:  be.root(t),
					Storage: storage,
					Lease:   &lease.Options{Interval: time.Second, StaleAfter: 5 * time.Second},
					Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
				}
				start := time.Now()
				if _, err := cairn.Run(t.Context(), cairn.Steps(steps...), opts); err != nil {
					t.Fatal(err)
				}
				cold, coldReqs := time.Since(start), p.Stats().Requests
				p.Reset()
				start = time.Now()
				report, err := cairn.Run(t.Context(), cairn.Steps(steps...), opts)
				if err != nil {
					t.Fatal(err)
				}
				warm := time.Since(start)
				st := p.Stats()
				if got := report.Count(cairn.Cached); got != n {
					t.Errorf("%d of %d steps cached", got, n)
				}
				perStep := float64(st.Requests) / float64(n)
				if perStep > 2 {
					t.Errorf("%.2f requests per cached step, want at most 2", perStep)
				}
				t.Logf("%s %s, %d steps: cold run %s (%.1f requests/step); cached re-run %s, %.2f requests/step %v, %.0f µs/step",
					be.name, shape, n, cold.Round(time.Millisecond), float64(coldReqs)/float64(n),
					warm.Round(time.Millisecond), perStep, st.ByMethod, float64(warm.Microseconds())/float64(n))
			})
		}
	})
}

// TestRequestsPerStep counts the HTTP requests of one cold step (no
// dependencies, a function that writes nothing) and of one cached step on
// each object store, through a counting proxy, and holds them to the
// protocol's budget (issue 12 §2). A cold step needs: the status read
// (404), the lease (create), the info (create), the RUNNING record
// (create), the artifact (create), SUCCESS (replace, conditional), the
// attempt log (create) and the lease's release (conditional delete); a
// cached one only its status read.
func TestRequestsPerStep(t *testing.T) {
	forEachBackend(t, false, func(t *testing.T, be backend) {
		p, endpoint := proxy(t, be, nil)
		opts := &cairn.RunOptions{
			Prefix:  be.root(t),
			Storage: be.storage(endpoint, nil),
			Logger:  slog.New(slog.DiscardHandler),
		}
		step := &cairn.Step{Name: "one", Func: noop}
		// The storage's own set-up (a client, a bucket check) is not the
		// step's: open the step's bucket once before counting.
		path, err := step.OutputPath(opts.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := opts.Storage.OpenBucket(t.Context(), path); err != nil {
			t.Fatal(err)
		}
		p.Reset()
		if _, err := cairn.Run(t.Context(), cairn.Steps(step), opts); err != nil {
			t.Fatal(err)
		}
		cold := p.Stats()
		p.Reset()
		report, err := cairn.Run(t.Context(), cairn.Steps(step), opts)
		if err != nil {
			t.Fatal(err)
		}
		if report.Count(cairn.Cached) != 1 {
			t.Fatalf("the second run did not find the step cached: %+v", report.Steps)
		}
		cached := p.Stats()
		t.Logf("%s: cold step %d requests %v; cached step %d requests %v", be.name, cold.Requests, cold.ByMethod, cached.Requests, cached.ByMethod)
		if cold.Requests > coldStepBudget {
			t.Errorf("a cold step made %d requests, want at most %d: %v", cold.Requests, coldStepBudget, cold.ByMethod)
		}
		if cached.Requests > 1 {
			t.Errorf("a cached step made %d requests, want 1 (its status): %v", cached.Requests, cached.ByMethod)
		}
	})
}

// coldStepBudget is the most requests one cold step may make: see
// TestRequestsPerStep.
const coldStepBudget = 8
