// Package remotebench holds what the remote-step benchmarks (bench/slurm
// and bench/k8s) share: the work of every job, bare or as a cairn step;
// the pipeline of such steps; the job modes of the benchmark binary;
// medians; and the phases of a cairn run, which say where its time went.
package remotebench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/cluster"
)

// Work is what every job does, bare or as a step: write a small file.
func Work(path string) error { return os.WriteFile(path, []byte("ok\n"), 0o644) }

// JobMode runs the benchmark binary as one of its jobs, if args (os.Args
// without the program) ask for one, and returns its exit code and true:
//   - "worker ...": a cairn step's job; it rebuilds the Pipeline named by
//     the BENCH_RUN and BENCH_STEPS variables that Pipeline gives its jobs;
//   - "trivial PATH": a bare job, doing Work(PATH).
//
// Otherwise it returns false.
func JobMode(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "worker":
		n, _ := strconv.Atoi(os.Getenv("BENCH_STEPS"))
		return cli.Main(Pipeline(os.Getenv("BENCH_RUN"), n), nil), true
	case "trivial":
		if len(args) != 2 {
			return 2, true
		}
		if err := Work(args[1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// Pipeline returns n independent trivial remote steps of run runID, each
// asking for 1 CPU and 64 MiB and doing Work in its output directory.
func Pipeline(runID string, n int) iter.Seq[*cairn.Step] {
	env := map[string]string{"BENCH_RUN": runID, "BENCH_STEPS": strconv.Itoa(n)}
	steps := make([]*cairn.Step, n)
	for i := range steps {
		steps[i] = &cairn.Step{
			Name:   "trivial",
			Attrs:  map[string]any{"run": runID, "i": i},
			Remote: &cairn.RemoteSpec{Env: env, Resources: cluster.Resources{CPUs: 1, Memory: 64 * cluster.MiB}},
			Func: func(ctx context.Context, out *cairn.Output) (any, error) {
				return nil, Work(filepath.Join(strings.TrimPrefix(out.Path, "file://"), "result"))
			},
		}
	}
	return cairn.Steps(steps...)
}

// Median returns the median of xs, 0 if it is empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Phases records when each step of a cairn run reached each phase, from
// the run's events (pass Record as RunOptions.OnEvent), to say where the
// time of a throughput run goes. Events come from one goroutine at a
// time, so Record needs no lock.
type Phases struct {
	start time.Time
	at    map[string]map[string]time.Time // step → phase → first time
}

// phaseNames are the phases, in order: the step's function started (its
// lease taken), its job queued, running and succeeded as the cluster
// client saw them, and the step finished (status and artifact written).
var phaseNames = []string{"running", "PENDING", "RUNNING", "SUCCEEDED", "finished"}

// NewPhases returns a recorder for a run started at start.
func NewPhases(start time.Time) *Phases {
	return &Phases{start: start, at: map[string]map[string]time.Time{}}
}

// Record notes the event's phase for its step, if it is the first time
// the step reached it.
func (p *Phases) Record(e cairn.Event) {
	var phase string
	switch e.Kind {
	case cairn.StepRunning:
		phase = "running"
	case cairn.StepJob:
		phase = e.JobState
	case cairn.StepFinished:
		phase = "finished"
	default:
		return
	}
	m := p.at[e.Step]
	if m == nil {
		m = map[string]time.Time{}
		p.at[e.Step] = m
	}
	if _, ok := m[phase]; !ok {
		m[phase] = e.Time
	}
}

// Print writes, for each phase, when the steps reached it (seconds after
// the run's start: median and last) and how long they took to reach it
// from the phase before (median and max).
func (p *Phases) Print(w io.Writer) {
	fmt.Fprintf(w, "  where the time of %d cairn steps went (s after start: median, last; from the previous phase: median, max):\n", len(p.at))
	for i, ph := range phaseNames {
		var at, from []float64
		for _, m := range p.at {
			t, ok := m[ph]
			if !ok {
				continue
			}
			at = append(at, t.Sub(p.start).Seconds())
			if i > 0 {
				if prev, ok := m[phaseNames[i-1]]; ok {
					from = append(from, t.Sub(prev).Seconds())
				}
			}
		}
		if len(at) == 0 {
			continue
		}
		line := fmt.Sprintf("    %-10s %3d steps  at %6.2f %6.2f", ph, len(at), Median(at), slices.Max(at))
		if len(from) > 0 {
			line += fmt.Sprintf("   +%5.2f +%5.2f", Median(from), slices.Max(from))
		}
		fmt.Fprintln(w, line)
	}
}

// Run runs Pipeline(filepath.Base(dir), n) through cairn.Run on the fresh
// prefix dir/prefix, with every step in flight at once, on the cluster
// that open returns (it is given the options to open it with: a logger
// that keeps warnings, shown if the run fails), with prog as the jobs'
// program, from a runner already started (as a bare baseline's "runner"
// is the benchmark process). It returns the run's wall time. For more
// than one step it writes where their time went to w, under title.
func Run(ctx context.Context, open func(*cluster.Options) (*cluster.Client, error), prog *cairn.Program, dir string, n int, w io.Writer, title string) (time.Duration, error) {
	runID := filepath.Base(dir)
	prefix := filepath.Join(dir, "prefix")
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := open(&cluster.Options{Logger: logger})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	ph := NewPhases(start)
	rep, err := cairn.Run(ctx, Pipeline(runID, n), &cairn.RunOptions{
		Prefix:        prefix,
		Storage:       cli.DefaultStorage(),
		MaxConcurrent: n,
		Logger:        logger,
		OnEvent:       ph.Record,
		Remote: &cairn.RemoteOptions{
			Cluster: c,
			Program: prog,
			WorkerArgs: func(w cairn.WorkerJob) []string {
				return []string{"worker", "--step", w.Step, "--path", w.Path, "--prefix", prefix, "--program-digest", w.Digest, "--log-level", "warn"}
			},
		},
	})
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, logs.String())
	}
	if got := rep.Count(cairn.Ran); got != n {
		return 0, fmt.Errorf("%d steps ran, want %d", got, n)
	}
	if n > 1 {
		fmt.Fprintf(w, "%s, %d steps:\n", title, n)
		ph.Print(w)
	}
	return d, nil
}
