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
//	prog status [--json]    list the steps under the prefix
//	prog logs STEP [-f]     print (and follow) the latest attempt's log of a step
//
// with the flags --prefix, --dry-run, --force-run-failed, --max-concurrent,
// --run-only (repeatable), --log-level and --log-format, plus lease timing
// flags for tests and operators.
//
// Steps marked remote (cairn.Step.Remote, cairn.RemoteFunc) run as jobs on
// the cluster named by --cluster or CAIRN_CLUSTER: "local" (the default:
// subprocesses on this machine, "local?workers=N"), or "slurm"
// ("slurm?partition=P&account=A&qos=Q"); any spec also takes "poll=DURATION".
// A job re-executes the program itself with the hidden command
//
//	prog worker --step NAME_WITH_HASH --path OUT --prefix P --program-digest D
//
// which rebuilds the pipeline, checks that it is the same program and step,
// and runs that one step's function. --stage-program DIR (or
// CAIRN_STAGE_PROGRAM) copies the program, once per build, to a directory
// the cluster's nodes can read, for jobs to run it from there.
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
// Main installs handlers for SIGINT and SIGTERM for the duration of the run:
// the first signal cancels the run, a second one is left to the default
// handler.
package cli

import (
	"context"
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
	"text/tabwriter"
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

	// Clusters opens the cluster named by --cluster or CAIRN_CLUSTER, where
	// remote steps run; nil means DefaultClusters() (local and slurm).
	Clusters *cluster.Mux
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
			return runStatus(o, args[1:])
		case "logs":
			return runProgramLogs(o, steps, args[1:])
		case "worker": // hidden: what cluster jobs run (see remote.go)
			return runWorker(o, steps, args[1:])
		default:
			fmt.Fprintf(o.Stderr, "unknown command %q; commands: run (default), status, logs\n", args[0])
			return ExitUsage
		}
	}

	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
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
		runOnly        regexpList
		remote         remoteFlags
	)
	remote.register(fs)
	fs.Var(&runOnly, "run-only", "run only steps whose name matches this regular expression, plus the dependencies they need (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(o.Stderr, "unexpected arguments: %q\n", fs.Args())
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
	logger, err := newLogger(o.Stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
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
		Lease:                  &lease.Options{Interval: *heartbeat, StaleAfter: *staleAfter},
		PollInterval:           *poll,
		Logger:                 logger,
	}
	if !*dryRun {
		closeCluster, err := o.openRemote(ctx, runOpts, remote, *logLevel, *logFormat)
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
	report, err := cairn.Run(ctx, steps, runOpts)
	if *dryRun {
		printPlan(o.Stdout, report)
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

// printPlan writes the dry-run plan as a table.
func printPlan(w io.Writer, r *cairn.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tPLAN\tDETAIL")
	for _, s := range r.Steps {
		detail := ""
		switch {
		case s.Outcome == cairn.RunningElsewhere:
			detail = fmt.Sprintf("holder %s, lease refreshed %s ago", s.Holder, s.LeaseAge.Round(time.Second))
		case s.Err != nil:
			detail = s.Err.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Step, s.Outcome, detail)
	}
	tw.Flush()
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
