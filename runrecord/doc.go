// Package runrecord records what a run did, step by step, and renders it:
// a JSON run record kept on the run's storage, a self-contained HTML report
// and a Chrome trace-event file that opens in Perfetto.
//
// # Where records live
//
// Every run that is not a dry run writes one record,
//
//	PREFIX/experiments/.cairn_runs/RUN_ID.json
//
// beside the experiment records Marin (and package recipe) write to
// PREFIX/experiments (in a hidden directory, so that tools listing the
// experiment records do not take a run record for one). RUN_ID is the run's
// start time in UTC, to the millisecond, and a random token,
// "20260102T030405.678Z-1a2b3c", so that records sort by start time.
//
// # Format (version 1)
//
// A record is one JSON object, indented, with "format": "cairn.run/1". A
// reader must reject another major format; fields may be added within a
// version, and readers ignore fields they do not know. Times are RFC 3339
// in UTC with nanoseconds; a time that is not known is omitted.
//
//	format             "cairn.run/1"
//	run_id             RUN_ID
//	program            the program's name (for "cairn", "")
//	prefix             the storage root
//	host, pid          where the runner ran
//	runner             the runner's worker id: HOST-PID, or HOST-PID-RANDOM
//	                   once a remote step's record names it; each step
//	                   attempt's lease holder is HOST-PID-RANDOM.N
//	started, finished  the run's wall-clock span
//	outcome            "succeeded", "failed", "interrupted", "invalid" or
//	                   "error" (storage or other run-level error)
//	error              the run's error, if any
//	steps              one object per step the run considered, in the
//	                   order they were decided:
//	  step             its ID (NAME_HASH8; the directory under the prefix
//	                   for plain steps, while typed steps write to
//	                   NAME-HASH6: see path)
//	  name, path       its name and output path
//	  deps             the IDs of its dependencies (when the runner knew
//	                   the step's definition)
//	  outcome          cairn's outcome: "ran", "took over", "cached",
//	                   "completed by another worker", "failed", "skipped
//	                   (dependency failed)", "interrupted", "unfinished"
//	  error            the step's error, if any
//	  ready            when its last dependency finished, if all its
//	                   dependencies finished in this run; from ready to
//	                   queued it waited for a free slot (MaxConcurrent)
//	  queued           when the runner took the step up: it was ready (its
//	                   dependencies done) and had a slot; the cache check
//	                   and the lease come after this
//	  waiting          when the step was found held by another worker, if
//	                   it was; the runner waited from then on
//	  started          when the step's function began (or, for a remote
//	                   step, its cluster job was submitted): finished
//	                   minus duration_s
//	  finished         when the step reached its outcome
//	  duration_s       how long the function (or the job) took
//	  worker           who executed it: this runner (RUNNER) for a step
//	                   it ran, took over or failed; the other worker's id
//	                   for a step it waited for; for a remote step, the
//	                   attempt's worker id (RUNNER-RANDOM.N) that
//	                   submitted the job
//	  host             that worker's host; for a remote step, the host(s)
//	                   its job ran on, when the job reported its usage
//	  job              for a remote step: cluster, job name, job ids,
//	                   state, exit code, submit and finish times, log
//	  resources        for a remote step: requested, what its job asked
//	                   for per replica (cpus, memory_bytes, disk_bytes,
//	                   device, replicas, time_limit_s), from the step's
//	                   remote record; used, what the job used (max_rss_bytes,
//	                   cpu_user_s, cpu_system_s, source "rusage"), else
//	                   used_note "not recorded: …". Steps run in the
//	                   runner's own process have no resources entry.
//
// A remote job's usage is measured by the job's worker process ("prog
// worker") when the step's function returns: getrusage(2) of itself and of
// the children it waited for, reported under the step's output as
// .cairn_usage/JOB_ID-rREPLICA.json ([Usage]). It is the same measure on
// every cluster backend, and needs no Slurm accounting; for a gang, the
// record keeps the largest peak and the total CPU time of its replicas.
//
// [Recorder] builds a record from a run's progress events
// (cairn.RunOptions.OnEvent) and the steps' definitions; [Write], [Read],
// [List] and [Latest] store and find records; [WriteHTML] and [WriteTrace]
// render one.
package runrecord
