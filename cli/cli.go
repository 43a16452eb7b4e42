// Package cli gives pipeline programs a standard command line, and
// implements the generic cairn command.
//
// A pipeline program's main is one call:
//
//	func main() { os.Exit(cli.Main(cairn.Steps(report), nil)) }
//
// The program then accepts:
//
//	prog [run] [flags]      run the pipeline (the default)
//	prog status [--json]    list the program's steps under the prefix
//	                        (--failed, --running, --name REGEX, --all)
//	prog logs STEP [-f]     print (and follow) the latest attempt's log of a step
//	prog explain STEP       say in full why STEP would run, or would not
//	prog report [RUN]       write an HTML report of a run (the latest of
//	                        this program by default; --trace FILE, --list)
//	prog graph              print the pipeline's DAG with each step's
//	                        state (--format dot|mermaid|json)
//	prog version            print the module version and VCS revision
//
// with the flags --prefix, --dry-run (with --json), --force-run-failed,
// --force and --force-downstream, --max-concurrent, --run-only
// (repeatable), --log-level and --log-format, plus lease timing flags for
// tests and operators. --help prints the commands and flags to stdout;
// --version is the version command.
//
// A dry run prints every step, dependencies first and then by name, with
// what a run would do and why: cached (since when), new (no earlier output
// of the step under the prefix), changed (the fields that differ from the
// most recent earlier output of the same step, from its .executor_info),
// changed upstream (the first changed ancestor and its fields), unfinished,
// failed before (with the recorded error), running elsewhere (the holder,
// its host and the lease's last refresh by its clock), forced, and, for a
// remote step, the cluster and resources. Steps are named everywhere by
// their directory under the prefix (cairn.Label).
//
// Steps marked remote (cairn.Step.Remote, cairn.RemoteFunc) run as jobs on
// the cluster named by --cluster or CAIRN_CLUSTER: "local" (the default:
// subprocesses on this machine, "local?workers=N"), or "slurm"
// ("slurm?partition=P&account=A&qos=Q"); any spec also takes "poll=DURATION".
// A job re-executes the program itself with the hidden command
//
//	prog worker --step NAME_WITH_HASH --path OUT --prefix P --program-digest D --params sha256:…
//
// which sets the program's own flags (Options.Flags) as the submitter's
// were set, from the parameters the runner recorded under the step's
// output (OUT/.cairn_params.json: the flags' arguments, the contents of
// the files they read, see FileFlag), rebuilds the pipeline, checks that
// it is the same program and step, and runs that one step's function. A
// step that still differs fails with the differing fields and the likely
// cause (environment variables, arguments the program parsed itself).
// Jobs get the submitter's CAIRN_* and MARIN_* variables, as JobEnv says.
// --stage-program DIR (or CAIRN_STAGE_PROGRAM) copies the program, once
// per build, to a directory the cluster's nodes can read, for jobs to run
// it from there.
//
// # Exit codes
//
//	0   every step succeeded (or the dry run found nothing wrong)
//	1   one or more steps failed
//	2   usage error (unknown flag, bad value: an empty --prefix, a timing
//	    flag that is not positive, --lease-stale-after not above
//	    --lease-interval)
//	3   invalid pipeline (cycle, bad name or attributes, duplicate output
//	    path, --run-only matching nothing)
//	4   storage could not be opened (no backend for the prefix's scheme, a
//	    local prefix that is a file; for status, one that does not exist)
//	130 interrupted (SIGINT or SIGTERM); running steps were stopped and their
//	    leases released
//
// Main installs handlers for SIGINT and SIGTERM for the duration of the run.
// The first signal cancels the run and prints the steps it stops; a step
// that ignores its context is abandoned after --stop-grace (default 10 s):
// its status is restored, its lease released, and the program exits with
// 130 while the step's goroutine is still running. A second signal
// abandons the running steps at once and exits within a second.
//
// # Progress
//
// When stderr is a terminal (and TERM is not "dumb", NO_COLOR is unset and
// --log-format is text), a run draws a live view below its log lines,
// redrawn in place a few times a second: counts of steps by state, then a
// line per running step (elapsed time; for a remote step its job id and
// scheduler state, with the queue time while it is pending; the last line
// of its log) and per step waiting on another runner (the holder, its host,
// the time until its lease may be taken over). Otherwise the run logs plain
// lines only: "step started" (with the worker, and for a remote step the
// job id), job state changes, and every 30 s a "still waiting" line with
// the time until takeover.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"example.com/cairn"
	"example.com/cairn/cluster"
	"example.com/cairn/lease"
	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitUsage       = 2
	ExitInvalid     = 3
	ExitStorage     = 4
	ExitInterrupted = 130
)

