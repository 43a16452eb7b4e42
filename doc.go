// Package cairn runs pipelines as DAGs of cached steps on shared storage.
//
// A [Step] has a name, attributes and dependencies; its identity (its ID,
// name_with_hash) is a hash of those, byte-compatible with Marin's StepSpec,
// and it writes its output under PREFIX/NAME_HASH. Beside every output sit
// small control files: a status token, a lease refreshed by a heartbeat, an
// info record and the step's artifact. Because of them a pipeline can be
// re-run at any time, from any number of processes or machines sharing the
// prefix: finished steps are skipped, a step another runner is executing is
// waited for, a step whose runner died is taken over once its lease goes
// stale, and no step ever runs twice at the same time.
//
// [Run] is the scheduler: it consumes a lazy sequence of steps, expands
// their dependencies, and starts each step the moment its last dependency
// finishes, with bounded concurrency. The step owns its execution strategy
// (cache check, lease, function, artifact, status); the scheduler only calls
// it and waits.
//
// A step marked remote ([Step.Remote], or a [RemoteFunc] made by [Remote])
// runs its function as a cluster job (package cluster) when the run has
// [RunOptions].Remote; the runner keeps the cache check, the lease and the
// status. The job re-executes the same program in worker mode
// ([RunWorker]), which rebuilds the pipeline and runs that one step.
//
// Programs usually call cli.Main, which adds the standard command line
// (--prefix, --dry-run, --run-only, ...) and wires the storage backends.
//
// # Errors
//
// Run returns a *RunError listing each failed step as a *StepError whose
// root cause is reachable with errors.Is and errors.As: the step function's
// own error, a *PanicError, [ErrLeaseLost] or [ErrPreviouslyFailed]; for a
// remote step, the job's *cluster.JobError (state, exit code, log tail;
// the tail names [ErrProgramMismatch] when the job ran another program).
// Definition errors satisfy errors.Is(err, ErrInvalidPipeline).
package cairn
