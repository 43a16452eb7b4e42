package cli

import (
	"context"
	"iter"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime/debug"
	"time"

	"example.com/cairn"
	"example.com/cairn/runrecord"
)

// runRecorder keeps a run's record (package runrecord) and writes it
// beside the experiment records when the run ends.
type runRecorder struct {
	rec    *runrecord.Recorder
	prefix string
}

// startRecord starts recording a run of this program on prefix: it wraps
// opts.OnEvent (keeping any consumer already set) and returns steps
// wrapped so that the record knows each step's definition.
func startRecord(opts *cairn.RunOptions, steps iter.Seq[*cairn.Step], start time.Time) (*runRecorder, iter.Seq[*cairn.Step]) {
	r := &runRecorder{rec: runrecord.NewRecorder(programName(), opts.Prefix, start), prefix: opts.Prefix}
	prev := opts.OnEvent
	opts.OnEvent = func(e cairn.Event) {
		r.rec.OnEvent(e)
		if prev != nil {
			prev(e)
		}
	}
	if steps == nil {
		return r, nil
	}
	return r, func(yield func(*cairn.Step) bool) {
		for s := range steps {
			r.rec.AddStep(s)
			if !yield(s) {
				return
			}
		}
	}
}

// finish completes the record and writes it, even if ctx was cancelled
// (an interrupted run is recorded too). A record that cannot be written is
// a warning: the run's own outcome stands.
func (r *runRecorder) finish(ctx context.Context, o Options, opts *cairn.RunOptions, report *cairn.Report, runErr error, log *slog.Logger) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	rec := r.rec.Finish(ctx, opts.Storage, report, runErr, time.Now())
	if ctx.Err() != nil {
		rec.Outcome = runrecord.Interrupted
	}
	b, err := o.Storage.OpenBucket(wctx, r.prefix)
	if err == nil {
		err = runrecord.Write(wctx, b, rec)
	}
	if err != nil {
		log.Warn("could not write the run record", "run", rec.RunID, "err", err)
		return
	}
	log.Info("run recorded", "run", rec.RunID, "record", b.URL(runrecord.Key(rec.RunID)))
}

// programName names the running pipeline program in run records: the last
// element of its main package's import path, else of os.Args[0].
func programName() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Path != "" && bi.Path != "command-line-arguments" {
		return path.Base(bi.Path)
	}
	if len(os.Args) > 0 {
		return filepath.Base(os.Args[0])
	}
	return ""
}

// reportUsage writes what this job replica used (see runrecord.Usage)
// under the step's output path, for the submitting runner's run record.
// It is best effort: the step's outcome does not depend on it.
func reportUsage(ctx context.Context, storage cairn.BucketOpener, outPath, jobID string, replica int, started time.Time, log *slog.Logger) {
	if outPath == "" || jobID == "" {
		return
	}
	u, ok := measureUsage()
	if !ok {
		return
	}
	u.JobID, u.Replica, u.Started, u.Ended = jobID, replica, started.UTC(), time.Now().UTC()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second) // a job being stopped must exit soon
	defer cancel()
	b, err := storage.OpenBucket(ctx, outPath)
	if err == nil {
		err = runrecord.WriteUsage(ctx, b, u)
	}
	if err != nil {
		log.Warn("could not report the job's resource usage", "err", err)
	}
}

// jobStart returns the time a job's worker process began, for its usage
// report.
func jobStart() time.Time { return time.Now() }