// Options configure Main and Tool. A nil *Options means all defaults.
type Options struct {
	// Args are the command-line arguments without the program name; nil
	// means os.Args[1:].
	Args []string
	// Stdout and Stderr default to os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// Getenv looks up environment variables (CAIRN_PREFIX, MARIN_PREFIX);
	// nil means os.Getenv.
	Getenv func(string) string
	// Storage opens prefixes and output paths; nil means a mux with the
	// local-disk backend ("file" scheme and plain paths).
	Storage *store.URLMux
	// Context, if set, is the parent context of the run; nil means
	// context.Background(). Signals cancel the run either way.
	Context context.Context

	// Prepare, if set, is called once the flags are parsed, just before the
	// run, with the run's options; the steps it returns are run instead of
	// Main's steps argument (which may then be nil). It may adjust opts: a
	// layer that implements --run-only itself clears opts.RunOnly. An error
	// ends Main before anything runs, with the exit code a run error would
	// give (ExitInvalid if it satisfies cairn.ErrInvalidPipeline). Package
	// recipe/recipecli sets it to resolve typed steps against --prefix.
	Prepare func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error)

	// Flags, if set, are the program's own flags (parameters of its
	// pipeline). Main adds them to the flags of every command that builds
	// the pipeline (run, explain, status, logs, graph), where they mix
	// with cairn's own in any order (`prog --order 4 --prefix P`); a name
	// cairn uses is a usage error. The program builds its steps in
	// Prepare, which runs once they are parsed. How they are set is
	// recorded and given to every remote step's worker, which sets them
	// the same way before it rebuilds the pipeline (see FileFlag for a
	// flag naming a file, and JobEnv for the environment variables that
	// travel). Flags the program parses itself never reach a worker.
	Flags *flag.FlagSet

	// Clusters opens the cluster named by --cluster or CAIRN_CLUSTER, where
	// remote steps run; nil means DefaultClusters() (local and slurm).
	Clusters *cluster.Mux

	// Versions, if set, returns the versioned configuration of a step: the
	// "version" object package recipe (like Marin) records in the step's
	// .executor_info, whose "config" holds the versioned fields by name.
	// --dry-run and explain diff those fields; for a step it does not know
	// (ok false) they diff the step's Attrs. Package recipe/recipecli sets it.
	Versions func(s *cairn.Step) (version json.RawMessage, ok bool)

	// explain, set by the explain command, makes the dry run print the
	// full reasoning for this one step instead of the plan.
	explain string
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Args == nil {
		c.Args = os.Args[1:]
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Storage == nil {
		c.Storage = DefaultStorage()
	}
	if c.Context == nil {
		c.Context = context.Background()
	}
	if c.Clusters == nil {
		c.Clusters = DefaultClusters()
	}
	return c
}

// DefaultStorage returns a mux with the backends every cairn binary has: the
// local disk for plain paths and file:// URLs.
func DefaultStorage() *store.URLMux {
	mux := new(store.URLMux)
	mux.Register("file", &filestore.URLOpener{})
	return mux
}

// regexpList is a repeatable --run-only flag.
type regexpList []*regexp.Regexp

func (l *regexpList) String() string { return fmt.Sprint([]*regexp.Regexp(*l)) }
func (l *regexpList) Set(s string) error {
	re, err := regexp.Compile(s)
	if err != nil {
		return err
	}
	*l = append(*l, re)
	return nil
}

