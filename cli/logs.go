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
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"example.com/cairn"
	"example.com/cairn/lease"
	"example.com/cairn/store"
)

// logsFlags are the flags of "prog logs" and "cairn logs".
type logsFlags struct {
	follow     bool
	attempt    int
	poll       time.Duration
	staleAfter time.Duration
}

func (f *logsFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.follow, "f", false, "follow the log while the step runs (until its status is final and its lease is gone)")
	fs.BoolVar(&f.follow, "follow", false, "same as -f")
	fs.IntVar(&f.attempt, "attempt", 0, "print attempt N's log (.cairn_logs/attempt-N.log) instead of the latest")
	fs.DurationVar(&f.poll, "poll-interval", time.Second, "with -f, how often to check the log for more")
	fs.DurationVar(&f.staleAfter, "lease-stale-after", lease.DefaultStaleAfter, "with -f, stop following when the lease is older than this and the log does not grow (its holder is probably dead)")
}

func (f *logsFlags) check(stderr io.Writer) bool {
	if f.attempt < 0 {
		fmt.Fprintf(stderr, "--attempt must be >= 1, got %d\n", f.attempt)
		return false
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"poll-interval", f.poll}, {"lease-stale-after", f.staleAfter}} {
		if err := checkPositive(d.name, d.d); err != nil {
			fmt.Fprintln(stderr, err)
			return false
		}
	}
	return true
}

// runProgramLogs implements "prog logs STEP [-f] [--attempt N]": STEP is
// one of the program's steps, by name, ID (name_with_hash) or output
// directory.
func runProgramLogs(o Options, steps iter.Seq[*cairn.Step], args []string) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	prefix := fs.String("prefix", "", "storage root (default $CAIRN_PREFIX, else $MARIN_PREFIX, else ./"+cairn.DefaultLocalPrefix+")")
	var lf logsFlags
	lf.register(fs)
	if err := o.addProgramFlags(fs, &paramRecorder{}); err != nil { // params.go
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	fs.Usage = func() {
		fmt.Fprintln(o.Stderr, "usage: logs STEP [-f] [--attempt N] [--prefix P]\n\nPrint the log of the latest attempt at STEP (a step name, name_with_hash or output directory).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(interleave(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		printFlagHint(o.Stderr, fs, err)
		return ExitUsage
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		fmt.Fprintln(o.Stderr, "logs takes exactly one STEP (a step name or name_with_hash)")
		return ExitUsage
	}
	if !lf.check(o.Stderr) {
		return ExitUsage
	}
	var err error
	if *prefix, err = resolvePrefix(fs, *prefix, o.Getenv); err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	ctx, stop := signal.NotifyContext(o.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.Prepare != nil {
		// Quiet: the layer's records of the steps it resolves are not logs.
		runOpts := &cairn.RunOptions{Prefix: *prefix, Storage: o.Storage, DryRun: true, Logger: slog.New(slog.DiscardHandler)}
		if steps, err = o.Prepare(ctx, runOpts); err != nil {
			return exitCode(ctx, err, o.Stderr)
		}
	}
	s, p, err := findProgramStep(steps, *prefix, fs.Arg(0))
	if err != nil {
		fmt.Fprintf(o.Stderr, "logs: %v\n", err)
		return ExitUsage
	}
	b, err := beneathPrefix(ctx, o.Storage, *prefix).OpenBucket(ctx, p)
	if err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitStorage
	}
	id, _ := s.ID()
	return printLogs(ctx, o, b, id, lf)
}

// findProgramStep returns the step of the pipeline (steps and their
// transitive dependencies) that want names, and its output path under
// prefix: want is a step's ID, its output directory relative to prefix, or
// its name if only one step has it.
func findProgramStep(steps iter.Seq[*cairn.Step], prefix, want string) (*cairn.Step, string, error) {
	type found struct {
		s    *cairn.Step
		path string
	}
	var byName, byBase []found
	var names []string
	for st := range cairn.AllSteps(steps) {
		id, err := st.ID()
		if err != nil {
			return nil, "", err
		}
		p, err := st.OutputPath(prefix)
		if err != nil {
			return nil, "", err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, strings.TrimSuffix(prefix, "/")), "/")
		// A recipe step's output path may be absolute where the prefix
		// is not: its directory is then p's tail.
		if id == want || rel == want || p == want || strings.HasSuffix(p, "/"+want) {
			return st, p, nil
		}
		if st.Name == want {
			byName = append(byName, found{st, p})
		} else if path.Base(st.Name) == want {
			byBase = append(byBase, found{st, p})
		}
		names = append(names, id)
	}
	if len(byName) == 0 && len(byBase) == 1 {
		// "train" for "ngram/train", if no other step ends so.
		return byBase[0].s, byBase[0].path, nil
	}
	switch len(byName) {
	case 1:
		return byName[0].s, byName[0].path, nil
	case 0:
		slices.Sort(names)
		return nil, "", fmt.Errorf("no step %q in this pipeline; its steps are %s", want, strings.Join(names, ", "))
	}
	var ids []string
	for _, f := range byName {
		id, _ := f.s.ID()
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return nil, "", fmt.Errorf("%d steps are named %q: give one's name_with_hash: %s", len(ids), want, strings.Join(ids, ", "))
}

// runToolLogs implements "cairn logs PREFIX STEP [-f] [--attempt N]": STEP
// is a step's directory under PREFIX (its name_with_hash, for cairn's
// and Marin's steps), or a step name, which picks the most recently
// changed directory of that name.
func runToolLogs(o Options, args []string) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	var lf logsFlags
	lf.register(fs)
	if err := fs.Parse(interleave(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		printFlagHint(o.Stderr, fs, err)
		return ExitUsage
	}
	if fs.NArg() != 2 || fs.Arg(0) == "" || fs.Arg(1) == "" {
		fmt.Fprintln(o.Stderr, "usage: cairn logs PREFIX STEP [-f] [--attempt N]")
		return ExitUsage
	}
	if !lf.check(o.Stderr) {
		return ExitUsage
	}
	prefix, want := fs.Arg(0), strings.Trim(fs.Arg(1), "/")
	ctx, stop := signal.NotifyContext(o.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := openPrefix(ctx, o.Storage, prefix, true)
	if err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitStorage
	}
	dir, err := findStepDir(ctx, root, want, o.Stderr)
	if err != nil {
		fmt.Fprintf(o.Stderr, "logs: %v\n", err)
		return ExitUsage
	}
	b, err := root.Sub(dir)
	if err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitStorage
	}
	return printLogs(ctx, o, b, dir, lf)
}

