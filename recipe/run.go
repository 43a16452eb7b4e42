package recipe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"example.com/cairn"
	"example.com/cairn/internal/statusfile"
)

// StepInfo is the record of one step, written to its .executor_info and
// listed in the experiment record, in the schema of Marin's
// ExecutorStepInfo (without its description).
type StepInfo struct {
	Name string `json:"name"`
	// FnName is the Go symbol of the step's function.
	FnName string `json:"fn_name"`
	// Config is the resolved config: placeholders replaced by concrete
	// paths and versioned values by their values (encoding/json of the
	// config type, so field names follow its json tags).
	Config json.RawMessage `json:"config"`
	// OverrideOutputPath is StepOptions.OverridePath as given, or null.
	OverrideOutputPath *string `json:"override_output_path"`
	// Version is the version object whose hash is in the output path.
	Version json.RawMessage `json:"version"`
	// Dependencies are the output paths of the blocking dependencies, one
	// per reference.
	Dependencies []string `json:"dependencies"`
	OutputPath   string   `json:"output_path"`
}

// Experiment is the record of one run, written to
// EXPERIMENTS/PROGRAM-HASH6.json where HASH6 hashes the step records (so
// re-running the same pipeline rewrites the same file). It follows Marin's
// ExecutorInfo (without its description).
type Experiment struct {
	WorkerID  string  `json:"worker_id"`
	GitCommit *string `json:"git_commit"`
	// CallerPath names the program (Marin: the script's path).
	CallerPath string `json:"caller_path"`
	// CreatedDate is the local time of the run, in Python's isoformat.
	CreatedDate string     `json:"created_date"`
	User        *string    `json:"user"`
	Prefix      string     `json:"prefix"`
	Steps       []StepInfo `json:"steps"`
}

// RecordOptions fill the experiment record. A nil *RecordOptions means all
// defaults. The library reads nothing from the process environment; package
// recipecli fills these fields from it.
type RecordOptions struct {
	// Program names the record file; "" means "recipe". Only its last
	// path element is used.
	Program string
	// CallerPath is recorded as caller_path; "" means Program.
	CallerPath string
	// User is recorded as user; "" records null.
	User string
	// GitCommit is recorded as git_commit; "" records null.
	GitCommit string
	// ExperimentsDir is where the record is written (a local directory or
	// URL); "" means PREFIX/experiments. Marin's executor_info_base_path.
	ExperimentsDir string
	// Now returns the time recorded as created_date; nil means time.Now.
	Now func() time.Time
}

func (o *RecordOptions) program() string {
	p := "recipe"
	if o != nil && o.Program != "" {
		p = path.Base(strings.TrimSuffix(o.Program, "/"))
	}
	return p
}

// ExperimentPath returns where a run of the plan writes its experiment
// record.
func (pl *Plan) ExperimentPath(rec *RecordOptions) string {
	dir := joinPath(pl.prefix, "experiments")
	if rec != nil && rec.ExperimentsDir != "" {
		dir = rec.ExperimentsDir
	}
	return joinPath(dir, rec.program()+"-"+pl.expHash+".json")
}

