package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"example.com/cairn"
	"example.com/cairn/cluster"
	"example.com/cairn/cluster/localcluster"
	"example.com/cairn/cluster/slurmcluster"
	"example.com/cairn/store"
)

// DefaultClusterSpec is the cluster remote steps run on when neither
// --cluster nor CAIRN_CLUSTER says otherwise: subprocesses on this machine.
const DefaultClusterSpec = "local"

// DefaultClusters returns a mux with the cluster backends every cairn
// binary has: "local" (cluster/localcluster) and "slurm"
// (cluster/slurmcluster).
func DefaultClusters() *cluster.Mux {
	mux := new(cluster.Mux)
	mux.Register("local", &localcluster.Opener{})
	mux.Register("slurm", &slurmcluster.Opener{})
	return mux
}

// remoteFlags are the run flags about remote steps.
type remoteFlags struct {
	cluster      string
	stageProgram string
}

func (f *remoteFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cluster, "cluster", "", "where remote steps run: local, local?workers=N, slurm, slurm?partition=P&account=A... (default $CAIRN_CLUSTER, else "+DefaultClusterSpec+")")
	fs.StringVar(&f.stageProgram, "stage-program", "", "a shared directory to copy this program to (once per build) for cluster jobs to run it from (default $CAIRN_STAGE_PROGRAM; empty: run it where it is)")
}

// openRemote opens the cluster named by the flags or the environment and
// sets runOpts.Remote so that jobs re-enter this program in worker mode.
// The returned function closes the cluster client.
func (o Options) openRemote(ctx context.Context, runOpts *cairn.RunOptions, f remoteFlags, logLevel, logFormat string, rec *paramRecorder) (func(), error) {
	spec := f.cluster
	if spec == "" {
		spec = o.Getenv("CAIRN_CLUSTER")
	}
	if spec == "" {
		spec = DefaultClusterSpec
	}
	stage := f.stageProgram
	if stage == "" {
		stage = o.Getenv("CAIRN_STAGE_PROGRAM")
	}
	params, err := o.runParams(rec) // params.go
	if err != nil {
		return nil, err
	}
	c, err := o.Clusters.Open(ctx, spec, &cluster.Options{Logger: runOpts.Logger})
	if err != nil {
		return nil, err
	}
	prefix := runOpts.Prefix
	runOpts.Remote = &cairn.RemoteOptions{
		Cluster: c,
		WorkerArgs: func(w cairn.WorkerJob) []string {
			args := []string{"worker", "--step", w.Step, "--path", w.Path, "--prefix", prefix,
				"--program-digest", w.Digest, "--fence", string(w.Fence), "--log-level", logLevel, "--log-format", logFormat}
			if w.Params != "" {
				args = append(args, "--params", w.Params)
			}
			return args
		},
		Params:       params,
		Env:          JobEnv(os.Environ()),
		StageProgram: stage,
	}
	return func() { c.Close() }, nil
}

// runWorker implements the hidden "worker" command that cluster jobs run:
// it rebuilds the pipeline and runs one step's function (cairn.RunWorker).
func runWorker(o Options, steps iter.Seq[*cairn.Step], args []string) int {
	jobStarted := jobStart() // for run records (runrecord.go)
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	var (
		step      = fs.String("step", "", "ID (name_with_hash) of the step to run")
		path      = fs.String("path", "", "the step's output path, as the submitter computed it")
		prefix    = fs.String("prefix", "", "storage root")
		digest    = fs.String("program-digest", "", "digest of the submitting program; refuse to run under another")
		fence     = fs.String("fence", "", "version of the submitting attempt's RUNNING status record; the artifact is saved only while it stands")
		paramsD   = fs.String("params", "", "digest of the submitter's parameters, recorded under --path: the program's flags are set from them")
		logLevel  = fs.String("log-level", "info", "log level")
		logFormat = fs.String("log-format", "text", "log format")
	)
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *step == "" || fs.NArg() > 0 {
		fmt.Fprintln(o.Stderr, "usage: worker --step ID [--path P] [--prefix P] [--program-digest D] [--fence V] [--params D]")
		return ExitUsage
	}
	logger, err := newLogger(o.Stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	if *prefix, err = resolvePrefix(fs, *prefix, o.Getenv); err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	replica, _ := strconv.Atoi(o.Getenv("CAIRN_REPLICA"))
	// scancel and the local backend stop a job with SIGTERM.
	ctx, stop := signal.NotifyContext(o.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	storage := beneathPrefix(ctx, o.Storage, *prefix)
	got, err := o.workerParams(ctx, storage, *path, *paramsD) // params.go
	if err != nil {
		fmt.Fprintf(o.Stderr, "cairn worker: step %s: %v\n", *step, err)
		return ExitInvalid
	}
	if o.Prepare != nil {
		// DryRun: the worker needs the steps only; layers such as package
		// recipe then write no records of their own.
		runOpts := &cairn.RunOptions{Prefix: *prefix, Storage: o.Storage, Logger: logger, DryRun: true}
		if steps, err = o.Prepare(ctx, runOpts); err != nil {
			return exitCode(ctx, err, o.Stderr)
		}
	}
	err = cairn.RunWorker(ctx, steps, &cairn.WorkerOptions{
		Step:     *step,
		Path:     *path,
		Fence:    store.Version(*fence),
		Prefix:   *prefix,
		Storage:  storage,
		Digest:   *digest,
		Verified: verifiedDigest(o.Getenv(cluster.VerifiedProgramEnv)),
		Replica:  replica,
		Logger:   logger,
	})
	reportUsage(ctx, storage, *path, o.Getenv("CAIRN_JOB_ID"), replica, jobStarted, logger) // runrecord.go
	if errors.Is(err, cairn.ErrProgramMismatch) && sameProgram(*digest) {
		// Same binary, other steps: say which parameter or variable
		// differs (mismatch.go).
		for _, line := range o.explainMismatch(ctx, storage, *prefix, *path, *step, steps, got, *paramsD) {
			err = fmt.Errorf("%w\n  %s", err, line)
		}
	}
	if err != nil {
		fmt.Fprintf(o.Stderr, "cairn worker: step %s failed: %v\n", *step, err)
		switch {
		case ctx.Err() != nil:
			return ExitInterrupted
		case errors.Is(err, cairn.ErrProgramMismatch), errors.Is(err, cairn.ErrInvalidPipeline):
			return ExitInvalid
		}
		return ExitFailed
	}
	return ExitOK
}

// verifiedDigest returns the digest in a launcher's CAIRN_VERIFIED_PROGRAM
// ("sha256:HEX PATH", set by driver.VerifiedRun) if PATH is this process's
// own executable: the launcher checked that file's digest and then started
// it. Otherwise, it returns "": the variable was inherited by another
// program, or names a copy that this process is not.
func verifiedDigest(v string) string {
	digest, path, ok := strings.Cut(v, " ")
	if !ok || !strings.HasPrefix(digest, "sha256:") || path == "" {
		return ""
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	if path != exe {
		return ""
	}
	return digest
}
