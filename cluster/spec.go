package cluster

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"example.com/cairn/cluster/driver"
)

// VerifiedProgramEnv is set in the environment of a job started from a
// verified copy of its program (JobSpec.Digest), on every backend that
// verifies through a launcher script (Slurm, Kubernetes), to "sha256:HEX
// PATH": the digest that was checked and the copy that was started. A
// worker at PATH may trust it instead of hashing its own executable again.
const VerifiedProgramEnv = driver.VerifiedProgramEnv

// Sizes for Resources.Memory and Resources.Disk.
const (
	MiB int64 = 1 << 20
	GiB int64 = 1 << 30
)

// DefaultMaxRetriesPreemption is JobSpec.MaxRetriesPreemption when it is 0.
const DefaultMaxRetriesPreemption = 100

// DeviceKind is the kind of accelerator a job needs.
type DeviceKind int

const (
	// CPUOnly: no accelerator (the zero value).
	CPUOnly DeviceKind = iota
	// GPUDevice: Count GPUs of type Type ("" means any).
	GPUDevice
	// TPUDevice: a TPU slice of type Type (for example "v5p-8").
	TPUDevice
)

// Device is the accelerator of a job; the zero value is CPU only.
type Device struct {
	Kind  DeviceKind
	Type  string
	Count int
}

// GPU returns a device of count GPUs of the given type ("" means any).
func GPU(typ string, count int) Device { return Device{Kind: GPUDevice, Type: typ, Count: count} }

// TPU returns a TPU device of the given type.
func TPU(typ string) Device { return Device{Kind: TPUDevice, Type: typ} }

// Resources is what each replica of a job needs.
type Resources struct {
	// CPUs is the number of CPUs; 0 means 1.
	CPUs int
	// Memory in bytes; 0 means the backend's default.
	Memory int64
	// Disk is local scratch space in bytes; 0 means none requested.
	Disk int64
	// Device is the accelerator; the zero value means none.
	Device Device
	// Preemptible says the job may run on preemptible capacity.
	Preemptible bool
	// Regions, if not empty, restricts where the job may run.
	Regions []string
	// TimeLimit ends the job when reached (rounded up to the backend's
	// granularity: a minute on Slurm); 0 means none.
	TimeLimit time.Duration
}

// Environment is how a job's program is set up.
type Environment struct {
	// Vars are set in the job's environment, on top of what the backend
	// propagates (the submitter's environment, for both backends here).
	// Keys must match [A-Za-z_][A-Za-z0-9_]*.
	Vars map[string]string
	// Image is a container image to run in; backends without container
	// support reject a job that sets it (ErrUnsupported).
	Image string
	// Setup commands run, in order, before the program, in its environment;
	// each must succeed. They are argv lists, never shell text.
	Setup [][]string
	// DependencyGroups names the dependency groups (Marin's extras) the
	// program needs. nil means derived from the device: ["gpu"] or ["tpu"]
	// for accelerators, none for CPU; an empty non-nil slice means none. The
	// job sees them, comma-separated, in CAIRN_DEPENDENCY_GROUPS, for its
	// setup to act on.
	DependencyGroups []string
}

