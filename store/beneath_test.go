package store_test

import (
	"context"
	"testing"

	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

// countingOpener counts the locations its URLMux opens.
type countingOpener struct {
	mux    *store.URLMux
	opened []string
}

func (c *countingOpener) OpenBucket(ctx context.Context, location string) (*store.Bucket, error) {
	c.opened = append(c.opened, location)
	return c.mux.OpenBucket(ctx, location)
}

func TestBeneath(t *testing.T) {
	ctx := t.Context()
	mux := new(store.URLMux)
	mux.Register("mem", memstore.New())
	o := &countingOpener{mux: mux}
	bn, err := store.OpenBeneath(ctx, o, "mem://ns/prefix/")
	if err != nil {
		t.Fatal(err)
	}
	step, err := bn.OpenBucket(ctx, "mem://ns/prefix/team/first_1234")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := step.String(), "mem://ns/prefix/team/first_1234"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := step.Write(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	direct, err := mux.OpenBucket(ctx, "mem://ns/prefix/team/first_1234")
	if err != nil {
		t.Fatal(err)
	}
	if data, _, err := direct.Read(ctx, "k"); err != nil || string(data) != "v" {
		t.Errorf("the view and a direct open disagree: Read = %q, %v", data, err)
	}
	for _, loc := range []string{"mem://ns/prefix", "mem://ns/prefix/../elsewhere", "mem://ns/other/x", "mem://ns/prefixed/x"} {
		// Not below the root: passed on, and memstore refuses the "..".
		bn.OpenBucket(ctx, loc)
	}
	want := []string{"mem://ns/prefix/", "mem://ns/prefix", "mem://ns/prefix/../elsewhere", "mem://ns/other/x", "mem://ns/prefixed/x"}
	if len(o.opened) != len(want) {
		t.Fatalf("wrapped opener opened %q, want %q (only the root and locations not below it)", o.opened, want)
	}
	for i := range want {
		if o.opened[i] != want[i] {
			t.Errorf("wrapped opener opened %q, want %q", o.opened, want)
			break
		}
	}
}
