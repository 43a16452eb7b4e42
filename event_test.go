package cairn_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
)

// eventLog records a run's events.
type eventLog struct {
	mu     sync.Mutex
	events []cairn.Event
}

func (l *eventLog) add(e cairn.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) kinds(step string) []cairn.EventKind {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ks []cairn.EventKind
	for _, e := range l.events {
		if e.Step == step {
			ks = append(ks, e.Kind)
		}
	}
	return ks
}

func (l *eventLog) all() []cairn.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]cairn.Event(nil), l.events...)
}

// A step's events tell a consumer that it started running, with which
// worker, and a "step started" line is logged with the worker.
func TestEventsReportRunningWithWorker(t *testing.T) {
	st := cairntest.NewStorage(t)
	var ev eventLog
	var logs bytes.Buffer
	opts := st.Options()
	opts.OnEvent = ev.add
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := &cairn.Step{Name: "a", Func: func(ctx context.Context, out *cairn.Output) (any, error) { return nil, nil }}
	mustRun(t, st, opts, s)
	id := mustID(t, s)
	want := []cairn.EventKind{cairn.StepStarted, cairn.StepRunning, cairn.StepFinished}
	if got := ev.kinds(id); !equalKinds(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	var worker string
	for _, e := range ev.all() {
		if e.Kind == cairn.StepRunning {
			worker = e.Worker
		}
	}
	if worker == "" || cairn.HolderHost(worker) == "" {
		t.Errorf("StepRunning worker %q: want HOST-PID-RANDOM.N", worker)
	}
	if !strings.Contains(logs.String(), "msg=\"step started\" step="+id+" worker="+worker) {
		t.Errorf("no step started line with the worker in:\n%s", logs.String())
	}

	// A second run: cached, never running.
	ev = eventLog{}
	mustRun(t, st, opts, s)
	if got, want := ev.kinds(id), []cairn.EventKind{cairn.StepStarted, cairn.StepFinished}; !equalKinds(got, want) {
		t.Errorf("cached run: events %v, want %v", got, want)
	}
}

func equalKinds(a, b []cairn.EventKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A step held by another worker is reported waiting on every poll, with
// the holder, its host and the time until its lease may be taken over.
func TestEventsReportWaitingOnEveryPoll(t *testing.T) {
	st := cairntest.NewStorage(t)
	s := &cairn.Step{Name: "busy", Func: func(ctx context.Context, out *cairn.Output) (any, error) { return nil, nil }}
	b := st.StepBucket(t, s)
	holder := "node-7.example-4242-a1b2c3.1"
	l, err := lease.Acquire(t.Context(), b, statusfile.LockKey, holder, &lease.Options{Interval: 10 * time.Millisecond, StaleAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	var (
		mu      sync.Mutex
		waits   []cairn.Event
		enough  = make(chan struct{})
		release sync.Once
	)
	opts := st.Options()
	opts.PollInterval = time.Millisecond
	opts.OnEvent = func(e cairn.Event) {
		if e.Kind != cairn.StepWaiting {
			return
		}
		mu.Lock()
		waits = append(waits, e)
		if len(waits) == 3 {
			release.Do(func() { close(enough) })
		}
		mu.Unlock()
	}
	done := make(chan error, 1)
	go func() {
		_, err := cairn.Run(t.Context(), cairn.Steps(s), opts)
		done <- err
	}()
	<-enough
	if err := l.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, e := range waits[:3] {
		if e.Holder != holder || cairn.HolderHost(e.Holder) != "node-7.example" {
			t.Errorf("waiting on %q (host %q), want %q (host node-7.example)", e.Holder, cairn.HolderHost(e.Holder), holder)
		}
		if e.StaleIn <= 0 || e.StaleIn > time.Hour {
			t.Errorf("StaleIn = %s, want in (0, 1h]", e.StaleIn)
		}
	}
}

func TestHolderHost(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"host-12-abcdef.3", "host"},
		{"my-laptop.local-999-0a1b2c.12", "my-laptop.local"},
		{"host-12-abcdef", "host"},
		{"host.example.org-12-abcdef", "host.example.org"},
		{"custom-name-abcdef.1", ""}, // a RunOptions.WorkerID without a pid
		{"elsewhere-7", ""},
		{"", ""},
	} {
		if got := cairn.HolderHost(tc.id); got != tc.want {
			t.Errorf("HolderHost(%q) = %q, want %q", tc.id, got, tc.want)
		}
	}
}

// With StopGrace, a cancelled run does not wait for a step that ignores
// its context: the step ends Interrupted, its lease released and its
// status restored, so the next run starts it at once.
func TestStopGraceAbandonsAStepIgnoringItsContext(t *testing.T) {
	st := cairntest.NewStorage(t)
	started := make(chan struct{})
	unblock := make(chan struct{})
	defer close(unblock)
	s := &cairn.Step{Name: "stubborn", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		close(started)
		<-unblock // ignores ctx
		return nil, nil
	}}
	opts := st.Options()
	opts.StopGrace = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-started
		cancel()
	}()
	r, err := cairn.Run(ctx, cairn.Steps(s), opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if res, _ := r.Lookup(mustID(t, s)); res.Outcome != cairn.Interrupted {
		t.Errorf("outcome %v, want interrupted", res.Outcome)
	}
	if got := readStatus(t, st, s); got != "" {
		t.Errorf("status %q after the interrupt, want none (restored)", got)
	}
	if _, held, err := lease.Inspect(t.Context(), st.StepBucket(t, s), statusfile.LockKey); err != nil || held {
		t.Errorf("lease still held (%v, %v) after the interrupt", held, err)
	}
}
