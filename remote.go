package cairn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"example.com/cairn/cluster"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
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
	// Resize and MaxResources grow the resources of an attempt retried
	// after a failure of its own, for example cluster.ScaleOnLimits(2) to
	// double the memory after running out of it, up to MaxResources (see
	// cluster.JobSpec). Neither is part of the step's identity.
	Resize       func(cluster.Retry) cluster.Resources
	MaxResources cluster.Resources
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
	// No artifact (a job of an earlier version) means the function
	// returned a nil value; it saves null now.
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
	// Fence is the version of the submitting attempt's RUNNING status
	// record (WorkerOptions.Fence).
	Fence store.Version
	// Params is the digest of RemoteOptions.Params, recorded under Path
	// before the job is submitted ("" if there are none): the worker reads
	// them with ReadJobParams.
	Params string
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
	// Params are the submitting program's parameters, opaque here (package
	// cli records its arguments, the files they name and its environment):
	// what a worker needs to rebuild the submitter's pipeline. If not nil,
	// they are written under the output path of each remote step
	// (.cairn_params.json) before its job is submitted — not when a job is
	// adopted, which runs with its own submitter's — and their digest is
	// given to WorkerArgs (WorkerJob.Params). At most 1 MiB.
	Params []byte
	// Env is added to every job's environment, under the step's own
	// variables (RemoteSpec.Env and Environment.Vars win): package cli
	// passes the submitter's CAIRN_* and MARIN_* variables.
	Env map[string]string
	// StageProgram, if set, is a location (a shared directory) where the
	// program is copied, content-addressed and once, for jobs to run it from
	// there: for clusters that cannot read the runner's file system. ""
	// runs the program where it is. Either way a job runs a private copy of
	// the program that the backend verified against the submitter's digest
	// before it starts, never the shared file itself; a directory every
	// user may write is refused, a group-writable one accepted (see
	// StageProgram).
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

// Adoption (issue 8, item 13). A runner that takes a step over (its
// previous holder died, or lost the lease) adopts the step's job if it is
// still running, instead of submitting a duplicate; the adopted job's exit
// status then decides the step. So adoption must never pick up a job that
// someone else made look like ours:
//
//   - Only the current user's jobs are candidates: every driver's Find
//     returns only them (squeue --me on Slurm, plus a user-ID check). Anyone
//     can name a job after a step, and put anything in its comment; only
//     the user (or root) can create jobs owned by the user.
//   - The job's tag is an HMAC, under a random token, of the step's output
//     path. The submitter records the token in the step's remote record
//     (.cairn_remote.json) before it submits, so a taker that can read the
//     step's output — the same user, or a member of the team group sharing
//     the prefix — can recompute the tag, and nobody else can. The token
//     ties a job to one submission at one location: a job of the user's
//     that was submitted for an earlier incarnation of the output (before
//     a clean, or under a rewritten record), or for another path, is not
//     adopted. On a local file system the record is made unreadable by
//     others (o-rwx); on object stores, the bucket's access control
//     decides who can read it. The token is a second factor: its
//     disclosure alone does not let anyone else's job be adopted.
//
// A taker running as another user (a team-mate, on a prefix shared by a
// Unix group) can never adopt the job: it is not theirs. If the record
// names a job the scheduler still lists as pending or running, the taker
// waits for it to end, trusting nothing it does, and then submits its own
// job, so two jobs never write the step's output at once; otherwise it
// submits at once. (A job submitted by a runner that died before recording
// its ID, or hidden by the scheduler's PrivateData, cannot be seen; the
// duplicate then only costs compute, as the last writer's artifact and the
// taker's status agree.)

// jobTag is the tag of the job of the step at path submitted under token.
func jobTag(token, path string) string {
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("cairn job tag\x00" + path))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// newToken returns a random adoption token.
func newToken() string {
	return rand.Text()
}

// foreignJobPoll is how often a taker checks whether a job it cannot adopt
// has ended.
const foreignJobPoll = 2 * time.Second