// Main runs a pipeline program's command line over steps and returns the
// process exit code (see the package doc). It never calls os.Exit.
func Main(steps iter.Seq[*cairn.Step], opts *Options) int {
	o := opts.withDefaults()
	args := o.Args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "run":
			args = args[1:]
		case "status":
			return runStatus(o, args[1:], programSteps(o, steps)) // statusfilter.go
		case "report":
			return runReport(o, programName(), args[1:]) // report.go
		case "graph":
			return runGraph(o, steps, args[1:]) // graph.go
		case "explain":
			return runExplain(o, steps, args[1:])
		case "help":
			printHelp(o.Stdout, nil, nil)
			return ExitOK
		case "version":
			printVersion(o.Stdout)
			return ExitOK
		case "logs":
			return runProgramLogs(o, steps, args[1:])
		case "worker": // hidden: what cluster jobs run (see remote.go)
			return runWorker(o, steps, args[1:])
		default:
			fmt.Fprintf(o.Stderr, "unknown command %q; commands: %s (run %s --help for more)\n", args[0], commandList(), progName())
			return ExitUsage
		}
	}

	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	fs.Usage = func() {} // --help prints the full help to stdout below
	var (
		prefix         = fs.String("prefix", "", "storage root: a directory or URL (default $CAIRN_PREFIX, else $MARIN_PREFIX, else ./"+cairn.DefaultLocalPrefix+")")
		dryRun         = fs.Bool("dry-run", false, "print what would run; write nothing")
		forceRunFailed = fs.Bool("force-run-failed", true, "re-run steps that failed in an earlier run; if false, such a step is an error")
		maxConcurrent  = fs.Int("max-concurrent", cairn.DefaultMaxConcurrent, "steps executing at once in this process")
		logLevel       = fs.String("log-level", "info", "log level: debug, info, warn or error")
		logFormat      = fs.String("log-format", "text", "log format: text or json")
		poll           = fs.Duration("poll-interval", cairn.DefaultPollInterval, "how often to re-check a step another worker holds")
		heartbeat      = fs.Duration("lease-interval", lease.DefaultInterval, "how often a running step's lease is refreshed")
		staleAfter     = fs.Duration("lease-stale-after", lease.DefaultStaleAfter, "how long after its last refresh a lease may be taken over")
		stopGrace      = fs.Duration("stop-grace", DefaultStopGrace, "after Ctrl-C, how long to wait for running steps to stop before abandoning those that ignore it")
		runOnly        regexpList
		remote         remoteFlags
		force          regexpList
		forceDown      = fs.Bool("force-downstream", false, "with --force: re-run every step downstream of a forced step too")
		asJSON         = fs.Bool("json", false, "with --dry-run: print the plan and reasons as JSON")
		version        = fs.Bool("version", false, "print the version and exit")
	)
	fs.Var(&force, "force", "re-run steps whose name matches this regular expression even if they succeeded (repeatable); their dependents re-run only if their identity changes, or with --force-downstream")
	remote.register(fs)
	fs.Var(&runOnly, "run-only", "run only steps whose name matches this regular expression, plus the dependencies they need (repeatable)")
	params := &paramRecorder{} // params.go
	if err := o.addProgramFlags(fs, params); err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(o.Stdout, fs, o.isProgramFlag)
			return ExitOK
		}
		printFlagHint(o.Stderr, fs, err)
		fmt.Fprintf(o.Stderr, "run %s --help for usage\n", progName())
		return ExitUsage
	}
	if *version {
		printVersion(o.Stdout)
		return ExitOK
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(o.Stderr, "unexpected arguments: %q\n", fs.Args())
		return ExitUsage
	}
	if *asJSON && !*dryRun {
		fmt.Fprintln(o.Stderr, "--json needs --dry-run (use status --json for the steps' states)")
		return ExitUsage
	}
	if *forceDown && len(force) == 0 {
		fmt.Fprintln(o.Stderr, "--force-downstream needs --force REGEX")
		return ExitUsage
	}
	if *maxConcurrent < 1 {
		fmt.Fprintf(o.Stderr, "--max-concurrent must be >= 1, got %d\n", *maxConcurrent)
		return ExitUsage
	}
	if err := checkTiming(*poll, *heartbeat, *staleAfter); err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	if err := checkPositive("stop-grace", *stopGrace); err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	// Issue 9: live progress, and stopNow closed at a second Ctrl-C.
	stopNow := make(chan struct{})
	view, err := newRunView(o, *logLevel, *logFormat, !*dryRun, time.Now())
	if err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	logger := view.logger
	if *prefix, err = resolvePrefix(fs, *prefix, o.Getenv); err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}

	ctx, stop := signal.NotifyContext(o.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Unusable storage is one error with its own exit code, not a failure
	// of every step (issue 8).
	if _, err := openPrefix(ctx, o.Storage, *prefix, false); err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitStorage
	}
	start := time.Now()
	runOpts := &cairn.RunOptions{
		Prefix:                 *prefix,
		Storage:                beneathPrefix(ctx, o.Storage, *prefix),
		MaxConcurrent:          *maxConcurrent,
		DryRun:                 *dryRun,
		RejectPreviouslyFailed: !*forceRunFailed,
		RunOnly:                runOnly,
		Force:                  force,
		ForceDownstream:        *forceDown,
		Lease:                  &lease.Options{Interval: *heartbeat, StaleAfter: *staleAfter},
		PollInterval:           *poll,
		Logger:                 logger,
		OnEvent:                view.onEvent,
		StopGrace:              *stopGrace,
		StopNow:                stopNow,
	}
	if !*dryRun {
		closeCluster, err := o.openRemote(ctx, runOpts, remote, *logLevel, *logFormat, params)
		if err != nil {
			fmt.Fprintf(o.Stderr, "error: %v\n", err)
			return ExitUsage
		}
		defer closeCluster()
	}
	if o.Prepare != nil {
		if steps, err = o.Prepare(ctx, runOpts); err != nil {
			return exitCode(ctx, err, o.Stderr)
		}
	}
	var pulled recorder
	var runRec *runRecorder
	if !*dryRun {
		runRec, steps = startRecord(runOpts, steps, start) // runrecord.go
	}
	if *dryRun {
		steps = pulled.wrap(steps)
	}
	view.start()
	ctx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	res, abandoned := runInterruptible(ctx, cancelRun, stopNow, view, *stopGrace, func(ctx context.Context) (*cairn.Report, error) {
		return cairn.Run(ctx, steps, runOpts)
	})
	view.stop()
	if abandoned {
		fmt.Fprintf(o.Stderr, "error: interrupted\n")
		return ExitInterrupted
	}
	report, err := res.report, res.err
	if runRec != nil {
		runRec.finish(ctx, o, runOpts, report, err, logger)
	}
	if *dryRun {
		ex := &explainer{storage: runOpts.Storage, prefix: runOpts.Prefix, versions: o.Versions,
			cluster: remote.spec(o.Getenv), force: force, downward: *forceDown}
		rows := ex.rows(ctx, pulled.steps, report)
		switch {
		case o.explain != "":
			return explainOne(o, rows, err, *asJSON)
		case *asJSON:
			if jerr := printReasonsJSON(o.Stdout, rows); jerr != nil {
				fmt.Fprintf(o.Stderr, "error: %v\n", jerr)
			}
		default:
			printReasons(o.Stdout, rows)
		}
	} else {
		printRunFailures(ctx, o.Stderr, runOpts.Storage, report)
	}
	printSummary(o.Stderr, report, *prefix, time.Since(start))
	return exitCode(ctx, err, o.Stderr)
}

