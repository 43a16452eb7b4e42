package cli

import (
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"example.com/cairn"

	"example.com/cairn/internal/typo"
)

// command is one subcommand of a pipeline program, as --help lists it.
type command struct {
	name, usage, short string
}

// commands are the visible subcommands of a pipeline program, in the order
// --help lists them ("worker" is hidden: cluster jobs run it). A command
// added to Main's switch is added here too.
var commands = []command{
	{"run", "[run] [flags]", "run the pipeline (the default command)"},
	{"status", "status [--json] [--failed] [--running] [--name REGEX] [--all]", "list the program's steps under the prefix with status, lease holder and age"},
	{"logs", "logs STEP [-f] [--attempt N]", "print the log of STEP's latest attempt (or attempt N); -f follows it while the step runs"},
	{"explain", "explain STEP [flags]", "say in full why STEP would run, or would not (same flags as run)"},
	{"report", "report [RUN] [-o FILE] [--trace FILE] [--list]", "write a self-contained HTML report of a run (the latest by default) and a Perfetto trace"},
	{"graph", "graph [--format dot|mermaid|json]", "print the pipeline's DAG with each step's state"},
	{"version", "version", "print the program's module version and VCS revision"},
}

func commandList() string {
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// progName is the program's name as the user typed it.
func progName() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return filepath.Base(os.Args[0])
	}
	return "prog"
}

// printHelp writes the program's help: its commands and, if fs is not nil,
// the flags of run, cairn's and then the program's own (those for which
// own reports true).
func printHelp(w io.Writer, fs *flag.FlagSet, own func(name string) bool) {
	prog := progName()
	fmt.Fprintf(w, "%s: a cairn pipeline program\n\nusage:\n", prog)
	for _, c := range commands {
		fmt.Fprintf(w, "  %s %s\n      %s\n", prog, c.usage, c.short)
	}
	if fs == nil {
		fmt.Fprintf(w, "\nrun %s --help for the flags of run.\n", prog)
		return
	}
	cairnFlags := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	programFlags := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		to := cairnFlags
		if own != nil && own(f.Name) {
			to = programFlags
		}
		to.Var(f.Value, f.Name, f.Usage)
		to.Lookup(f.Name).DefValue = f.DefValue
	})
	fmt.Fprintf(w, "\nflags of run (and of explain):\n")
	cairnFlags.SetOutput(w)
	cairnFlags.PrintDefaults()
	n := 0
	programFlags.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nflags of %s (also of explain, status, logs and graph; remote steps get them too):\n", prog)
		programFlags.SetOutput(w)
		programFlags.PrintDefaults()
	}
}

// printVersion writes the program's module path and version, the VCS
// revision it was built from (with "+dirty" for uncommitted changes) and
// the Go version, as runtime/debug.ReadBuildInfo reports them.
func printVersion(w io.Writer) {
	fmt.Fprintln(w, versionString(progName()))
}

func versionString(prog string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return prog + " (no build information)"
	}
	path, version := bi.Main.Path, bi.Main.Version
	if path == "" {
		path = prog
	}
	if version == "" {
		version = "(devel)"
	}
	var rev, when string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	line := fmt.Sprintf("%s %s %s", prog, path, version)
	switch {
	case rev != "":
		if dirty {
			rev += "+dirty"
		}
		line += " revision " + rev
		if when != "" {
			line += " (" + when + ")"
		}
	default:
		line += " revision unknown (not built from a VCS checkout)"
	}
	return line + " " + bi.GoVersion
}

// runExplain implements "prog explain STEP [flags]": a dry run that prints
// the full reasoning for one step.
func runExplain(o Options, steps iter.Seq[*cairn.Step], args []string) int {
	step := ""
	switch {
	case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
		step, args = args[0], args[1:]
	case len(args) > 0 && !strings.HasPrefix(args[len(args)-1], "-"):
		step, args = args[len(args)-1], args[:len(args)-1]
	}
	if step == "" {
		for _, a := range args {
			if a == "-h" || a == "-help" || a == "--help" {
				fmt.Fprintf(o.Stdout, "usage: %s explain STEP [flags of run]\n\nSays why STEP (its directory under the prefix, its ID or its name) would run, or would not: cached since when, new, changed fields against its most recent earlier output, the first changed ancestor, its last failure, who runs it now.\n", progName())
				return ExitOK
			}
		}
		fmt.Fprintf(o.Stderr, "usage: %s explain STEP [flags of run]\n", progName())
		return ExitUsage
	}
	// Quiet by default: the explanation is the output (a later
	// --log-level in args wins).
	o.Args = append(append([]string{"run", "--log-level", "warn"}, args...), "--dry-run")
	o.explain = step
	return Main(steps, &o)
}

// explainOne prints the explanation of the step o.explain names.
func explainOne(o Options, rows []planRow, runErr error, asJSON bool) int {
	r, candidates := findRow(rows, o.explain)
	if r.Path == "" {
		if runErr != nil {
			fmt.Fprintf(o.Stderr, "error: %v\n", runErr)
		}
		fmt.Fprintf(o.Stderr, "explain: no step %q in the pipeline; steps: %s\n", o.explain, strings.Join(candidates, ", "))
		return ExitUsage
	}
	if asJSON {
		if err := printReasonsJSON(o.Stdout, []planRow{r}); err != nil {
			fmt.Fprintf(o.Stderr, "error: %v\n", err)
			return ExitStorage
		}
		return ExitOK
	}
	printExplanation(o.Stdout, r)
	return ExitOK
}

// spec returns the cluster remote steps would run on.
func (f remoteFlags) spec(getenv func(string) string) string {
	switch {
	case f.cluster != "":
		return f.cluster
	case getenv("CAIRN_CLUSTER") != "":
		return getenv("CAIRN_CLUSTER")
	}
	return DefaultClusterSpec
}

// printFlagHint follows the flag package's "flag provided but not defined"
// error with the flag of fs the user most likely meant, if one is close:
// "did you mean --prefix?".
func printFlagHint(w io.Writer, fs *flag.FlagSet, err error) {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return
	}
	name = strings.TrimLeft(name, "-")
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if s := typo.Closest(name, names); s != "" {
		fmt.Fprintf(w, "did you mean --%s?\n", s)
	}
}
