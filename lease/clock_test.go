package lease_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"example.com/cairn/lease"
	"example.com/cairn/store/memstore"
)

// skewed returns a wall clock off by d.
func skewed(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}

var skews = []time.Duration{-time.Hour, -2 * time.Minute, 2 * time.Minute, time.Hour}

// A live holder is never taken over, whichever of the holder and the
// reader has a clock off by ±2 min or ±1 h: the reader sees the record
// change at every refresh.
func TestSkewedClocksNeverTakeOverALiveLease(t *testing.T) {
	for _, skew := range skews {
		for _, who := range []string{"holder", "reader"} {
			t.Run(fmt.Sprintf("%s%+v", who, skew), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					ctx := context.Background()
					b := newBucket()
					holderOpts, readerOpts := &lease.Options{}, &lease.Options{Watch: lease.NewWatch()}
					if who == "holder" {
						holderOpts.WallClock = skewed(skew)
					} else {
						readerOpts.WallClock = skewed(skew)
					}
					l, err := lease.Acquire(ctx, b, key, "holder", holderOpts)
					if err != nil {
						t.Fatal(err)
					}
					defer l.Release(ctx)
					for i := 0; i < 10*int(lease.DefaultStaleAfter/time.Second); i += 5 {
						if _, err := lease.Acquire(ctx, b, key, "reader", readerOpts); !errors.Is(err, lease.ErrHeld) {
							t.Fatalf("after %ds the reader got a live lease: %v", i, err)
						}
						time.Sleep(5 * time.Second)
					}
					if err := l.Err(); err != nil {
						t.Errorf("holder lost its lease: %v", err)
					}
				})
			})
		}
	}
}

// A dead holder's record is taken over StaleAfter after the reader first
// saw it, whatever its timestamp says: a little in the past or the future
// (a skewed clock), or absurdly far in the future (a corrupt clock).
func TestDeadSkewedHolderIsTakenOverAfterStaleAfter(t *testing.T) {
	stamps := map[string]func() time.Time{
		"year 5138": func() time.Time { return time.Date(5138, 1, 1, 0, 0, 0, 0, time.UTC) },
	}
	for _, skew := range skews {
		stamps[fmt.Sprintf("%+v", skew)] = skewed(skew)
	}
	for name, stamp := range stamps {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				b := newBucket()
				if _, err := b.Write(ctx, key, lease.Record{WorkerID: "dead", Timestamp: stamp()}.Marshal()); err != nil {
					t.Fatal(err)
				}
				opts := &lease.Options{Watch: lease.NewWatch()}
				start := time.Now()
				for range 100 {
					l, err := lease.Acquire(ctx, b, key, "taker", opts)
					if err == nil {
						if waited := time.Since(start); waited <= lease.DefaultStaleAfter || waited > lease.DefaultStaleAfter+5*time.Second {
							t.Errorf("taken over after %s, want just over StaleAfter (%s)", waited, lease.DefaultStaleAfter)
						}
						if !l.TookOver || l.Previous.WorkerID != "dead" {
							t.Errorf("TookOver = %v, Previous = %+v", l.TookOver, l.Previous)
						}
						l.Stop()
						return
					}
					held, ok := errors.AsType[*lease.HeldError](err)
					if !ok {
						t.Fatal(err)
					}
					if want := lease.DefaultStaleAfter - time.Since(start); held.StaleIn != want {
						t.Errorf("StaleIn = %s, want %s", held.StaleIn, want)
					}
					time.Sleep(5 * time.Second)
				}
				t.Fatalf("not taken over after %s", time.Since(start))
			})
		})
	}
}

// Without a Watch (a single look), only an ancient record is stale.
func TestAncientRecordIsTakenOverAtFirstSight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := newBucket()
		old := lease.Record{WorkerID: "old", Timestamp: time.Now().Add(-2 * time.Hour)}
		if _, err := b.Write(ctx, key, old.Marshal()); err != nil {
			t.Fatal(err)
		}
		if _, err := lease.Acquire(ctx, b, key, "w", nil); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("a 2-hour-old record was taken over with the default AncientAfter: %v", err)
		}
		l, err := lease.Acquire(ctx, b, key, "w", &lease.Options{AncientAfter: time.Hour})
		if err != nil {
			t.Fatalf("a record older than AncientAfter was not taken over: %v", err)
		}
		l.Stop()
	})
}

// A storage call that hangs, ignoring its context (an NFS hard mount, a
// FUSE file system), must not delay the loss: the holder gives up exactly
// StaleAfter − Interval/2 after its last refresh began, and the work under
// the lease is cancelled then.
func TestHangingRenewalLosesTheLeaseOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ns := memstore.New()
		b := ns.Bucket("s")
		start := time.Now()
		l, err := lease.Acquire(ctx, b, key, "A", nil)
		if err != nil {
			t.Fatal(err)
		}
		stepCtx, cancel := l.Context(ctx)
		defer cancel()
		hang := make(chan struct{})
		ns.SetFaults(memstore.Faults{BeforeOp: func(op, k string) error {
			if op == "write" {
				<-hang // ignores every context
			}
			return nil
		}})
		<-stepCtx.Done()
		want := lease.DefaultStaleAfter - lease.DefaultInterval/2
		if got := time.Since(start); got != want {
			t.Errorf("step cancelled %s after the last refresh, want %s", got, want)
		}
		if cause := context.Cause(stepCtx); !errors.Is(cause, lease.ErrLost) || !strings.Contains(cause.Error(), "not refreshed") {
			t.Errorf("cause = %v, want ErrLost: not refreshed", cause)
		}
		l.Stop() // must not wait for the hung refresh
		close(hang)
	})
}

// A worker this process abandoned (its work stopped after it lost the
// lease through slow refreshes, with nobody taking over) is taken over by
// the process's next attempt at once.
func TestAbandonedWorkerIsTakenOverAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := newBucket()
		w := lease.NewWatch()
		first, err := lease.Acquire(ctx, b, key, "p.1", &lease.Options{Watch: w})
		if err != nil {
			t.Fatal(err)
		}
		first.Stop()
		if _, err := lease.Acquire(ctx, b, key, "p.2", &lease.Options{Watch: w}); !errors.Is(err, lease.ErrHeld) {
			t.Fatalf("Acquire before Abandon = %v, want ErrHeld", err)
		}
		w.Abandon("p.1")
		second, err := lease.Acquire(ctx, b, key, "p.2", &lease.Options{Watch: w})
		if err != nil {
			t.Fatalf("Acquire after Abandon = %v", err)
		}
		if !second.TookOver || second.Previous.WorkerID != "p.1" {
			t.Errorf("TookOver = %v, Previous = %+v", second.TookOver, second.Previous)
		}
		second.Stop()
	})
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []*lease.Options{
		{Interval: time.Minute, StaleAfter: time.Second},
		{Interval: -time.Second},
		{StaleAfter: -time.Second},
		{StaleAfter: time.Hour, AncientAfter: time.Minute},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", *o)
		}
	}
	for _, o := range []*lease.Options{nil, {}, {Interval: time.Second, StaleAfter: 3 * time.Second, AncientAfter: -1}} {
		if err := o.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", o, err)
		}
	}
}
