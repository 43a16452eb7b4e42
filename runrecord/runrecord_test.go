package runrecord_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/runrecord"
)

// realRun runs a small pipeline for real (in memory): a, then b and c in
// parallel after a, then d after b, which fails; e after d is skipped.
// Steps sleep a little so that their times are distinct.
func realRun(t *testing.T) (*cairntest.Storage, *runrecord.Record) {
	t.Helper()
	st := cairntest.NewStorage(t)
	sleep := func(d time.Duration, err error) cairn.Func {
		return func(ctx context.Context, out *cairn.Output) (any, error) {
			time.Sleep(d)
			return nil, err
		}
	}
	a := &cairn.Step{Name: "a", Func: sleep(20*time.Millisecond, nil)}
	b := &cairn.Step{Name: "b", Deps: []*cairn.Step{a}, Func: sleep(20*time.Millisecond, nil)}
	c := &cairn.Step{Name: "c", Deps: []*cairn.Step{a}, Func: sleep(10*time.Millisecond, nil)}
	d := &cairn.Step{Name: "d", Deps: []*cairn.Step{b}, Func: sleep(5*time.Millisecond, errors.New("boom"))}
	e := &cairn.Step{Name: "e", Deps: []*cairn.Step{d, c}, Func: sleep(0, nil)}
	opts := st.Options()
	start := time.Now()
	r := runrecord.NewRecorder("demo", opts.Prefix, start)
	r.AddStep(e)
	opts.OnEvent = r.OnEvent
	ctx := context.Background()
	report, err := cairn.Run(ctx, cairn.Steps(e), opts)
	if err == nil {
		t.Fatal("the run succeeded; want d to fail")
	}
	return st, r.Finish(ctx, opts.Storage, report, err, time.Now())
}

func TestRecordOfARealRun(t *testing.T) {
	_, rec := realRun(t)
	if rec.Format != runrecord.Format || rec.Outcome != runrecord.Failed || !strings.Contains(rec.Error, "boom") {
		t.Errorf("format %q outcome %q error %q", rec.Format, rec.Outcome, rec.Error)
	}
	if !regexp.MustCompile(`^\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6}$`).MatchString(rec.RunID) {
		t.Errorf("run id %q", rec.RunID)
	}
	if rec.Host == "" || rec.PID == 0 || rec.Runner == "" {
		t.Errorf("host %q pid %d runner %q", rec.Host, rec.PID, rec.Runner)
	}
	want := map[string]string{"a": "ran", "b": "ran", "c": "ran", "d": "failed", "e": "skipped (dependency failed)"}
	if len(rec.Steps) != len(want) {
		t.Fatalf("%d steps, want %d: %+v", len(rec.Steps), len(want), rec.Steps)
	}
	byName := map[string]runrecord.Step{}
	for _, s := range rec.Steps {
		byName[s.Name] = s
		if s.Outcome != want[s.Name] {
			t.Errorf("%s: outcome %q, want %q", s.Name, s.Outcome, want[s.Name])
		}
		if s.Outcome == "skipped (dependency failed)" {
			if !s.Started.IsZero() || s.Finished.IsZero() || s.Worker != "" {
				t.Errorf("%s: a skipped step has started %v finished %v worker %q", s.Name, s.Started, s.Finished, s.Worker)
			}
			continue
		}
		// Times in order: run start <= queued <= started <= finished <= run end.
		times := []time.Time{rec.Started, s.Queued, s.Started, s.Finished, rec.Finished}
		for i := 1; i < len(times); i++ {
			if times[i].IsZero() || times[i].Before(times[i-1]) {
				t.Errorf("%s: times out of order: run %v, queued %v, started %v, finished %v, run end %v", s.Name, times[0], times[1], times[2], times[3], times[4])
				break
			}
		}
		if got := s.Finished.Sub(s.Started).Seconds(); got != s.DurationS {
			t.Errorf("%s: finished-started = %v, duration_s %v", s.Name, got, s.DurationS)
		}
		if s.Worker != rec.Runner || s.Host != rec.Host {
			t.Errorf("%s: worker %q host %q, want the runner %q on %q", s.Name, s.Worker, s.Host, rec.Runner, rec.Host)
		}
	}
	// Dependencies are recorded and ordered in time.
	if d := byName["d"]; len(d.Deps) != 1 || d.Deps[0] != byName["b"].Step {
		t.Errorf("d.deps = %v", d.Deps)
	}
	if byName["b"].Queued.Before(byName["a"].Finished) {
		t.Errorf("b queued %v before a finished %v", byName["b"].Queued, byName["a"].Finished)
	}
	if byName["d"].Error != "boom" {
		t.Errorf("d.error = %q", byName["d"].Error)
	}
}

