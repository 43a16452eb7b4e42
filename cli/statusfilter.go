package cli

import (
	"context"
	"flag"
	"iter"
	"log/slog"
	"regexp"
	"slices"

	"example.com/cairn"
)

// ownSteps returns the directories, relative to prefix, of a pipeline
// program's own steps (its steps and their dependencies, at their current
// versions).
type ownSteps func(ctx context.Context, prefix string) (map[string]bool, error)

// statusFilters are the filter flags of "status".
type statusFilters struct {
	failed, running, all *bool
	name                 *regexp.Regexp
}

type regexpFlag struct{ re **regexp.Regexp }

func (f regexpFlag) String() string {
	if f.re == nil || *f.re == nil {
		return ""
	}
	return (*f.re).String()
}

func (f regexpFlag) Set(s string) error {
	re, err := regexp.Compile(s)
	if err == nil {
		*f.re = re
	}
	return err
}

func addStatusFilters(fs *flag.FlagSet, program bool) *statusFilters {
	f := &statusFilters{
		failed:  fs.Bool("failed", false, "list only failed steps (FAILED, DEP_FAILED)"),
		running: fs.Bool("running", false, "list only running steps (RUNNING)"),
	}
	fs.Var(regexpFlag{&f.name}, "name", "list only steps whose directory matches this regular expression (`REGEX`)")
	usage := "list every step directory under the prefix (other programs' and old versions included), not only this program's steps"
	if !program {
		usage = "list every step directory under the prefix (always so for cairn status)"
	}
	f.all = fs.Bool("all", false, usage)
	return f
}

// apply filters states: to the program's own steps unless --all, then by
// --failed/--running (either state, if both) and --name.
func (f *statusFilters) apply(o Options, own ownSteps, prefix string, states []cairn.StepState) ([]cairn.StepState, error) {
	var mine map[string]bool
	if own != nil && !*f.all {
		var err error
		if mine, err = own(o.Context, prefix); err != nil {
			return nil, err
		}
	}
	return slices.DeleteFunc(states, func(s cairn.StepState) bool {
		if mine != nil && !mine[s.Dir] {
			return true
		}
		if *f.failed || *f.running {
			failed := s.Status == cairn.StatusFailed || s.Status == cairn.StatusDepFailed
			running := s.Status == cairn.StatusRunning
			if !(*f.failed && failed || *f.running && running) {
				return true
			}
		}
		return f.name != nil && !f.name.MatchString(s.Dir)
	}), nil
}

// programSteps returns the ownSteps of a pipeline program whose steps are
// steps (or, with o.Prepare, what Prepare returns for a dry run).
// With neither (a program that defines no steps), it returns nil: status
// lists every step directory.
func programSteps(o Options, steps iter.Seq[*cairn.Step]) ownSteps {
	if steps == nil && o.Prepare == nil {
		return nil
	}
	return func(ctx context.Context, prefix string) (map[string]bool, error) {
		if o.Prepare != nil {
			opts := &cairn.RunOptions{Prefix: prefix, Storage: beneathPrefix(ctx, o.Storage, prefix), DryRun: true,
				Logger: slog.New(slog.DiscardHandler)}
			var err error
			if steps, err = o.Prepare(ctx, opts); err != nil {
				return nil, err
			}
		}
		dirs := map[string]bool{}
		seen := map[*cairn.Step]bool{}
		var walk func(s *cairn.Step)
		walk = func(s *cairn.Step) {
			if seen[s] {
				return
			}
			seen[s] = true
			if p, err := s.OutputPath(prefix); err == nil {
				if rel, ok := cairn.Beneath(prefix, p); ok {
					dirs[rel] = true
				}
			}
			for _, d := range s.Deps {
				walk(d)
			}
		}
		if steps != nil {
			for s := range steps {
				walk(s)
			}
		}
		return dirs, nil
	}
}
