package lease_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"example.com/cairn/lease"
	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

const key = ".executor_status.lock"

func newBucket() *store.Bucket { return memstore.New().Bucket("step_12345678") }

func readRecord(t *testing.T, b *store.Bucket) lease.Record {
	t.Helper()
	rec, ok, err := lease.Inspect(context.Background(), b, key)
	if err != nil || !ok {
		t.Fatalf("Inspect = %+v, %v, %v", rec, ok, err)
	}
	return rec
}

func TestRecordFormatIsMarinCompatible(t *testing.T) {
	rec := lease.Record{WorkerID: "host-1-ab.3", Timestamp: time.Unix(1740000000, 123456000)}
	if got, want := string(rec.Marshal()), `{"worker_id": "host-1-ab.3", "timestamp": 1740000000.123456}`; got != want {
		t.Errorf("Marshal = %s, want %s", got, want)
	}
	whole := lease.Record{WorkerID: "w", Timestamp: time.Unix(1740000000, 0)}
	if got := string(whole.Marshal()); !strings.HasSuffix(got, `1740000000.0}`) {
		t.Errorf("Marshal of a whole second = %s, want a float", got)
	}
	for _, tc := range []struct {
		in   string
		want lease.Record
	}{
		{`{"worker_id": "marin-host-140230", "timestamp": 1740000000.5}`, lease.Record{WorkerID: "marin-host-140230", Timestamp: time.Unix(1740000000, 5e8)}},
		{`{"holder_id": "iris-holder", "timestamp": 1740000000}`, lease.Record{WorkerID: "iris-holder", Timestamp: time.Unix(1740000000, 0)}},
	} {
		got, err := lease.ParseRecord([]byte(tc.in))
		if err != nil || got.WorkerID != tc.want.WorkerID || !got.Timestamp.Equal(tc.want.Timestamp) {
			t.Errorf("ParseRecord(%s) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{`, `{"timestamp": 1}`, `{"worker_id": "x"}`, `[]`} {
		if _, err := lease.ParseRecord([]byte(bad)); !errors.Is(err, lease.ErrCorrupt) {
			t.Errorf("ParseRecord(%s) err = %v, want ErrCorrupt", bad, err)
		}
	}
}

// Scenarios 49, 50, 55: acquire writes the record; a second holder is
// refused while it is held; the same holder re-acquires; release deletes.
func TestAcquireHeldReentrantRelease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := newBucket()
		a, err := lease.Acquire(ctx, b, key, "holder-a", nil)
		if err != nil {
			t.Fatal(err)
		}
		if rec := readRecord(t, b); rec.WorkerID != "holder-a" {
			t.Errorf("record holder %q", rec.WorkerID)
		}
		_, err = lease.Acquire(ctx, b, key, "holder-b", nil)
		var held *lease.HeldError
		if !errors.As(err, &held) || !errors.Is(err, lease.ErrHeld) || held.Holder.WorkerID != "holder-a" {
			t.Fatalf("second Acquire err = %v, want HeldError naming holder-a", err)
		}
		again, err := lease.Acquire(ctx, b, key, "holder-a", nil)
		if err != nil || again.TookOver {
			t.Fatalf("re-entrant Acquire = %v (took over %v)", err, again != nil && again.TookOver)
		}
		// The re-entrant handle now owns the record's version; the first
		// handle is retired without touching the record.
		a.Stop()
		if err := again.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := lease.Inspect(ctx, b, key); ok {
			t.Error("record survives release")
		}
		bl, err := lease.Acquire(ctx, b, key, "holder-b", nil)
		if err != nil {
			t.Fatalf("Acquire after release: %v", err)
		}
		bl.Stop()
	})
}

