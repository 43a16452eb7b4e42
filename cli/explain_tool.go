package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"example.com/cairn"
	"example.com/cairn/internal/explain"
)

// runToolExplain implements
//
//	cairn explain PREFIX STEP [--attrs JSON] [--dep NAME_WITH_HASH]... [--json]
//
// It explains one output under PREFIX from the files alone, whichever
// runner wrote it (cairn, a recipe program, Marin). STEP is either an
// output's directory under the prefix (NAME_HASH, or Marin's NAME-HASH6),
// whose .executor_info says what it is, or, with --attrs and --dep, a core
// step's name, whose directory they determine as "cairn path" computes it.
func runToolExplain(o Options, args []string) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	attrs := fs.String("attrs", "", "the step's attributes as a JSON object (STEP is then its name)")
	asJSON := fs.Bool("json", false, "print the reason as JSON")
	var deps stringList
	fs.Var(&deps, "dep", "a dependency's name_with_hash (repeatable; STEP is then its name)")
	if err := fs.Parse(interleave(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		printFlagHint(o.Stderr, fs, err)
		return ExitUsage
	}
	if fs.NArg() != 2 || fs.Arg(0) == "" || fs.Arg(1) == "" {
		fmt.Fprintln(o.Stderr, "usage: cairn explain PREFIX STEP [--attrs JSON] [--dep NAME_WITH_HASH]... [--json]")
		return ExitUsage
	}
	prefix, arg := strings.TrimSuffix(fs.Arg(0), "/"), strings.Trim(fs.Arg(1), "/")
	ctx := o.Context
	if _, err := openPrefix(ctx, o.Storage, prefix, true); err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitStorage
	}
	var s *explain.Step
	if *attrs != "" || len(deps) > 0 {
		if *attrs == "" {
			*attrs = "{}"
		}
		a, h, code := stepHash(o, arg, *attrs, deps)
		if code != ExitOK {
			return code
		}
		s = &explain.Step{ID: arg + "_" + h, Name: arg, Path: prefix + "/" + arg + "_" + h, Config: a, ConfigKnown: true}
		for _, d := range deps {
			ds, err := stepFromRecord(ctx, o.Storage, prefix, prefix+"/"+d, d)
			if err != nil {
				fmt.Fprintf(o.Stderr, "error: %v\n", err)
				return ExitStorage
			}
			s.Deps = append(s.Deps, ds)
		}
	} else {
		var err error
		if s, err = stepFromRecord(ctx, o.Storage, prefix, prefix+"/"+arg, arg); err != nil {
			fmt.Fprintf(o.Stderr, "error: %v\n", err)
			return ExitStorage
		}
		if !s.ConfigKnown {
			fmt.Fprintf(o.Stderr, "explain: %s has no .executor_info; name a step's output directory, or give its name with --attrs and --dep\n", s.Path)
			return ExitUsage
		}
		for _, d := range s.Deps {
			if d.ConfigKnown {
				continue
			}
			if ds, err := stepFromRecord(ctx, o.Storage, prefix, d.Path, d.ID); err == nil {
				*d = *ds
			}
		}
	}
	plan, err := explain.PlanFromFiles(ctx, o.Storage, s.Path)
	if err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return ExitStorage
	}
	s.Plan = plan
	x := &explain.Explainer{Storage: o.Storage}
	row := planRow{Step: s.ID, Name: s.Name, Path: s.Path, Plan: s.Plan.Outcome, Reason: x.Reason(ctx, s)}
	if *asJSON {
		if err := printReasonsJSON(o.Stdout, []planRow{row}); err != nil {
			fmt.Fprintf(o.Stderr, "error: %v\n", err)
			return ExitStorage
		}
		return ExitOK
	}
	printExplanation(o.Stdout, row)
	if row.Reason.Kind != explain.KindChanged && row.Reason.Kind != explain.KindChangedUpstream && row.Reason.Kind != explain.KindNew {
		// Also say how this output differs from its other versions.
		s.Plan = explain.Plan{Outcome: explain.PlanWouldRun}
		if r := x.Reason(ctx, s); r.Earlier != "" {
			fmt.Fprintf(o.Stdout, "\nagainst the most recent other version of the step:\n  %s\n", r)
		}
	}
	return ExitOK
}

// stepFromRecord describes the output at p (shown as id) from its
// .executor_info: name, config (the versioned fields if the record has a
// version object, as Marin's and package recipe's have) and dependencies.
// With no record, only its path and name are known.
func stepFromRecord(ctx context.Context, storage explain.Opener, prefix, p, id string) (*explain.Step, error) {
	rec, err := explain.ReadRecord(ctx, storage, p)
	if err != nil {
		return nil, err
	}
	s := &explain.Step{ID: id, Path: p}
	if i := strings.LastIndexAny(id, "_-"); i > 0 {
		s.Name = id[:i]
	}
	if rec == nil {
		return s, nil
	}
	s.Name, s.ConfigKnown = rec.Name, true
	if rec.HasVersioned {
		s.Config, s.Versioned = rec.Versioned, true
	} else {
		s.Config = rec.Config
	}
	for _, d := range rec.Dependencies {
		s.Deps = append(s.Deps, &explain.Step{ID: cairn.Label(prefix, d, d), Path: d})
	}
	return s, nil
}
