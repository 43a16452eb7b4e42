package store_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"example.com/cairn/lease"
	"example.com/cairn/store"
	"example.com/cairn/store/driver"
	"example.com/cairn/store/memstore"
)

// fast retries without waiting, and counts the retries.
func fast(retries *int, mu *sync.Mutex) *store.Options {
	return &store.Options{
		Retry: store.RetryPolicy{Backoff: func(int) time.Duration { return 0 }},
		OnRetry: func(op, key string, attempt int, err error) {
			mu.Lock()
			*retries++
			mu.Unlock()
		},
	}
}

func TestTransientErrorsAreRetried(t *testing.T) {
	ctx := t.Context()
	ns := memstore.New()
	var (
		mu      sync.Mutex
		retries int
	)
	b := ns.Bucket("").WithOptions(fast(&retries, &mu))
	ns.SetFaults(memstore.Faults{FailConditional: 3})
	v, err := b.WriteIf(ctx, "k", []byte("x"), store.IfAbsent())
	if err != nil {
		t.Fatalf("WriteIf after 3 transient failures = %v, want nil (retried)", err)
	}
	if retries != 3 {
		t.Errorf("%d retries, want 3", retries)
	}
	if _, got, _ := b.Read(ctx, "k"); got != v {
		t.Errorf("version %q, want %q", got, v)
	}
}

func TestPermanentErrorsAreNotRetried(t *testing.T) {
	ctx := t.Context()
	ns := memstore.New()
	var (
		mu      sync.Mutex
		retries int
	)
	b := ns.Bucket("").WithOptions(fast(&retries, &mu))
	ns.SetFaults(memstore.Faults{BeforeOp: func(op, key string) error {
		return fmt.Errorf("bucket does not exist: %w", store.ErrPermission)
	}})
	for _, err := range []error{
		func() error { _, _, err := b.Read(ctx, "k"); return err }(),
		func() error { _, err := b.Write(ctx, "k", nil); return err }(),
		b.Delete(ctx, "k"),
	} {
		if !errors.Is(err, store.ErrPermission) {
			t.Errorf("err = %v, want ErrPermission", err)
		}
	}
	if retries != 0 {
		t.Errorf("%d retries of permanent errors, want 0", retries)
	}
}

func TestRetriesGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ns := memstore.New()
		ns.SetFaults(memstore.Faults{BeforeOp: func(op, key string) error { return memstore.ErrInjectedTransient }})

		// By default, after DefaultMaxElapsed.
		start := time.Now()
		_, _, err := ns.Bucket("").Read(ctx, "k")
		if !errors.Is(err, store.ErrTransient) || !strings.Contains(err.Error(), "gave up after") {
			t.Errorf("Read = %v, want ErrTransient after retries", err)
		}
		if d := time.Since(start); d > store.DefaultMaxElapsed || d < store.DefaultMaxElapsed/2 {
			t.Errorf("gave up after %s, want about DefaultMaxElapsed (%s)", d, store.DefaultMaxElapsed)
		}

		// With a context deadline, without waiting past it.
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		start = time.Now()
		_, _, err = ns.Bucket("").Read(dctx, "k")
		if !errors.Is(err, store.ErrTransient) {
			t.Errorf("Read with a deadline = %v, want the last ErrTransient", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("retried for %s, past the context's deadline of 2s", d)
		}

		// After MaxAttempts.
		n := 0
		b := ns.Bucket("").WithOptions(&store.Options{Retry: store.RetryPolicy{MaxAttempts: 4},
			OnRetry: func(string, string, int, error) { n++ }})
		if _, _, err := b.Read(ctx, "k"); !strings.Contains(err.Error(), "gave up after 4 attempts") {
			t.Errorf("Read = %v, want to give up after 4 attempts", err)
		}
		if n != 3 {
			t.Errorf("%d retries, want 3", n)
		}
	})
}

func TestDefaultBackoff(t *testing.T) {
	for n := 1; n < 40; n++ {
		d := min(store.DefaultBackoffCap, store.DefaultBackoffBase<<min(n-1, 20))
		for range 20 {
			if got := store.DefaultBackoff(n); got < d/2 || got > d {
				t.Fatalf("DefaultBackoff(%d) = %s, want within [%s, %s]", n, got, d/2, d)
			}
		}
	}
}

