package cairn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"example.com/cairn/cluster"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
)

// RemoteSpec says how a remote step's cluster job is requested (the fields
// of Marin's RemoteCallable besides the function).
type RemoteSpec struct {
	// Resources each replica needs; the zero value means one CPU.
	Resources cluster.Resources
	// Env is added to the job's environment (Marin's env_vars); it wins
	// over Environment.Vars.
	Env map[string]string
	// Environment is the job's environment: container image, setup
	// commands, dependency groups.
	Environment cluster.Environment
	// Name is the job's name; "" means the step's ID (name_with_hash),
	// sanitised. Jobs are named deterministically so that a runner taking
	// over a step can find its job.
	Name string
	// Replicas is the gang size; 0 means 1. Every replica runs the step's
	// function; only replica 0 saves the artifact. The step's lease is held
	// by the submitting runner, so a gang has exactly one claimant.
	Replicas int
	// MaxRetriesFailure and MaxRetriesPreemption are the job's retry
	// budgets (see cluster.JobSpec).
	MaxRetriesFailure    int
	MaxRetriesPreemption int
}

// RemoteFunc is a step function marked to run as a cluster job: Marin's
// RemoteCallable, typed so that the wrapped function keeps its signature.
// Make one with [Remote].
type RemoteFunc[T any] struct {
	fn   func(ctx context.Context, out *Output) (T, error)
	spec RemoteSpec
}

// Remote wraps fn, a step function returning its artifact as a T, into a
// value whose Call runs fn as a cluster job. spec may be nil (one CPU).
//
//	train := cairn.Remote(trainModel, &cairn.RemoteSpec{
//		Resources: cluster.Resources{CPUs: 8, Memory: 32 * cluster.GiB, Device: cluster.GPU("", 1)},
//	})
//	step := &cairn.Step{Name: "train", Deps: []*cairn.Step{tok}, Func: train.Func()}
func Remote[T any](fn func(ctx context.Context, out *Output) (T, error), spec *RemoteSpec) *RemoteFunc[T] {
	if fn == nil {
		panic("cairn.Remote: nil function")
	}
	r := &RemoteFunc[T]{fn: fn}
	if spec != nil {
		r.spec = *spec
		r.spec.Env = maps.Clone(spec.Env)
	}
	return r
}

// Spec returns the job request of r.
func (r *RemoteFunc[T]) Spec() RemoteSpec { return r.spec }

// Named returns a copy of r whose job is named name, unless r already has
// a name (Marin's named()).
func (r *RemoteFunc[T]) Named(name string) *RemoteFunc[T] {
	c := *r
	if c.spec.Name == "" {
		c.spec.Name = name
	}
	return &c
}

// Call runs the wrapped function for the step out belongs to. In a runner
// with a cluster (RunOptions.Remote) it submits a job that re-executes this
// program in worker mode to run the function there, blocks until the job
// ends, and returns the artifact the job saved, decoded as a T; a failed
// job is an error wrapping a *cluster.JobError (state, exit code, log
// tail). Inside that job, or in a runner without a cluster, it calls the
// function directly. out must be the Output the step's Func received, and
// Call may be called once per step execution.
func (r *RemoteFunc[T]) Call(ctx context.Context, out *Output) (T, error) {
	if out.remote == nil || out.worker {
		return r.fn(ctx, out)
	}
	var zero T
	if out.remoteUsed {
		return zero, fmt.Errorf("step %s: RemoteFunc.Call called twice in one execution", out.ID)
	}
	if err := out.runRemote(ctx, &r.spec); err != nil {
		return zero, err
	}
	// No artifact means the function returned a nil value.
	v, _, err := decodeArtifact[T](ctx, out.Bucket)
	if err != nil {
		return zero, fmt.Errorf("step %s: the job's artifact: %w", out.ID, err)
	}
	return v, nil
}

// Func returns a step function calling r.Call, for Step.Func.
func (r *RemoteFunc[T]) Func() Func {
	return func(ctx context.Context, out *Output) (any, error) { return r.Call(ctx, out) }
}