func TestWriteReadListLatest(t *testing.T) {
	st, rec := realRun(t)
	ctx := context.Background()
	b := st.Bucket(t, st.Prefix)
	if err := runrecord.Write(ctx, b, rec); err != nil {
		t.Fatal(err)
	}
	older := *rec
	older.RunID = "20000101T000000.000Z-000000"
	older.Program = "other"
	if err := runrecord.Write(ctx, b, &older); err != nil {
		t.Fatal(err)
	}
	// The record lives beside the experiment records.
	if _, _, err := b.Read(ctx, "experiments/.cairn_runs/"+rec.RunID+".json"); err != nil {
		t.Fatal(err)
	}
	ids, err := runrecord.List(ctx, b)
	if err != nil || len(ids) != 2 || ids[0] != older.RunID || ids[1] != rec.RunID {
		t.Fatalf("List = %v, %v", ids, err)
	}
	got, err := runrecord.Read(ctx, b, rec.RunID)
	if err != nil || got.RunID != rec.RunID || len(got.Steps) != len(rec.Steps) || !got.Started.Equal(rec.Started) {
		t.Fatalf("Read = %+v, %v", got, err)
	}
	if l, err := runrecord.Latest(ctx, b, ""); err != nil || l.RunID != rec.RunID {
		t.Errorf("Latest = %v, %v", l, err)
	}
	if l, err := runrecord.Latest(ctx, b, "other"); err != nil || l.RunID != older.RunID {
		t.Errorf("Latest(other) = %v, %v", l, err)
	}
	if _, err := runrecord.Latest(ctx, b, "nobody"); !errors.Is(err, runrecord.ErrNotFound) {
		t.Errorf("Latest(nobody) = %v", err)
	}
	if _, err := runrecord.Read(ctx, b, "../x"); err == nil {
		t.Error("Read accepted a run id with a slash")
	}
	if _, err := runrecord.Decode([]byte(`{"format":"cairn.run/2"}`)); err == nil {
		t.Error("Decode accepted another format")
	}
}

