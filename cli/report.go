package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"example.com/cairn"
	"example.com/cairn/runrecord"
)

// runReport implements "prog report [RUN]" (program != "": the latest run
// of that program by default) and "cairn report PREFIX [RUN]" (program ==
// "" and the prefix given as the first argument: the latest run of any
// program).
func runReport(o Options, program string, args []string) int {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	prefix := fs.String("prefix", "", "storage root (default $CAIRN_PREFIX, else $MARIN_PREFIX, else ./"+cairn.DefaultLocalPrefix+")")
	outFile := fs.String("o", "", "write the HTML report to this `FILE` (default cairn-run-RUN.html)")
	trace := fs.String("trace", "", "also write a Chrome trace-event JSON file (opens in Perfetto) to this `FILE`")
	list := fs.Bool("list", false, "list the recorded runs instead")
	asJSON := fs.Bool("json", false, "print the run record (JSON) instead of writing HTML")
	fs.Usage = func() {
		if program == "" {
			fmt.Fprintln(o.Stderr, "usage: cairn report PREFIX [RUN] [flags]")
		} else {
			fmt.Fprintln(o.Stderr, "usage: "+program+" report [RUN] [flags]")
		}
		fmt.Fprintln(o.Stderr, "Writes an HTML report of a run (by default the latest", map[bool]string{true: "of any program", false: "of " + program}[program == ""]+").")
		fs.PrintDefaults()
	}
	if err := fs.Parse(interleave(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		printFlagHint(o.Stderr, fs, err)
		return ExitUsage
	}
	pos := fs.Args()
	var err error
	switch {
	case program == "" && isSet(fs, "prefix") && *prefix == "":
		fmt.Fprintln(o.Stderr, "report: --prefix is empty")
		return ExitUsage
	case program == "" && !isSet(fs, "prefix"): // cairn report PREFIX [RUN]
		if len(pos) == 0 || pos[0] == "" {
			fmt.Fprintln(o.Stderr, "usage: cairn report PREFIX [RUN] [-o FILE] [--trace FILE] [--list] [--json]")
			return ExitUsage
		}
		*prefix, pos = pos[0], pos[1:]
	case program == "":
	default:
		if *prefix, err = resolvePrefix(fs, *prefix, o.Getenv); err != nil {
			fmt.Fprintln(o.Stderr, err)
			return ExitUsage
		}
	}
	if len(pos) > 1 {
		fmt.Fprintf(o.Stderr, "report takes at most one RUN, got %q\n", pos)
		return ExitUsage
	}
	ctx := o.Context
	b, err := openPrefix(ctx, o.Storage, *prefix, true)
	if err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitStorage
	}
	if *list {
		ids, err := runrecord.List(ctx, b)
		if err != nil {
			fmt.Fprintf(o.Stderr, "error: %v\n", err)
			return ExitStorage
		}
		tw := tabwriter.NewWriter(o.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RUN\tPROGRAM\tOUTCOME\tSTEPS\tDURATION")
		for _, id := range ids {
			rec, err := runrecord.Read(ctx, b, id)
			if err != nil {
				fmt.Fprintf(tw, "%s\t?\t%v\t\t\n", id, err)
				continue
			}
			d := "-"
			if !rec.Finished.IsZero() {
				d = fmtDuration(rec.Finished.Sub(rec.Started))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", id, rec.Program, rec.Outcome, len(rec.Steps), d)
		}
		tw.Flush()
		return ExitOK
	}
	var rec *runrecord.Record
	if len(pos) == 1 {
		rec, err = runrecord.Read(ctx, b, pos[0])
	} else {
		rec, err = runrecord.Latest(ctx, b, program)
	}
	if err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		if errors.Is(err, runrecord.ErrNotFound) {
			return ExitFailed
		}
		return ExitStorage
	}
	if *asJSON {
		data, err := runrecord.Encode(rec)
		if err != nil {
			fmt.Fprintf(o.Stderr, "error: %v\n", err)
			return ExitFailed
		}
		o.Stdout.Write(data)
		return ExitOK
	}
	if *outFile == "" {
		*outFile = "cairn-run-" + rec.RunID + ".html"
	}
	var buf bytes.Buffer
	if err := runrecord.WriteHTML(&buf, rec); err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitFailed
	}
	if err := os.WriteFile(*outFile, buf.Bytes(), 0o666); err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintf(o.Stdout, "run %s (%s, %d steps): report %s\n", rec.RunID, rec.Outcome, len(rec.Steps), *outFile)
	if *trace != "" {
		buf.Reset()
		if err := runrecord.WriteTrace(&buf, rec); err != nil {
			fmt.Fprintf(o.Stderr, "error: %v\n", err)
			return ExitFailed
		}
		if err := os.WriteFile(*trace, buf.Bytes(), 0o666); err != nil {
			fmt.Fprintf(o.Stderr, "error: %v\n", err)
			return ExitFailed
		}
		fmt.Fprintf(o.Stdout, "trace %s (open in https://ui.perfetto.dev or chrome://tracing)\n", *trace)
	}
	return ExitOK
}

func fmtDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
