package runrecord

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"example.com/cairn"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
)

// Recorder builds a Record from a run's progress events. Pass its OnEvent
// as cairn.RunOptions.OnEvent (chaining any other consumer), register the
// steps' definitions with AddStep when known, and call Finish when the run
// returns. A Recorder is safe for concurrent use.
type Recorder struct {
	mu    sync.Mutex
	rec   Record
	steps map[string]*stepRec // by step ID
	order []string            // step IDs in the order they were decided
	defs  map[string]*cairn.Step
}

type stepRec struct {
	Step
	done bool
}

// NewRecorder starts a record of a run of program on prefix, started at
// start. The record's host, pid and runner are this process's.
func NewRecorder(program, prefix string, start time.Time) *Recorder {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	return &Recorder{
		rec: Record{
			Format: Format, RunID: NewRunID(start), Program: program, Prefix: prefix,
			Host: host, PID: os.Getpid(), Runner: fmt.Sprintf("%s-%d", host, os.Getpid()),
			Started: start.UTC(),
		},
		steps: make(map[string]*stepRec),
		defs:  make(map[string]*cairn.Step),
	}
}

// RunID returns the ID of the run being recorded.
func (r *Recorder) RunID() string { return r.rec.RunID }

// AddStep registers s and, transitively, its dependencies, so that the
// record lists their dependencies.
func (r *Recorder) AddStep(s *cairn.Step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	todo := []*cairn.Step{s}
	for len(todo) > 0 {
		s := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		id, err := s.ID()
		if err != nil || r.defs[id] != nil {
			continue
		}
		r.defs[id] = s
		todo = append(todo, s.Deps...)
	}
}

func (r *Recorder) step(e cairn.Event) *stepRec {
	s := r.steps[e.Step]
	if s == nil {
		s = &stepRec{Step: Step{Step: e.Step, Path: e.Path}}
		r.steps[e.Step] = s
	}
	return s
}

// OnEvent records e.
func (r *Recorder) OnEvent(e cairn.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.step(e)
	switch e.Kind {
	case cairn.StepStarted:
		if s.Queued.IsZero() {
			s.Queued = e.Time.UTC()
		}
	case cairn.StepWaiting:
		if s.Waiting.IsZero() {
			s.Waiting = e.Time.UTC()
		}
		s.Worker = e.Holder
	case cairn.StepFinished, cairn.StepPlanned:
		s.Finished = e.Time.UTC()
		s.Outcome = e.Outcome.String()
		if e.Err != nil {
			s.Error = e.Err.Error()
		}
		s.DurationS = e.Duration.Seconds()
		if e.Duration > 0 {
			s.Started = e.Time.Add(-e.Duration).UTC()
		}
		switch e.Outcome {
		case cairn.Ran, cairn.Failed, cairn.Interrupted:
			s.Worker = r.rec.Runner
			s.Host = r.rec.Host
		case cairn.TookOver:
			s.Worker, s.Host = r.rec.Runner, r.rec.Host
		case cairn.CompletedElsewhere, cairn.RunningElsewhere:
			if e.Holder != "" {
				s.Worker = e.Holder
			}
		}
		if s.Worker != "" && s.Host == "" {
			s.Host = hostOf(s.Worker)
		}
		if !s.done {
			s.done = true
			r.order = append(r.order, e.Step)
		}
	}
}

// hostOf guesses the host of a worker id HOST-PID-RANDOM[.N].
func hostOf(worker string) string {
	parts := strings.Split(worker, "-")
	if len(parts) < 3 {
		return ""
	}
	return strings.Join(parts[:len(parts)-2], "-")
}

