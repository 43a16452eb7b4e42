package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// graph is a DAG of no-op steps, independent of any tool. Nodes are numbered
// in a topological order: every dependency of node i has a smaller number.
type graph struct {
	names []string // step names, valid as cairn step names and file names
	deps  [][]int  // deps[i] are the nodes node i depends on
}

// size returns the number of steps.
func (g *graph) size() int { return len(g.names) }

// add appends a node and returns its number.
func (g *graph) add(name string, deps ...int) int {
	g.names = append(g.names, name)
	g.deps = append(g.deps, deps)
	return len(g.names) - 1
}

// sinks returns the nodes no other node depends on, in order.
func (g *graph) sinks() []int {
	used := make([]bool, g.size())
	for _, ds := range g.deps {
		for _, d := range ds {
			used[d] = true
		}
	}
	var out []int
	for i, u := range used {
		if !u {
			out = append(out, i)
		}
	}
	return out
}

// edges returns the number of dependency edges.
func (g *graph) edges() int {
	n := 0
	for _, ds := range g.deps {
		n += len(ds)
	}
	return n
}

// shape is one benchmark workload.
type shape struct {
	name string
	// cached means the shape is a re-run of base over its existing outputs;
	// the timed run must find every step done.
	cached bool
	// base is the shape whose cold run a cached shape re-runs ("" if none).
	base string
	// writes means every step writes one small file of its own (see
	// stepWork), instead of doing nothing (cairn) or touching its output
	// (ninja, make).
	writes bool
	// build returns the graph at the given scale and a description of it.
	build func(scale float64) (*graph, string)
}

// shapes returns every shape, in the order they run: a cached shape comes
// after its base so that it can reuse the base's outputs.
func shapes() []shape {
	return []shape{
		{name: "chain", build: chain},
		{name: "fanout", build: fanout},
		{name: "grid", build: grid},
		{name: "fanout-cached", cached: true, base: "fanout", build: fanout},
		{name: "fanout-write", writes: true, build: fanout},
	}
}

// stepWork says what one step of sh does in each tool: the work compared.
// No tool can do exactly what another does: ninja and make run a process
// per step, and cairn runs a function in its own process.
func stepWork(sh shape, tool string) string {
	switch {
	case tool == "ninja" && sh.writes:
		return "one process: /bin/sh -c 'printf x > OUT' (a shell builtin writes the 1-byte output file)"
	case tool == "make" && sh.writes:
		return "one process: /bin/sh -c 'printf x > OUT' (the redirection makes make use the shell; a builtin writes the 1-byte output file)"
	case tool == "ninja":
		return "one process: /bin/sh -c 'touch OUT' (dash execs touch in place: one fork, two execs); the output file is the step's only file"
	case tool == "make":
		return "one process: touch OUT (no shell metacharacters: make forks and execs touch directly); the output file is the step's only file"
	case sh.writes:
		return "in-process function writing a 1-byte file through out.Bucket.Write, plus cairn's control files (lease, info, status, artifact; no attempt log, as the step logs nothing)"
	}
	return "in-process function returning nil, plus cairn's control files (lease, info, status, artifact; no attempt log, as the step logs nothing)"
}

// lookupShape returns the shape called name.
func lookupShape(name string) (shape, error) {
	all := shapes()
	for _, s := range all {
		if s.name == name {
			return s, nil
		}
	}
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.name
	}
	return shape{}, fmt.Errorf("unknown shape %q; shapes: %s", name, strings.Join(names, ", "))
}

// scaled returns round(n*scale), but at least lo.
func scaled(n int, scale float64, lo int) int {
	return max(lo, int(math.Round(float64(n)*scale)))
}

// chain is 1,000 steps, each depending on the previous one.
func chain(scale float64) (*graph, string) {
	n := scaled(1000, scale, 2)
	g := &graph{}
	for i := range n {
		if i == 0 {
			g.add("chain-0")
		} else {
			g.add(fmt.Sprintf("chain-%d", i), i-1)
		}
	}
	return g, fmt.Sprintf("%d steps, each depending on the previous one", n)
}

// fanout is one root step and 10,000 leaves that each depend only on it.
func fanout(scale float64) (*graph, string) {
	n := scaled(10000, scale, 1)
	g := &graph{}
	root := g.add("fanout-root")
	for i := range n {
		g.add(fmt.Sprintf("fanout-%d", i), root)
	}
	return g, fmt.Sprintf("1 root + %d independent leaves depending on it = %d steps", n, n+1)
}

// grid is 100 layers of 100 steps; step j of layer i>0 depends on steps j
// and (j+1)%100 of layer i-1. At other scales it is a square of
// round(100*sqrt(scale)) steps a side, so the step count scales linearly.
func grid(scale float64) (*graph, string) {
	side := scaled(100, math.Sqrt(scale), 2)
	g := &graph{}
	for i := range side {
		for j := range side {
			name := fmt.Sprintf("grid-%d-%d", i, j)
			if i == 0 {
				g.add(name)
				continue
			}
			prev := (i - 1) * side
			g.add(name, prev+j, prev+(j+1)%side)
		}
	}
	return g, fmt.Sprintf("%d layers x %d steps; step j of layer i>0 depends on steps j and (j+1)%%%d of layer i-1", side, side, side)
}

// parseList splits a comma-separated flag value and checks each element is
// in known, keeping the order of known.
func parseList(flagName, value string, known []string) ([]string, error) {
	want := map[string]bool{}
	for v := range strings.SplitSeq(value, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		if !slices.Contains(known, v) {
			return nil, fmt.Errorf("-%s: unknown value %q; want a comma-separated subset of %s", flagName, v, strings.Join(known, ","))
		}
		want[v] = true
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("-%s: empty list", flagName)
	}
	var out []string
	for _, k := range known {
		if want[k] {
			out = append(out, k)
		}
	}
	return out, nil
}
