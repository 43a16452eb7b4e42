package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"example.com/cairn/store"
)

const (
	racers         = 32  // goroutines racing one conditional write
	raceRounds     = 16  // races, each on a new key
	counterWorkers = 8   // goroutines incrementing one counter
	counterRounds  = 200 // increments per counter goroutine
)

var contentionCases = []testCase{
	{"RaceIfAbsent", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		for r := range raceRounds {
			key := fmt.Sprintf("lease/%d", r)
			errs := race(racers, func(i int) error {
				_, err := b.WriteIf(t.Context(), key, racerBody(i), store.IfAbsent())
				return err
			})
			checkOneWinner(t, b, key, fmt.Sprintf("WriteIf(%q, IfAbsent)", key), errs)
		}
	}},
	{"RaceIfVersion", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		for r := range raceRounds {
			key := fmt.Sprintf("lease/%d", r)
			v := mustWrite(t, b, key, []byte("initial"))
			errs := race(racers, func(i int) error {
				_, err := b.WriteIf(t.Context(), key, racerBody(i), store.IfVersion(v))
				return err
			})
			checkOneWinner(t, b, key, fmt.Sprintf("WriteIf(%q, IfVersion)", key), errs)
		}
	}},
	{"Counter", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		mustWrite(t, b, "counter", counterBody(0, "init"))
		errs := race(counterWorkers, func(i int) error {
			who := fmt.Sprintf("goroutine-%d", i)
			for range counterRounds {
				if _, err := increment(t.Context(), b, "counter", who); err != nil {
					return err
				}
			}
			return nil
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("incrementer %d: %v", i, err)
			}
		}
		checkCounter(t, b, "counter", counterWorkers*counterRounds)
	}},
	{"NoTornReads", testNoTornReads},
}

// race runs f(0), ..., f(n-1) in n goroutines released together, and returns
// their errors by index.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func racerBody(i int) []byte { return fmt.Appendf(nil, "written by racer %d", i) }

// checkOneWinner reports unless exactly one of the racing calls succeeded,
// every other one failed with ErrPrecondition, and key holds the winner's
// body.
func checkOneWinner(t *testing.T, b *store.Bucket, key, call string, errs []error) {
	t.Helper()
	winner := -1
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			winner = i
		case !errors.Is(err, store.ErrPrecondition):
			t.Errorf("racer %d: %s = %v, want nil or ErrPrecondition (losing a race is a precondition failure)", i, call, err)
		}
	}
	if wins != 1 {
		t.Errorf("%d of %d racing %s calls succeeded, want exactly 1: conditional writes must be atomic", wins, len(errs), call)
	}
	if wins == 1 {
		wantContent(t, b, key, racerBody(winner), "", "the object holds the body of the writer that was told it won")
	}
}

// counterBody is the content of a counter object: the value and who wrote
// it. Each value is written once, so bodies, and content-derived versions,
// never repeat.
func counterBody(n int, who string) []byte { return fmt.Appendf(nil, "%d %s\n", n, who) }

func parseCounter(data []byte) (int, error) {
	field, _, _ := strings.Cut(string(data), " ")
	n, err := strconv.Atoi(field)
	if err != nil {
		return 0, fmt.Errorf("corrupt counter object %q", data)
	}
	return n, nil
}

// increment adds one to the counter at key with a read-modify-write loop,
// retrying when another writer got in first. It returns the number of
// retries.
func increment(ctx context.Context, b *store.Bucket, key, who string) (retries int, err error) {
	for {
		data, v, err := b.Read(ctx, key)
		if err != nil {
			return retries, err
		}
		n, err := parseCounter(data)
		if err != nil {
			return retries, err
		}
		_, err = b.WriteIf(ctx, key, counterBody(n+1, who), store.IfVersion(v))
		if !errors.Is(err, store.ErrPrecondition) {
			return retries, err
		}
		retries++
	}
}