// loseAnswer makes the next applied operation op on the namespace key key
// keep its effect but fail transiently, as when a request reaches the
// server and its answer is lost. It returns the number of answers lost.
func loseAnswer(ns *memstore.Namespace, op, key string) func() int {
	var (
		mu   sync.Mutex
		lost int
	)
	ns.SetFaults(memstore.Faults{AfterWrite: func(o, k string) error {
		mu.Lock()
		defer mu.Unlock()
		if o != op || k != key || lost > 0 {
			return nil
		}
		lost++
		return fmt.Errorf("connection reset after the request was sent: %w", memstore.ErrInjectedTransient)
	}})
	return func() int { mu.Lock(); defer mu.Unlock(); return lost }
}

// A conditional write whose first attempt was applied, but answered with a
// transient error, fails its precondition when retried: the bucket reads
// the object back, finds its own bytes and reports success.
func TestRetriedConditionalWriteThatWasApplied(t *testing.T) {
	ctx := t.Context()
	var (
		mu      sync.Mutex
		retries int
	)
	t.Run("IfAbsent", func(t *testing.T) {
		ns := memstore.New()
		b := ns.Bucket("").WithOptions(fast(&retries, &mu))
		lost := loseAnswer(ns, "write", "k")
		v, err := b.WriteIf(ctx, "k", []byte("mine"), store.IfAbsent())
		if err != nil || lost() != 1 {
			t.Fatalf("WriteIf = %v (%d answers lost), want nil: the first attempt was applied", err, lost())
		}
		if _, got, _ := b.Read(ctx, "k"); got != v {
			t.Errorf("WriteIf returned version %q, the object has %q", v, got)
		}
	})
	t.Run("IfVersion", func(t *testing.T) {
		ns := memstore.New()
		b := ns.Bucket("").WithOptions(fast(&retries, &mu))
		v0, err := b.Write(ctx, "k", []byte("old"))
		if err != nil {
			t.Fatal(err)
		}
		lost := loseAnswer(ns, "write", "k")
		v, err := b.WriteIf(ctx, "k", []byte("new"), store.IfVersion(v0))
		if err != nil || lost() != 1 {
			t.Fatalf("WriteIf = %v (%d answers lost), want nil: the first attempt was applied", err, lost())
		}
		if data, got, _ := b.Read(ctx, "k"); got != v || string(data) != "new" {
			t.Errorf("object = %q version %q, want %q version %q", data, got, "new", v)
		}
	})
	t.Run("ReplacedBeforeTheCheck", func(t *testing.T) {
		// The first attempt was applied, and another writer replaced the
		// object before the retry: the write is reported as lost, which a
		// conditional writer cannot tell from losing the race.
		ns := memstore.New()
		b := ns.Bucket("").WithOptions(fast(&retries, &mu))
		ns.SetFaults(memstore.Faults{AfterWrite: func(op, k string) error {
			ns.SetFaults(memstore.Faults{})
			if _, err := ns.Bucket("").Write(ctx, k, []byte("theirs")); err != nil {
				return err
			}
			return memstore.ErrInjectedTransient
		}})
		_, err := b.WriteIf(ctx, "k", []byte("mine"), store.IfAbsent())
		if !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("WriteIf = %v, want ErrPrecondition: the object no longer holds our bytes", err)
		}
	})
	t.Run("LostToAnother", func(t *testing.T) {
		// The first attempt failed without effect and another writer won
		// meanwhile: the precondition failure stands.
		ns := memstore.New()
		b := ns.Bucket("").WithOptions(fast(&retries, &mu))
		ns.SetFaults(memstore.Faults{BeforeOp: func(op, k string) error {
			if op != "write" {
				return nil
			}
			ns.SetFaults(memstore.Faults{})
			if _, err := ns.Bucket("").Write(ctx, k, []byte("theirs")); err != nil {
				return err
			}
			return memstore.ErrInjectedTransient
		}})
		_, err := b.WriteIf(ctx, "k", []byte("mine"), store.IfAbsent())
		if !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("WriteIf = %v, want ErrPrecondition: another writer won", err)
		}
	})
	t.Run("UnambiguousNotChecked", func(t *testing.T) {
		// A precondition failure on the first attempt is not ambiguous: no
		// read-back, even if the bytes happen to be equal.
		ns := memstore.New()
		reads := 0
		b := ns.Bucket("")
		if _, err := b.Write(ctx, "k", []byte("same")); err != nil {
			t.Fatal(err)
		}
		ns.SetFaults(memstore.Faults{BeforeOp: func(op, key string) error {
			if op == "read" {
				reads++
			}
			return nil
		}})
		if _, err := b.WriteIf(ctx, "k", []byte("same"), store.IfAbsent()); !errors.Is(err, store.ErrPrecondition) {
			t.Errorf("WriteIf(IfAbsent) on an existing key = %v, want ErrPrecondition", err)
		}
		if reads != 0 {
			t.Errorf("%d reads after an unambiguous precondition failure, want 0", reads)
		}
	})
	t.Run("DeleteIf", func(t *testing.T) {
		ns := memstore.New()
		b := ns.Bucket("").WithOptions(fast(&retries, &mu))
		v, err := b.Write(ctx, "k", []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		lost := loseAnswer(ns, "delete", "k")
		if err := b.DeleteIf(ctx, "k", store.IfVersion(v)); err != nil || lost() != 1 {
			t.Errorf("DeleteIf = %v (%d answers lost), want nil: the first attempt deleted it", err, lost())
		}
	})
}

