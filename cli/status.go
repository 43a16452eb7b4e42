package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"example.com/cairn"
	"example.com/cairn/lease"
)

// runStatus implements "status [PREFIX] [--json]". Without a positional
// prefix it uses --prefix, then the environment.
// own, if not nil, names a pipeline program's own steps (statusfilter.go).
func runStatus(o Options, args []string, own ownSteps) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	prefix := fs.String("prefix", "", "storage root (default $CAIRN_PREFIX, else $MARIN_PREFIX, else ./"+cairn.DefaultLocalPrefix+")")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	filter := addStatusFilters(fs, own != nil)
	staleAfter := fs.Duration("lease-stale-after", lease.DefaultStaleAfter, "lease age after which a holder counts as dead")
	if err := o.addProgramFlags(fs, &paramRecorder{}); err != nil { // params.go
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	if err := fs.Parse(interleave(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		printFlagHint(o.Stderr, fs, err)
		return ExitUsage
	}
	if err := checkPositive("lease-stale-after", *staleAfter); err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	var err error
	switch {
	case fs.NArg() > 1:
		fmt.Fprintf(o.Stderr, "status takes one prefix, got %q\n", fs.Args())
		return ExitUsage
	case fs.NArg() == 1 && isSet(fs, "prefix"):
		fmt.Fprintf(o.Stderr, "status: give the prefix once, as --prefix %q or as the argument %q\n", *prefix, fs.Arg(0))
		return ExitUsage
	case fs.NArg() == 1 && fs.Arg(0) == "":
		fmt.Fprintln(o.Stderr, "status: the prefix argument is empty")
		return ExitUsage
	case fs.NArg() == 1:
		*prefix = fs.Arg(0)
	default:
		if *prefix, err = resolvePrefix(fs, *prefix, o.Getenv); err != nil {
			fmt.Fprintln(o.Stderr, err)
			return ExitUsage
		}
	}
	ctx := o.Context
	b, err := openPrefix(ctx, o.Storage, *prefix, true)
	if err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitStorage
	}
	states, err := cairn.Inspect(ctx, b, &cairn.InspectOptions{StaleAfter: *staleAfter})
	if err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitStorage
	}
	if states, err = filter.apply(o, own, *prefix, states); err != nil {
		return exitCode(ctx, err, o.Stderr)
	}
	if *asJSON {
		return printStatusJSON(o.Stdout, o.Stderr, states)
	}
	printStatusTable(o.Stdout, states)
	printStatusFailures(ctx, o.Stdout, b, states)
	return ExitOK
}

// interleave moves positional arguments after flags so that both
// "status PREFIX --json" and "status --json PREFIX" work.
func interleave(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
				if i+1 < len(args) {
					flags = append(flags, args[i+1])
					i++
				}
			}
		}
	}
	return append(flags, pos...)
}

type statusJSON struct {
	Step       string   `json:"step"`
	Status     string   `json:"status"`
	Holder     string   `json:"lease_holder,omitempty"`
	LeaseAgeS  *float64 `json:"lease_age_s,omitempty"`
	LeaseStale bool     `json:"lease_stale,omitempty"`
	LastChange string   `json:"last_change,omitempty"`
	Error      string   `json:"error,omitempty"`
	Problem    string   `json:"problem,omitempty"`
	Job        string   `json:"job,omitempty"`
	JobLog     string   `json:"job_log,omitempty"`
}

func statusWord(s cairn.Status) string {
	if s == cairn.StatusNone {
		return "NONE"
	}
	return string(s)
}

func printStatusJSON(stdout, stderr io.Writer, states []cairn.StepState) int {
	out := make([]statusJSON, 0, len(states))
	for _, s := range states {
		j := statusJSON{Step: s.Dir, Status: statusWord(s.Status), Holder: s.Holder, LeaseStale: s.LeaseStale, Error: s.Error, Problem: s.Problem, Job: s.Job, JobLog: s.JobLog}
		if s.Holder != "" {
			age := s.LeaseAge.Seconds()
			j.LeaseAgeS = &age
		}
		if !s.LastChange.IsZero() {
			j.LastChange = s.LastChange.UTC().Format(time.RFC3339Nano)
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return ExitFailed
	}
	return ExitOK
}

func printStatusTable(w io.Writer, states []cairn.StepState) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tSTATUS\tLEASE\tLAST CHANGE\tNOTE")
	now := time.Now()
	for _, s := range states {
		leaseCol := "-"
		if s.Holder != "" {
			leaseCol = fmt.Sprintf("%s (%s ago", s.Holder, s.LeaseAge.Round(time.Second))
			if s.LeaseStale {
				leaseCol += ", stale"
			}
			leaseCol += ")"
		}
		changed := "-"
		if !s.LastChange.IsZero() {
			changed = fmt.Sprintf("%s ago", now.Sub(s.LastChange).Round(time.Second))
		}
		note := s.Error
		if s.Problem != "" {
			note = s.Problem
		}
		if s.Status == cairn.StatusRunning && (s.Holder == "" || s.LeaseStale) && note == "" {
			note = "no live lease: the next run takes it over"
		}
		note = oneLine(note)
		if s.Job != "" {
			// Not shortened: the log path is what an operator copies.
			note = strings.TrimSpace(note + " [job " + s.Job + ", log " + s.JobLog + "]")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Dir, statusWord(s.Status), leaseCol, changed, note)
	}
	tw.Flush()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
