package runrecord

import (
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TraceEvent is one event of the Chrome trace-event format (the "JSON
// object format" that chrome://tracing and Perfetto open).
type TraceEvent struct {
	Name  string         `json:"name"`
	Cat   string         `json:"cat,omitempty"`
	Ph    string         `json:"ph"`
	TS    float64        `json:"ts"` // microseconds since the run started
	Dur   *float64       `json:"dur,omitempty"`
	PID   int            `json:"pid"`
	TID   int            `json:"tid"`
	Scope string         `json:"s,omitempty"`
	Args  map[string]any `json:"args,omitempty"`
}

// Trace is a trace-event file.
type Trace struct {
	TraceEvents     []TraceEvent `json:"traceEvents"`
	DisplayTimeUnit string       `json:"displayTimeUnit"`
	OtherData       any          `json:"otherData,omitempty"`
}

// lane is a step placed on a worker's row.
type lane struct {
	worker string // "" for steps no worker ran (cached, skipped)
	row    int    // the row within the worker, so that bars never overlap
}

// laneOf names where a step ran: the cluster and host of a remote step's
// job, else the runner that executed it (its worker id without the
// attempt's ".N"), marked as this run's runner or another one.
func laneOf(rec *Record, s *Step) string {
	switch {
	case s.Job != nil && s.Host != "":
		return s.Job.Cluster + " job on " + s.Host
	case s.Job != nil:
		return s.Job.Cluster + " job"
	case s.Worker == "":
		return "(not run here)"
	}
	w := s.Worker
	if i := strings.LastIndexByte(w, '.'); i > 0 && strings.Trim(w[i+1:], "0123456789") == "" {
		w = w[:i]
	}
	if w == rec.Runner {
		return w + " (this runner)"
	}
	return w + " (another runner)"
}

// placeSteps assigns each step (by index in rec.Steps) a lane (laneOf) and
// a row within it. If packed, steps of one lane that do not overlap in time
// share a row (trace threads); else each step has its own row. Lanes are
// returned in order of first appearance in time.
func placeSteps(rec *Record, packed bool) (workers []string, lanes []lane, rows map[string]int) {
	lanes = make([]lane, len(rec.Steps))
	rows = make(map[string]int)
	ends := make(map[string][]time.Time) // per worker, per row: when it frees
	idx := make([]int, len(rec.Steps))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return begin(&rec.Steps[a]).Compare(begin(&rec.Steps[b])) })
	for _, i := range idx {
		s := &rec.Steps[i]
		w := laneOf(rec, s)
		if _, ok := ends[w]; !ok {
			workers = append(workers, w)
			ends[w] = nil
		}
		b, e := begin(s), end(s)
		row := -1
		for r, free := range ends[w] {
			if packed && !free.After(b) {
				row = r
				break
			}
		}
		if row < 0 {
			row = len(ends[w])
			ends[w] = append(ends[w], time.Time{})
		}
		ends[w][row] = e
		lanes[i] = lane{w, row}
		rows[w] = max(rows[w], row+1)
	}
	return workers, lanes, rows
}

// queueStart is when a step began to wait for this runner: when it was
// ready, else when it was taken up.
func queueStart(s *Step) time.Time {
	if !s.Ready.IsZero() {
		return s.Ready
	}
	return s.Queued
}

// begin is when a step's first bar starts.
func begin(s *Step) time.Time {
	for _, t := range []time.Time{queueStart(s), s.Waiting, s.Started} {
		if !t.IsZero() {
			return t
		}
	}
	return s.Finished
}

// end is when a step's last bar ends.
func end(s *Step) time.Time {
	if s.Finished.IsZero() {
		return begin(s)
	}
	return s.Finished
}

func micros(t, origin time.Time) float64 {
	return float64(t.Sub(origin).Nanoseconds()) / 1e3
}