// findStepDir returns the directory of the step want under root: want
// itself if it holds a step's control files, else the most recently
// changed step directory named want_HASH (saying so on stderr when there
// are several).
func findStepDir(ctx context.Context, root *store.Bucket, want string, stderr io.Writer) (string, error) {
	if err := store.ValidateKey(want); err != nil {
		return "", err
	}
	states, err := cairn.Inspect(ctx, root, nil)
	if err != nil {
		return "", err
	}
	var named []cairn.StepState
	for _, s := range states {
		if s.Dir == want {
			return want, nil
		}
		base, dir := path.Base(s.Dir), path.Dir(s.Dir)
		i := strings.LastIndex(base, "_")
		if i < 0 {
			continue
		}
		name := base[:i]
		if dir != "." {
			name = dir + "/" + name
		}
		if name == want {
			named = append(named, s)
		}
	}
	switch len(named) {
	case 0:
		return "", fmt.Errorf("no step %q under %s (give a directory that `cairn status` lists)", want, root)
	case 1:
		return named[0].Dir, nil
	}
	slices.SortFunc(named, func(a, b cairn.StepState) int { return b.LastChange.Compare(a.LastChange) })
	var dirs []string
	for _, s := range named {
		dirs = append(dirs, s.Dir)
	}
	fmt.Fprintf(stderr, "logs: %d steps are named %q (%s); showing the most recently changed, %s\n", len(named), want, strings.Join(dirs, ", "), named[0].Dir)
	return named[0].Dir, nil
}