// checkCounter reports unless the counter at key has value want.
func checkCounter(t *testing.T, b *store.Bucket, key string, want int) {
	t.Helper()
	data, _, err := b.Read(t.Context(), key)
	if err != nil {
		t.Fatalf("Read(%q) = %v", key, err)
	}
	got, err := parseCounter(data)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("counter = %d after %d increments: %d updates were lost; replace-if-version let two writers replace the same version",
			got, want, want-got)
	}
}

// Self-verifying bodies for the torn-read test:
//
//	seq (8 bytes) | filler length (4 bytes) | filler (one byte repeated) | SHA-256 of all before
const tornHeader = 12

func tornBody(seq int) []byte {
	n := (seq * 7919) % (64 << 10) // lengths vary widely from write to write
	body := binary.BigEndian.AppendUint64(nil, uint64(seq))
	body = binary.BigEndian.AppendUint32(body, uint32(n))
	body = append(body, bytes.Repeat([]byte{byte(seq%251 + 1)}, n)...)
	sum := sha256.Sum256(body)
	return append(body, sum[:]...)
}

// checkTornBody returns the sequence number of a body made by tornBody, or
// an error describing how it is damaged.
func checkTornBody(body []byte) (int, error) {
	if len(body) < tornHeader+sha256.Size {
		return 0, fmt.Errorf("%d bytes, shorter than any complete body", len(body))
	}
	seq := int(binary.BigEndian.Uint64(body))
	n := int(binary.BigEndian.Uint32(body[8:]))
	if len(body) != tornHeader+n+sha256.Size {
		return 0, fmt.Errorf("%d bytes, but body %d has %d", len(body), seq, tornHeader+n+sha256.Size)
	}
	if sum := sha256.Sum256(body[:tornHeader+n]); !bytes.Equal(sum[:], body[tornHeader+n:]) {
		return 0, fmt.Errorf("checksum mismatch in a %d-byte body claiming to be %d", len(body), seq)
	}
	return seq, nil
}

// testNoTornReads has one goroutine rewrite a key with bodies of varying
// length while readers check that every read is one complete body, with the
// version that the write of that body returned.
func testNoTornReads(t *testing.T, h Harness) {
	const (
		writes  = 150
		readers = 3
	)
	b := newBucket(t, h)
	ctx := t.Context()
	versions := make([]store.Version, writes)
	versions[0] = mustWrite(t, b, "obj", tornBody(0))

	type seen struct {
		seq int
		v   store.Version
	}
	done := make(chan struct{})
	observed := make([][]seen, readers)
	var wg sync.WaitGroup
	for r := range readers {
		wg.Go(func() {
			// Read at least once after the writer finished, so every reader
			// overlaps the whole run.
			for last := false; !last; {
				select {
				case <-done:
					last = true
				default:
				}
				data, v, err := b.Read(ctx, "obj")
				if err != nil {
					t.Errorf("reader %d: Read = %v, want nil (the object exists throughout)", r, err)
					return
				}
				seq, err := checkTornBody(data)
				if err != nil {
					t.Errorf("reader %d: torn read: %v (readers must see the old or the new content, never a mix)", r, err)
					return
				}
				observed[r] = append(observed[r], seen{seq, v})
			}
		})
	}
	for seq := 1; seq < writes; seq++ {
		v, err := b.Write(ctx, "obj", tornBody(seq))
		if err != nil {
			t.Errorf("Write #%d = %v", seq, err)
			break
		}
		versions[seq] = v
	}
	close(done)
	wg.Wait()
	for r, obs := range observed {
		for _, o := range obs {
			if o.seq < 0 || o.seq >= writes {
				t.Errorf("reader %d: read body %d, which was never written", r, o.seq)
				break
			}
			if versions[o.seq] == o.v {
				continue
			}
			if h.ReadVersionMayLag != "" && slices.Contains(versions[:o.seq], o.v) {
				continue // an older version with newer bytes: declared, and safe
			}
			why := "a read's version must belong to its content"
			if h.ReadVersionMayLag != "" {
				why = "a read's version must belong to its content or an earlier write"
			}
			t.Errorf("reader %d: read body %d with version %q, but writing it returned %q (%s)",
				r, o.seq, o.v, versions[o.seq], why)
			break
		}
	}
}
