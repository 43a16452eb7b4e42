package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// job is one timed (or setup) run of a tool over a shape.
type job struct {
	shape shape
	graph *graph
	// dir is the tool's working directory: the cairn prefix, or the
	// directory holding build.ninja or Makefile and the outputs.
	dir string
	// cached says every step must already be done: the run must do nothing.
	cached bool
	// label names the run uniquely within the tool, for file names.
	label string
}

// sample is what one run measured.
type sample struct {
	proc procStats
	// inproc is cairn.Run's own wall time, measured inside the child; zero
	// for other tools.
	inproc time.Duration
	// load1 is the 1-minute load average just before the run.
	load1 float64
}

// tool is a build system under test. Every tool runs as a process started
// by a launcher, so that wall time and peak RSS are measured the same way
// for all of them.
type tool interface {
	// name is "cairn", "cairn-default", "ninja" or "make".
	name() string
	// jobs is the parallelism the tool is run with.
	jobs() int
	// command describes the command line, for the report.
	command() string
	// prepare sets up dir, which exists and is empty, for a cold run of g
	// in shape sh. It is not timed.
	prepare(dir string, g *graph, sh shape) error
	// run runs the tool once and checks that every step ran (cold run) or
	// that none had to (cached run).
	run(ctx context.Context, j job) (sample, error)
}

// commandError describes a failed child process with the tail of its output.
func commandError(what string, err error, output []byte) error {
	const tail = 2000
	if len(output) > tail {
		output = append([]byte("…"), output[len(output)-tail:]...)
	}
	return fmt.Errorf("%s: %w\n%s", what, err, bytes.TrimSpace(output))
}

// cairnTool runs a shape with cairn.Run in a re-executed copy of this binary
// (child mode).
type cairnTool struct {
	tool          string // "cairn" or "cairn-default"
	launch        launcher
	scale         float64
	maxConcurrent int
	profileDir    string // if set, each child writes a CPU profile here
	store         string // if set, the object-store URL prefixed to every prefix
}

func (t *cairnTool) name() string { return t.tool }
func (t *cairnTool) jobs() int    { return t.maxConcurrent }

func (t *cairnTool) command() string {
	return fmt.Sprintf("%s %s -shape SHAPE -dir PREFIX -max-concurrent %d", filepath.Base(t.launch.exe), childFlag, t.maxConcurrent)
}

func (t *cairnTool) prepare(string, *graph, shape) error { return nil }

func (t *cairnTool) run(ctx context.Context, j job) (sample, error) {
	args := []string{childFlag,
		"-shape", j.shape.name,
		"-scale", strconv.FormatFloat(t.scale, 'g', -1, 64),
		"-dir", t.store + j.dir, // the local path as a key prefix under the store's URL
		"-max-concurrent", strconv.Itoa(t.maxConcurrent),
	}
	if t.profileDir != "" {
		args = append(args, "-cpuprofile", filepath.Join(t.profileDir, t.tool+"-"+j.label+".pprof"))
	}
	var stdout, stderr bytes.Buffer
	st, err := t.launch.run(ctx, "", &stdout, &stderr, append([]string{t.launch.exe}, args...)...)
	if err != nil {
		return sample{}, commandError("cairn child "+j.label, err, append(stderr.Bytes(), stdout.Bytes()...))
	}
	var rep childReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return sample{}, fmt.Errorf("cairn child %s: bad report %q: %w", j.label, stdout.Bytes(), err)
	}
	if err := checkOutcomes(rep, j); err != nil {
		return sample{}, fmt.Errorf("cairn child %s: %w", j.label, err)
	}
	return sample{proc: st, inproc: time.Duration(rep.RunS * float64(time.Second))}, nil
}

// checkOutcomes checks that every step of j ran (cold run) or was cached
// (cached run), and nothing else happened.
func checkOutcomes(rep childReport, j job) error {
	want := "ran"
	if j.cached {
		want = "cached"
	}
	n := j.graph.size()
	if rep.Err != "" {
		return fmt.Errorf("run failed: %s", rep.Err)
	}
	if rep.Steps != n || rep.Outcomes[want] != n || len(rep.Outcomes) != 1 {
		return fmt.Errorf("want all %d steps %s, got %d steps with outcomes %v", n, want, rep.Steps, rep.Outcomes)
	}
	return nil
}

// buildTool is ninja or make over a generated build file whose every step
// is `touch OUT`, with the shape's dependency edges.
type buildTool struct {
	launch launcher
	tool   string   // "ninja" or "make"
	path   string   // resolved binary
	j      int      // -j
	file   string   // build file name
	flags  []string // extra flags before -j
	write  func(w *bufio.Writer, g *graph, command string)
}

// newNinja returns the ninja tool, or an error if ninja is not installed.
func newNinja(l launcher, jobs int) (*buildTool, error) {
	path, err := exec.LookPath("ninja")
	if err != nil {
		return nil, err
	}
	return &buildTool{launch: l, tool: "ninja", path: path, j: jobs, file: "build.ninja", write: writeNinja}, nil
}

