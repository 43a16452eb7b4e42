package storetest

import (
	"fmt"
	"testing"

	"example.com/cairn/store"
)

// benchSize is the size of benchmark objects, about that of a lease record.
const benchSize = 256

// benchBatch is how many objects BenchWriteIfAbsent creates before it
// deletes them (untimed), to keep the bucket small.
const benchBatch = 1000

// BenchWriteIfAbsent measures WriteIf(IfAbsent) creating new 256-byte
// objects in b, which should be empty.
func BenchWriteIfAbsent(tb *testing.B, b *store.Bucket) {
	ctx := tb.Context()
	data := randomBytes(2, benchSize)
	var keys []string
	tb.ReportAllocs()
	for i := 0; tb.Loop(); i++ {
		key := fmt.Sprintf("bench/%d", i)
		if _, err := b.WriteIf(ctx, key, data, store.IfAbsent()); err != nil {
			tb.Fatalf("WriteIf(%q, IfAbsent) = %v", key, err)
		}
		if keys = append(keys, key); len(keys) == benchBatch {
			tb.StopTimer()
			for _, k := range keys {
				if err := b.Delete(ctx, k); err != nil {
					tb.Fatal(err)
				}
			}
			keys = keys[:0]
			tb.StartTimer()
		}
	}
}

// BenchWriteIfVersion measures WriteIf(IfVersion) replacing one 256-byte
// object in b with new content, as a lease heartbeat does.
func BenchWriteIfVersion(tb *testing.B, b *store.Bucket) {
	ctx := tb.Context()
	data := randomBytes(3, benchSize)
	v, err := b.Write(ctx, "lease", data)
	if err != nil {
		tb.Fatal(err)
	}
	tb.ReportAllocs()
	for i := 0; tb.Loop(); i++ {
		// A new body each time: content-derived versions need new bytes.
		copy(data, fmt.Sprintf("%016d", i))
		if v, err = b.WriteIf(ctx, "lease", data, store.IfVersion(v)); err != nil {
			tb.Fatalf("WriteIf(IfVersion) #%d = %v", i, err)
		}
	}
}

// BenchRead measures Read of one 256-byte object in b.
func BenchRead(tb *testing.B, b *store.Bucket) {
	ctx := tb.Context()
	if _, err := b.Write(ctx, "obj", randomBytes(4, benchSize)); err != nil {
		tb.Fatal(err)
	}
	tb.ReportAllocs()
	for tb.Loop() {
		if _, _, err := b.Read(ctx, "obj"); err != nil {
			tb.Fatal(err)
		}
	}
}