// JobSpec describes a job (Fray's JobRequest).
type JobSpec struct {
	// Name names the job; it is sanitised with SanitizeName.
	Name string
	// Command is the program and its arguments. It is never interpreted by
	// a shell.
	Command []string
	// Digest, if not "", is "sha256:" and the hex SHA-256 of the program
	// Command[0] names, which must then be an absolute path. The job does
	// not run that file: on the node, before anything else of the job
	// runs, the backend copies it to a file only the job's user can write,
	// checks the copy's digest and runs the copy, so that whoever can
	// replace the file at Command[0] (a shared staging directory) cannot
	// make the job run their program. A program whose digest differs fails
	// the job with exit code 126 and runs nothing. The copy runs with
	// VerifiedProgramEnv set.
	Digest      string
	Resources   Resources
	Environment Environment
	// Dir is the working directory; "" means the backend's default.
	Dir string
	// Replicas is the number of copies started together (a gang); 0 means
	// 1. Each sees CAIRN_REPLICA (0-based) and CAIRN_REPLICAS.
	Replicas int
	// MaxRetriesFailure is how many times an attempt that failed on its own
	// (non-zero exit, out of memory, time limit) is retried; default 0.
	MaxRetriesFailure int
	// MaxRetriesPreemption is how many times an attempt that was preempted
	// or lost its node is retried; 0 means DefaultMaxRetriesPreemption, a
	// negative value means never.
	MaxRetriesPreemption int
	// Resize, if set, returns the resources of an attempt retried after a
	// failure of its own (MaxRetriesFailure), given the attempt about to
	// start, why the previous one failed and what it had: for example more
	// memory after running out of it (ScaleOnLimits). The result is
	// clamped to MaxResources. A preempted attempt is retried unchanged.
	Resize func(Retry) Resources
	// MaxResources caps what Resize returns, field by field; a zero field
	// means no cap. Devices, regions and preemptibility are never changed.
	MaxResources Resources
	// LogDir is where each attempt's output goes (attempt-N.log), on
	// storage the job can write; "" means a new directory under
	// Options.LogRoot.
	LogDir string
	// Tag is stored with the job so that Client.Adopt recognises it; it
	// must match [A-Za-z0-9_.-]*.
	Tag string
	// FirstAttempt numbers the job's first attempt (and its log,
	// attempt-N.log); later attempts take the numbers after it. 0 means 1.
	// A caller sharing LogDir between jobs sets it to keep their logs apart.
	FirstAttempt int
}

var (
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	tagRE    = regexp.MustCompile(`^[A-Za-z0-9_.-]*$`)
)

// validate checks spec and returns the driver's view of its first attempt.
func (spec *JobSpec) validate() (*driver.JobSpec, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidJob, fmt.Sprintf(format, args...))
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return nil, bad("empty command")
	}
	for _, a := range spec.Command {
		if strings.ContainsRune(a, 0) {
			return nil, bad("command argument contains a NUL byte")
		}
	}
	for i, argv := range spec.Environment.Setup {
		if len(argv) == 0 || argv[0] == "" {
			return nil, bad("setup command %d is empty", i)
		}
		for _, a := range argv {
			if strings.ContainsRune(a, 0) {
				return nil, bad("setup command %d contains a NUL byte", i)
			}
		}
	}
	r := spec.Resources
	switch {
	case r.CPUs < 0 || r.Memory < 0 || r.Disk < 0 || r.TimeLimit < 0:
		return nil, bad("negative resource request")
	case spec.Replicas < 0:
		return nil, bad("negative replicas")
	case spec.MaxRetriesFailure < 0:
		return nil, bad("negative MaxRetriesFailure")
	case r.Device.Kind == GPUDevice && r.Device.Count < 1:
		return nil, bad("GPU device with count %d", r.Device.Count)
	case r.Device.Kind == TPUDevice && r.Device.Type == "":
		return nil, bad("TPU device without a type")
	case !tagRE.MatchString(spec.Tag):
		return nil, bad("tag %q: want [A-Za-z0-9_.-]*", spec.Tag)
	case spec.Digest != "" && !strings.HasPrefix(spec.Digest, "sha256:"):
		return nil, bad("digest %q: want sha256:HEX", spec.Digest)
	case strings.ContainsRune(spec.Dir, 0) || strings.ContainsRune(spec.LogDir, 0) || strings.ContainsRune(spec.Environment.Image, 0):
		return nil, bad("path contains a NUL byte")
	}
	env := make(map[string]string, len(spec.Environment.Vars)+1)
	for k, v := range spec.Environment.Vars {
		if !envKeyRE.MatchString(k) {
			return nil, bad("environment variable name %q: want [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if strings.ContainsRune(v, 0) {
			return nil, bad("environment variable %s contains a NUL byte", k)
		}
		env[k] = v
	}
	groups := spec.Environment.DependencyGroups
	if groups == nil {
		switch r.Device.Kind {
		case GPUDevice:
			groups = []string{"gpu"}
		case TPUDevice:
			groups = []string{"tpu"}
		}
	}
	if len(groups) > 0 {
		env["CAIRN_DEPENDENCY_GROUPS"] = strings.Join(groups, ",")
	}
	ds := &driver.JobSpec{
		Name:      SanitizeName(spec.Name),
		Tag:       spec.Tag,
		Command:   slices.Clone(spec.Command),
		Digest:    strings.TrimPrefix(spec.Digest, "sha256:"),
		Env:       env,
		Setup:     slices.Clone(spec.Environment.Setup),
		Image:     spec.Environment.Image,
		Dir:       spec.Dir,
		LogDir:    spec.LogDir,
		Attempt:   max(spec.FirstAttempt, 1),
		Replicas:  max(spec.Replicas, 1),
		Resources: driverResources(r),
	}
	return ds, nil
}