// runJob runs the job of the step out belongs to and waits for it. When
// the step was taken over, it first adopts the previous runner's job if
// the cluster still runs it and it is the current user's (see above), or
// waits for a job it cannot adopt to end. On return the job has ended. If
// ctx ended first the job is cancelled, unless the lease was lost: the
// runner that took the step over adopts the job (or waits for it).
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
	c := r.opts.Cluster
	var prev statusfile.Remote
	havePrev := false
	if out.tookOver {
		if prev, havePrev, err = statusfile.ReadRemote(ctx, ctl); err != nil {
			out.Logger.Warn("the previous runner's remote record is unreadable; its job cannot be adopted", "error", err)
			havePrev = false
		}
	}
	params := ""
	if r.opts.Params != nil {
		params = statusfile.ParamsDigest(r.opts.Params)
	}
	command := append([]string{prog.Path}, r.opts.WorkerArgs(WorkerJob{Step: out.ID, Path: out.Path, Digest: prog.Digest, Fence: out.fence, Params: params})...)
	// newJob returns the job spec for a submission under token.
	newJob := func(token string) cluster.JobSpec {
		tag := jobTag(token, out.Path)
		logDir := ""
		if dir, ok := localPath(out.Path); ok {
			logDir = filepath.Join(dir, statusfile.LogsDir)
		} else { // the job writes locally; the logs are copied under the output path
			logDir = filepath.Join(os.TempDir(), "cairn-logs", cluster.SanitizeName(name)+"-"+tag[:16])
		}
		env := maps.Clone(r.opts.Env)
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, spec.Environment.Vars)
		maps.Copy(env, spec.Env)
		environment := spec.Environment
		environment.Vars = env
		return cluster.JobSpec{
			Name:    name,
			Command: command,
			// The job runs a private copy of the program verified against this
			// digest on the node, never the (possibly shared, staged) file
			// itself: the worker's own digest check would run inside a
			// replaced binary and prove nothing (issue 8, item 12).
			Digest:               prog.Digest,
			Resources:            spec.Resources,
			Environment:          environment,
			Replicas:             spec.Replicas,
			MaxRetriesFailure:    spec.MaxRetriesFailure,
			MaxRetriesPreemption: spec.MaxRetriesPreemption,
			Resize:               spec.Resize,
			MaxResources:         spec.MaxResources,
			LogDir:               logDir,
			Tag:                  tag,
		}
	}
	uid := os.Getuid()
	rec := statusfile.Remote{
		Cluster:   c.Name(),
		Program:   statusfile.Program{Path: prog.Path, Digest: prog.Digest, Build: prog.Build},
		State:     cluster.Pending.String(),
		Submitted: time.Now().UTC(),
		WorkerID:  out.WorkerID,
		UID:       &uid,
		Resources: recordedResources(spec), // remoteresources.go
	}
	var j *cluster.Job
	var job cluster.JobSpec
	if havePrev && prev.Token != "" {
		job = newJob(prev.Token)
		job.FirstAttempt = adoptedLogNumber(prev.Logs) // remotelogs.go
		j, err = c.Adopt(ctx, job)
		switch {
		case err == nil:
			adoptedLog(ctx, out) // remotelogs.go
			out.Logger.Info("adopted the job of the previous runner", "job", j.Name(), "job_id", j.ID(), "cluster", c.Name())
			rec.Adopted, rec.Token = true, prev.Token
			if !prev.Submitted.IsZero() {
				rec.Submitted = prev.Submitted
			}
		case !errors.Is(err, cluster.ErrNotFound):
			return err
		}
	}
	if j == nil {
		if havePrev && prev.Finished.IsZero() && len(prev.JobIDs) > 0 {
			if err := r.awaitForeign(ctx, out, prev); err != nil {
				return err
			}
		}
		rec.Token = newToken()
		job = newJob(rec.Token)
		if job.FirstAttempt, err = claimJobLog(ctx, ctl, out); err != nil { // remotelogs.go
			return fmt.Errorf("attempt log: %w", err)
		}
		rec.LogDir = job.LogDir
		if r.opts.Params != nil { // before the job exists: its worker reads them
			if err := statusfile.WriteParams(ctx, ctl, r.opts.Params); err != nil {
				return fmt.Errorf("job parameters: %w", err)
			}
		}
		// The token must be on record before the job exists, or a runner
		// taking the step over could not adopt the job.
		if err := r.writeRecord(ctx, ctl, out.Path, rec); err != nil {
			return fmt.Errorf("remote record: %w", err)
		}
		if j, err = c.Submit(ctx, job); err != nil {
			return err
		}
		out.Logger.Info("submitted job", "job", j.Name(), "job_id", j.ID(), "cluster", c.Name())
	}
	stopWatch := out.watchJob(j, c.Name(), rec.Submitted) // issue 9: live progress
	defer stopWatch()
	rec.LogDir = job.LogDir
	copyLogs := false
	if _, ok := localPath(out.Path); !ok {
		copyLogs = true
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
		_ = r.writeRecord(wctx, ctl, out.Path, rec)
	}
	record(ctx)
	stopSync := func() {}
	if copyLogs {
		stopSync = sync.OnceFunc(r.syncLogs(ctx, ctl, j)) // remotelogs.go
		defer stopSync()
	}

	st, werr := j.Wait(ctx)
	noteJobLog(out, j)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if ctx.Err() != nil && !st.Finished() && errors.Is(context.Cause(ctx), lease.ErrLost) {
		// Another runner owns the step now and adopts this job (or, as
		// another user, waits for it): cancelling it would fail the step
		// under the new owner. The record is theirs to write.
		out.Logger.Warn("lease lost: leaving the job to the runner that took the step over", "job", j.Name(), "job_id", j.ID())
		return context.Cause(ctx)
	}
	if ctx.Err() != nil && !st.Finished() {
		// Interrupted: the job must stop too.
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
		stopSync() // no periodic upload may land after the final one
		r.copyLogs(cctx, ctl, j)
	}
	record(cctx)
	if werr != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if je, ok := errors.AsType[*cluster.JobError](werr); ok && je.ExitCode == 126 && strings.Contains(je.LogTail, "refusing to run") {
			// The backend's digest check refused the program.
			return fmt.Errorf("remote job: %w: %w", ErrProgramMismatch, werr)
		}
		return fmt.Errorf("remote job: %w", werr)
	}
	return nil
}