// WorkerJob describes the job that runs one remote step, for
// RemoteOptions.WorkerArgs.
type WorkerJob struct {
	// Step is the step's ID (name_with_hash).
	Step string
	// Path is the step's output path.
	Path string
	// Digest is the program's digest; the worker must refuse to run under
	// another (ErrProgramMismatch).
	Digest string
}

// RemoteOptions configure how a run executes remote steps.
type RemoteOptions struct {
	// Cluster submits and watches the jobs. Required.
	Cluster *cluster.Client
	// WorkerArgs returns the arguments, after the program's path, of the job
	// that runs a step in worker mode. Required; package cli sets it to
	// re-enter the program's own command line ("worker --step ...").
	WorkerArgs func(WorkerJob) []string
	// Program is the binary jobs run; nil means CurrentProgram(), computed
	// at the first remote step.
	Program *Program
	// StageProgram, if set, is a location (a shared directory) where the
	// program is copied, content-addressed and once, for jobs to run it from
	// there: for clusters that cannot read the runner's file system. ""
	// runs the program where it is.
	StageProgram string
}

// remoteRunner runs remote steps' jobs: the execution strategy's remote
// half. The lease stays with the caller (executor.attempt).
type remoteRunner struct {
	opts    RemoteOptions
	storage BucketOpener
	logger  *slog.Logger

	once    sync.Once
	program Program
	progErr error
}

func newRemoteRunner(opts *RemoteOptions, storage BucketOpener, logger *slog.Logger) *remoteRunner {
	if opts == nil || opts.Cluster == nil {
		return nil
	}
	return &remoteRunner{opts: *opts, storage: storage, logger: logger}
}

// programFor returns the (staged) program, once.
func (r *remoteRunner) programFor(ctx context.Context) (Program, error) {
	r.once.Do(func() {
		if r.opts.Program != nil {
			r.program = *r.opts.Program
		} else if r.program, r.progErr = CurrentProgram(); r.progErr != nil {
			return
		}
		if r.opts.StageProgram == "" {
			return
		}
		b, err := r.storage.OpenBucket(ctx, r.opts.StageProgram)
		if err != nil {
			r.progErr = fmt.Errorf("stage program: %w", err)
			return
		}
		r.program, r.progErr = StageProgram(ctx, b, r.program)
		if r.progErr == nil {
			r.logger.Info("program staged", "path", r.program.Path, "digest", r.program.Digest)
		}
	})
	return r.program, r.progErr
}

// jobTag ties a job to one output path, so that a runner adopts only the
// jobs of its own step at its own location.
func jobTag(path string) string {
	sum := sha256.Sum256([]byte(path))
	return hex.EncodeToString(sum[:8])
}