// Scenarios 46, 47, 51: a stale lease is taken over; a fresh one is not.
func TestStaleTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := newBucket()
		dead := lease.Record{WorkerID: "dead", Timestamp: time.Now().Add(-lease.DefaultAncientAfter - 10*time.Second)}
		if _, err := b.Write(ctx, key, dead.Marshal()); err != nil {
			t.Fatal(err)
		}
		l, err := lease.Acquire(ctx, b, key, "live", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Stop()
		if !l.TookOver || l.Previous.WorkerID != "dead" {
			t.Errorf("TookOver = %v, Previous = %+v", l.TookOver, l.Previous)
		}
		before := readRecord(t, b).Timestamp
		time.Sleep(time.Second)
		if err := l.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if after := readRecord(t, b).Timestamp; !after.After(before) {
			t.Errorf("renew did not advance the timestamp: %v -> %v", before, after)
		}
		// The ancient-record shortcut has a strict boundary.
		now := time.Now()
		if (lease.Record{Timestamp: now.Add(-time.Hour)}).Ancient(now, time.Hour) {
			t.Error("a record exactly AncientAfter old counts as ancient")
		}
		if !(lease.Record{Timestamp: now.Add(-time.Hour - time.Second)}).Ancient(now, time.Hour) {
			t.Error("a record older than AncientAfter does not count as ancient")
		}
		if (lease.Record{Timestamp: now.Add(-1000 * time.Hour)}).Ancient(now, -1) {
			t.Error("a negative AncientAfter still trusts timestamps")
		}
	})
}

// The heartbeat refreshes every Interval, so a holder that keeps running is
// never taken over.
func TestHeartbeatKeepsLeaseFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := newBucket()
		l, err := lease.Acquire(ctx, b, key, "runner", nil)
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			time.Sleep(lease.DefaultInterval)
			synctest.Wait()
			if _, err := lease.Acquire(ctx, b, key, "thief", nil); !errors.Is(err, lease.ErrHeld) {
				t.Fatalf("after %s a thief got the lease: %v", lease.DefaultInterval, err)
			}
		}
		if age := readRecord(t, b).Age(time.Now()); age > lease.DefaultInterval {
			t.Errorf("lease age %s after heartbeats, want <= %s", age, lease.DefaultInterval)
		}
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// Scenarios 53, 58, 59: refresh by a worker whose lease was taken over
// reports ErrLost naming the new holder, closes Lost and cancels Context.
func TestLossIsDetectedAndCancels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := newBucket()
		l, err := lease.Acquire(ctx, b, key, "A", nil)
		if err != nil {
			t.Fatal(err)
		}
		stepCtx, cancel := l.Context(ctx)
		defer cancel()
		if _, err := b.Write(ctx, key, lease.Record{WorkerID: "B", Timestamp: time.Now()}.Marshal()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(lease.DefaultInterval)
		synctest.Wait()
		select {
		case <-l.Lost():
		default:
			t.Fatal("loss not detected by the heartbeat")
		}
		if err := l.Err(); !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "held by B, expected A") {
			t.Errorf("Err = %v", err)
		}
		if cause := context.Cause(stepCtx); !errors.Is(cause, lease.ErrLost) {
			t.Errorf("step context cause = %v, want ErrLost", cause)
		}
		if err := l.Release(ctx); !errors.Is(err, lease.ErrLost) {
			t.Errorf("Release after loss = %v, want ErrLost", err)
		}
		if readRecord(t, b).WorkerID != "B" {
			t.Error("the loser deleted the new holder's lease")
		}
	})
}

func TestDisappearedLeaseIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := newBucket()
		l, err := lease.Acquire(ctx, b, key, "A", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Stop()
		if err := b.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := l.Renew(ctx); !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "disappeared") {
			t.Errorf("Renew = %v, want ErrLost: disappeared", err)
		}
	})
}

// Scenario 57: releasing a lease someone deleted is not an error.
func TestReleaseAfterExternalDeletion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := newBucket()
		l, err := lease.Acquire(ctx, b, key, "A", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			t.Errorf("Release = %v", err)
		}
		if err := l.Release(ctx); err != nil {
			t.Errorf("second Release = %v", err)
		}
	})
}