// Finish completes the record: the run's outcome from err (the error
// cairn.Run returned) and ctx, the steps' names from report, their
// dependencies from the registered definitions, and, if storage is not
// nil, what their control files say about the cluster jobs of remote steps
// (the job, the resources it requested, the usage its replicas reported). It returns the record; the Recorder
// must not be used afterwards.
func (r *Recorder) Finish(ctx context.Context, storage cairn.BucketOpener, report *cairn.Report, runErr error, end time.Time) *Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.rec
	rec.Finished = end.UTC()
	rec.Outcome = Succeeded
	switch {
	case runErr == nil:
	case ctx.Err() != nil || errors.Is(runErr, context.Canceled):
		rec.Outcome = Interrupted
	case errors.Is(runErr, cairn.ErrInvalidPipeline):
		rec.Outcome = Invalid
	case errors.As(runErr, new(*cairn.RunError)) && !errors.Is(runErr, store.ErrPermission):
		rec.Outcome = Failed
	default:
		rec.Outcome = RunError
	}
	if runErr != nil {
		rec.Error = runErr.Error()
	}
	if report != nil {
		for _, sr := range report.Steps {
			s := r.step(cairn.Event{Step: sr.Step, Path: sr.Path})
			s.Name = sr.Name
			if !s.done {
				s.done = true
				s.Outcome = sr.Outcome.String()
				r.order = append(r.order, sr.Step)
			}
		}
	}
	rec.Steps = make([]Step, 0, len(r.order))
	for _, id := range r.order {
		s := r.steps[id]
		if def := r.defs[id]; def != nil {
			if s.Name == "" {
				s.Name = def.Name
			}
			for _, d := range def.Deps {
				if did, err := d.ID(); err == nil {
					s.Deps = append(s.Deps, did)
				}
			}
		}
	}
	// A step was ready when its last dependency finished, if they all
	// finished in this run; from then to Queued it waited for a slot.
	for _, id := range r.order {
		s := r.steps[id]
		var ready time.Time
		for _, d := range s.Deps {
			ds := r.steps[d]
			if ds == nil || ds.Finished.IsZero() {
				ready = time.Time{}
				break
			}
			if ds.Finished.After(ready) {
				ready = ds.Finished
			}
		}
		if !ready.IsZero() && !s.Queued.IsZero() && !ready.After(s.Queued) {
			s.Ready = ready
		}
	}
	if storage != nil && ctx.Err() == nil {
		// One read (or two) per executed step: in parallel, for runs of
		// thousands of steps on object stores.
		sem := make(chan struct{}, jobReaders)
		var wg sync.WaitGroup
		for _, id := range r.order {
			s := r.steps[id]
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				readJob(ctx, storage, s)
			})
		}
		wg.Wait()
	}
	for _, id := range r.order {
		s := r.steps[id]
		if s.Resources != nil && s.Resources.Used == nil {
			s.Resources.UsedNote = "not recorded: the job wrote no usage report"
		}
		rec.Steps = append(rec.Steps, s.Step)
	}
	// A remote step's record names this runner's full worker id
	// (RUNNER-RANDOM.N): name the runner and its steps by it.
	for _, s := range rec.Steps {
		if s.Job != nil && strings.HasPrefix(s.Worker, rec.Runner+"-") {
			full, _, _ := strings.Cut(s.Worker, ".")
			for i := range rec.Steps {
				if rec.Steps[i].Worker == rec.Runner {
					rec.Steps[i].Worker = full
				}
			}
			rec.Runner = full
			break
		}
	}
	return &rec
}

// usageSkew is the clock skew tolerated between a runner's host and its
// jobs' hosts when matching usage reports to jobs.
const usageSkew = 30 * time.Second

// jobReaders bounds the concurrent reads of Finish.
const jobReaders = 16

// readJob fills s.Job from the step's remote record, if it ran as a job in
// this run.
func readJob(ctx context.Context, storage cairn.BucketOpener, s *stepRec) {
	if s.Path == "" || (s.Outcome != cairn.Ran.String() && s.Outcome != cairn.TookOver.String() && s.Outcome != cairn.Failed.String() && s.Outcome != cairn.Interrupted.String()) {
		return
	}
	b, err := storage.OpenBucket(ctx, s.Path)
	if err != nil {
		return
	}
	rem, ok, err := statusfile.ReadRemote(ctx, b)
	if err != nil || !ok || (!s.Queued.IsZero() && rem.Submitted.Before(s.Queued.Add(-time.Second))) {
		return // no job, or one from an earlier run
	}
	j := &Job{Cluster: rem.Cluster, Name: rem.Job, IDs: rem.JobIDs, State: rem.State, ExitCode: rem.ExitCode,
		Submitted: rem.Submitted.UTC(), Finished: rem.Finished.UTC()}
	if n := len(rem.Logs); n > 0 {
		j.Log = rem.Logs[n-1]
	}
	s.Job = j
	if rem.WorkerID != "" {
		s.Worker = rem.WorkerID
	}
	s.Resources = &Resources{}
	if q := rem.Resources; q != nil {
		s.Resources.Requested = &Requested{CPUs: q.CPUs, MemoryBytes: q.MemoryBytes, DiskBytes: q.DiskBytes,
			Device: q.Device, Replicas: q.Replicas, TimeLimitS: q.TimeLimitS}
	}
	if n := len(rem.JobIDs); n > 0 {
		us, err := ReadUsage(ctx, b, rem.JobIDs[n-1])
		// Job IDs can repeat (the local cluster numbers jobs per runner
		// process): a report that ended well before this job was submitted
		// is an earlier job's. The margin allows for clock skew between the
		// runner's host and the job's.
		us = slices.DeleteFunc(us, func(u Usage) bool { return u.Ended.Before(rem.Submitted.Add(-usageSkew)) })
		if err == nil && len(us) > 0 {
			// A gang's replicas: the largest peak, the total CPU time.
			u := &Used{Source: us[0].Source}
			var hosts []string
			for _, x := range us {
				u.MaxRSSBytes = max(u.MaxRSSBytes, x.MaxRSSBytes)
				u.CPUUserS += x.CPUUserS
				u.CPUSystemS += x.CPUSystemS
				if !x.Started.IsZero() && (j.Running.IsZero() || x.Started.Before(j.Running)) {
					j.Running = x.Started
				}
				if !slices.Contains(hosts, x.Host) {
					hosts = append(hosts, x.Host)
				}
			}
			s.Resources.Used = u
			s.Host = strings.Join(hosts, ",")
		}
	}
}
