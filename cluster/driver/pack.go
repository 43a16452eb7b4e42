package driver

import (
	"context"
	"slices"
)

// Packer is implemented by schedulers that can submit several jobs in one
// scheduler request (a Slurm job array; a Kubernetes Indexed Job), so that a
// pipeline of many small jobs pays one submission and one scheduling pass
// instead of one per job. It is optional: the portable layer submits one job
// at a time to a driver that does not implement it.
//
// Every job of a pack is an element that behaves exactly as if it had been
// submitted alone with its own spec:
//
//   - SubmitPack returns one ID per element, usable with Status, Cancel and
//     Find like any other (on Slurm "ARRAY_INDEX", for example "1234_5");
//   - the element runs its own Command with its own Env on top of the
//     shared settings, and logs to its own LogDir/attempt-N.log, N being its
//     own Attempt plus its own in-place restarts;
//   - Status reports each element's own state, exit code and restarts;
//     Cancel(id) stops that element only;
//   - Find(name) returns the pending and running element submitted under
//     name, with its own Tag and Attempt, and, like every Find, only the
//     current user's;
//   - which element runs which spec is decided at submission and recorded
//     with the scheduler's job (Slurm: in the batch script, indexed by
//     SLURM_ARRAY_TASK_ID), never re-derived from names or order later.
//
// A backend that cannot keep one of these promises for an element (stop it
// alone, report its own exit status) must not implement Packer; its jobs
// are then submitted one by one. On Kubernetes the natural pack is an
// Indexed Job (completionMode: Indexed, JOB_COMPLETION_INDEX selecting the
// element), if the backend can stop one index and read its exit status on
// its own (per-index backoff limits and pod failure policies are the tools
// to look at).
//
// The portable layer only packs specs for which Packable reports true, and
// never more than MaxPack of them. A failed element is retried alone, with
// Submit.
type Packer interface {
	// SubmitPack starts one attempt of each spec, in one scheduler request
	// where it can, and returns their IDs in the order of specs. It
	// validates every spec (JobSpec.Validate) and checks that they are
	// Packable with specs[0] before anything reaches a scheduler, rejecting
	// the whole pack with ErrorCode(err) == Invalid otherwise; errors are
	// those of Submit and concern the whole pack: either every element was
	// submitted, or none was.
	SubmitPack(ctx context.Context, specs []*JobSpec) (ids []string, err error)
	// MaxPack is the largest number of specs one SubmitPack accepts
	// (Slurm's MaxArraySize, for example), at least 1.
	MaxPack() int
}

// Packable reports whether a and b may be elements of one pack: they may
// differ in their name, tag, arguments (Command[1:]), environment, log
// directory and attempt number, but not in what the scheduler allocates or
// how the program is set up: program and digest, setup commands, image,
// working directory, resources. Gangs (Replicas > 1) are never packed.
func Packable(a, b *JobSpec) bool {
	if a.Replicas != 1 || b.Replicas != 1 || len(a.Command) == 0 || len(b.Command) == 0 {
		return false
	}
	return a.Command[0] == b.Command[0] && a.Digest == b.Digest && a.Image == b.Image && a.Dir == b.Dir &&
		slices.EqualFunc(a.Setup, b.Setup, slices.Equal) && sameResources(a.Resources, b.Resources)
}

func sameResources(a, b Resources) bool {
	return a.CPUs == b.CPUs && a.Memory == b.Memory && a.Disk == b.Disk && a.GPUs == b.GPUs && a.GPUType == b.GPUType &&
		a.TPUType == b.TPUType && a.Preemptible == b.Preemptible && a.TimeLimit == b.TimeLimit && slices.Equal(a.Regions, b.Regions)
}
