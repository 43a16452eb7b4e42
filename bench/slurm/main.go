// Command slurm measures what cairn adds to running work on Slurm:
//
//   - latency: one trivial remote step, end to end through cairn.Run (cache
//     check, lease, status files, sbatch, polling, the job re-entering this
//     binary in worker mode, artifact, SUCCESS), against a bare sbatch of
//     the same work (this binary in "trivial" mode) polled with squeue;
//   - throughput: N independent trivial remote steps in one run, against N
//     bare sbatch submissions waited for together. cairn runs twice: with
//     its default packing (steps with one request submitted together go in
//     one job array) and with packing off (cluster.Options.MaxPack 1, one
//     sbatch per step); and bare runs twice: one sbatch per job, and all N
//     jobs as one job array (one sbatch --array), the floor of any design
//     that runs every step as its own Slurm job.
//
// It needs a Slurm cluster (scripts/services.sh up). Runs alternate bare
// and cairn, on fresh prefixes; medians are reported. Output is one JSON
// line per measurement on stdout and a summary on stderr.
//
// Usage:
//
//	go run ./bench/slurm [-repeat 10] [-throughput-repeat 3] [-steps 100] [-partition P] [-poll 50ms] [-tmp DIR]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"example.com/cairn"
	"example.com/cairn/bench/internal/remotebench"
	"example.com/cairn/cli"
	"example.com/cairn/cluster"
)

