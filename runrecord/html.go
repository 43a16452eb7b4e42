package runrecord

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// WriteHTML writes rec as one self-contained HTML page: the run's outcome,
// a timeline (one lane per worker, a bar per step: queued, waiting for
// another worker, running), and a table of steps with their times, worker,
// host, job and resources. The page loads nothing: its style and SVG are
// inline and it has no script.
func WriteHTML(w io.Writer, rec *Record) error {
	return page.Execute(w, buildView(rec))
}

type view struct {
	R        *Record
	Duration string
	Counts   []count
	Timeline template.HTML
	Rows     []row
	Failures []row
}

type count struct {
	Outcome string
	N       int
	Class   string
}

type row struct {
	Step, Name, Outcome, Class, Worker, Host          string
	Queued, Wait, Pending, Ran, Total, Job, Req, Used string
	Error                                             string
	Deps                                              string
}

func outcomeClass(o string) string {
	switch o {
	case "ran", "took over":
		return "ran"
	case "cached", "completed by another worker":
		return "cached"
	case "failed":
		return "failed"
	case "skipped (dependency failed)", "interrupted", "unfinished":
		return "skipped"
	}
	return "other"
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func buildView(rec *Record) *view {
	v := &view{R: rec}
	if !rec.Finished.IsZero() {
		v.Duration = fmtDur(rec.Finished.Sub(rec.Started))
	}
	n := map[string]int{}
	var order []string
	for _, s := range rec.Steps {
		if n[s.Outcome] == 0 {
			order = append(order, s.Outcome)
		}
		n[s.Outcome]++
	}
	for _, o := range order {
		v.Counts = append(v.Counts, count{o, n[o], outcomeClass(o)})
	}
	for _, s := range rec.Steps {
		r := row{Step: display(rec, &s), Name: s.Name, Outcome: s.Outcome, Class: outcomeClass(s.Outcome), Worker: s.Worker, Host: s.Host,
			Error: s.Error, Deps: strings.Join(s.Deps, ", ")}
		if q := queueStart(&s); !q.IsZero() {
			r.Queued = q.Sub(rec.Started).Round(time.Millisecond).String()
		}
		if !s.Waiting.IsZero() {
			to := s.Finished
			if !s.Started.IsZero() {
				to = s.Started
			}
			r.Wait = fmtDur(to.Sub(s.Waiting))
		}
		if !s.Started.IsZero() {
			r.Ran = fmtDur(time.Duration(s.DurationS * float64(time.Second)))
		}
		if run := jobRunning(&s); !run.IsZero() {
			r.Pending = fmtDur(run.Sub(s.Started))
			r.Ran = fmtDur(s.Finished.Sub(run))
		}
		if !s.Finished.IsZero() && !begin(&s).IsZero() {
			r.Total = fmtDur(s.Finished.Sub(begin(&s)))
		}
		if j := s.Job; j != nil {
			r.Job = j.Cluster + ":" + j.Name
			if len(j.IDs) > 0 {
				r.Job += " (" + strings.Join(j.IDs, ", ") + ")"
			}
			if j.State != "" {
				r.Job += " " + j.State
			}
			if j.Log != "" {
				r.Job += "; log " + j.Log
			}
		}
		if res := s.Resources; res != nil {
			if q := res.Requested; q != nil {
				parts := []string{fmt.Sprintf("%d CPU", q.CPUs)}
				if q.MemoryBytes > 0 {
					parts = append(parts, fmtBytes(q.MemoryBytes))
				}
				if q.Device != "" {
					parts = append(parts, q.Device)
				}
				if q.Replicas > 1 {
					parts = append(parts, fmt.Sprintf("×%d replicas", q.Replicas))
				}
				r.Req = strings.Join(parts, ", ")
			}
			if u := res.Used; u != nil {
				r.Used = fmt.Sprintf("peak %s, CPU %s user + %s sys (%s)", fmtBytes(u.MaxRSSBytes),
					fmtDur(time.Duration(u.CPUUserS*float64(time.Second))), fmtDur(time.Duration(u.CPUSystemS*float64(time.Second))), u.Source)
			} else if res.UsedNote != "" {
				r.Used = res.UsedNote
			}
		}
		v.Rows = append(v.Rows, r)
		if s.Outcome == "failed" {
			v.Failures = append(v.Failures, r)
		}
	}
	v.Timeline = timeline(rec)
	return v
}

// timeline draws the run as an SVG: a lane per worker, a row per step slot
// within it, and per step a grey bar while queued, an amber one while it
// waited for another worker and one coloured by outcome while it ran; a
// diamond marks a step that did not run here (cached, skipped).
func timeline(rec *Record) template.HTML {
	workers, lanes, rows := placeSteps(rec, false)
	const (
		labelW = 230.0
		plotW  = 900.0
		rowH   = 22.0
		headH  = 20.0
		axisH  = 28.0
	)
	o := rec.Started
	endT := rec.Finished
	for i := range rec.Steps {
		if e := end(&rec.Steps[i]); e.After(endT) {
			endT = e
		}
	}
	total := endT.Sub(o)
	if total <= 0 {
		total = time.Second
	}
	x := func(t time.Time) float64 {
		if t.Before(o) {
			t = o
		}
		return labelW + plotW*float64(t.Sub(o))/float64(total)
	}
	top := map[string]float64{}
	y := axisH
	for _, w := range workers {
		top[w] = y + headH
		y += headH + rowH*float64(rows[w]) + 6
	}
	height := y + 4
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="run timeline">`,
		labelW+plotW+20, height, labelW+plotW+20, height)
	// Axis: about 8 ticks at round intervals.
	step := niceStep(total / 8)
	for t := time.Duration(0); t <= total; t += step {
		xx := labelW + plotW*float64(t)/float64(total)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" class="grid"/>`, xx, axisH-6, xx, height)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick">%s</text>`, xx, axisH-10, template.HTMLEscapeString(fmtDur(t)))
	}
	for _, w := range workers {
		fmt.Fprintf(&b, `<text x="4" y="%.1f" class="worker">%s</text>`, top[w]-6, template.HTMLEscapeString(w))
		fmt.Fprintf(&b, `<line x1="0" y1="%.1f" x2="%.1f" y2="%.1f" class="lane"/>`, top[w]-headH+2, labelW+plotW+20, top[w]-headH+2)
	}
	for i := range rec.Steps {
		s := &rec.Steps[i]
		yy := top[lanes[i].worker] + rowH*float64(lanes[i].row)
		title := template.HTMLEscapeString(stepTitle(s, o))
		fmt.Fprintf(&b, `<g><title>%s</title>`, title)
		fmt.Fprintf(&b, `<text x="14" y="%.1f" class="label">%s</text>`, yy+rowH-7, template.HTMLEscapeString(shorten(display(rec, s), 32)))
		bar := func(from, to time.Time, class string) {
			if from.IsZero() || to.IsZero() || to.Before(from) {
				return
			}
			w := max(x(to)-x(from), 1.5)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="2" class="%s"/>`, x(from), yy+3, w, rowH-6, class)
		}
		queueEnd := s.Started
		if !s.Waiting.IsZero() {
			queueEnd = s.Waiting
		}
		if queueEnd.IsZero() {
			queueEnd = s.Finished
		}
		if q := queueStart(s); !q.IsZero() {
			bar(q, queueEnd, "b-queue")
		}
		if !s.Waiting.IsZero() {
			wend := s.Finished
			if !s.Started.IsZero() {
				wend = s.Started
			}
			bar(s.Waiting, wend, "b-wait")
		}
		if run := jobRunning(s); !run.IsZero() {
			bar(s.Started, run, "b-pending")
			bar(run, s.Finished, "b-"+outcomeClass(s.Outcome))
		} else if !s.Started.IsZero() {
			bar(s.Started, s.Finished, "b-"+outcomeClass(s.Outcome))
		} else if !s.Finished.IsZero() {
			cx, cy := x(s.Finished), yy+rowH/2
			fmt.Fprintf(&b, `<path d="M%.1f %.1fl6 6-6 6-6-6z" class="b-%s"/>`, cx, cy-6, outcomeClass(s.Outcome))
		}
		b.WriteString(`</g>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built from escaped parts above
}

// jobRunning returns when a remote step's job began running, if it is
// known and within the step's span; else the zero time.
func jobRunning(s *Step) time.Time {
	if s.Job == nil || s.Job.Running.IsZero() || s.Started.IsZero() || s.Job.Running.Before(s.Started) || s.Job.Running.After(s.Finished) {
		return time.Time{}
	}
	return s.Job.Running
}

// display names a step as status lists it: its output directory under the
// run's prefix (for typed steps, NAME-HASH6), else its ID.
func display(rec *Record, s *Step) string {
	if root := strings.TrimSuffix(rec.Prefix, "/") + "/"; strings.HasPrefix(s.Path, root) {
		return strings.TrimPrefix(s.Path, root)
	}
	return s.Step
}

func stepTitle(s *Step, o time.Time) string {
	parts := []string{s.Step, s.Outcome}
	if s.Worker != "" {
		parts = append(parts, "worker "+s.Worker)
	}
	for _, t := range []struct {
		n string
		t time.Time
	}{{"ready", s.Ready}, {"queued", s.Queued}, {"waiting", s.Waiting}, {"started", s.Started}, {"finished", s.Finished}} {
		if !t.t.IsZero() {
			parts = append(parts, fmt.Sprintf("%s at +%s", t.n, t.t.Sub(o).Round(time.Millisecond)))
		}
	}
	if s.Error != "" {
		parts = append(parts, s.Error)
	}
	return strings.Join(parts, "\n")
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// niceStep rounds d up to 1, 2 or 5 times a power of ten of a unit.
func niceStep(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Millisecond
	}
	for _, unit := range []time.Duration{time.Millisecond, time.Second, time.Minute, time.Hour} {
		for _, m := range []time.Duration{1, 2, 5, 10, 15, 20, 30, 50, 100, 200, 500} {
			if unit*m >= d && (unit != time.Millisecond || m <= 500) {
				if unit == time.Second && m > 30 || unit == time.Minute && m > 30 {
					continue
				}
				return unit * m
			}
		}
	}
	return d
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cairn run {{.R.RunID}}{{if .R.Program}} of {{.R.Program}}{{end}}: {{.R.Outcome}}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.meta{color:#555;margin:0 0 12px}.meta code{font-size:12px}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff}
.o-succeeded{background:#2e7d32}.o-failed,.o-error,.o-invalid{background:#c62828}.o-interrupted{background:#ef6c00}
.counts span{display:inline-block;margin-right:12px}.dot{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:middle}
.legend span{margin-right:14px;font-size:12px;color:#444}
svg.timeline{border:1px solid #ddd;border-radius:4px;background:#fafbfc;max-width:100%;height:auto}
.grid{stroke:#e3e6ea}.lane{stroke:#c9ced6}.tick{font-size:10px;fill:#777;text-anchor:middle}
.worker{font-size:11px;font-weight:600;fill:#333}.label{font-size:11px;fill:#222;font-family:ui-monospace,monospace}
.b-queue{fill:#b0b8c4}.b-pending{fill:#b39ddb}.b-wait{fill:#f9a825}.b-ran{fill:#1e88e5}.b-cached{fill:#66bb6a}.b-failed{fill:#e53935}.b-skipped{fill:#9e9e9e}.b-other{fill:#8e24aa}
.c-ran{background:#1e88e5}.c-cached{background:#66bb6a}.c-failed{background:#e53935}.c-skipped{background:#9e9e9e}.c-other{background:#8e24aa}.c-queue{background:#b0b8c4}.c-pending{background:#b39ddb}.c-wait{background:#f9a825}
table{border-collapse:collapse;font-size:12px;width:100%}th,td{border-bottom:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;position:sticky;top:0}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td code{font-size:11px}tr.failed td{background:#fdecea}
pre{background:#f6f8fa;border:1px solid #e5e7eb;padding:8px;white-space:pre-wrap;font-size:12px}
</style></head><body>
<h1>cairn run {{if .R.Program}}of <code>{{.R.Program}}</code> {{end}}<span class="badge o-{{.R.Outcome}}">{{.R.Outcome}}</span></h1>
<p class="meta">run <code>{{.R.RunID}}</code> · prefix <code>{{.R.Prefix}}</code> · runner <code>{{.R.Runner}}</code> on {{.R.Host}}<br>
started {{.R.Started.Format "2006-01-02 15:04:05.000 MST"}}{{if .Duration}} · took {{.Duration}}{{end}} · {{len .R.Steps}} step(s)</p>
<p class="counts">{{range .Counts}}<span><i class="dot c-{{.Class}}"></i>{{.N}} {{.Outcome}}</span>{{end}}</p>
{{if .R.Error}}<pre class="error">{{.R.Error}}</pre>{{end}}
<h2>Timeline</h2>
<p class="legend"><span><i class="dot c-queue"></i>queued (ready: waiting for a slot, the cache check, the lease)</span><span><i class="dot c-pending"></i>job pending in the cluster's queue</span><span><i class="dot c-wait"></i>waiting for another worker</span><span><i class="dot c-ran"></i>ran</span><span><i class="dot c-failed"></i>failed</span><span><i class="dot c-cached"></i>cached / done elsewhere (◆: not run here)</span><span><i class="dot c-skipped"></i>skipped</span></p>
{{.Timeline}}
<h2>Steps</h2>
<table><thead><tr><th>step</th><th>outcome</th><th>worker</th><th>host</th><th>ready at</th><th>waited</th><th>in cluster queue</th><th>ran</th><th>total</th><th>job</th><th>requested</th><th>used</th></tr></thead><tbody>
{{range .Rows}}<tr class="{{.Class}}"><td><code>{{.Step}}</code>{{if .Deps}}<br><small>after {{.Deps}}</small>{{end}}</td><td><i class="dot c-{{.Class}}"></i>{{.Outcome}}</td><td><code>{{.Worker}}</code></td><td>{{.Host}}</td><td class="num">{{if .Queued}}+{{.Queued}}{{end}}</td><td class="num">{{.Wait}}</td><td class="num">{{.Pending}}</td><td class="num">{{.Ran}}</td><td class="num">{{.Total}}</td><td>{{.Job}}</td><td>{{.Req}}</td><td>{{.Used}}</td></tr>
{{end}}</tbody></table>
{{if .Failures}}<h2>Failures</h2>{{range .Failures}}<h3><code>{{.Step}}</code></h3><pre>{{.Error}}</pre>{{end}}{{end}}
<p class="meta"><small>record format {{.R.Format}} · written by cairn</small></p>
</body></html>
`))