// printLogs prints the log of the step whose output is b (labelled id in
// messages): attempt lf.attempt, or the latest. With lf.follow it goes on
// printing what is appended, moving to a newer attempt's log when one
// starts (unless --attempt was given), until the step's status is final
// and its lease gone.
func printLogs(ctx context.Context, o Options, b *store.Bucket, id string, lf logsFlags) int {
	n := lf.attempt
	offset := 0
	var lastGrowth time.Time
	waitingSaid := false
	for {
		if lf.attempt == 0 {
			ns, err := cairn.AttemptLogs(ctx, b)
			if err != nil {
				return logsError(ctx, o, err)
			}
			if len(ns) > 0 && ns[len(ns)-1] != n {
				if n != 0 {
					fmt.Fprintf(o.Stderr, "logs: attempt %d of step %s started (%s)\n", ns[len(ns)-1], id, cairn.AttemptLogKey(ns[len(ns)-1]))
				}
				n, offset, lastGrowth = ns[len(ns)-1], 0, time.Now()
			}
		}
		if n != 0 {
			data, _, err := b.Read(ctx, cairn.AttemptLogKey(n))
			switch {
			case errors.Is(err, store.ErrNotExist) && lf.attempt != 0 && !lf.follow:
				fmt.Fprintf(o.Stderr, "logs: step %s has no attempt %d (%s)\n", id, n, b.URL(cairn.AttemptLogKey(n)))
				return ExitFailed
			case errors.Is(err, store.ErrNotExist):
			case err != nil:
				return logsError(ctx, o, err)
			case len(data) > offset:
				o.Stdout.Write(data[offset:])
				offset, lastGrowth = len(data), time.Now()
			case len(data) < offset: // replaced (an upload of a cut log, a copy): print it again
				fmt.Fprintf(o.Stderr, "logs: %s was rewritten; printing it again\n", cairn.AttemptLogKey(n))
				o.Stdout.Write(data)
				offset, lastGrowth = len(data), time.Now()
			}
		}
		if !lf.follow {
			if n == 0 {
				// A step's attempt log is created at its first log record
				// (or its failure): a finished step that logged nothing
				// has none, and that is no error.
				if status, running, _, err := stepActivity(ctx, b, lf.staleAfter); err == nil && !running && isFinal(cairn.Status(status)) {
					fmt.Fprintf(o.Stderr, "logs: step %s is %s and logged nothing (an attempt log is created at a step's first log line)\n", id, status)
					return ExitOK
				}
				fmt.Fprintf(o.Stderr, "logs: step %s has no attempt logs yet (%s)\n", id, b.URL(cairn.LogsDir))
				return ExitFailed
			}
			return ExitOK
		}
		status, running, stale, err := stepActivity(ctx, b, lf.staleAfter)
		if err != nil {
			return logsError(ctx, o, err)
		}
		switch {
		case !running && n != 0:
			// One more read: the last records may have landed after ours.
			if data, _, err := b.Read(ctx, cairn.AttemptLogKey(n)); err == nil && len(data) > offset {
				o.Stdout.Write(data[offset:])
			}
			fmt.Fprintf(o.Stderr, "logs: step %s is %s\n", id, statusOrNone(status))
			return ExitOK
		case !running && isFinal(cairn.Status(status)):
			fmt.Fprintf(o.Stderr, "logs: step %s is %s and logged nothing (an attempt log is created at a step's first log line)\n", id, status)
			return ExitOK
		case stale && n != 0 && time.Since(lastGrowth) > lf.staleAfter:
			fmt.Fprintf(o.Stderr, "logs: step %s: its lease has not been refreshed for over %s and the log does not grow; its holder is probably dead (the next run takes the step over)\n", id, lf.staleAfter)
			return ExitOK
		case n == 0 && !waitingSaid:
			fmt.Fprintf(o.Stderr, "logs: waiting for step %s to start\n", id)
			waitingSaid = true
		}
		t := time.NewTimer(lf.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ExitInterrupted
		case <-t.C:
		}
	}
}

func statusOrNone(s string) string {
	if s == "" {
		return "not started (no status)"
	}
	return s
}

func logsError(ctx context.Context, o Options, err error) int {
	if ctx.Err() != nil {
		return ExitInterrupted
	}
	fmt.Fprintf(o.Stderr, "error: %v\n", err)
	return ExitStorage
}

// stepActivity reports the status of the step at b, whether it is running
// (a RUNNING status, or a lease present), and whether its lease looks stale
// by the holder's clock (a hint: see lease.Record.Age).
func stepActivity(ctx context.Context, b *store.Bucket, staleAfter time.Duration) (status string, running, stale bool, err error) {
	st, holder, age, err := cairn.ReadStepActivity(ctx, b)
	if err != nil {
		return "", false, false, err
	}
	held := holder != ""
	if held {
		stale = age > staleAfter
	} else if st == cairn.StatusRunning {
		stale = true // RUNNING with nobody holding the step: an orphan
	}
	return string(st), held || st == cairn.StatusRunning, stale, nil
}

// isFinal reports whether a status is terminal.
func isFinal(s cairn.Status) bool {
	return s == cairn.StatusSuccess || s == cairn.StatusFailed || s == cairn.StatusDepFailed
}
