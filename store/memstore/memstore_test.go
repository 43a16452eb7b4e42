package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"testing/synctest"
	"time"

	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
	"example.com/cairn/store/storetest"
)

func TestConformance(t *testing.T) {
	t.Run("Root", func(t *testing.T) {
		storetest.Run(t, storetest.Harness{
			NewBucket: func(t *testing.T) *store.Bucket { return memstore.New().Bucket("") },
		})
	})
	// A rooted bucket in a namespace that holds other objects: the root must
	// isolate them.
	t.Run("Rooted", func(t *testing.T) {
		storetest.Run(t, storetest.Harness{
			NewBucket: func(t *testing.T) *store.Bucket {
				ns := memstore.New()
				for _, k := range []string{"outside", "pipe/lin", "pipe/line0", "pipe/line/x"} {
					if _, err := ns.Bucket("").Write(t.Context(), k, []byte("not in the bucket")); err != nil {
						t.Fatal(err)
					}
				}
				return ns.Bucket("/pipe/line/x-root/")
			},
		})
	})
}

func TestBucketShared(t *testing.T) {
	ctx := t.Context()
	ns := memstore.New()
	a, b := ns.Bucket("p"), ns.Bucket("p/q")
	if got, want := b.String(), "mem://p/q"; got != want {
		t.Errorf("Bucket(%q).String() = %q, want %q", "p/q", got, want)
	}
	v, err := a.Write(ctx, "q/k", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.WriteIf(ctx, "k", []byte("y"), store.IfVersion(v)); err != nil {
		t.Errorf("WriteIf through a second bucket of the namespace = %v, want nil", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if data, _, err := b.Read(ctx, "k"); err != nil || string(data) != "y" {
		t.Errorf("Read after closing another bucket = %q, %v; want \"y\", nil", data, err)
	}
}

func TestBucketInvalidRootPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf(`Bucket("a/../b") did not panic`)
		}
	}()
	memstore.New().Bucket("a/../b")
}