// awaitForeign waits until the job the previous runner recorded, which
// this runner could not adopt (another user's, or not tagged with the
// recorded token), is no longer pending or running, so that two jobs never
// write the step's output at once. Its outcome is not trusted: the caller
// submits a job of its own next.
func (r *remoteRunner) awaitForeign(ctx context.Context, out *Output, prev statusfile.Remote) error {
	c := r.opts.Cluster
	id := prev.JobIDs[len(prev.JobIDs)-1]
	logged := false
	for {
		active, err := c.Active(ctx, id)
		if err != nil {
			return fmt.Errorf("checking the previous runner's job %s: %w", id, err)
		}
		if !active {
			return nil
		}
		if !logged {
			by := "unknown"
			if prev.UID != nil {
				by = strconv.Itoa(*prev.UID)
			}
			out.Logger.Warn("the previous runner's job cannot be adopted (not this user's, or not tagged with the recorded token); waiting for it to end before submitting a new one",
				"job", prev.Job, "job_id", id, "submitter_uid", by)
			logged = true
		}
		t := time.NewTimer(foreignJobPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-t.C:
		}
	}
}

// writeRecord writes the remote record of the step at path through ctl,
// a bucket at path that may write control files. On a local file
// system it then takes away every permission of other users (not of the
// group): the record holds the adoption token (see jobTag). Object stores
// leave that to the bucket's access control.
func (r *remoteRunner) writeRecord(ctx context.Context, ctl *store.Bucket, path string, rec statusfile.Remote) error {
	if err := statusfile.WriteRemote(ctx, ctl, rec); err != nil {
		return err
	}
	if dir, ok := localPath(path); ok {
		p := filepath.Join(dir, statusfile.RemoteKey)
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o007 != 0 {
			if err := os.Chmod(p, fi.Mode().Perm()&^0o007); err != nil {
				return err
			}
		}
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