func main() {
	if code, ok := remotebench.JobMode(os.Args[1:]); ok { // a cairn job, or a bare one
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && err != flag.ErrHelp {
		fmt.Fprintf(os.Stderr, "bench/slurm: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	repeat    int
	trepeat   int
	steps     int
	partition string
	poll      time.Duration
	tmp       string
}

type result struct {
	Kind    string  `json:"kind"` // latency or throughput
	Tool    string  `json:"tool"` // bare, cairn (packing on) or cairn-unpacked
	Jobs    int     `json:"jobs"`
	Run     int     `json:"run"`
	Seconds float64 `json:"wall_s"`
	// Submissions is the number of sbatch calls the run made.
	Submissions int `json:"sbatch_calls"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("slurm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.repeat, "repeat", 10, "latency runs per tool")
	fs.IntVar(&c.trepeat, "throughput-repeat", 3, "throughput runs per tool")
	fs.IntVar(&c.steps, "steps", 100, "independent steps (jobs) in the throughput run")
	fs.StringVar(&c.partition, "partition", os.Getenv("CAIRN_TEST_SLURM_PARTITION"), "Slurm partition")
	fs.DurationVar(&c.poll, "poll", 50*time.Millisecond, "how often the bare baseline polls squeue")
	fs.StringVar(&c.tmp, "tmp", "", "parent of the temporary directory (default $TMPDIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := exec.LookPath("sbatch"); err != nil {
		return fmt.Errorf("no Slurm here (%v); start one with scripts/services.sh up", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp(c.tmp, "cairn-bench-slurm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	spec := "slurm"
	if c.partition != "" {
		spec += "?partition=" + c.partition
	}
	prog, err := cairn.CurrentProgram()
	if err != nil {
		return err
	}
	b := &bench{cfg: c, prog: prog, exe: exe, root: root, spec: spec, enc: json.NewEncoder(stdout), stderr: stderr}
	var lat = map[string][]float64{}
	// The order of the tools rotates from one repetition to the next, and
	// each run starts after a random pause (see measure).
	for i := range c.repeat {
		for _, tool := range rotate([]string{"bare", "cairn", "cairn-unpacked"}, i) {
			d, err := b.measure(ctx, tool, 1, i)
			if err != nil {
				return err
			}
			lat[tool] = append(lat[tool], d)
		}
	}
	thrRuns := map[string][]float64{}
	calls := map[string][]int{}
	for i := range c.trepeat {
		for _, tool := range rotate([]string{"bare", "bare-array", "cairn", "cairn-unpacked"}, i) {
			d, err := b.measure(ctx, tool, c.steps, i)
			if err != nil {
				return err
			}
			thrRuns[tool] = append(thrRuns[tool], d)
			calls[tool] = append(calls[tool], b.lastSubmissions)
		}
	}
	if c.repeat > 0 {
		bare := remotebench.Median(lat["bare"])
		fmt.Fprintf(stderr, "\nlatency of one trivial job, median of %d (s):\n", c.repeat)
		fmt.Fprintf(stderr, "  %-30s %8.3f   (min %.3f, max %.3f)\n", "bare sbatch + squeue", bare, slices.Min(lat["bare"]), slices.Max(lat["bare"]))
		for _, tool := range []string{"cairn", "cairn-unpacked"} {
			crn := remotebench.Median(lat[tool])
			fmt.Fprintf(stderr, "  %-30s %8.3f   (min %.3f, max %.3f; overhead %+.0f ms = %+.1f%% of bare)\n", label(tool), crn,
				slices.Min(lat[tool]), slices.Max(lat[tool]), (crn-bare)*1000, (crn-bare)/bare*100)
		}
	}
	if c.trepeat > 0 {
		fmt.Fprintf(stderr, "throughput of %d independent trivial jobs, median of %d (s):\n", c.steps, c.trepeat)
		thrBare := remotebench.Median(thrRuns["bare"])
		for _, tool := range []string{"bare", "bare-array", "cairn", "cairn-unpacked"} {
			d := remotebench.Median(thrRuns[tool])
			fmt.Fprintf(stderr, "  %-30s %8.3f   (%.1f jobs/s; min %.3f, max %.3f; %.2fx bare's speed; sbatch calls %v)\n", label(tool), d,
				float64(c.steps)/d, slices.Min(thrRuns[tool]), slices.Max(thrRuns[tool]), thrBare/d, calls[tool])
		}
	}
	return nil
}

func label(tool string) string {
	return map[string]string{
		"bare":           "bare sbatch + squeue",
		"bare-array":     "bare sbatch --array + squeue",
		"cairn":          "cairn, packed (default)",
		"cairn-unpacked": "cairn, unpacked (MaxPack 1)",
	}[tool]
}

type bench struct {
	cfg    config
	prog   cairn.Program // this binary, hashed once rather than in every timed run
	exe    string
	root   string
	spec   string
	enc    *json.Encoder
	stderr io.Writer

	lastSubmissions int // of the last measurement
}

func (b *bench) measure(ctx context.Context, tool string, n, i int) (float64, error) {
	kind := "latency"
	if n > 1 {
		kind = "throughput"
	}
	dir := filepath.Join(b.root, fmt.Sprintf("%s-%s-%d", kind, tool, i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	// A job starts at slurmctld's next scheduling pass (about every
	// second), so a run's time depends on the phase at which it submits,
	// and that phase on how the previous run ended. An untimed random
	// pause of up to a second makes the phase random for every tool.
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(rand.N(time.Second)):
	}
	var (
		d           time.Duration
		err         error
		submissions = n
	)
	switch tool {
	case "bare":
		d, err = b.bare(ctx, dir, n)
	case "bare-array":
		d, err = b.bareArray(ctx, dir, n)
		submissions = 1
	default:
		d, err = b.cairn(ctx, dir, n, tool == "cairn")
		if err == nil {
			submissions, err = sbatchCalls(filepath.Join(dir, "prefix"))
		}
	}
	if err != nil {
		return 0, fmt.Errorf("%s %s run %d: %w", kind, tool, i, err)
	}
	r := result{Kind: kind, Tool: tool, Jobs: n, Run: i, Seconds: d.Seconds(), Submissions: submissions}
	b.lastSubmissions = submissions
	return r.Seconds, b.enc.Encode(r)
}

// bare submits n jobs running this binary in trivial mode, with the
// resources the cairn steps request, and polls squeue until all are done.
func (b *bench) bare(ctx context.Context, dir string, n int) (time.Duration, error) {
	start := time.Now()
	ids := make([]string, n)
	for i := range ids {
		script := fmt.Sprintf("#!/bin/sh\nexec '%s' trivial '%s'\n", b.exe, filepath.Join(dir, fmt.Sprintf("result-%d", i)))
		args := []string{"--parsable", "--job-name=bare", "--output=/dev/null", "--cpus-per-task=1", "--mem=64M"}
		if b.cfg.partition != "" {
			args = append(args, "--partition="+b.cfg.partition)
		}
		cmd := exec.CommandContext(ctx, "sbatch", args...)
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.Output()
		if err != nil {
			return 0, fmt.Errorf("sbatch: %w", err)
		}
		ids[i] = strings.TrimSpace(string(out))
	}
	for {
		out, err := exec.CommandContext(ctx, "squeue", "-h", "--states=all", "-j", strings.Join(ids, ","), "-o", "%T").Output()
		if err != nil {
			return 0, fmt.Errorf("squeue: %w", err)
		}
		done := 0
		for s := range strings.FieldsSeq(string(out)) {
			switch s {
			case "COMPLETED":
				done++
			case "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY":
				return 0, fmt.Errorf("a bare job ended %s", s)
			}
		}
		if done == n {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(b.cfg.poll):
		}
	}
}

// bareArray submits the n jobs of bare as one job array (one sbatch), the
// floor of any design that runs each step as its own Slurm job.
func (b *bench) bareArray(ctx context.Context, dir string, n int) (time.Duration, error) {
	start := time.Now()
	script := fmt.Sprintf("#!/bin/sh\nexec '%s' trivial \"%s/result-$SLURM_ARRAY_TASK_ID\"\n", b.exe, dir)
	args := []string{"--parsable", "--job-name=bare-array", "--output=/dev/null", "--cpus-per-task=1", "--mem=64M", fmt.Sprintf("--array=0-%d", n-1)}
	if b.cfg.partition != "" {
		args = append(args, "--partition="+b.cfg.partition)
	}
	cmd := exec.CommandContext(ctx, "sbatch", args...)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("sbatch: %w", err)
	}
	id := strings.TrimSpace(string(out))
	for {
		out, err := exec.CommandContext(ctx, "squeue", "-h", "-r", "--states=all", "-j", id, "-o", "%T").Output()
		if err != nil {
			return 0, fmt.Errorf("squeue: %w", err)
		}
		done := 0
		for s := range strings.FieldsSeq(string(out)) {
			switch s {
			case "COMPLETED":
				done++
			case "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY":
				return 0, fmt.Errorf("a bare array job ended %s", s)
			}
		}
		if done == n {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(b.cfg.poll):
		}
	}
}

// cairn runs n remote steps through cairn.Run (remotebench.Run), with
// packing on or off.
func (b *bench) cairn(ctx context.Context, dir string, n int, pack bool) (time.Duration, error) {
	tool := "cairn"
	open := func(o *cluster.Options) (*cluster.Client, error) {
		if !pack {
			o.MaxPack = 1
		}
		return cli.DefaultClusters().Open(ctx, b.spec, o)
	}
	if !pack {
		tool = "cairn-unpacked"
	}
	return remotebench.Run(ctx, open, &b.prog, dir, n, b.stderr, label(tool))
}

// sbatchCalls counts the scheduler submissions of the steps under prefix
// from their remote records: a job array ("1234_5") is one submission.
func sbatchCalls(prefix string) (int, error) {
	recs, err := filepath.Glob(filepath.Join(prefix, "*", ".cairn_remote.json"))
	if err != nil {
		return 0, err
	}
	jobs := map[string]bool{}
	for _, p := range recs {
		data, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		var rec struct {
			JobIDs []string `json:"job_ids"`
		}
		if err := json.Unmarshal(data, &rec); err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		for _, id := range rec.JobIDs {
			array, _, _ := strings.Cut(id, "_")
			jobs[array] = true
		}
	}
	return len(jobs), nil
}

// rotate returns tools rotated left by i.
func rotate(tools []string, i int) []string {
	i %= len(tools)
	return append(slices.Clone(tools[i:]), tools[:i]...)
}