func TestOpenBucketURL(t *testing.T) {
	ctx := t.Context()
	ns := memstore.New()
	var mux store.URLMux
	mux.Register("mem", ns)
	if _, err := ns.Bucket("host/path").Write(ctx, "k", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url, key string
	}{
		{"mem://host/path", "k"},
		{"mem://host/path/", "k"},
		{"mem://host", "path/k"},
		{"mem://", "host/path/k"},
	} {
		b, err := mux.OpenBucket(ctx, tc.url)
		if err != nil {
			t.Errorf("OpenBucket(%q) = %v", tc.url, err)
			continue
		}
		if data, _, err := b.Read(ctx, tc.key); err != nil || string(data) != "hello" {
			t.Errorf("OpenBucket(%q).Read(%q) = %q, %v; want \"hello\", nil", tc.url, tc.key, data, err)
		}
	}
	for _, bad := range []string{"mem://a/../b", "mem://a//b", "mem://a?x=1", "mem:opaque"} {
		u, err := url.Parse(bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ns.OpenBucketURL(ctx, u); err == nil {
			t.Errorf("OpenBucketURL(%q) = nil error, want an error", bad)
		}
	}
}

// noRetry makes a bucket report every injected failure.
var noRetry = &store.Options{Retry: store.RetryPolicy{MaxAttempts: 1}}

func TestFailConditional(t *testing.T) {
	ctx := t.Context()
	ns := memstore.New()
	b := ns.Bucket("").WithOptions(noRetry)
	v, err := b.Write(ctx, "k", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	ns.SetFaults(memstore.Faults{FailConditional: 2})

	if _, err := b.Write(ctx, "k", []byte("two")); err != nil {
		t.Errorf("unconditional Write = %v, want nil (FailConditional affects only conditional operations)", err)
	}
	_, v2, err := b.Read(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.WriteIf(ctx, "new", []byte("x"), store.IfAbsent())
	if !errors.Is(err, store.ErrTransient) || !errors.Is(err, memstore.ErrInjectedTransient) {
		t.Errorf("first WriteIf(IfAbsent) = %v, want ErrTransient and ErrInjectedTransient", err)
	}
	err = b.DeleteIf(ctx, "k", store.IfVersion(v2))
	if !errors.Is(err, store.ErrTransient) {
		t.Errorf("DeleteIf(IfVersion) = %v, want ErrTransient", err)
	}
	if ok, _ := b.Exists(ctx, "new"); ok {
		t.Errorf("a failed conditional write was applied")
	}
	if ok, _ := b.Exists(ctx, "k"); !ok {
		t.Errorf("a failed conditional delete was applied")
	}
	if _, err := b.WriteIf(ctx, "k", []byte("three"), store.IfVersion(v2)); err != nil {
		t.Errorf("third conditional operation = %v, want nil (only 2 were to fail)", err)
	}
	if _, err := b.WriteIf(ctx, "k", []byte("four"), store.IfVersion(v)); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("WriteIf(IfVersion(stale)) after the faults = %v, want ErrPrecondition", err)
	}
}

func TestBeforeOp(t *testing.T) {
	ctx := t.Context()
	ns := memstore.New()
	b := ns.Bucket("root").WithOptions(noRetry)
	v, err := b.Write(ctx, "lease", []byte("mine"))
	if err != nil {
		t.Fatal(err)
	}
	var ops []string
	ns.SetFaults(memstore.Faults{BeforeOp: func(op, key string) error {
		ops = append(ops, op+" "+key)
		switch {
		case op == "read" && key == "root/denied":
			return fmt.Errorf("no access: %w", store.ErrPermission)
		case op == "write" && key == "root/lease":
			// Another writer gets in between our read and our write. The hook
			// runs without locks held, so it may use the namespace.
			ns.SetFaults(memstore.Faults{})
			if _, err := ns.Bucket("").Write(ctx, "root/lease", []byte("theirs")); err != nil {
				return err
			}
		case op == "list":
			return memstore.ErrInjectedTransient
		}
		return nil
	}})

	if _, _, err := b.Read(ctx, "denied"); !errors.Is(err, store.ErrPermission) {
		t.Errorf("Read with an injected permission error = %v, want ErrPermission", err)
	}
	for _, err := range b.List(ctx, "") {
		if !errors.Is(err, store.ErrTransient) {
			t.Errorf("List with an injected transient error = %v, want ErrTransient", err)
		}
	}
	if _, err := b.WriteIf(ctx, "lease", []byte("renewed"), store.IfVersion(v)); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("WriteIf(IfVersion) after a competing write = %v, want ErrPrecondition", err)
	}
	if data, _, _ := b.Read(ctx, "lease"); string(data) != "theirs" {
		t.Errorf("lease = %q, want the competing writer's %q", data, "theirs")
	}
	want := []string{"read root/denied", "list root/", "write root/lease"}
	if fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Errorf("BeforeOp saw %q, want %q", ops, want)
	}
}

func TestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ns := memstore.New()
		b := ns.Bucket("")
		ns.SetFaults(memstore.Faults{Latency: time.Hour})
		start := time.Now()
		if _, err := b.Write(t.Context(), "k", []byte("slow")); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != time.Hour {
			t.Errorf("Write took %v, want the injected %v", d, time.Hour)
		}

		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := b.Write(ctx, "k", []byte("never")); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Write with a deadline shorter than the latency = %v, want DeadlineExceeded", err)
		}
		ns.SetFaults(memstore.Faults{})
		if data, _, err := b.Read(t.Context(), "k"); err != nil || string(data) != "slow" {
			t.Errorf("Read = %q, %v; want \"slow\" (a write that timed out has no effect)", data, err)
		}
	})
}

func BenchmarkWriteIfAbsent(b *testing.B) {
	storetest.BenchWriteIfAbsent(b, memstore.New().Bucket(""))
}

func BenchmarkWriteIfVersion(b *testing.B) {
	storetest.BenchWriteIfVersion(b, memstore.New().Bucket(""))
}

func BenchmarkRead(b *testing.B) {
	storetest.BenchRead(b, memstore.New().Bucket(""))
}
