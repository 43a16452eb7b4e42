// Package driver defines the interface cluster backends implement.
//
// Application code should use package cluster. The portable *cluster.Client
// owns everything the backends share: validating and defaulting requests,
// sanitising job names, polling with backoff, retrying preempted and failed
// attempts against their budgets, cancelling, and wrapping errors once. A
// driver only translates one attempt of one job to its scheduler and reports
// what the scheduler says.
package driver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Scheduler is implemented by cluster backends. Application code should use
// package cluster.
//
// Implementations must be safe for concurrent use. They must not retry
// failed attempts themselves (the portable layer does, against the job's
// budgets), but they may let the scheduler requeue a job in place, reporting
// it through Status.Restarts.
type Scheduler interface {
	// Submit starts one attempt of spec and returns its scheduler job ID,
	// without waiting for it to be scheduled. The portable layer passes a
	// valid, complete spec, but a driver is also a public API: Submit must
	// call spec.Validate itself before anything reaches a shell or a
	// scheduler, and reject an invalid spec with ErrorCode(err) == Invalid.
	// If spec.Digest is set, the driver must run a private copy of
	// Command[0] whose SHA-256 it verified on the node, never the file at
	// Command[0] itself, and fail the attempt with exit code 126 (cause
	// CauseExit) without running anything if the digest differs. A request the cluster can never satisfy must fail here when
	// the scheduler can tell, with ErrorCode(err) == Unsatisfiable and the
	// scheduler's reason in the message; a feature the backend does not have
	// (an image, a TPU) with ErrorCode(err) == Unsupported.
	Submit(ctx context.Context, spec *JobSpec) (id string, err error)
	// Status reports the state of each job in ids, in the same order. A job
	// the scheduler does not know (never existed, or purged) is reported with
	// State == Gone rather than an error; the error is for failing to ask.
	Status(ctx context.Context, ids []string) ([]Status, error)
	// Cancel stops the job. Cancelling a finished job is not an error; an
	// unknown ID gives ErrorCode(err) == NotFound.
	Cancel(ctx context.Context, id string) error
	// Find returns the jobs named name that have not finished (pending or
	// running) and that belong to the user running this process, so that a
	// new client can adopt a job an earlier client of the same user
	// submitted. Jobs of other users must never be returned, whatever their
	// name and tag: anyone can name a job, and a job that is adopted decides
	// the outcome of a step. A backend whose jobs do not outlive their
	// client returns only its own.
	Find(ctx context.Context, name string) ([]Found, error)
	// ErrorCode classifies an error returned by this driver.
	ErrorCode(err error) Code
	// Close releases the driver's resources. Jobs keep running unless the
	// backend's jobs cannot outlive it (documented by the backend).
	Close() error
}

// Adopter is implemented by drivers that must know the spec of a job a
// client adopts (one Find returned) to watch it: a backend whose driver
// copies the job's output into LogDir itself (Kubernetes, streaming the
// pod's log) learns where from spec, and never from the job, which anyone
// allowed to create jobs could have made. The portable layer calls Adopt
// before it polls the job; spec.Attempt is the attempt Find reported.
type Adopter interface {
	Adopt(ctx context.Context, id string, spec *JobSpec) error
}

// Code classifies driver errors; the portable layer maps it to sentinels.
type Code int

const (
	// Unknown is any other error.
	Unknown Code = iota
	// NotFound: no such job.
	NotFound
	// Unsatisfiable: the request can never run on this cluster.
	Unsatisfiable
	// Unsupported: the backend lacks a requested feature.
	Unsupported
	// Transient: the scheduler could not be reached; retrying may help.
	Transient
	// Invalid: the job spec is not valid (see JobSpec.Validate).
	Invalid
)

