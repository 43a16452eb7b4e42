// Package recipecli is the one-call entry point of programs built with
// package recipe, as cli.Main is for programs built from plain steps:
//
//	func main() { os.Exit(recipecli.Main([]recipe.Node{report}, nil)) }
//
// The program gets cli's command line (--prefix, --dry-run, --run-only,
// --force-run-failed, --max-concurrent, status, ...). Main resolves the
// steps against the prefix once the flags are parsed, through cli's
// Options.Prepare hook, so --run-only has Marin's semantics and every run
// writes the experiment record and the steps' .executor_info files.
//
// Why a separate package: package recipe sits beside package cairn in the
// layering and must not import cli (a composition root that wires storage
// backends), and cli should not depend on the reflection-based typed
// layer. This package imports both and is the only place, besides cli,
// that reads the process environment: it fills the experiment record's
// program name, caller path, user and git commit.
package recipecli

import (
	"context"
	"encoding/json"
	"iter"
	"os"
	"os/exec"
	"os/user"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/recipe"
)

// Options configure Main. A nil *Options means all defaults.
type Options struct {
	// CLI configures the command line (arguments, output streams, storage,
	// context); nil means cli's defaults. Its Prepare field must be nil:
	// Main sets it.
	CLI *cli.Options
	// Record fills the experiment record. Empty fields are filled from the
	// process: Program and CallerPath from the main package's import path
	// (else os.Args[0]), User from the current user, GitCommit from
	// `git rev-parse HEAD` in the working directory (none outside a git
	// work tree).
	Record *recipe.RecordOptions
	// Resolve configures how steps are versioned; nil means current
	// Marin's rule (recipe.InlineShallow). Set Versioning to
	// recipe.InlineAll for a prefix that older Marin wrote.
	Resolve *recipe.ResolveOptions
}

// Main runs the command line of a program whose pipeline is steps (and
// everything they refer to) and returns the process exit code, with cli's
// exit codes: a step that cannot be versioned or resolved is ExitInvalid.
// It never calls os.Exit.
func Main(steps []recipe.Node, opts *Options) int {
	var o Options
	if opts != nil {
		o = *opts
	}
	var c cli.Options
	if o.CLI != nil {
		c = *o.CLI
	}
	var plan *recipe.Plan
	c.Prepare = prepare(steps, o.Record, o.Resolve, &plan)
	c.Versions = versions(&plan)
	return cli.Main(nil, &c)
}

// versions returns a function for cli.Options.Versions: the version
// object each step of *plan records, found by output path, for --dry-run
// and explain to diff the versioned fields by name.
func versions(plan **recipe.Plan) func(*cairn.Step) (json.RawMessage, bool) {
	var byPath map[string]json.RawMessage
	return func(s *cairn.Step) (json.RawMessage, bool) {
		if *plan == nil {
			return nil, false
		}
		if byPath == nil {
			byPath = make(map[string]json.RawMessage)
			for _, info := range (*plan).Infos() {
				byPath[info.OutputPath] = info.Version
			}
		}
		v, ok := byPath[s.OverridePath]
		return v, ok
	}
}

// Prepare returns a function for cli.Options.Prepare that resolves steps
// against the run's prefix and calls recipe's [recipe.Plan.Prepare] (which
// selects the steps for --run-only and writes the records), with rec
// completed from the process as [Options.Record] describes.
func Prepare(steps []recipe.Node, rec *recipe.RecordOptions) func(context.Context, *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
	return prepare(steps, rec, nil, new(*recipe.Plan))
}

// prepare is Prepare with resolve options, that also stores the plan in
// *plan.
func prepare(steps []recipe.Node, rec *recipe.RecordOptions, ro *recipe.ResolveOptions, plan **recipe.Plan) func(context.Context, *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
	return func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
		pl, err := recipe.ResolveWith(opts.Prefix, ro, steps...)
		if err != nil {
			return nil, err
		}
		*plan = pl
		r := fromProcess(ctx, rec, opts.DryRun)
		ss, err := pl.Prepare(ctx, opts, &r)
		if err != nil {
			return nil, err
		}
		return cairn.Steps(ss...), nil
	}
}

// fromProcess returns rec with its empty fields filled from the process.
// A dry run writes no record, so it skips the git and user lookups.
func fromProcess(ctx context.Context, rec *recipe.RecordOptions, dryRun bool) recipe.RecordOptions {
	var r recipe.RecordOptions
	if rec != nil {
		r = *rec
	}
	if r.CallerPath == "" {
		r.CallerPath = mainPath()
	}
	if r.Program == "" {
		r.Program = path.Base(r.CallerPath)
	}
	if dryRun {
		return r
	}
	if r.User == "" {
		if u, err := user.Current(); err == nil {
			r.User = u.Username
		}
	}
	if r.GitCommit == "" {
		r.GitCommit = gitCommit(ctx, "")
	}
	return r
}

// mainPath names the running program: its main package's import path
// (example.com/cairn/examples/ngram), else os.Args[0].
func mainPath() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Path != "" && bi.Path != "command-line-arguments" {
		return bi.Path
	}
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return "recipe"
}

// gitCommit returns `git rev-parse HEAD` run in dir ("" for the working
// directory), or "" if dir is not in a git work tree or git is missing.
func gitCommit(ctx context.Context, dir string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "HEAD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
