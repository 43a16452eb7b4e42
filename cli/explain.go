package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"example.com/cairn"
	"example.com/cairn/cluster"
	"example.com/cairn/internal/explain"
)

// recorder records the steps a run pulls from its sequence, for the dry
// run's reasons and explain.
type recorder struct{ steps []*cairn.Step }

func (r *recorder) wrap(steps iter.Seq[*cairn.Step]) iter.Seq[*cairn.Step] {
	return func(yield func(*cairn.Step) bool) {
		for s := range steps {
			r.steps = append(r.steps, s)
			if !yield(s) {
				return
			}
		}
	}
}

// planRow is one step of a dry run with its reason.
type planRow struct {
	Step   string         `json:"step"` // the step's directory under the prefix
	ID     string         `json:"id"`   // name_with_hash
	Name   string         `json:"name"`
	Path   string         `json:"path"`
	Plan   string         `json:"plan"`
	Reason explain.Reason `json:"reason"`
}

// explainer builds reasons for the steps of a dry run.
type explainer struct {
	storage  explain.Opener
	prefix   string
	versions func(*cairn.Step) (json.RawMessage, bool)
	cluster  string // where remote steps would run
	force    []*regexp.Regexp
	downward bool // --force-downstream
}

// rows returns every step of the dry run (those pulled and their
// dependencies) in a stable order — dependencies first, then by name —
// with its plan and reason.
func (e *explainer) rows(ctx context.Context, pulled []*cairn.Step, report *cairn.Report) []planRow {
	byPath := make(map[string]cairn.StepResult, len(report.Steps))
	for _, r := range report.Steps {
		byPath[r.Path] = r
	}
	all := map[*cairn.Step]*explain.Step{}
	var list []*explain.Step
	var conv func(s *cairn.Step) *explain.Step
	conv = func(s *cairn.Step) *explain.Step {
		if es, ok := all[s]; ok {
			return es
		}
		es := e.step(s)
		all[s] = es
		for _, d := range s.Deps {
			es.Deps = append(es.Deps, conv(d))
		}
		for _, d := range es.Deps {
			es.Plan.Forced = es.Plan.Forced || e.downward && d.Plan.Forced
		}
		if r, ok := byPath[es.Path]; ok {
			es.Plan.Outcome = r.Outcome.String()
			es.Plan.Holder, es.Plan.LeaseAge = r.Holder, r.LeaseAge
			if r.Err != nil {
				es.Plan.Err = r.Err.Error()
			}
			list = append(list, es) // only steps the run considered
		}
		return es
	}
	for _, s := range pulled {
		conv(s)
	}
	x := &explain.Explainer{Storage: e.storage}
	reasons := x.Explain(ctx, list)
	rows := make([]planRow, 0, len(list))
	ids := map[*explain.Step]*cairn.Step{}
	for s, es := range all {
		ids[es] = s
	}
	for _, es := range explain.Order(list) {
		id, _ := ids[es].ID()
		rows = append(rows, planRow{Step: es.ID, ID: id, Name: es.Name, Path: es.Path, Plan: byPath[es.Path].Outcome.String(), Reason: reasons[es]})
	}
	return rows
}

// step converts s, without its deps.
func (e *explainer) step(s *cairn.Step) *explain.Step {
	id, _ := s.ID()
	path, _ := s.OutputPath(e.prefix)
	es := &explain.Step{ID: cairn.Label(e.prefix, id, path), Name: s.Name, Path: path}
	if e.versions != nil {
		if v, ok := e.versions(s); ok {
			if dv, err := explain.Decode(v); err == nil {
				if m, ok := dv.(map[string]any); ok {
					es.Config, es.ConfigKnown, es.Versioned = m["config"], true, true
				}
			}
		}
	}
	if !es.ConfigKnown {
		if c, err := explain.Normalize(s.Attrs); err == nil {
			if c == nil {
				c = map[string]any{} // nil Attrs are recorded as {}
			}
			es.Config, es.ConfigKnown = c, true
		}
	}
	if s.Remote != nil {
		es.Remote = "cluster " + e.cluster + ", " + resources(s.Remote.Resources)
	}
	for _, re := range e.force {
		if re.MatchString(s.Name) {
			es.Plan.Forced = true
		}
	}
	return es
}