// JobSpec is one attempt of a job as the driver receives it: validated,
// with defaults applied and the name sanitised.
type JobSpec struct {
	// Name is the job's name, matching [a-z0-9_.-]+.
	Name string
	// Tag is an opaque token, matching [A-Za-z0-9_.-]*, stored with the job
	// and returned by Find; it tells adopters which jobs are theirs.
	Tag string
	// Command is the argv of the job's program; Command[0] is a path or a
	// name looked up in $PATH on the node. Never passed through a shell
	// unquoted.
	Command []string
	// Digest, if not "", is the lower-case hex SHA-256 of the program at
	// Command[0], which is then an absolute path. The job runs a private
	// copy of that file made and verified on the node (see Scheduler.Submit).
	Digest string
	// Env is set in the job's environment on top of what the backend
	// propagates. Keys match [A-Za-z_][A-Za-z0-9_]*.
	Env map[string]string
	// Setup commands run, in order, before Command, in the same
	// environment; each must succeed. Argv lists, never shell strings.
	Setup [][]string
	// Image is a container image; backends without containers reject it.
	Image string
	// Dir is the working directory; "" means the backend's default.
	Dir string
	// LogDir is a directory on storage the job can write. The driver writes
	// everything the job prints, stdout and stderr interleaved, to
	// LogDir/attempt-N.log where N is Attempt, plus the number of times the
	// scheduler restarted the job in place.
	LogDir string
	// Attempt numbers this attempt, from 1.
	Attempt int
	// Replicas is the number of copies of the program started together
	// (a gang), >= 1. Each sees CAIRN_REPLICA (0-based) and CAIRN_REPLICAS.
	Replicas  int
	Resources Resources
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9_.-]+$`)
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_.-]*$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	gpuRE    = regexp.MustCompile(`^[A-Za-z0-9_.-]*$`)
)

// Validate reports whether spec is what the field comments above promise:
// a sanitised name, a well-formed tag and digest, environment variable
// names that are identifiers, no NUL byte in any value, a non-empty
// command and setup commands, at least one replica and attempt, no
// negative resource. Drivers call it first thing in Submit (see
// Scheduler.Submit): the portable layer checks the same, but direct users
// of a driver must get the same guarantees.
func (spec *JobSpec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid job spec: %s", fmt.Sprintf(format, args...))
	}
	hasNUL := func(s string) bool { return strings.IndexByte(s, 0) >= 0 }
	if spec == nil {
		return errors.New("invalid job spec: nil")
	}
	switch {
	case !nameRE.MatchString(spec.Name):
		return bad("name %q: want [a-z0-9_.-]+", spec.Name)
	case !tagRE.MatchString(spec.Tag):
		return bad("tag %q: want [A-Za-z0-9_.-]*", spec.Tag)
	case len(spec.Command) == 0 || spec.Command[0] == "":
		return bad("empty command")
	case spec.Digest != "" && !digestRE.MatchString(spec.Digest):
		return bad("digest %q: want 64 lower-case hex digits", spec.Digest)
	case spec.Digest != "" && !filepath.IsAbs(spec.Command[0]):
		return bad("program %q: a verified program must be an absolute path", spec.Command[0])
	case spec.LogDir == "":
		return bad("no log directory")
	case hasNUL(spec.LogDir) || hasNUL(spec.Dir) || hasNUL(spec.Image):
		return bad("path contains a NUL byte")
	case spec.Attempt < 1:
		return bad("attempt %d: want >= 1", spec.Attempt)
	case spec.Replicas < 1:
		return bad("replicas %d: want >= 1", spec.Replicas)
	}
	for _, a := range spec.Command {
		if hasNUL(a) {
			return bad("command argument contains a NUL byte")
		}
	}
	for i, argv := range spec.Setup {
		if len(argv) == 0 || argv[0] == "" {
			return bad("setup command %d is empty", i)
		}
		for _, a := range argv {
			if hasNUL(a) {
				return bad("setup command %d contains a NUL byte", i)
			}
		}
	}
	for k, v := range spec.Env {
		if !envKeyRE.MatchString(k) {
			return bad("environment variable name %q: want [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if hasNUL(v) {
			return bad("environment variable %s contains a NUL byte", k)
		}
	}
	r := spec.Resources
	switch {
	case r.CPUs < 0 || r.Memory < 0 || r.Disk < 0 || r.GPUs < 0 || r.TimeLimit < 0:
		return bad("negative resource request")
	case !gpuRE.MatchString(r.GPUType) || !gpuRE.MatchString(r.TPUType):
		return bad("device type %q/%q: want [A-Za-z0-9_.-]*", r.GPUType, r.TPUType)
	}
	return nil
}

// InheritedEnv returns environ, the submitting process's environment in
// os.Environ form, without the variables that describe the submitter's own
// scheduler job: every SLURM_* variable except SLURM_CONF (which locates the
// cluster's configuration rather than describing a job). Backends propagate
// the submitter's environment to jobs, and a submitter that itself runs in
// a Slurm job (requeued three times, say) would otherwise hand its
// SLURM_RESTART_COUNT, SLURM_JOB_ID and the like to jobs that are not that
// job (issue 8, item 15). VerifiedProgramEnv goes too: it describes the
// submitter's own program copy.
func InheritedEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "SLURM_") && k != "SLURM_CONF" || k == VerifiedProgramEnv {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// LogName returns the file name of attempt n's log.
func LogName(n int) string { return "attempt-" + strconv.Itoa(n) + ".log" }

// Resources is what one replica needs. Zero values mean "nothing
// requested" except CPUs, which the portable layer sets to at least 1.
type Resources struct {
	CPUs        int
	Memory      int64 // bytes
	Disk        int64 // bytes of local scratch
	GPUs        int
	GPUType     string // "" means any
	TPUType     string // "" means none
	Preemptible bool
	Regions     []string
	TimeLimit   time.Duration // 0 means none
}

// State is a job's state.
type State int

// States. Pending and Running are not final; Gone means the scheduler does
// not know the job (it never existed, or was purged from its records).
const (
	Gone State = iota
	Pending
	Running
	Succeeded
	Failed
	Stopped
)

// Cause says why an attempt ended as it did.
type Cause int

const (
	// CauseNone: not finished, or succeeded.
	CauseNone Cause = iota
	// CauseExit: the program exited non-zero or was killed by a signal.
	CauseExit
	// CausePreempted: the scheduler preempted the job.
	CausePreempted
	// CauseNodeFailure: the node failed, or failed to boot.
	CauseNodeFailure
	// CauseTimeLimit: the job reached its time limit.
	CauseTimeLimit
	// CauseOutOfMemory: the job exceeded its memory.
	CauseOutOfMemory
	// CauseCancelled: the job was cancelled.
	CauseCancelled
	// CauseUnsatisfiable: the request can never be scheduled.
	CauseUnsatisfiable
	// CauseDeadline: the job missed its deadline before starting.
	CauseDeadline
	// CauseOther: any other failure.
	CauseOther
)

// Status is what the scheduler says about one job.
type Status struct {
	State State
	Cause Cause
	// ExitCode is the program's exit status when known, else -1.
	ExitCode int
	// Signal is the signal that killed the program, or 0.
	Signal int
	// Reason is the scheduler's own words (state and reason), for messages.
	Reason string
	// Restarts counts the times the scheduler requeued the job in place
	// (each restart is a new attempt with its own log file).
	Restarts int
}

// Found describes a job returned by Scheduler.Find.
type Found struct {
	ID    string
	Tag   string
	State State
	// Attempt is the JobSpec.Attempt it was submitted with, when the
	// backend can tell (else 0).
	Attempt int
}
