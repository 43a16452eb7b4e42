package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"strings"

	"example.com/cairn"
)

// graphNode is one step of "prog graph".
type graphNode struct {
	Step string `json:"step"`
	// Dir is the output directory relative to the prefix, as status lists
	// it ("" for a step written outside the prefix); nodes are labelled by
	// it.
	Dir   string   `json:"dir,omitempty"`
	Name  string   `json:"name"`
	Path  string   `json:"path"`
	State string   `json:"state"`
	Deps  []string `json:"deps"`
}

// Graph states.
const (
	stateCached  = "cached"
	stateNew     = "new"
	stateFailed  = "failed"
	stateRunning = "running"
)

// stateOf maps a dry run's outcome to a graph state: cached, failed (in an
// earlier run), running (held by a worker with a fresh lease) or new (it
// would run).
func stateOf(o cairn.Outcome) string {
	switch o {
	case cairn.Cached:
		return stateCached
	case cairn.FailedBefore:
		return stateFailed
	case cairn.RunningElsewhere:
		return stateRunning
	}
	return stateNew
}

// runGraph implements "prog graph [--format dot|mermaid|json]": the
// pipeline's steps and dependencies, each with its state on the prefix, in
// a deterministic order (topological, ties by step ID). It writes nothing.
func runGraph(o Options, steps iter.Seq[*cairn.Step], args []string) int {
	fs := flag.NewFlagSet("graph", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	prefix := fs.String("prefix", "", "storage root (default $CAIRN_PREFIX, else $MARIN_PREFIX, else ./"+cairn.DefaultLocalPrefix+")")
	format := fs.String("format", "dot", "output format: dot (Graphviz), mermaid or json")
	if err := o.addProgramFlags(fs, &paramRecorder{}); err != nil { // params.go
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	fs.Usage = func() {
		fmt.Fprintln(o.Stderr, "usage: "+programName()+" graph [--format dot|mermaid|json] [--prefix P]")
		fmt.Fprintln(o.Stderr, "Prints the pipeline's steps and dependencies, each with its state on the prefix (cached, failed, running, new).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		printFlagHint(o.Stderr, fs, err)
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(o.Stderr, "graph: unexpected arguments %q\n", fs.Args())
		return ExitUsage
	}
	switch *format {
	case "dot", "mermaid", "json":
	default:
		fmt.Fprintf(o.Stderr, "graph: --format %q: want dot, mermaid or json\n", *format)
		return ExitUsage
	}
	var err error
	if *prefix, err = resolvePrefix(fs, *prefix, o.Getenv); err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	nodes, err := planGraph(o, steps, *prefix)
	if err != nil {
		return exitCode(o.Context, err, o.Stderr)
	}
	switch *format {
	case "json":
		enc := json.NewEncoder(o.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		_ = enc.Encode(struct {
			Format string      `json:"format"`
			Prefix string      `json:"prefix"`
			Steps  []graphNode `json:"steps"`
		}{"cairn.graph/1", *prefix, nodes})
	case "mermaid":
		writeMermaid(o.Stdout, nodes)
	default:
		writeDot(o.Stdout, nodes)
	}
	return ExitOK
}

// planGraph dry-runs steps on prefix and returns the graph's nodes in
// topological order, ties broken by step ID.
func planGraph(o Options, steps iter.Seq[*cairn.Step], prefix string) ([]graphNode, error) {
	ctx := o.Context
	opts := &cairn.RunOptions{
		Prefix:  prefix,
		Storage: beneathPrefix(ctx, o.Storage, prefix),
		DryRun:  true,
		Logger:  slog.New(slog.DiscardHandler),
	}
	if o.Prepare != nil {
		var err error
		if steps, err = o.Prepare(ctx, opts); err != nil {
			return nil, err
		}
	}
	defs := map[string]*cairn.Step{}
	var walk func(s *cairn.Step) error
	walk = func(s *cairn.Step) error {
		id, err := s.ID()
		if err != nil {
			return err
		}
		if defs[id] != nil {
			return nil
		}
		defs[id] = s
		for _, d := range s.Deps {
			if err := walk(d); err != nil {
				return err
			}
		}
		return nil
	}
	collected := func(yield func(*cairn.Step) bool) {
		if steps == nil {
			return
		}
		for s := range steps {
			_ = walk(s) // an invalid step is Run's error to report
			if !yield(s) {
				return
			}
		}
	}
	report, err := cairn.Run(ctx, collected, opts)
	if err != nil && !errors.As(err, new(*cairn.RunError)) {
		return nil, err
	}
	// The report names steps by their labels (directories), not IDs: match
	// them to the definitions by output path.
	state := map[string]string{}
	for _, r := range report.Steps {
		state[r.Path] = stateOf(r.Outcome)
	}
	return topoOrder(defs, state, prefix)
}

// topoOrder returns the nodes of defs (by step ID) in topological order,
// each in its state from state (by output path; new if absent).
func topoOrder(defs map[string]*cairn.Step, state map[string]string, prefix string) ([]graphNode, error) {
	pending := map[string]int{}
	dependents := map[string][]string{}
	for id, s := range defs {
		for _, d := range s.Deps {
			did, _ := d.ID()
			pending[id]++
			dependents[did] = append(dependents[did], id)
		}
	}
	var ready []string
	for id := range defs {
		if pending[id] == 0 {
			ready = append(ready, id)
		}
	}
	var out []graphNode
	for len(ready) > 0 {
		slices.Sort(ready)
		id := ready[0]
		ready = ready[1:]
		s := defs[id]
		p, _ := s.OutputPath(prefix)
		n := graphNode{Step: id, Name: s.Name, Path: p, State: state[p]}
		if n.State == "" {
			n.State = stateNew
		}
		n.Dir, _ = cairn.Beneath(prefix, p)
		n.Deps = []string{}
		for _, d := range s.Deps {
			did, _ := d.ID()
			n.Deps = append(n.Deps, did)
		}
		slices.Sort(n.Deps)
		n.Deps = slices.Compact(n.Deps)
		out = append(out, n)
		for _, m := range dependents[id] {
			if pending[m]--; pending[m] == 0 {
				ready = append(ready, m)
			}
		}
	}
	if len(out) != len(defs) {
		return nil, fmt.Errorf("%w: the steps have a cycle", cairn.ErrInvalidPipeline)
	}
	return out, nil
}

// label names a node as status does: by its directory under the prefix,
// else by its ID.
func (n graphNode) label() string {
	if n.Dir != "" {
		return n.Dir
	}
	return n.Step
}

var stateColors = map[string]string{stateCached: "#c8e6c9", stateNew: "#bbdefb", stateFailed: "#ffcdd2", stateRunning: "#ffe082"}

func writeDot(w io.Writer, nodes []graphNode) {
	fmt.Fprintln(w, "digraph cairn {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, `  node [shape=box, style="rounded,filled", fontname="Helvetica"];`)
	for _, n := range nodes {
		fmt.Fprintf(w, "  %s [label=%s, fillcolor=%q, tooltip=%s];\n", dotQuote(n.Step), dotQuote(n.label()+"\n"+n.State), stateColors[n.State], dotQuote(n.Path))
	}
	for _, n := range nodes {
		for _, d := range n.Deps {
			fmt.Fprintf(w, "  %s -> %s;\n", dotQuote(d), dotQuote(n.Step))
		}
	}
	fmt.Fprintln(w, "}")
}

func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func writeMermaid(w io.Writer, nodes []graphNode) {
	fmt.Fprintln(w, "flowchart LR")
	ids := map[string]string{}
	for i, n := range nodes {
		ids[n.Step] = fmt.Sprintf("s%d", i)
	}
	for _, n := range nodes {
		label := strings.NewReplacer(`"`, "#quot;").Replace(n.label())
		fmt.Fprintf(w, "  %s[\"%s<br/>%s\"]:::%s\n", ids[n.Step], label, n.State, n.State)
	}
	for _, n := range nodes {
		for _, d := range n.Deps {
			fmt.Fprintf(w, "  %s --> %s\n", ids[d], ids[n.Step])
		}
	}
	for _, st := range []string{stateCached, stateFailed, stateNew, stateRunning} {
		fmt.Fprintf(w, "  classDef %s fill:%s\n", st, stateColors[st])
	}
}