// A holder that cannot refresh for StaleAfter declares its lease lost,
// because another worker may already have taken it over.
func TestRenewFailuresUntilStaleLoseTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ns := memstore.New()
		// Without the bucket's retries, every tick's refresh fails once.
		b := ns.Bucket("s").WithOptions(&store.Options{Retry: store.RetryPolicy{MaxAttempts: 1}})
		var renewErrs int
		var mu sync.Mutex
		l, err := lease.Acquire(ctx, b, key, "A", &lease.Options{OnRenewError: func(error) { mu.Lock(); renewErrs++; mu.Unlock() }})
		if err != nil {
			t.Fatal(err)
		}
		ns.SetFaults(memstore.Faults{BeforeOp: func(op, k string) error {
			if op == "write" {
				return fmt.Errorf("storage down: %w", memstore.ErrInjectedTransient)
			}
			return nil
		}})
		time.Sleep(2 * lease.DefaultInterval)
		synctest.Wait()
		if l.Err() != nil {
			t.Fatalf("lost after %s of failures, before StaleAfter", 2*lease.DefaultInterval)
		}
		time.Sleep(lease.DefaultInterval)
		synctest.Wait()
		if err := l.Err(); !errors.Is(err, lease.ErrLost) || !strings.Contains(err.Error(), "not refreshed") {
			t.Errorf("Err = %v, want ErrLost: not refreshed", err)
		}
		mu.Lock()
		defer mu.Unlock()
		// Refreshes at 30 s and 60 s failed; the one due at 90 s = StaleAfter
		// is not attempted: the lease is declared lost instead.
		if renewErrs != 2 {
			t.Errorf("OnRenewError called %d times, want 2", renewErrs)
		}
	})
}

// With the bucket retrying (its default), a refresh that keeps failing
// still declares the lease lost by StaleAfter, not later: each refresh's
// retries end when the lease would go stale.
func TestRetriedRenewFailuresLoseTheLeaseOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ns := memstore.New()
		b := ns.Bucket("s")
		l, err := lease.Acquire(ctx, b, key, "A", nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var mu sync.Mutex
		writes := 0
		ns.SetFaults(memstore.Faults{BeforeOp: func(op, k string) error {
			if op == "write" {
				mu.Lock()
				writes++
				mu.Unlock()
				return fmt.Errorf("storage down: %w", memstore.ErrInjectedTransient)
			}
			return nil
		}})
		<-l.Lost()
		if d := time.Since(start); d > lease.DefaultStaleAfter {
			t.Errorf("lease declared lost after %s, want at most StaleAfter (%s)", d, lease.DefaultStaleAfter)
		}
		if err := l.Err(); !errors.Is(err, lease.ErrLost) {
			t.Errorf("Err = %v, want ErrLost", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if writes < 4 {
			t.Errorf("%d refresh attempts, want the bucket to have retried (at least 4)", writes)
		}
	})
}

// Many workers race for one free lease: exactly one wins.
func TestRaceForFreeLease(t *testing.T) {
	b := newBucket()
	const n = 32
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []*lease.Lease
	for i := range n {
		wg.Go(func() {
			l, err := lease.Acquire(context.Background(), b, key, fmt.Sprintf("w%d", i), nil)
			if err == nil {
				mu.Lock()
				winners = append(winners, l)
				mu.Unlock()
			} else if !errors.Is(err, lease.ErrHeld) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d winners, want 1", len(winners))
	}
	winners[0].Stop()
}

func TestOptionsValidation(t *testing.T) {
	_, err := lease.Acquire(context.Background(), newBucket(), key, "w", &lease.Options{Interval: time.Minute, StaleAfter: time.Second})
	if err == nil || !strings.Contains(err.Error(), "must exceed") {
		t.Errorf("err = %v", err)
	}
}

// Refreshes that overlap (the heartbeat and Confirm at the same moment)
// must not make the lease look lost to its own holder.
func TestConcurrentRenewals(t *testing.T) {
	b := newBucket()
	ctx := context.Background()
	l, err := lease.Acquire(ctx, b, key, "A", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				if err := l.Renew(ctx); err != nil {
					t.Errorf("Renew = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A refresh whose answer was lost after the bucket gave up (its context
// ended with the request in flight) leaves the record ours with a version
// the lease never learnt; the next refresh must notice the record is still
// its own rather than report the lease lost.
func TestRenewAfterUnseenRefresh(t *testing.T) {
	ns := memstore.New()
	b := ns.Bucket("s")
	ctx := context.Background()
	l, err := lease.Acquire(ctx, b, key, "A", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	// The record changes behind the lease's back, as an applied refresh
	// whose answer never came would change it.
	if _, err := b.Write(ctx, key, lease.Record{WorkerID: "A", Timestamp: time.Now()}.Marshal()); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("Renew after an unseen refresh of our own = %v, want nil", err)
	}
	// A record of another worker is a real loss.
	if _, err := b.Write(ctx, key, lease.Record{WorkerID: "B", Timestamp: time.Now()}.Marshal()); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx); !errors.Is(err, lease.ErrLost) {
		t.Errorf("Renew after a takeover = %v, want ErrLost", err)
	}
}