// checkTiming validates the timing flags of a run: each must be positive
// (0 would silently mean the default), and a lease must outlive the
// interval between its refreshes, or every step would fail to take it.
func checkTiming(poll, interval, staleAfter time.Duration) error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"poll-interval", poll}, {"lease-interval", interval}, {"lease-stale-after", staleAfter}} {
		if err := checkPositive(f.name, f.d); err != nil {
			return err
		}
	}
	if staleAfter <= interval {
		return fmt.Errorf("--lease-stale-after (%s) must exceed --lease-interval (%s)", staleAfter, interval)
	}
	return nil
}

// beneathPrefix returns the storage for a run on prefix: locations below
// the prefix open as views of the prefix's bucket, so that file-system
// paths are resolved beneath the prefix without following symbolic links
// (issue 8, item 7). If the prefix cannot be opened it returns storage
// itself, and the run reports the error when it opens a step.
func beneathPrefix(ctx context.Context, storage *store.URLMux, prefix string) cairn.BucketOpener {
	if prefix == "" {
		return storage
	}
	b, err := store.OpenBeneath(ctx, storage, prefix)
	if err != nil {
		return storage
	}
	return b
}

func exitCode(ctx context.Context, err error, stderr io.Writer) int {
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "error: %v\n", err)
	switch {
	case ctx.Err() != nil:
		return ExitInterrupted
	case errors.Is(err, cairn.ErrInvalidPipeline):
		return ExitInvalid
	case errors.Is(err, store.ErrPermission):
		// Before RunError: a run stopped on storage that refuses this user
		// also reports the steps that failed before it (issue 13).
		return ExitStorage
	case errors.As(err, new(*cairn.RunError)):
		return ExitFailed
	}
	return ExitFailed
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// printSummary writes one line counting outcomes.
func printSummary(w io.Writer, r *cairn.Report, prefix string, elapsed time.Duration) {
	order := []cairn.Outcome{cairn.Ran, cairn.TookOver, cairn.Cached, cairn.CompletedElsewhere, cairn.Failed,
		cairn.Skipped, cairn.Interrupted, cairn.Unfinished, cairn.WouldRun, cairn.RunningElsewhere, cairn.FailedBefore}
	var parts []string
	for _, oc := range order {
		if n := r.Count(oc); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, oc))
		}
	}
	if len(parts) == 0 {
		parts = []string{"nothing to do"}
	}
	fmt.Fprintf(w, "cairn: %d step(s) under %s: %s (%s)\n", len(r.Steps), prefix, strings.Join(parts, ", "), elapsed.Round(time.Millisecond))
}
