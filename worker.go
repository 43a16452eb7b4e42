package cairn

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
)

// WorkerOptions configure RunWorker.
type WorkerOptions struct {
	// Step is the ID (name_with_hash) of the step to run. Required.
	Step string
	// Path is the output path the submitter computed; "" skips the check.
	Path string
	// Prefix and Storage are as in RunOptions; Storage is required.
	Prefix  string
	Storage BucketOpener
	// Digest is the digest of the program that submitted the job; the
	// worker refuses to run under another. "" skips the check. This check
	// catches a rebuilt binary; it is no security boundary, since it runs
	// inside the binary it checks. What protects a job from a replaced
	// (staged) program is the backend verifying its private copy before
	// it starts (cluster.JobSpec.Digest), which the remote runner asks for.
	Digest string
	// Verified is the digest that the job's launcher checked of this very
	// executable before starting it (driver.VerifiedRun; package cli reads
	// it from the launcher's CAIRN_VERIFIED_PROGRAM). When it equals
	// Digest, RunWorker does not hash the executable again: on a cluster
	// that is a second read of a binary of tens of megabytes per job, and
	// it proves no more than the launcher's check did.
	Verified string
	// Fence is the version of the submitting attempt's RUNNING status
	// record: the artifact is saved only while the status file still holds
	// it (statusfile.CommitArtifact), so that a job whose submitter lost
	// the step never overwrites the artifact of the worker that took over.
	// "" saves it unconditionally, as jobs of earlier versions did.
	Fence store.Version
	// Replica is this process's index in its gang; only replica 0 saves
	// the artifact.
	Replica int
	// WorkerID names this process in logs; "" means a default.
	WorkerID string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// RunWorker is the worker mode of a pipeline program: inside a cluster job,
// it finds the step with ID opts.Step among steps and their dependencies —
// the same pipeline the submitting runner built, rebuilt by the same
// program, so steps made of closures work — and runs that one step's
// function, then saves its artifact. It takes no lease and writes no
// status: the submitting runner holds the step's lease and writes its
// status when the job ends.
//
// It fails with an error satisfying errors.Is(err, ErrProgramMismatch) if
// this program's digest is not opts.Digest or the pipeline has no step
// with that ID (the step's hash differs: another configuration or code),
// and otherwise returns the function's error.
func RunWorker(ctx context.Context, steps iter.Seq[*Step], opts *WorkerOptions) error {
	if opts == nil || opts.Storage == nil || opts.Step == "" {
		return fmt.Errorf("%w: WorkerOptions.Step and Storage are required", ErrInvalidPipeline)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Digest != "" && opts.Verified != opts.Digest {
		p, err := CurrentProgram()
		if err != nil {
			return err
		}
		if p.Digest != opts.Digest {
			return fmt.Errorf("%w: this program (%s, %s) is %s, the submitter's was %s; rebuild and resubmit from the same binary",
				ErrProgramMismatch, p.Path, p.Build, p.Digest, opts.Digest)
		}
	}
	s, err := findStep(steps, opts.Step)
	if err != nil {
		return err
	}
	if s.Func == nil {
		return fmt.Errorf("%w: step %s has no Func", ErrInvalidPipeline, opts.Step)
	}
	path, err := s.OutputPath(opts.Prefix)
	if err != nil {
		return err
	}
	if opts.Path != "" && path != opts.Path {
		return fmt.Errorf("%w: step %s writes to %s here, but the submitter expected %s (another prefix?)", ErrProgramMismatch, opts.Step, path, opts.Path)
	}
	b, err := opts.Storage.OpenBucket(ctx, path)
	if err != nil {
		return err
	}
	worker := opts.WorkerID
	if worker == "" {
		worker = fmt.Sprintf("%s/replica-%d", defaultWorkerBase(), opts.Replica)
	}
	out := &Output{
		ID:       opts.Step,
		Path:     path,
		Bucket:   b.WithReserved(statusfile.Owner, statusfile.IsControl),
		Logger:   logger.With("step", Label(opts.Prefix, opts.Step, path)),
		WorkerID: worker,
		storage:  opts.Storage,
		prefix:   opts.Prefix,
		worker:   true,
	}
	val, err := callFunc(ctx, s.Func, out)
	if err != nil {
		if pe, ok := errors.AsType[*PanicError](err); ok {
			fmt.Fprintf(os.Stderr, "%v\n%s\n", pe, pe.Stack)
		} else if ge, ok := errors.AsType[*GoexitError](err); ok {
			fmt.Fprintf(os.Stderr, "%v\n%s\n", ge, ge.Stack)
		}
		return err
	}
	if opts.Replica == 0 { // a nil result is saved too, as null
		if err := saveWorkerArtifact(ctx, b, val, opts.Fence); err != nil {
			return fmt.Errorf("save artifact: %w", err)
		}
	}
	return nil
}

// findStep returns the step with the given ID among steps and their
// transitive dependencies. If none has it but one has the same name, the
// error says the hashes differ.
func findStep(steps iter.Seq[*Step], id string) (*Step, error) {
	var sameName []string
	for st := range AllSteps(steps) {
		sid, err := st.ID()
		if err != nil {
			return nil, err
		}
		if sid == id {
			return st, nil
		}
		if len(id) > 9 && st.Name == id[:len(id)-9] {
			sameName = append(sameName, sid)
		}
	}
	if len(sameName) > 0 {
		return nil, fmt.Errorf("%w: no step %s in this program's pipeline, but %v: the step's attributes or dependencies differ from the submitter's", ErrProgramMismatch, id, sameName)
	}
	return nil, fmt.Errorf("%w: no step %s in this program's pipeline", ErrProgramMismatch, id)
}

// saveWorkerArtifact saves a job's artifact, fenced by the submitting
// attempt's RUNNING record when the submitter passed its version.
func saveWorkerArtifact(ctx context.Context, b *store.Bucket, val any, fence store.Version) error {
	if fence == "" {
		return statusfile.WriteArtifact(ctx, b, val)
	}
	data, err := statusfile.EncodeArtifact(val)
	if err != nil {
		return err
	}
	return statusfile.CommitArtifact(ctx, b, data, fence)
}

// AllSteps yields every step of steps and their transitive dependencies,
// each once (by pointer), parents before their dependencies; nil steps are
// skipped. It is how a program's pipeline is searched for one of its steps
// (worker mode, `prog logs`).
func AllSteps(steps iter.Seq[*Step]) iter.Seq[*Step] {
	return func(yield func(*Step) bool) {
		seen := map[*Step]bool{}
		var stack []*Step
		for s := range steps {
			stack = append(stack[:0], s)
			for len(stack) > 0 {
				st := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if st == nil || seen[st] {
					continue
				}
				seen[st] = true
				if !yield(st) {
					return
				}
				stack = append(stack, st.Deps...)
			}
		}
	}
}
