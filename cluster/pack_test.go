package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/driver"
)

// packingFake is a fake that also packs (driver.Packer). While gate is
// non-nil, every submission blocks until the test sends on it, so that the
// test decides what is in flight.
type packingFake struct {
	*fake
	max  int
	gate chan struct{}

	// mu guards the field below.
	mu    sync.Mutex
	calls [][]string // job names of each request, in order
}

func newPackingFake(max int, gated bool) *packingFake {
	p := &packingFake{fake: newFake(func(int) []driver.Status { return []driver.Status{succeeded} }), max: max}
	if gated {
		p.gate = make(chan struct{})
	}
	return p
}

func (p *packingFake) record(ctx context.Context, specs ...*driver.JobSpec) error {
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	p.mu.Lock()
	p.calls = append(p.calls, names)
	p.mu.Unlock()
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (p *packingFake) Submit(ctx context.Context, spec *driver.JobSpec) (string, error) {
	if err := p.record(ctx, spec); err != nil {
		return "", err
	}
	return p.fake.Submit(ctx, spec)
}

func (p *packingFake) SubmitPack(ctx context.Context, specs []*driver.JobSpec) ([]string, error) {
	if err := p.record(ctx, specs...); err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range specs {
		id, _ := p.fake.Submit(ctx, s)
		ids = append(ids, id)
	}
	return ids, nil
}

func (p *packingFake) MaxPack() int { return p.max }

func (p *packingFake) requests() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// A lone job is submitted at once, alone. Jobs with its request arriving
// while its submission is in flight go together in the next request (at
// most MaxPack per request); jobs with another request or gangs never join
// them; each job still gets its own ID and result.
func TestPackGroupCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newPackingFake(3, true)
		c := cluster.NewClient(f, &cluster.Options{Name: "fake", LogRoot: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		defer c.Close()
		ctx := t.Context()
		type result struct {
			j   *cluster.Job
			err error
		}
		results := map[string]chan result{}
		submit := func(name string, spec cluster.JobSpec) {
			spec.Name, spec.Command = name, []string{"prog", name}
			ch := make(chan result, 1)
			results[name] = ch
			go func() {
				j, err := c.Submit(ctx, spec)
				ch <- result{j, err}
			}()
			synctest.Wait() // it is queued or in flight before the next one comes
		}
		small := cluster.JobSpec{Resources: cluster.Resources{CPUs: 1}}
		big := cluster.JobSpec{Resources: cluster.Resources{CPUs: 2}}
		gang := cluster.JobSpec{Resources: cluster.Resources{CPUs: 1}, Replicas: 2}

		submit("first", small)
		if got := f.requests(); len(got) != 1 || !slices.Equal(got[0], []string{"first"}) {
			t.Fatalf("requests = %v; want the first job submitted at once, alone", got)
		}
		for i := range 4 {
			submit(fmt.Sprint("small-", i), small)
		}
		submit("big", big)   // another request: its own queue, submitted at once
		submit("gang", gang) // never packed: submitted at once
		want := [][]string{{"first"}, {"big"}, {"gang"}}
		if got := f.requests(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("requests = %v, want %v", got, want)
		}
		// Release everything, one request at a time.
		for range 5 {
			f.gate <- struct{}{}
			synctest.Wait()
		}
		want = append(want, []string{"small-0", "small-1", "small-2"}, []string{"small-3"})
		if got := f.requests(); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("requests = %v, want %v", got, want)
		}
		ids := map[string]bool{}
		for name, ch := range results {
			r := <-ch
			if r.err != nil {
				t.Fatalf("Submit(%s): %v", name, r.err)
			}
			if ids[r.j.ID()] || r.j.Name() != name {
				t.Errorf("job %s: ID %s, name %s; want its own", name, r.j.ID(), r.j.Name())
			}
			ids[r.j.ID()] = true
			if st, err := r.j.Wait(ctx); err != nil || st != cluster.Succeeded {
				t.Errorf("job %s: %v, %v", name, st, err)
			}
		}
	})
}

// A job whose caller gives up while it waits for its turn is never
// submitted; MaxPack 1 turns packing off.
func TestPackWithdrawAndOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newPackingFake(10, true)
		c := cluster.NewClient(f, &cluster.Options{Name: "fake", LogRoot: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
		defer c.Close()
		spec := cluster.JobSpec{Command: []string{"prog"}}
		first := make(chan error, 1)
		go func() {
			spec := spec
			spec.Name = "first"
			_, err := c.Submit(t.Context(), spec)
			first <- err
		}()
		synctest.Wait()
		ctx, cancel := context.WithCancel(t.Context())
		gaveUp := make(chan error, 1)
		go func() {
			spec := spec
			spec.Name = "gives-up"
			_, err := c.Submit(ctx, spec)
			gaveUp <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-gaveUp; !errors.Is(err, context.Canceled) {
			t.Errorf("Submit after its context ended = %v, want context.Canceled", err)
		}
		f.gate <- struct{}{}
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := f.requests(); len(got) != 1 {
			t.Errorf("requests = %v; want only the first job's", got)
		}

		off := newPackingFake(10, false)
		c2 := cluster.NewClient(off, &cluster.Options{Name: "fake", LogRoot: t.TempDir(), MaxPack: 1, Logger: slog.New(slog.DiscardHandler)})
		defer c2.Close()
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				spec := spec
				spec.Name = fmt.Sprint("off-", i)
				if _, err := c2.Submit(t.Context(), spec); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, r := range off.requests() {
			if len(r) != 1 {
				t.Errorf("MaxPack 1: a request of %d jobs: %v", len(r), r)
			}
		}
	})
}

// What packing adds to a lone job's submission: the hand-off to the
// queue's flusher goroutine (compare BenchmarkSubmitLoneUnpacked).
func BenchmarkSubmitLonePacked(b *testing.B) { benchmarkSubmitLone(b, 0) }

// A lone job's submission with packing off (MaxPack 1).
func BenchmarkSubmitLoneUnpacked(b *testing.B) { benchmarkSubmitLone(b, 1) }

func benchmarkSubmitLone(b *testing.B, maxPack int) {
	f := newPackingFake(100, false)
	c := cluster.NewClient(f, &cluster.Options{Name: "fake", LogRoot: b.TempDir(), MaxPack: maxPack, Logger: slog.New(slog.DiscardHandler)})
	defer c.Close()
	spec := cluster.JobSpec{Name: "lone", Command: []string{"prog"}, LogDir: b.TempDir()}
	for b.Loop() {
		j, err := c.Submit(b.Context(), spec)
		if err != nil {
			b.Fatal(err)
		}
		if err := j.Cancel(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
