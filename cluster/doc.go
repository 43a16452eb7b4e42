// Package cluster submits jobs to cluster schedulers and watches them: the
// job client of cairn's remote steps (Marin's Fray, reference §6).
//
// A [Client] wraps a backend driver (package cluster/driver) and holds all
// the logic the backends share: it validates and completes a [JobSpec]
// (default resources, sanitised name, environment), submits it, polls every
// job it watches with one batched status request per tick (backing off from
// [Options].PollMin to PollMax), and retries attempts that end badly:
// preemptions and node failures against JobSpec.MaxRetriesPreemption
// (default 100), failures of the program itself against
// JobSpec.MaxRetriesFailure (default 0). Each attempt writes its output to
// its own log file, LogDir/attempt-N.log.
//
// Backends live in their own packages: cluster/localcluster (one subprocess
// per job on this machine) and cluster/slurmcluster (sbatch, squeue,
// scontrol, scancel). A [Mux] maps the names in a cluster spec such as
// "slurm?partition=gpu" to backends; there is no default mux, so a program
// says which backends it links:
//
//	mux := new(cluster.Mux)
//	mux.Register("local", &localcluster.Opener{})
//	mux.Register("slurm", &slurmcluster.Opener{})
//	c, err := mux.Open(ctx, os.Getenv("CAIRN_CLUSTER"), nil)
//
// # Job lifecycle
//
//	job, err := c.Submit(ctx, cluster.JobSpec{Name: "train", Command: argv})
//	status, err := job.Wait(ctx) // Succeeded, or an error
//
// A job is pending, running, succeeded, failed or stopped ([Status]). Wait
// blocks until the job is finished or ctx is done; a context that ends does
// not cancel the job (use [Job.Cancel]). [Client.Adopt] finds a job an
// earlier client of the same user submitted under the same name and tag
// and watches it instead of submitting a duplicate; other users' jobs are
// never adopted.
//
// # Packing
//
// Jobs submitted concurrently with the same request (driver.Packable: same
// program, setup and resources; names, arguments, environment and logs may
// differ) are packed into one scheduler request on a backend that can
// (driver.Packer: a Slurm job array), by group commit: a job is submitted
// at once if no submission of its request is in flight, and the jobs that
// arrive meanwhile go together in the next request. Each is still its own
// Job with its own ID ("1234_5" on Slurm), status, log, retries (a failed
// job is resubmitted alone), cancellation and adoption. [Options].MaxPack
// bounds a pack (1 turns packing off; "slurm?pack=1" in a cluster spec);
// backends that cannot pack get one submission per job. See pack.go.
//
// # Safety
//
// No value of a JobSpec is ever interpreted by a shell, and every driver
// validates the specs it is given itself, so the promise holds for direct
// users of a driver too. A JobSpec with a Digest runs a private copy of its
// program verified on the node before it starts. Jobs get the submitter's
// environment without the variables of a Slurm job the submitter may
// itself run in.
//
// # Errors
//
// Errors wrap the driver's error once and satisfy errors.Is with one of
// the sentinels: [ErrBadSpec], [ErrInvalidJob], [ErrUnsatisfiable],
// [ErrUnsupported], [ErrNotFound], [ErrTransient]. A job that ends without
// succeeding makes Wait return a *[JobError] (state, exit code, the tail of
// its log) satisfying errors.Is(err, ErrFailed) or errors.Is(err,
// ErrStopped).
//
// # Concurrency
//
// A Client and its Jobs are safe for concurrent use. The client owns one
// polling goroutine, stopped by [Client.Close].
package cluster
