package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// result is one JSON line of output: one tool over one shape.
//
// Times and RSS are measured by the launcher that starts the tool (see
// spawnFlag) and are the median over Repeat runs.
type result struct {
	Tool      string `json:"tool"`
	Shape     string `json:"shape"`
	ShapeDesc string `json:"shape_desc"`
	// Run is "cold" (nothing done yet) or "cached" (everything done).
	Run   string  `json:"run"`
	Steps int     `json:"steps"`
	Edges int     `json:"edges"`
	Scale float64 `json:"scale"`
	// WallS is the tool process's whole wall time, from just before its
	// fork to just after its exit was reaped, measured outside it.
	WallS     float64 `json:"wall_s"`
	StepsPerS float64 `json:"steps_per_s"`
	PerStepUS float64 `json:"per_step_us"`
	// PeakRSSMB is the child's peak resident set size in MiB (ru_maxrss;
	// for ninja and make, the larger of the tool's own and that of its
	// largest command).
	PeakRSSMB float64 `json:"peak_rss_mb"`
	// RSSFloorMB is the launcher's own peak RSS when it started the tool:
	// on Linux a lower bound on PeakRSSMB that is not the tool's doing.
	RSSFloorMB float64 `json:"rss_floor_mb"`
	// CPUS is user + system CPU time, including the tool's commands.
	CPUS float64 `json:"cpu_s"`
	// InprocWallS is cairn.Run's own wall time, measured inside the child
	// (cairn only); InprocStepsPerS is the throughput it implies.
	InprocWallS     float64 `json:"inproc_wall_s,omitzero"`
	InprocStepsPerS float64 `json:"inproc_steps_per_s,omitzero"`
	Repeat          int     `json:"repeat"`
	WallSMin        float64 `json:"wall_s_min"`
	WallSMax        float64 `json:"wall_s_max"`
	// Jobs is -j for ninja and make, MaxConcurrent for cairn.
	Jobs int    `json:"jobs"`
	Cmd  string `json:"cmd"`
	// StepWork says what one step does in this tool (stepWork).
	StepWork string `json:"step_work"`
	// WallRatio maps every other tool to the median over the repetitions
	// of this tool's wall time divided by the other's in the same
	// repetition (below 1: this tool was faster). Ratios taken within a
	// repetition cancel most of a load that changes during the benchmark.
	WallRatio map[string]float64 `json:"wall_ratio,omitempty"`
	Env       environment        `json:"env"`
}

// summarize turns the samples of one tool over one shape into a result,
// taking the median of each measurement.
func summarize(t tool, j job, desc string, scale float64, samples []sample, env environment) result {
	pick := func(f func(sample) float64) []float64 {
		v := make([]float64, len(samples))
		for i, s := range samples {
			v[i] = f(s)
		}
		return v
	}
	walls := pick(func(s sample) float64 { return s.proc.wall.Seconds() })
	wall := median(walls)
	steps := j.graph.size()
	r := result{
		Tool:       t.name(),
		Shape:      j.shape.name,
		ShapeDesc:  desc,
		Run:        "cold",
		Steps:      steps,
		Edges:      j.graph.edges(),
		Scale:      scale,
		WallS:      wall,
		StepsPerS:  float64(steps) / wall,
		PerStepUS:  wall * 1e6 / float64(steps),
		PeakRSSMB:  median(pick(func(s sample) float64 { return float64(s.proc.maxRSSKiB) / 1024 })),
		RSSFloorMB: median(pick(func(s sample) float64 { return float64(s.proc.floorKiB) / 1024 })),
		CPUS:       median(pick(func(s sample) float64 { return s.proc.cpu.Seconds() })),
		Repeat:     len(samples),
		WallSMin:   slices.Min(walls),
		WallSMax:   slices.Max(walls),
		Jobs:       t.jobs(),
		Cmd:        t.command(),
		Env:        env,
	}
	loads := pick(func(s sample) float64 { return s.load1 })
	r.Env.Load1, r.Env.Load1Max = median(loads), slices.Max(loads)
	if j.cached {
		r.Run = "cached"
	}
	if inproc := median(pick(func(s sample) float64 { return s.inproc.Seconds() })); inproc > 0 {
		r.InprocWallS = inproc
		r.InprocStepsPerS = float64(steps) / inproc
	}
	return r
}

// addRatios sets every result's WallRatio from the samples of all the
// tools, samples[i] being rs[i]'s, taken in the same repetitions.
func addRatios(rs []result, samples [][]sample) {
	for i := range rs {
		for k := range rs {
			if k == i || len(samples[i]) != len(samples[k]) {
				continue
			}
			ratios := make([]float64, len(samples[i]))
			for n := range ratios {
				ratios[n] = samples[i][n].proc.wall.Seconds() / samples[k][n].proc.wall.Seconds()
			}
			if rs[i].WallRatio == nil {
				rs[i].WallRatio = map[string]float64{}
			}
			rs[i].WallRatio[rs[k].Tool] = median(ratios)
		}
	}
}