// Experiment returns the experiment record a run of the plan writes.
// workerID is recorded as worker_id; "" means HOST-PID.
func (pl *Plan) Experiment(rec *RecordOptions, workerID string) Experiment {
	var r RecordOptions
	if rec != nil {
		r = *rec
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if workerID == "" {
		host, err := os.Hostname()
		if err != nil {
			host = "unknown-host"
		}
		workerID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	e := Experiment{
		WorkerID:    workerID,
		CallerPath:  r.CallerPath,
		CreatedDate: isoformat(now()),
		Prefix:      pl.prefix,
		Steps:       pl.Infos(),
	}
	if e.CallerPath == "" {
		e.CallerPath = rec.program()
	}
	if r.User != "" {
		e.User = &r.User
	}
	if r.GitCommit != "" {
		e.GitCommit = &r.GitCommit
	}
	return e
}

// isoformat formats t as Python's datetime.isoformat does for a naive local
// time: microseconds only when non-zero.
func isoformat(t time.Time) string {
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05")
	}
	return t.Format("2006-01-02T15:04:05.000000")
}

// Run resolves steps against opts.Prefix and runs them: see [Plan.Run].
func Run(ctx context.Context, steps []Node, opts *cairn.RunOptions, rec *RecordOptions) (*cairn.Report, error) {
	if opts == nil {
		return &cairn.Report{}, fmt.Errorf("%w: recipe: nil RunOptions", cairn.ErrInvalidPipeline)
	}
	pl, err := Resolve(opts.Prefix, steps...)
	if err != nil {
		return &cairn.Report{}, err
	}
	return pl.Run(ctx, opts, rec)
}

// Run runs the plan with the core runner, cairn.Run: [Plan.Prepare], then
// cairn.Run on the steps it returns, with a copy of opts whose Prefix is
// the plan's and whose RunOnly is cleared (Prepare implements it).
//
// It returns cairn.Run's report and error, or Prepare's error before any
// step starts. opts.Storage is required.
func (pl *Plan) Run(ctx context.Context, opts *cairn.RunOptions, rec *RecordOptions) (*cairn.Report, error) {
	if opts == nil {
		return &cairn.Report{}, fmt.Errorf("%w: recipe: nil RunOptions", cairn.ErrInvalidPipeline)
	}
	o := *opts
	o.Prefix = pl.prefix
	steps, err := pl.Prepare(ctx, &o, rec)
	if err != nil {
		return &cairn.Report{}, err
	}
	return cairn.Run(ctx, cairn.Steps(steps...), &o)
}

// Prepare does what a run does before the core runner takes over, and
// returns the steps to give it:
//
//  1. It selects the steps. Without opts.RunOnly, every step except those
//     reached only through non-blocking references. With it (Marin's
//     run_only), every step whose name matches one of the regular
//     expressions (unanchored search), and, depth first, the blocking
//     dependencies of selected steps that have not succeeded: a step whose
//     status is SUCCESS is skipped with all its dependencies. Steps outside
//     the selection are neither run nor waited for. A pattern that matches
//     no step is logged as a warning; if no pattern matches any step,
//     Prepare fails with an error satisfying
//     errors.Is(err, cairn.ErrInvalidPipeline). Prepare then sets
//     opts.RunOnly to nil: the core's own --run-only (which also matches
//     step IDs, and runs the dependencies of succeeded steps) must not
//     apply on top.
//  2. Unless opts.DryRun, it writes every step's .executor_info (the
//     record of [Plan.Info], replacing the file of an earlier run; the core
//     runner only writes its own if none exists) — for all steps of the
//     plan, selected or not, as Marin does — and then the experiment
//     record at [Plan.ExperimentPath]. A dry run writes nothing.
//
// The returned steps have the plan's absolute output paths and, as Deps,
// their selected blocking dependencies. Errors reading statuses or writing
// records are returned as they are, wrapped with the path concerned.
func (pl *Plan) Prepare(ctx context.Context, opts *cairn.RunOptions, rec *RecordOptions) ([]*cairn.Step, error) {
	if opts == nil || opts.Storage == nil {
		return nil, fmt.Errorf("%w: recipe: RunOptions.Storage is nil", cairn.ErrInvalidPipeline)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if len(pl.dups) > 0 {
		log.Info("recipe: merged steps built more than once with the same version", "steps", pl.dups)
	}
	sel := pl.selected(func(p *planned) bool { return p.runnable })
	steps := pl.runnable
	if len(opts.RunOnly) > 0 {
		chosen, err := pl.selectRunOnly(ctx, opts, log)
		if err != nil {
			return nil, err
		}
		opts.RunOnly = nil
		sel = pl.selected(func(p *planned) bool { return chosen[p] })
		steps = pl.build(sel)
		log.Info("recipe: running a subset of the steps", "selected", len(sel), "steps", len(pl.steps))
	}
	for _, p := range sel {
		log.Info("recipe: step", "name", p.n.name, "version", p.hash, "output_path", p.path)
	}
	if opts.DryRun {
		return steps, nil
	}
	if err := pl.writeRecords(ctx, opts, rec, log); err != nil {
		return nil, err
	}
	return steps, nil
}

// selectRunOnly implements Marin's run_only selection.
func (pl *Plan) selectRunOnly(ctx context.Context, opts *cairn.RunOptions, log *slog.Logger) (map[*planned]bool, error) {
	used := make([]bool, len(opts.RunOnly))
	matches := func(name string) bool {
		m := false
		for i, re := range opts.RunOnly {
			if re.MatchString(name) {
				used[i], m = true, true
			}
		}
		return m
	}
	sel := make(map[*planned]bool)
	visited := make(map[*planned]bool)
	var visit func(p *planned) error
	visit = func(p *planned) error {
		if visited[p] {
			return nil
		}
		visited[p] = true
		b, err := opts.Storage.OpenBucket(ctx, p.path)
		if err != nil {
			return err
		}
		status, err := statusfile.ReadStatus(ctx, b)
		if err != nil {
			return err
		}
		if status == statusfile.Success {
			log.Info("recipe: step already succeeded; skipping it and its dependencies", "name", p.n.name, "output_path", p.path)
			return nil
		}
		for _, d := range p.deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		sel[p] = true
		return nil
	}
	for _, p := range pl.steps {
		if matches(p.n.name) {
			if err := visit(p); err != nil {
				return nil, err
			}
		}
	}
	var unused []string
	for i, u := range used {
		if !u {
			unused = append(unused, fmt.Sprintf("%q", opts.RunOnly[i].String()))
			log.Warn("recipe: --run-only pattern matched no step", "pattern", opts.RunOnly[i].String())
		}
	}
	if len(unused) == len(opts.RunOnly) {
		return nil, fmt.Errorf("%w: --run-only %s matched no step", cairn.ErrInvalidPipeline, strings.Join(unused, ", "))
	}
	return sel, nil
}

// recordWriters bounds the concurrent .executor_info writes.
const recordWriters = 16

// writeRecords writes every step's .executor_info, then the experiment
// record.
func (pl *Plan) writeRecords(ctx context.Context, opts *cairn.RunOptions, rec *RecordOptions, log *slog.Logger) error {
	var (
		mu   sync.Mutex // guards errs
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, recordWriters)
	)
	for _, p := range pl.steps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := pl.writeInfo(ctx, opts, p); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	exp := pl.Experiment(rec, opts.WorkerID)
	data, err := statusfile.EncodeIndent(exp)
	if err != nil {
		return fmt.Errorf("recipe: encode experiment record: %w", err)
	}
	dir, name := path.Split(pl.ExperimentPath(rec))
	b, err := opts.Storage.OpenBucket(ctx, strings.TrimSuffix(dir, "/"))
	if err != nil {
		return err
	}
	if _, err := b.Write(ctx, name, data); err != nil {
		return fmt.Errorf("recipe: write experiment record: %w", err)
	}
	log.Info("recipe: wrote experiment record", "path", pl.ExperimentPath(rec))
	return nil
}

func (pl *Plan) writeInfo(ctx context.Context, opts *cairn.RunOptions, p *planned) error {
	b, err := opts.Storage.OpenBucket(ctx, p.path)
	if err != nil {
		return err
	}
	if err := statusfile.WriteInfo(ctx, b, p.info); err != nil {
		return fmt.Errorf("recipe: %s of %s: %w", statusfile.InfoKey, p.n.name, err)
	}
	return nil
}