// The lease protocol on top: an acquisition, a renewal and a release whose
// requests were applied but whose answers were lost all succeed, and the
// lease stays consistent.
func TestLeaseSurvivesLostAnswers(t *testing.T) {
	ctx := t.Context()
	ns := memstore.New()
	var (
		mu      sync.Mutex
		retries int
	)
	b := ns.Bucket("step").WithOptions(fast(&retries, &mu))
	lost := loseAnswer(ns, "write", "step/lock")
	l, err := lease.Acquire(ctx, b, "lock", "w1", nil)
	if err != nil || lost() != 1 {
		t.Fatalf("Acquire whose create was applied = %v (%d answers lost), want nil", err, lost())
	}
	lost = loseAnswer(ns, "write", "step/lock")
	if err := l.Renew(ctx); err != nil || lost() != 1 {
		t.Fatalf("Renew whose write was applied = %v (%d answers lost), want nil", err, lost())
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("second Renew = %v: the lease lost track of its version", err)
	}
	lost = loseAnswer(ns, "delete", "step/lock")
	if err := l.Release(ctx); err != nil || lost() != 1 {
		t.Fatalf("Release whose delete was applied = %v (%d answers lost), want nil", err, lost())
	}
	if ok, _ := b.Exists(ctx, "lock"); ok {
		t.Error("lease record left after Release")
	}
	// Another worker can take the step at once.
	l2, err := lease.Acquire(ctx, b, "lock", "w2", nil)
	if err != nil {
		t.Fatalf("Acquire by another worker after Release = %v", err)
	}
	l2.Stop()
}

// listDriver is a driver.Bucket whose List fails once, after yielding
// failAfter keys.
type listDriver struct {
	driver.Bucket // only List and ErrorCode are called
	keys          []string
	failAfter     int
	failed        bool
}

var errFlaky = errors.New("connection reset")

func (d *listDriver) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for i, k := range d.keys {
			if i == d.failAfter && !d.failed {
				d.failed = true
				yield("", errFlaky)
				return
			}
			if !yield(k, nil) {
				return
			}
		}
	}
}

func (d *listDriver) ErrorCode(err error) driver.Code {
	if errors.Is(err, errFlaky) {
		return driver.Transient
	}
	return driver.Unknown
}

// A listing that fails midway is listed again, without repeating the keys
// already yielded.
func TestListResumesAfterTransientError(t *testing.T) {
	keys := []string{"a", "b/c", "b/d", "e"}
	d := &listDriver{keys: keys, failAfter: 2}
	b := store.NewBucket(d, "test://", &store.Options{Retry: store.RetryPolicy{Backoff: func(int) time.Duration { return 0 }}})
	var got []string
	for k, err := range b.List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	if !slices.Equal(got, keys) {
		t.Errorf("List = %q, want %q", got, keys)
	}
	if !d.failed {
		t.Error("the listing never failed; the test tests nothing")
	}
}