// runJob runs the job of the step out belongs to and waits for it. When
// the step was taken over from a dead runner, it first adopts that runner's
// job if the cluster still runs it. On return the job has ended; if ctx
// ended first (interruption, lost lease) the job is cancelled.
func (r *remoteRunner) runJob(ctx context.Context, out *Output, spec *RemoteSpec) error {
	if r.opts.WorkerArgs == nil {
		return fmt.Errorf("%w: RemoteOptions.WorkerArgs is nil", ErrInvalidPipeline)
	}
	// out.Bucket refuses control files; the remote record and the copied
	// logs are the runner's, written through an unrestricted bucket.
	ctl, err := out.storage.OpenBucket(ctx, out.Path)
	if err != nil {
		return err
	}
	prog, err := r.programFor(ctx)
	if err != nil {
		return err
	}
	name := spec.Name
	if name == "" {
		name = out.ID
	}
	tag := jobTag(out.Path)
	logDir, copyLogs := "", false
	if dir, ok := localPath(out.Path); ok {
		logDir = filepath.Join(dir, statusfile.LogsDir)
	} else { // the job writes locally; the logs are copied under the output path
		logDir = filepath.Join(os.TempDir(), "cairn-logs", cluster.SanitizeName(name)+"-"+tag)
		copyLogs = true
	}
	env := maps.Clone(spec.Environment.Vars)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, spec.Env)
	environment := spec.Environment
	environment.Vars = env
	job := cluster.JobSpec{
		Name:                 name,
		Command:              append([]string{prog.Path}, r.opts.WorkerArgs(WorkerJob{Step: out.ID, Path: out.Path, Digest: prog.Digest})...),
		Resources:            spec.Resources,
		Environment:          environment,
		Replicas:             spec.Replicas,
		MaxRetriesFailure:    spec.MaxRetriesFailure,
		MaxRetriesPreemption: spec.MaxRetriesPreemption,
		LogDir:               logDir,
		Tag:                  tag,
	}
	c := r.opts.Cluster
	rec := statusfile.Remote{
		Cluster:   c.Name(),
		Program:   statusfile.Program{Path: prog.Path, Digest: prog.Digest, Build: prog.Build},
		LogDir:    logDir,
		State:     cluster.Pending.String(),
		Submitted: time.Now().UTC(),
		WorkerID:  out.WorkerID,
	}
	var j *cluster.Job
	if out.tookOver {
		j, err = c.Adopt(ctx, job)
		switch {
		case err == nil:
			out.Logger.Info("adopted the job of the previous runner", "job", j.Name(), "job_id", j.ID(), "cluster", c.Name())
			rec.Adopted = true
			if old, ok, _ := statusfile.ReadRemote(ctx, ctl); ok && !old.Submitted.IsZero() {
				rec.Submitted = old.Submitted
			}
		case !errors.Is(err, cluster.ErrNotFound):
			return err
		}
	}
	if j == nil {
		if j, err = c.Submit(ctx, job); err != nil {
			return err
		}
		out.Logger.Info("submitted job", "job", j.Name(), "job_id", j.ID(), "cluster", c.Name())
	}
	rec.Job = j.Name()
	record := func(wctx context.Context) {
		rec.JobIDs, rec.Logs = rec.JobIDs[:0], rec.Logs[:0]
		for _, a := range j.Attempts() {
			if len(rec.JobIDs) == 0 || rec.JobIDs[len(rec.JobIDs)-1] != a.ID {
				rec.JobIDs = append(rec.JobIDs, a.ID)
			}
			rec.Logs = append(rec.Logs, a.LogPath)
		}
		// Provenance is best effort: the step's status is what matters.
		_ = statusfile.WriteRemote(wctx, ctl, rec)
	}
	record(ctx)

	st, werr := j.Wait(ctx)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if ctx.Err() != nil && !st.Finished() {
		// Interrupted, or the lease was lost: the job must stop too.
		if err := j.Cancel(cctx); err != nil {
			out.Logger.Warn("cancelling the job failed", "job", j.Name(), "job_id", j.ID(), "error", err)
		}
		wctx, wcancel := context.WithTimeout(cctx, 10*time.Second)
		st, _ = j.Wait(wctx)
		wcancel()
	}
	rec.State, rec.Finished = st.String(), time.Now().UTC()
	if a := j.Attempts(); len(a) > 0 && st.Finished() {
		code := a[len(a)-1].ExitCode
		rec.ExitCode = &code
	}
	if copyLogs {
		r.copyLogs(cctx, ctl, j)
	}
	record(cctx)
	if werr != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("remote job: %w", werr)
	}
	return nil
}

// copyLogs copies the attempts' logs under the output path.
func (r *remoteRunner) copyLogs(ctx context.Context, b *store.Bucket, j *cluster.Job) {
	for _, a := range j.Attempts() {
		data, err := os.ReadFile(a.LogPath)
		if err != nil {
			continue
		}
		if _, err := b.Write(ctx, statusfile.LogsDir+"/"+filepath.Base(a.LogPath), data); err != nil {
			r.logger.Warn("copying a job log failed", "log", a.LogPath, "error", err)
		}
	}
}