// BuildTrace returns rec as a trace: one process per worker (pid), one
// thread per row of that worker's steps (tid), a complete ("X") event per
// step phase — "queue" from queued to started (or to the wait), "wait"
// while another worker held the step, "run" while it ran — and an instant
// ("i") event for steps that did not run here and for the run's end.
func BuildTrace(rec *Record) *Trace {
	workers, lanes, rows := placeSteps(rec, true)
	pid := make(map[string]int)
	t := &Trace{DisplayTimeUnit: "ms", OtherData: map[string]any{
		"run_id": rec.RunID, "program": rec.Program, "prefix": rec.Prefix, "outcome": rec.Outcome, "format": rec.Format}}
	t.TraceEvents = []TraceEvent{}
	for i, w := range workers {
		pid[w] = i + 1
		t.TraceEvents = append(t.TraceEvents, TraceEvent{Name: "process_name", Ph: "M", PID: i + 1, Args: map[string]any{"name": w}})
		for r := range rows[w] {
			t.TraceEvents = append(t.TraceEvents, TraceEvent{Name: "thread_name", Ph: "M", PID: i + 1, TID: r + 1, Args: map[string]any{"name": "slot " + strconv.Itoa(r+1)}})
		}
	}
	o := rec.Started
	span := func(name, cat string, from, to time.Time, p, tid int, args map[string]any) {
		if from.IsZero() || to.IsZero() || to.Before(from) {
			return
		}
		d := micros(to, from)
		t.TraceEvents = append(t.TraceEvents, TraceEvent{Name: name, Cat: cat, Ph: "X", TS: micros(from, o), Dur: &d, PID: p, TID: tid, Args: args})
	}
	for i := range rec.Steps {
		s := &rec.Steps[i]
		p, tid := pid[lanes[i].worker], lanes[i].row+1
		name := display(rec, s)
		args := map[string]any{"step": s.Step, "outcome": s.Outcome, "path": s.Path}
		if s.Error != "" {
			args["error"] = s.Error
		}
		if s.Job != nil {
			args["job"] = s.Job.Cluster + ":" + s.Job.Name
			args["job_ids"] = s.Job.IDs
		}
		ran := !s.Started.IsZero()
		queueEnd := s.Started
		if !s.Waiting.IsZero() {
			queueEnd = s.Waiting
		}
		if queueEnd.IsZero() {
			queueEnd = s.Finished
		}
		if q := queueStart(s); !q.IsZero() && queueEnd.Sub(q) > 0 {
			span(name+" (queued)", "queue", q, queueEnd, p, tid, map[string]any{"step": s.Step})
		}
		if !s.Waiting.IsZero() {
			wend := s.Finished
			if ran {
				wend = s.Started
			}
			span(name+" (waiting for "+s.Worker+")", "wait", s.Waiting, wend, p, tid, map[string]any{"step": s.Step, "holder": s.Worker})
		}
		if run := jobRunning(s); !run.IsZero() {
			span(name+" (pending in the cluster)", "pending", s.Started, run, p, tid, map[string]any{"step": s.Step, "job": args["job"]})
			span(name, "run", run, s.Finished, p, tid, args)
		} else if ran {
			span(name, "run", s.Started, s.Finished, p, tid, args)
		} else if !s.Finished.IsZero() {
			t.TraceEvents = append(t.TraceEvents, TraceEvent{Name: name + " (" + s.Outcome + ")", Cat: "step", Ph: "i", Scope: "t", TS: micros(s.Finished, o), PID: p, TID: tid, Args: args})
		}
	}
	if !rec.Finished.IsZero() {
		t.TraceEvents = append(t.TraceEvents, TraceEvent{Name: "run " + rec.Outcome, Cat: "run", Ph: "i", Scope: "g", TS: micros(rec.Finished, o), PID: 1, TID: 1})
	}
	return t
}

// WriteTrace writes rec as a Chrome trace-event JSON file.
func WriteTrace(w io.Writer, rec *Record) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(BuildTrace(rec))
}