// A golden-ish check of the format: the documented field names.
func TestRecordFields(t *testing.T) {
	_, rec := realRun(t)
	data, err := runrecord.Encode(rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"format", "run_id", "program", "prefix", "host", "pid", "runner", "started", "finished", "outcome", "error", "steps"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, data)
		}
	}
	step := m["steps"].([]any)[0].(map[string]any)
	for _, k := range []string{"step", "name", "path", "outcome", "queued", "started", "finished", "duration_s", "worker", "host"} {
		if _, ok := step[k]; !ok {
			t.Errorf("no %q in step %v", k, step)
		}
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	_, rec := realRun(t)
	var buf bytes.Buffer
	if err := runrecord.WriteHTML(&buf, rec); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "url(", "@import", "src=", "href="} {
		if strings.Contains(page, bad) {
			t.Errorf("the page contains %q: it must load nothing", bad)
		}
	}
	// The only URL is the SVG namespace, which is never fetched.
	if urls := regexp.MustCompile(`https?://[^"\s<]+`).FindAllString(page, -1); len(urls) != 1 || urls[0] != "http://www.w3.org/2000/svg" {
		t.Errorf("URLs in the page: %q", urls)
	}
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || strings.Count(page, "<svg") != 1 || strings.Count(page, "</svg>") != 1 {
		t.Error("want one HTML page with one inline SVG timeline")
	}
	// A bar per step that ran (4: a, b, c, d), coloured by outcome; a
	// diamond for the skipped one; a table row per step.
	if n := strings.Count(page, `class="b-ran"`); n != 3 {
		t.Errorf("%d ran bars, want 3", n)
	}
	if n := strings.Count(page, `class="b-failed"`); n != 1 {
		t.Errorf("%d failed bars, want 1", n)
	}
	if !strings.Contains(page, `<path d="M`) {
		t.Error("no marker for the skipped step")
	}
	if n := strings.Count(page, "<tr class="); n != len(rec.Steps) {
		t.Errorf("%d table rows, want %d", n, len(rec.Steps))
	}
	for _, want := range []string{`class="badge o-failed">failed<`, "boom", rec.RunID, "Timeline", "Failures"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestTraceFormat(t *testing.T) {
	_, rec := realRun(t)
	var buf bytes.Buffer
	if err := runrecord.WriteTrace(&buf, rec); err != nil {
		t.Fatal(err)
	}
	var tr struct {
		TraceEvents []map[string]any `json:"traceEvents"`
	}
	if err := json.Unmarshal(buf.Bytes(), &tr); err != nil {
		t.Fatal(err)
	}
	type slot struct{ pid, tid float64 }
	spans := map[slot][][2]float64{}
	names := map[float64]string{}
	runUS := float64(rec.Finished.Sub(rec.Started).Microseconds())
	ran := 0
	for _, e := range tr.TraceEvents {
		ph, _ := e["ph"].(string)
		pid, okp := e["pid"].(float64)
		tid, okt := e["tid"].(float64)
		ts, okts := e["ts"].(float64)
		if !okp || !okt || !okts || e["name"] == nil {
			t.Fatalf("event without name, pid, tid or ts: %v", e)
		}
		switch ph {
		case "M":
			if e["name"] == "process_name" {
				names[pid] = e["args"].(map[string]any)["name"].(string)
			}
		case "X":
			dur, ok := e["dur"].(float64)
			if !ok || dur < 0 || ts < 0 || ts+dur > runUS+1 {
				t.Errorf("X event outside the run (0..%vµs): ts %v dur %v", runUS, ts, dur)
			}
			spans[slot{pid, tid}] = append(spans[slot{pid, tid}], [2]float64{ts, ts + dur})
			if e["cat"] == "run" {
				ran++
			}
		case "i":
			if s := e["s"]; s != "t" && s != "g" {
				t.Errorf("instant event with scope %v", s)
			}
		default:
			t.Errorf("unexpected phase %q", ph)
		}
	}
	if ran != 4 {
		t.Errorf("%d run spans, want 4", ran)
	}
	if names[1] != rec.Runner+" (this runner)" {
		t.Errorf("process 1 is %q, want the runner %q", names[1], rec.Runner)
	}
	// Spans on one thread never overlap (they would nest wrongly).
	for s, list := range spans {
		for i := range list {
			for j := range i {
				a, b := list[i], list[j]
				if a[0] < b[1]-0.001 && b[0] < a[1]-0.001 {
					t.Errorf("pid %v tid %v: spans %v and %v overlap", s.pid, s.tid, a, b)
				}
			}
		}
	}
}

func TestUsageRoundTrip(t *testing.T) {
	st := cairntest.NewStorage(t)
	ctx := context.Background()
	b := st.Bucket(t, st.Prefix+"/step_12345678")
	now := time.Now().UTC()
	for r := range 2 {
		u := runrecord.Usage{JobID: "local-1-step", Replica: r, Host: "h", MaxRSSBytes: int64(r+1) << 20, CPUUserS: 1, Source: "rusage", Started: now, Ended: now}
		if err := runrecord.WriteUsage(ctx, b, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := runrecord.WriteUsage(ctx, b, runrecord.Usage{JobID: "local-10-step", Replica: 0}); err != nil {
		t.Fatal(err)
	}
	us, err := runrecord.ReadUsage(ctx, b, "local-1-step")
	if err != nil || len(us) != 2 || us[1].MaxRSSBytes != 2<<20 || !us[0].Started.Equal(now) {
		t.Fatalf("ReadUsage = %+v, %v", us, err)
	}
	if err := runrecord.WriteUsage(ctx, b, runrecord.Usage{JobID: "../x"}); err == nil {
		t.Error("WriteUsage accepted a job id with a slash")
	}
}

// With one slot, of two steps ready at once, one waits for the other: its
// record shows it ready when the dependency finished and taken up only
// when the slot freed.
func TestReadyBeforeQueued(t *testing.T) {
	st := cairntest.NewStorage(t)
	nap := func(ctx context.Context, out *cairn.Output) (any, error) {
		time.Sleep(10 * time.Millisecond)
		return nil, nil
	}
	a := &cairn.Step{Name: "a", Func: nap}
	b := &cairn.Step{Name: "b", Deps: []*cairn.Step{a}, Func: nap}
	c := &cairn.Step{Name: "c", Deps: []*cairn.Step{a}, Func: nap}
	opts := st.Options()
	opts.MaxConcurrent = 1
	r := runrecord.NewRecorder("demo", opts.Prefix, time.Now())
	r.AddStep(b)
	r.AddStep(c)
	opts.OnEvent = r.OnEvent
	ctx := context.Background()
	report, err := cairn.Run(ctx, cairn.Steps(b, c), opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := r.Finish(ctx, opts.Storage, report, nil, time.Now())
	by := map[string]runrecord.Step{}
	for _, s := range rec.Steps {
		by[s.Name] = s
	}
	first, second := by["b"], by["c"]
	if second.Queued.Before(first.Queued) {
		first, second = second, first
	}
	for _, s := range []runrecord.Step{first, second} {
		if !s.Ready.Equal(by["a"].Finished) {
			t.Errorf("%s ready at %v, want when a finished (%v)", s.Name, s.Ready, by["a"].Finished)
		}
	}
	if second.Queued.Before(first.Finished) {
		t.Errorf("%s taken up at %v, before %s freed the slot at %v", second.Name, second.Queued, first.Name, first.Finished)
	}
	if !by["a"].Ready.IsZero() {
		t.Errorf("a has no dependencies but a ready time %v", by["a"].Ready)
	}
}