// Retry describes an attempt about to be retried after its predecessor
// failed on its own (JobSpec.Resize).
type Retry struct {
	// Attempt numbers the attempt about to start (2 for the first retry).
	Attempt int
	// Cause says why the previous attempt failed, as JobError.Cause does:
	// "exit", "out of memory", "time limit", ...
	Cause string
	// Previous is what the previous attempt had.
	Previous Resources
}

// ScaleOnLimits returns a JobSpec.Resize policy that multiplies the memory
// of an attempt that ran out of it, and the time limit of one that reached
// it, by factor (Nextflow's `memory { 2.GB * task.attempt }`, Snakemake's
// `attempt`), and retries other failures unchanged. Set MaxResources to
// bound the growth.
func ScaleOnLimits(factor float64) func(Retry) Resources {
	return func(r Retry) Resources {
		next := r.Previous
		switch r.Cause {
		case causeNames[driver.CauseOutOfMemory]:
			next.Memory = int64(float64(next.Memory) * factor)
		case causeNames[driver.CauseTimeLimit]:
			next.TimeLimit = time.Duration(float64(next.TimeLimit) * factor)
		}
		return next
	}
}

// resized returns the resources of the attempt r describes: spec.Resize's
// answer clamped to spec.MaxResources, with the device, regions and
// preemptibility of the previous attempt.
func (spec *JobSpec) resized(r Retry) Resources {
	next := spec.Resize(r)
	limit := func(v, max int64) int64 {
		if max > 0 && v > max {
			return max
		}
		return v
	}
	m := spec.MaxResources
	next.CPUs = int(limit(int64(next.CPUs), int64(m.CPUs)))
	next.Memory = limit(next.Memory, m.Memory)
	next.Disk = limit(next.Disk, m.Disk)
	next.TimeLimit = time.Duration(limit(int64(next.TimeLimit), int64(m.TimeLimit)))
	next.CPUs = max(next.CPUs, 1)
	next.Memory, next.Disk, next.TimeLimit = max(next.Memory, 0), max(next.Disk, 0), max(next.TimeLimit, 0)
	next.Device, next.Regions, next.Preemptible = r.Previous.Device, r.Previous.Regions, r.Previous.Preemptible
	return next
}

// driverResources returns the driver's view of r for one replica.
func driverResources(r Resources) driver.Resources {
	d := driver.Resources{
		CPUs:        max(r.CPUs, 1),
		Memory:      r.Memory,
		Disk:        r.Disk,
		Preemptible: r.Preemptible,
		Regions:     slices.Clone(r.Regions),
		TimeLimit:   r.TimeLimit,
	}
	switch r.Device.Kind {
	case GPUDevice:
		d.GPUs, d.GPUType = r.Device.Count, r.Device.Type
	case TPUDevice:
		d.TPUType = r.Device.Type
	}
	return d
}

// preemptionBudget returns the number of preemption retries allowed.
func (spec *JobSpec) preemptionBudget() int {
	switch {
	case spec.MaxRetriesPreemption == 0:
		return DefaultMaxRetriesPreemption
	case spec.MaxRetriesPreemption < 0:
		return 0
	}
	return spec.MaxRetriesPreemption
}

// SanitizeName turns name into a job name valid for every backend (Marin's
// rule, reference §5.2): lower-case; every run of characters outside
// [a-z0-9_.-] becomes a single "-"; leading and trailing "-" and "." are
// removed; an empty result becomes "remote_job".
func SanitizeName(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-.")
	if s == "" {
		return "remote_job"
	}
	return s
}
