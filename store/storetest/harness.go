package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"example.com/cairn/store"
)

// UniquePrefix returns a fresh key prefix under "cairn-test/" for the test
// named name, so that tests, and runs of test binaries, sharing a server or
// a bucket never share objects.
func UniquePrefix(name string) string {
	var b [6]byte
	rand.Read(b[:])
	return "cairn-test/" + strings.NewReplacer("/", "-", " ", "-").Replace(name) + "-" + hex.EncodeToString(b[:])
}

// OpenHarness returns a Harness for a backend whose buckets are named by
// location strings: open opens one (it is also what the backend's TestMain
// passes to HelperProcess, so racing processes reopen the same bucket), and
// location names the bucket for test t at a fresh prefix. When a test ends,
// every object under its bucket is deleted. Set the returned Harness's
// capability fields before passing it to Run.
func OpenHarness(open func(ctx context.Context, location string) (*store.Bucket, error), location func(t *testing.T, prefix string) string) Harness {
	var mu sync.Mutex
	locations := map[*store.Bucket]string{}
	return Harness{
		NewBucket: func(t *testing.T) *store.Bucket {
			l := location(t, UniquePrefix(t.Name()))
			b, err := open(t.Context(), l)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			locations[b] = l
			mu.Unlock()
			t.Cleanup(func() { deleteAll(t, open, l) })
			return b
		},
		Location: func(t *testing.T, b *store.Bucket) string {
			mu.Lock()
			defer mu.Unlock()
			return locations[b]
		},
	}
}

// deleteAll deletes every object under the bucket at location l.
func deleteAll(t *testing.T, open func(context.Context, string) (*store.Bucket, error), l string) {
	ctx := context.Background()
	b, err := open(ctx, l)
	if err != nil {
		t.Error(err)
		return
	}
	for k, err := range b.List(ctx, "") {
		if err == nil {
			err = b.Delete(ctx, k)
		}
		if err != nil {
			t.Errorf("cleaning up %s: %v", l, err)
			return
		}
	}
}