// newMake returns the make tool, or an error if make is not installed. It
// runs with -r (no built-in implicit rules), so that make does not search
// implicit rules for the build file.
func newMake(l launcher, jobs int) (*buildTool, error) {
	path, err := exec.LookPath("make")
	if err != nil {
		return nil, err
	}
	return &buildTool{launch: l, tool: "make", path: path, j: jobs, file: "Makefile", flags: []string{"-r"}, write: writeMakefile}, nil
}

func (t *buildTool) name() string { return t.tool }
func (t *buildTool) jobs() int    { return t.j }

func (t *buildTool) args() []string {
	return append(append([]string{}, t.flags...), "-j"+strconv.Itoa(t.j))
}

func (t *buildTool) command() string {
	return strings.Join(append([]string{t.tool}, t.args()...), " ")
}

// outDir holds the outputs, relative to the build directory.
const outDir = "out"

// Commands of build steps: the default shapes touch the output, the
// writing shapes write one byte to it through the shell.
const (
	ninjaTouch = "touch $out"
	ninjaWrite = "printf x > $out"
	makeTouch  = "touch $@"
	makeWrite  = "printf x > $@"
)

// stepCommand returns the command of every step of sh.
func (t *buildTool) stepCommand(sh shape) string {
	switch {
	case t.tool == "make" && sh.writes:
		return makeWrite
	case t.tool == "make":
		return makeTouch
	case sh.writes:
		return ninjaWrite
	}
	return ninjaTouch
}

func (t *buildTool) prepare(dir string, g *graph, sh shape) error {
	if err := os.Mkdir(filepath.Join(dir, outDir), 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, t.file))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	t.write(w, g, t.stepCommand(sh)) // write errors stick in w and come back from Flush
	return errors.Join(w.Flush(), f.Close())
}

func (t *buildTool) run(ctx context.Context, j job) (sample, error) {
	before, err := outputTimes(j.dir, j.graph)
	if err != nil {
		return sample{}, err
	}
	var out bytes.Buffer
	st, err := t.launch.run(ctx, j.dir, &out, &out, append([]string{t.path}, t.args()...)...)
	if err != nil {
		return sample{}, commandError(t.tool+" "+j.label, err, out.Bytes())
	}
	after, err := outputTimes(j.dir, j.graph)
	if err != nil {
		return sample{}, err
	}
	if err := checkOutputs(before, after, j); err != nil {
		return sample{}, fmt.Errorf("%s %s: %w", t.tool, j.label, err)
	}
	return sample{proc: st}, nil
}

// outputTimes returns the modification time of each step's output, zero
// for a missing one.
func outputTimes(dir string, g *graph) ([]time.Time, error) {
	times := make([]time.Time, g.size())
	for i, name := range g.names {
		fi, err := os.Stat(filepath.Join(dir, outDir, name))
		switch {
		case err == nil:
			times[i] = fi.ModTime()
		case !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	return times, nil
}

// checkOutputs checks, from the output times before and after a run, that
// a cold run created every output and a cached run touched none.
func checkOutputs(before, after []time.Time, j job) error {
	var bad []string
	for i, name := range j.graph.names {
		ok := !after[i].IsZero()
		if j.cached {
			ok = after[i].Equal(before[i]) && !before[i].IsZero()
		}
		if !ok {
			bad = append(bad, name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	what := "were not created"
	if j.cached {
		what = "were missing or rebuilt in a no-op run"
	}
	return fmt.Errorf("%d of %d outputs %s (first: %s)", len(bad), j.graph.size(), what, bad[0])
}

// writeNinja writes a build.ninja with one edge running command per step.
// Write errors stick in the bufio.Writer and come back from its Flush.
func writeNinja(w *bufio.Writer, g *graph, command string) {
	w.WriteString("rule step\n  command = " + command + "\n\n")
	for i := range g.names {
		writeRule(w, g, i, "build %s/%s: step", "\n")
	}
}

// writeMakefile writes a Makefile with one rule running command per step
// and a phony default target depending on every sink.
func writeMakefile(w *bufio.Writer, g *graph, command string) {
	w.WriteString(".SUFFIXES:\n.PHONY: all\nall:")
	for _, s := range g.sinks() {
		fmt.Fprintf(w, " %s/%s", outDir, g.names[s])
	}
	w.WriteString("\n\n")
	for i := range g.names {
		writeRule(w, g, i, "%s/%s:", "\n\t"+command+"\n")
	}
}

// writeRule writes the rule of step i: head (formatted with the output
// directory and the step's name), its dependencies' outputs, then tail.
func writeRule(w *bufio.Writer, g *graph, i int, head, tail string) {
	fmt.Fprintf(w, head, outDir, g.names[i])
	for _, d := range g.deps[i] {
		fmt.Fprintf(w, " %s/%s", outDir, g.names[d])
	}
	w.WriteString(tail)
}