// median returns the median of v, which must not be empty.
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// table indexes results by shape and tool.
type table struct {
	shapes, tools []string
	cell          map[[2]string]result
	scale         float64
}

func newTable(results []result, scale float64) *table {
	t := &table{cell: map[[2]string]result{}, scale: scale}
	for _, r := range results {
		if !slices.Contains(t.shapes, r.Shape) {
			t.shapes = append(t.shapes, r.Shape)
		}
		if !slices.Contains(t.tools, r.Tool) {
			t.tools = append(t.tools, r.Tool)
		}
		t.cell[[2]string{r.Shape, r.Tool}] = r
	}
	return t
}

func (t *table) get(shape, tool string) (result, bool) {
	r, ok := t.cell[[2]string{shape, tool}]
	return r, ok
}

// printSummary writes the side-by-side table and the target ratios.
func printSummary(w io.Writer, results []result, scale float64) {
	t := newTable(results, scale)
	t.printGrid(w)
	fmt.Fprintln(w)
	t.printTargets(w)
}

// printGrid writes shape × tool → steps/s, per-step µs, peak RSS, wall.
func (t *table) printGrid(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	head1 := []string{"", ""}
	head2 := []string{"shape", "steps"}
	for _, tool := range t.tools {
		head1 = append(head1, tool, "", "", "")
		head2 = append(head2, "steps/s", "µs/step", "RSS MB", "wall s")
	}
	fmt.Fprintln(tw, strings.Join(head1, "\t")+"\t")
	fmt.Fprintln(tw, strings.Join(head2, "\t")+"\t")
	for _, shape := range t.shapes {
		row := []string{shape, ""}
		for _, tool := range t.tools {
			r, ok := t.get(shape, tool)
			if !ok {
				row = append(row, "-", "-", "-", "-")
				continue
			}
			row[1] = fmt.Sprint(r.Steps)
			row = append(row, fmt.Sprintf("%.0f", r.StepsPerS), fmt.Sprintf("%.1f", r.PerStepUS),
				fmt.Sprintf("%.1f", r.PeakRSSMB), fmt.Sprintf("%.3f", r.WallS))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintln(w, "wall s and steps/s (medians) include process start for every tool; cairn's in-process figures are in the JSON (inproc_wall_s).")
}

// printTargets writes the ratios the performance targets (issue 12) are
// about, each the median of the ratios taken within a repetition:
//
//	ext4 (any disk):  cold fanout and grid: cairn's wall <= make's
//	tmpfs:            cold fanout: cairn's throughput >= 10x ninja's
//	any:              fanout-cached: cairn's wall <= ninja's
func (t *table) printTargets(w io.Writer) {
	fmt.Fprintln(w, "targets (median of per-repetition wall-time ratios cairn/other; < 1 means cairn was faster):")
	if t.scale != 1 {
		fmt.Fprintf(w, "  (scale %g: the targets are defined at scale 1; verdicts here are indicative only)\n", t.scale)
	}
	c, ok := t.get("fanout", "cairn")
	tmpfs := ok && c.Env.FS == "tmpfs"
	for _, shape := range []string{"chain", "fanout", "grid", "fanout-write", "fanout-cached"} {
		c, ok := t.get(shape, "cairn")
		if !ok {
			continue
		}
		for _, other := range []string{"ninja", "make"} {
			x, ok := c.WallRatio[other]
			if !ok {
				continue
			}
			status := ""
			switch {
			case shape == "fanout-cached" && other == "ninja":
				status = "target <= 1: " + verdict(x <= 1)
			case tmpfs && shape == "fanout" && other == "ninja":
				status = fmt.Sprintf("throughput %.1fx; target >= 10x on tmpfs: %s", 1/x, verdict(1/x >= 10))
			case !tmpfs && (shape == "fanout" || shape == "grid") && other == "make":
				status = "target <= 1 on disk: " + verdict(x <= 1)
			}
			fmt.Fprintf(w, "  %-14s cairn/%-6s %.2f  %s\n", shape, other, x, status)
		}
		if d, ok := t.get(shape, "cairn-default"); ok {
			fmt.Fprintf(w, "  %-14s cairn at its default concurrency (%d): %.3f s vs %.3f s at -j %d\n", shape, d.Jobs, d.WallS, c.WallS, c.Jobs)
		}
	}
	fmt.Fprintln(w, "  peak RSS MB per shape:")
	for _, shape := range t.shapes {
		var parts []string
		for _, tool := range t.tools {
			if r, ok := t.get(shape, tool); ok {
				parts = append(parts, fmt.Sprintf("%s %.1f", tool, r.PeakRSSMB))
			}
		}
		fmt.Fprintf(w, "    %-14s %s\n", shape, strings.Join(parts, ", "))
	}
	if ok {
		fmt.Fprintf(w, "  on %s (%s), %s, %d CPUs, load %.2f-%.2f\n", c.Env.FS, c.Env.Dir, c.Env.Kernel, c.Env.CPUs, c.Env.Load1, c.Env.Load1Max)
	}
}

func verdict(met bool) string {
	if met {
		return "MET"
	}
	return "NOT MET"
}
