package explain_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"example.com/cairn/internal/explain"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

func TestDiff(t *testing.T) {
	dec := func(s string) any {
		v, err := explain.Decode([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		old, new string
		want     []string
	}{
		{`{"lr": 0.001}`, `{"lr": 0.002}`, []string{"attrs.lr 0.001 → 0.002"}},
		{`{"lr": 1e-05}`, `{"lr": 0.00001}`, nil}, // Python and Go spell numbers differently
		{`{"a": 1, "b": {"c": "x"}}`, `{"a": 1, "b": {"c": "y"}, "d": true}`,
			[]string{`attrs.b.c "x" → "y"`, "attrs.d (absent) → true"}},
		{`{"l": [1, 2]}`, `{"l": [1, 3]}`, []string{"attrs.l[1] 2 → 3"}},
		{`{"l": [1, 2]}`, `{"l": [1]}`, []string{"attrs.l [1,2] → [1]"}},
		{`{"x": 1}`, `{}`, []string{"attrs.x 1 → (absent)"}},
		{`{"x": {"y": 1}}`, `{"x": 2}`, []string{`attrs.x {"y":1} → 2`}},
	} {
		var got []string
		for _, c := range explain.Diff("attrs", dec(tc.old), dec(tc.new)) {
			got = append(got, c.String())
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("Diff(%s, %s) = %q, want %q", tc.old, tc.new, got, tc.want)
		}
	}
}

func TestHost(t *testing.T) {
	for in, want := range map[string]string{
		"node-7-1234-ab12cd.3":  "node-7",
		"host-99-ffffff":        "host",
		"(the previous holder)": "",
	} {
		if got := explain.Host(in); got != want {
			t.Errorf("Host(%q) = %q, want %q", in, got, want)
		}
	}
}

// fixture is a prefix in memory with outputs written the way runners write
// them.
type fixture struct {
	t       *testing.T
	storage *store.URLMux
	ctx     context.Context
}

func newFixture(t *testing.T) *fixture {
	mux := new(store.URLMux)
	mux.Register("mem", memstore.New())
	return &fixture{t: t, storage: mux, ctx: t.Context()}
}

func (f *fixture) bucket(p string) *store.Bucket {
	b, err := f.storage.OpenBucket(f.ctx, p)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// output writes an output at p with a record of name, config and deps, and
// a status (none if "").
func (f *fixture) output(p, name, config string, deps []string, status string) {
	b := f.bucket(p)
	info := map[string]any{"name": name, "config": json.RawMessage(config), "dependencies": deps, "output_path": p}
	if err := statusfile.WriteInfo(f.ctx, b, info); err != nil {
		f.t.Fatal(err)
	}
	if status != "" {
		if err := statusfile.WriteStatus(f.ctx, b, status); err != nil {
			f.t.Fatal(err)
		}
	}
}

func step(id, name, prefix, config string, deps ...*explain.Step) *explain.Step {
	c, _ := explain.Decode([]byte(config))
	return &explain.Step{ID: id, Name: name, Path: prefix + "/" + id, Config: c, ConfigKnown: true, Deps: deps,
		Plan: explain.Plan{Outcome: explain.PlanWouldRun}}
}

func TestReasons(t *testing.T) {
	f := newFixture(t)
	const pre = "mem://reasons/p"
	// An earlier run: tok (vocab 400) <- train (lr 0.001) <- eval.
	f.output(pre+"/tok_00000001", "tok", `{"vocab": 400}`, nil, statusfile.Success)
	f.output(pre+"/train_00000002", "train", `{"lr": 0.001}`, []string{pre + "/tok_00000001"}, statusfile.Success)
	f.output(pre+"/eval_00000003", "eval", `{}`, []string{pre + "/train_00000002"}, statusfile.Success)
	f.output(pre+"/ingest_0000000a", "ingest", `{}`, nil, statusfile.Success)

	// Now: vocab 500 changes tok; train and eval change upstream; a new
	// step; a cached one.
	ingest := step("ingest_0000000a", "ingest", pre, `{}`)
	ingest.Plan.Outcome = explain.PlanCached
	tok := step("tok_00000011", "tok", pre, `{"vocab": 500}`, ingest)
	train := step("train_00000012", "train", pre, `{"lr": 0.001}`, tok)
	eval := step("eval_00000013", "eval", pre, `{}`, train)
	fresh := step("fresh_00000014", "fresh", pre, `{"x": 1}`)
	lr := step("train_00000015", "train", pre, `{"lr": 0.002}`, step("tok_00000001", "tok", pre, `{"vocab": 400}`))
	lr.Deps[0].Plan.Outcome = explain.PlanCached
	lr.Deps[0].Path = pre + "/tok_00000001"
	lr.Remote = "cluster slurm, 4 CPU"

	x := &explain.Explainer{Storage: f.storage}
	all := []*explain.Step{eval, train, tok, ingest, fresh, lr, lr.Deps[0]}
	got := x.Explain(f.ctx, all)
	want := map[*explain.Step]string{
		ingest: "cached since ",
		tok:    "changed: attrs.vocab 400 → 500",
		train:  "changed upstream: tok_00000011 (attrs.vocab 400 → 500)",
		eval:   "changed upstream: tok_00000011 (attrs.vocab 400 → 500)",
		fresh:  "new: no earlier output of this step",
		lr:     "changed: attrs.lr 0.001 → 0.002; remote: cluster slurm, 4 CPU",
	}
	for s, w := range want {
		if r := got[s].String(); !strings.HasPrefix(r, w) {
			t.Errorf("%s: reason %q, want %q", s.ID, r, w)
		}
	}
	if got[tok].Earlier != pre+"/tok_00000001" {
		t.Errorf("tok compared with %q", got[tok].Earlier)
	}

	// Stable order: dependencies first, then by ID.
	var order []string
	for _, s := range explain.Order(all) {
		order = append(order, s.ID)
	}
	if w := "fresh_00000014 ingest_0000000a tok_00000001 tok_00000011 train_00000012 eval_00000013 train_00000015"; strings.Join(order, " ") != w {
		t.Errorf("order %q, want %q", order, w)
	}
}

func TestReasonsFromStatus(t *testing.T) {
	f := newFixture(t)
	const pre = "mem://status/p"
	ctx := f.ctx

	// Failed before, with the recorded error.
	failed := step("f_00000001", "f", pre, `{}`)
	failed.Plan.Outcome = explain.PlanFailedBefore
	b := f.bucket(failed.Path)
	if err := statusfile.WriteStatus(ctx, b, statusfile.Failed); err != nil {
		t.Fatal(err)
	}
	if err := statusfile.WriteFailure(ctx, b, statusfile.Failure{Error: "boom: disk full", WorkerID: "h-1-abcdef.1", Time: time.Now(), Stack: "goroutine 1"}); err != nil {
		t.Fatal(err)
	}

	// An attempt that never finished, its lease still there.
	unfinished := step("u_00000001", "u", pre, `{}`)
	ub := f.bucket(unfinished.Path)
	if _, err := statusfile.WriteStatusIf(ctx, ub, statusfile.RunningRecord("h-2-abcdef.4", time.Now()), store.IfAbsent()); err != nil {
		t.Fatal(err)
	}
	if _, err := ub.Write(ctx, statusfile.LockKey, lease.Record{WorkerID: "h-2-abcdef.4", Timestamp: time.Now().Add(-time.Hour)}.Marshal()); err != nil {
		t.Fatal(err)
	}

	elsewhere := step("e_00000001", "e", pre, `{}`)
	elsewhere.Plan = explain.Plan{Outcome: explain.PlanRunningElsewhere, Holder: "gpu-node-3-77-a1b2c3.2", LeaseAge: 12 * time.Second}

	forced := step("c_00000001", "c", pre, `{}`)
	forced.Plan = explain.Plan{Outcome: explain.PlanWouldRun, Forced: true}

	x := &explain.Explainer{Storage: f.storage}
	got := x.Explain(ctx, []*explain.Step{failed, unfinished, elsewhere, forced})
	for s, w := range map[*explain.Step]string{
		failed:     "failed before at ",
		unfinished: "unfinished: an earlier attempt did not finish (last attempt by h-2-abcdef.4)",
		elsewhere:  "running elsewhere: held by gpu-node-3-77-a1b2c3.2 on gpu-node-3, last refresh 12s ago by its clock",
		forced:     "forced (--force); without it: new: no earlier output of this step",
	} {
		if r := got[s].String(); !strings.HasPrefix(r, w) {
			t.Errorf("%s: reason %q, want prefix %q", s.ID, r, w)
		}
	}
	if r := got[failed]; r.Error != "boom: disk full" || r.By != "h-1-abcdef.1" || !r.Stack {
		t.Errorf("failed reason %+v", r)
	}
	data, err := json.Marshal(got[elsewhere])
	if err != nil || !strings.Contains(string(data), `"kind":"running elsewhere"`) || !strings.Contains(string(data), `"text":"running elsewhere: held by`) {
		t.Errorf("JSON %s, %v", data, err)
	}
}

// Marin and package recipe record versioned fields under "version";
// explain diffs those by name, and matches NAME-HASH6 directories.
func TestVersionedRecords(t *testing.T) {
	f := newFixture(t)
	const pre = "mem://marin/p"
	b := f.bucket(pre + "/tokenize-abc123")
	info := `{"name": "tokenize", "config": {"vocab_size": 400, "input": "/x"}, "version": {"name": "tokenize", "config": {"vocab_size": 400}, "dependencies": []}, "dependencies": [], "output_path": "` + pre + `/tokenize-abc123"}`
	if _, err := b.Write(f.ctx, statusfile.InfoKey, []byte(info)); err != nil {
		t.Fatal(err)
	}
	s := &explain.Step{ID: "tokenize-def456", Name: "tokenize", Path: pre + "/tokenize-def456",
		Config: map[string]any{"vocab_size": json.Number("500")}, ConfigKnown: true, Versioned: true,
		Plan: explain.Plan{Outcome: explain.PlanWouldRun}}
	x := &explain.Explainer{Storage: f.storage}
	if got := x.Reason(f.ctx, s).String(); got != "changed: vocab_size 400 → 500" {
		t.Errorf("reason %q", got)
	}
}
