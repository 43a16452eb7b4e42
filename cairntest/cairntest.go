// Package cairntest provides helpers for testing pipelines, as httptest does
// for HTTP handlers: in-memory storage bound to a test, an event recorder,
// and step functions the test controls.
package cairntest

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"example.com/cairn"
	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

// Storage is in-memory storage for one test: a memstore namespace reachable
// through a mux at mem:// URLs.
type Storage struct {
	// NS is the namespace, for fault injection and direct inspection.
	NS *memstore.Namespace
	// Mux opens "mem://" locations; pass it as RunOptions.Storage.
	Mux *store.URLMux
	// Prefix is a prefix unique to the test, "mem://NAME".
	Prefix string
}

// NewStorage returns fresh in-memory storage.
func NewStorage(t testing.TB) *Storage {
	t.Helper()
	ns := memstore.New()
	mux := new(store.URLMux)
	mux.Register("mem", ns)
	return &Storage{NS: ns, Mux: mux, Prefix: "mem://pipeline"}
}

// Options returns RunOptions using this storage, with small poll intervals
// suited to tests.
func (s *Storage) Options() *cairn.RunOptions {
	return &cairn.RunOptions{Prefix: s.Prefix, Storage: s.Mux, Logger: discardLogger()}
}

// Bucket opens the bucket at location (a path under the namespace or a
// mem:// URL).
func (s *Storage) Bucket(t testing.TB, location string) *store.Bucket {
	t.Helper()
	b, err := s.Mux.OpenBucket(context.Background(), location)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// StepBucket opens the bucket at step's output path under s.Prefix.
func (s *Storage) StepBucket(t testing.TB, step *cairn.Step) *store.Bucket {
	t.Helper()
	p, err := step.OutputPath(s.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	return s.Bucket(t, p)
}

// Keys returns every key in the namespace, sorted.
func (s *Storage) Keys(t testing.TB) []string {
	t.Helper()
	var keys []string
	for k, err := range s.NS.Bucket("").List(context.Background(), "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// Recorder records events and executions. It is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex // guards the fields below
	events []cairn.Event
	execs  []string
}

// OnEvent records e; use it as RunOptions.OnEvent.
func (r *Recorder) OnEvent(e cairn.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns the recorded events.
func (r *Recorder) Events() []cairn.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Executed returns the names passed to Record, in order.
func (r *Recorder) Executed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.execs)
}

// Count returns how many times name was recorded.
func (r *Recorder) Count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.execs {
		if e == name {
			n++
		}
	}
	return n
}

// Record notes that name executed.
func (r *Recorder) Record(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.execs = append(r.execs, name)
}

// Func returns a step function that records name and returns result.
func (r *Recorder) Func(name string, result any) cairn.Func {
	return func(ctx context.Context, out *cairn.Output) (any, error) {
		r.Record(name)
		return result, nil
	}
}

// Gate is a step function the test controls: each call announces itself on
// Started and then blocks until the test sends the result on Release (or the
// step's context ends, whose error is then returned).
type Gate struct {
	Started chan string // receives the output path of each call
	Release chan error  // the test sends the result of one call
}

// NewGate returns a Gate with unbuffered channels.
func NewGate() *Gate {
	return &Gate{Started: make(chan string), Release: make(chan error)}
}

// Func returns the controlled step function.
func (g *Gate) Func() cairn.Func {
	return func(ctx context.Context, out *cairn.Output) (any, error) {
		select {
		case g.Started <- out.Path:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		select {
		case err := <-g.Release:
			return nil, err
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// Chain returns n steps named prefix0..prefix(n-1), each depending on the
// previous one, with fn as their function.
func Chain(prefix string, n int, fn func(i int) cairn.Func) []*cairn.Step {
	steps := make([]*cairn.Step, n)
	for i := range steps {
		steps[i] = &cairn.Step{Name: fmt.Sprintf("%s%d", prefix, i), Func: fn(i)}
		if i > 0 {
			steps[i].Deps = []*cairn.Step{steps[i-1]}
		}
	}
	return steps
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