// resources describes what a remote step requests.
func resources(r cluster.Resources) string {
	cpus := max(r.CPUs, 1)
	parts := []string{fmt.Sprintf("%d CPU", cpus)}
	if r.Memory > 0 {
		parts = append(parts, fmt.Sprintf("%.3g GiB", float64(r.Memory)/(1<<30)))
	}
	switch r.Device.Kind {
	case cluster.GPUDevice:
		parts = append(parts, strings.TrimSpace(fmt.Sprintf("%d GPU %s", max(r.Device.Count, 1), r.Device.Type)))
	case cluster.TPUDevice:
		parts = append(parts, "TPU "+r.Device.Type)
	}
	if r.TimeLimit > 0 {
		parts = append(parts, "limit "+r.TimeLimit.String())
	}
	if r.Preemptible {
		parts = append(parts, "preemptible")
	}
	return strings.Join(parts, ", ")
}

// printReasons writes the dry-run plan as a table, one step a line.
func printReasons(w io.Writer, rows []planRow) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tPLAN\tREASON")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Step, r.Plan, r.Reason)
	}
	tw.Flush()
}

// printReasonsJSON writes the dry-run plan as a JSON array.
func printReasonsJSON(w io.Writer, rows []planRow) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if rows == nil {
		rows = []planRow{}
	}
	return enc.Encode(rows)
}

// printExplanation writes everything known about one step's reason.
func printExplanation(w io.Writer, r planRow) {
	fmt.Fprintf(w, "step:    %s\n", r.Step)
	fmt.Fprintf(w, "name:    %s\n", r.Name)
	if r.ID != "" && r.ID != r.Step {
		fmt.Fprintf(w, "id:      %s\n", r.ID)
	}
	fmt.Fprintf(w, "path:    %s\n", r.Path)
	if r.Plan != "" {
		fmt.Fprintf(w, "plan:    %s\n", r.Plan)
	}
	fmt.Fprintf(w, "reason:  %s\n", r.Reason.Kind)
	rs := r.Reason
	if rs.Since != nil {
		fmt.Fprintf(w, "since:   %s\n", rs.Since.Local().Format(time.RFC3339))
	}
	if rs.By != "" {
		fmt.Fprintf(w, "by:      %s\n", rs.By)
	}
	if rs.Holder != "" {
		fmt.Fprintf(w, "holder:  %s\n", rs.Holder)
		if rs.Host != "" {
			fmt.Fprintf(w, "host:    %s\n", rs.Host)
		}
		fmt.Fprintf(w, "lease:   last refreshed %s ago by the holder's clock (one look cannot tell whether it is alive)\n",
			time.Duration(rs.LeaseAgeSeconds*float64(time.Second)).Round(time.Second))
	}
	if rs.Earlier != "" {
		fmt.Fprintf(w, "compared with the most recent earlier output:\n         %s\n", rs.Earlier)
	}
	if len(rs.Changes) > 0 {
		fmt.Fprintln(w, "changed fields:")
		for _, c := range rs.Changes {
			fmt.Fprintf(w, "         %s\n", c)
		}
	}
	if rs.Upstream != "" {
		fmt.Fprintf(w, "first changed ancestor: %s\n", rs.Upstream)
		for _, c := range rs.UpstreamChanges {
			fmt.Fprintf(w, "         %s\n", c)
		}
		if len(rs.UpstreamChanges) == 0 {
			fmt.Fprintln(w, "         (no recorded field differs: its identity changed, or its earlier record is gone)")
		}
	}
	if rs.Error != "" {
		fmt.Fprintf(w, "error:\n%s\n", indent(rs.Error, "         "))
		if rs.Stack {
			fmt.Fprintf(w, "stack:   in %s/.cairn_failure.json\n", r.Path)
		}
	}
	if rs.Also != "" {
		fmt.Fprintf(w, "forced:  %s\n", rs.Also)
	}
	if rs.Remote != "" {
		fmt.Fprintf(w, "remote:  %s\n", rs.Remote)
	}
	fmt.Fprintf(w, "summary: %s\n", rs)
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n")
}

// findRow returns the row a user's STEP argument names: its directory,
// ID, name, or path.
func findRow(rows []planRow, arg string) (planRow, []string) {
	arg = strings.TrimSuffix(arg, "/")
	var matches []planRow
	for _, r := range rows {
		if r.Step == arg || r.ID == arg || r.Path == arg {
			return r, nil
		}
		if r.Name == arg {
			matches = append(matches, r)
		}
	}
	if len(matches) == 1 {
		return matches[0], nil
	}
	var names []string
	for _, r := range matches {
		names = append(names, r.Step)
	}
	if len(names) == 0 {
		for _, r := range rows {
			names = append(names, r.Step)
		}
	}
	slices.Sort(names)
	return planRow{}, names
}
