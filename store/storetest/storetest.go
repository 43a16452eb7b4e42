// Package storetest is the conformance suite for storage backends: every
// driver.Bucket implementation runs [Run] from its tests.
//
// Besides the sequential contract (reads, writes, versions, conditional
// writes and deletes, listing, key validation), the suite tests the property
// the lease protocol depends on under contention: when many goroutines race a
// create-if-absent or a replace-if-version on one key, exactly one wins, and
// read-modify-write loops lose no update. If the harness can share a bucket
// between processes ([Harness.Location]), the suite also races separate OS
// processes, by re-executing the test binary; the backend's TestMain must
// then call [HelperProcess]:
//
//	func TestMain(m *testing.M) {
//		if storetest.HelperProcess(context.Background(), open) {
//			return
//		}
//		os.Exit(m.Run())
//	}
//
// Failures name the rule that was broken, and the suite reports every
// violation it finds rather than stopping at the first.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"example.com/cairn/store"
)

// Harness makes buckets for the suite and declares what the backend can do.
type Harness struct {
	// NewBucket returns a new, empty bucket that no other test uses. It is
	// required, and is called from parallel subtests. The suite closes the
	// bucket when the test ends and reports an error from Close; the harness
	// must not close it.
	NewBucket func(t *testing.T) *store.Bucket

	// Location, if non-nil, declares that separate OS processes can share a
	// bucket. It returns a string from which the open function passed to
	// [HelperProcess], running in another process, opens a bucket with the
	// same objects as b (for a directory backend, its path). The suite then
	// races processes on conditional writes; the backend's TestMain must call
	// HelperProcess. If nil, the process races are skipped.
	Location func(t *testing.T, b *store.Bucket) string

	// UncheckedDeleteConditions, if not empty, declares that the server
	// behind the bucket does not enforce the condition of DeleteIf (it
	// deletes whatever the version), and says why, for example
	// "fake-gcs-server ignores ifGenerationMatch on DELETE". The cases that
	// need the condition enforced are skipped with that explanation; test
	// them against a server that enforces it.
	UncheckedDeleteConditions string

	// ReadVersionMayLag, if not empty, declares that a read racing a write
	// may return the new bytes with the version of an earlier write (never
	// an old body with a newer version), and says why. That is still safe
	// for read-modify-write: a conditional write with the lagging version
	// fails. The torn-read case then accepts a lagging version.
	ReadVersionMayLag string

	// Hierarchical declares that keys are paths in a file system: a key
	// that is a proper prefix of another ("d" of "d/k") names a directory,
	// and reading or statting it fails with store.ErrNotRegular. Otherwise
	// such a key is simply absent (store.ErrNotExist), as in object stores.
	Hierarchical bool

	// LargeObjects, if not empty, declares that the backend keeps objects
	// out of the process's memory, and names where (for example "local
	// disk, ext4"). The suite then streams a LargeObjectSize (1 GiB) object
	// in and out, unless -short is set; with Location set, it writes it in
	// a helper process and checks that process's peak RSS stays under
	// MaxStreamRSS.
	LargeObjects string
}

// Run runs the conformance suite against the backend of h, as parallel
// subtests of t.
func Run(t *testing.T, h Harness) {
	if h.NewBucket == nil {
		t.Fatal("storetest: Harness.NewBucket is nil")
	}
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Basic", basicCases},
		{"Conditional", conditionalCases},
		{"Version", versionCases},
		{"Delete", deleteCases},
		{"List", listCases},
		{"Sub", subCases},
		{"Limit", limitCases},
		{"Reserved", reservedCases},
		{"Contention", contentionCases},
		{"Process", processCases},
		{"Stream", streamCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, h)
				})
			}
		})
	}
}

type testCase struct {
	name string
	run  func(t *testing.T, h Harness)
}

// newBucket returns a fresh bucket from h, closed when t ends.
func newBucket(t *testing.T, h Harness) *store.Bucket {
	t.Helper()
	b := h.NewBucket(t)
	if b == nil {
		t.Fatal("Harness.NewBucket returned nil")
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	})
	return b
}

// mustWrite writes data to key unconditionally and fails t if that fails.
func mustWrite(t *testing.T, b *store.Bucket, key string, data []byte) store.Version {
	t.Helper()
	v, err := b.Write(t.Context(), key, data)
	if err != nil {
		t.Fatalf("Write(%q) = %v, want nil", key, err)
	}
	if v == "" {
		t.Errorf("Write(%q) returned an empty version; versions must identify a revision", key)
	}
	return v
}

// wantContent reads key and reports if its content or version differ from
// the expectation. An empty wantV is not checked. why explains the rule.
func wantContent(t *testing.T, b *store.Bucket, key string, want []byte, wantV store.Version, why string) {
	t.Helper()
	got, v, err := b.Read(t.Context(), key)
	if err != nil {
		t.Errorf("Read(%q) = %v, want nil (%s)", key, err, why)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Read(%q) = %s, want %s (%s)", key, abbrev(got), abbrev(want), why)
	}
	if wantV != "" && v != wantV {
		t.Errorf("Read(%q) version = %q, want %q (%s)", key, v, wantV, why)
	}
}

// wantMissing reports if key exists.
func wantMissing(t *testing.T, b *store.Bucket, key, why string) {
	t.Helper()
	if _, _, err := b.Read(t.Context(), key); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Read(%q) = %v, want ErrNotExist (%s)", key, err, why)
	}
}

// wantErr reports if err does not satisfy errors.Is(err, want).
func wantErr(t *testing.T, call string, err, want error, why string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s = %v, want an error satisfying errors.Is(err, %v) (%s)", call, err, want, why)
	}
}

// list collects b.List(dir), failing t on error.
func list(t *testing.T, b *store.Bucket, dir string) []string {
	t.Helper()
	var keys []string
	for k, err := range b.List(t.Context(), dir) {
		if err != nil {
			t.Fatalf("List(%q) error: %v", dir, err)
		}
		keys = append(keys, k)
	}
	return keys
}

// wantList reports if b.List(dir) does not yield exactly want, in order.
func wantList(t *testing.T, b *store.Bucket, dir string, want []string, why string) {
	t.Helper()
	if diff := cmp.Diff(want, list(t, b, dir), cmpEmpty); diff != "" {
		t.Errorf("List(%q) mismatch (%s) (-want +got):\n%s", dir, why, diff)
	}
}

// cmpEmpty makes nil and empty slices equal.
var cmpEmpty = cmp.Comparer(func(a, b []string) bool { return slices.Equal(a, b) })

// abbrev formats data for a message without flooding it.
func abbrev(data []byte) string {
	if len(data) <= 64 {
		return fmt.Sprintf("%q", data)
	}
	return fmt.Sprintf("%q... (%d bytes)", data[:64], len(data))
}

// randomBytes returns n bytes from a generator seeded with seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	data := make([]byte, n)
	r.Read(data)
	return data
}

var limitCases = []testCase{
	{"ReadLimit", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		data := []byte("0123456789")
		v := mustWrite(t, b, "k", data)
		got, gotV, err := b.ReadLimit(t.Context(), "k", int64(len(data)))
		if err != nil || !bytes.Equal(got, data) || gotV != v {
			t.Errorf(`ReadLimit("k", %d) = %q, %q, %v; want %q, %q, nil: an object of exactly the limit is read whole`, len(data), got, gotV, err, data, v)
		}
		got, _, err = b.ReadLimit(t.Context(), "k", int64(len(data))-1)
		wantErr(t, `ReadLimit("k", len-1)`, err, store.ErrTooLarge, "an object larger than the limit is refused")
		if got != nil {
			t.Errorf(`ReadLimit("k", len-1) data = %q, want nil with an error`, got)
		}
		_, _, err = b.ReadLimit(t.Context(), "missing", 10)
		wantErr(t, `ReadLimit("missing")`, err, store.ErrNotExist, "a limited read of a missing key")
		mustWrite(t, b, "empty", nil)
		if got, _, err := b.ReadLimit(t.Context(), "empty", 0); err != nil || len(got) != 0 {
			t.Errorf(`ReadLimit("empty", 0) = %q, %v; want "", nil`, got, err)
		}
	}},
	{"DirectoryKey", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		mustWrite(t, b, "d/k", []byte("x"))
		want, why := error(store.ErrNotExist), "in an object store, a prefix of other keys is not an object"
		if h.Hierarchical {
			want, why = store.ErrNotRegular, "in a file system, a key naming a directory is neither an object nor absent"
		}
		_, _, err := b.Read(t.Context(), "d")
		wantErr(t, `Read("d")`, err, want, why)
		_, _, err = b.ReadLimit(t.Context(), "d", 10)
		wantErr(t, `ReadLimit("d")`, err, want, why)
		_, err = b.Stat(t.Context(), "d")
		wantErr(t, `Stat("d")`, err, want, why)
	}},
}

var reservedCases = []testCase{
	{"WithReserved", func(t *testing.T, h Harness) {
		ctx := t.Context()
		b := newBucket(t, h)
		step, err := b.Sub("step")
		if err != nil {
			t.Fatal(err)
		}
		mustWrite(t, step, ".control", []byte("runner"))
		mustWrite(t, step, ".control-dir/x", []byte("runner"))
		isControl := func(key string) bool { return strings.HasPrefix(key, ".control") }
		user := step.WithReserved("the test", isControl)
		for _, key := range []string{".control", ".control-dir/x", ".control-new"} {
			_, err := user.Write(ctx, key, []byte("user"))
			wantErr(t, fmt.Sprintf("Write(%q) through the view", key), err, store.ErrReserved, "a reserved key cannot be written through the view")
			_, err = user.WriteIf(ctx, key, []byte("user"), store.IfAbsent())
			wantErr(t, fmt.Sprintf("WriteIf(%q, IfAbsent) through the view", key), err, store.ErrReserved, "a reserved key cannot be created through the view")
			err = user.Delete(ctx, key)
			wantErr(t, fmt.Sprintf("Delete(%q) through the view", key), err, store.ErrReserved, "a reserved key cannot be deleted through the view")
		}
		sub, err := user.Sub(".control-dir")
		if err != nil {
			t.Fatal(err)
		}
		_, err = sub.Write(ctx, "y", []byte("user"))
		wantErr(t, `Sub(".control-dir").Write("y")`, err, store.ErrReserved, "a reserved directory stays reserved through Sub")
		mustWrite(t, user, "data/.control", []byte("user")) // not the first segment: the step's own data
		mustWrite(t, user, "out", []byte("user"))
		wantContent(t, step, ".control", []byte("runner"), "", "refused writes change nothing")
		if got, _, err := user.Read(ctx, ".control"); err != nil || string(got) != "runner" {
			t.Errorf(`Read(".control") through the view = %q, %v; want "runner": reads are not restricted`, got, err)
		}
		wantList(t, user, "", []string{"data/.control", "out"}, "List through the view hides reserved keys")
		wantList(t, step, "", []string{".control", ".control-dir/x", "data/.control", "out"}, "the unrestricted bucket lists everything")
		mustWrite(t, step, ".control", []byte("runner again")) // the runner still can
	}},
}

var basicCases = []testCase{
	{"ReadMissing", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		for _, key := range []string{"missing", "no/such/dir/key"} {
			data, _, err := b.Read(t.Context(), key)
			wantErr(t, fmt.Sprintf("Read(%q)", key), err, store.ErrNotExist, "reading a key that was never written")
			if data != nil {
				t.Errorf("Read(%q) data = %q, want nil with an error", key, data)
			}
		}
	}},
	{"StatMissing", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		_, err := b.Stat(t.Context(), "missing")
		wantErr(t, `Stat("missing")`, err, store.ErrNotExist, "statting a key that was never written")
		ok, err := b.Exists(t.Context(), "missing")
		if ok || err != nil {
			t.Errorf(`Exists("missing") = %v, %v; want false, nil`, ok, err)
		}
	}},
	{"RoundTrip", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		want := []byte("hello, cairn\n")
		v := mustWrite(t, b, "k", want)
		wantContent(t, b, "k", want, v, "a read returns what the last write stored, with its version")
		a, err := b.Stat(t.Context(), "k")
		if err != nil {
			t.Fatalf(`Stat("k") = %v`, err)
		}
		if a.Size != int64(len(want)) || a.Version != v {
			t.Errorf(`Stat("k") = {Size: %d, Version: %q}, want {Size: %d, Version: %q}`, a.Size, a.Version, len(want), v)
		}
		if ok, err := b.Exists(t.Context(), "k"); !ok || err != nil {
			t.Errorf(`Exists("k") = %v, %v; want true, nil`, ok, err)
		}
	}},
	{"Overwrite", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v1 := mustWrite(t, b, "k", []byte("first version, longer than the second"))
		v2 := mustWrite(t, b, "k", []byte("second"))
		if v1 == v2 {
			t.Errorf("two writes of different bytes returned the same version %q", v1)
		}
		wantContent(t, b, "k", []byte("second"), v2, "an unconditional write replaces the whole object")
	}},
	{"Empty", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v := mustWrite(t, b, "empty", nil)
		wantContent(t, b, "empty", nil, v, "an empty object is an object")
		if a, err := b.Stat(t.Context(), "empty"); err != nil || a.Size != 0 {
			t.Errorf(`Stat("empty") = {Size: %d}, %v; want {Size: 0}, nil`, a.Size, err)
		}
	}},
	{"Binary", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		var data []byte
		for i := range 512 {
			data = append(data, byte(i), 0)
		}
		v := mustWrite(t, b, "bin", data)
		wantContent(t, b, "bin", data, v, "objects hold arbitrary bytes, including NUL")
	}},
	{"Large", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		data := randomBytes(1, 4<<20+3)
		v := mustWrite(t, b, "large", data)
		got, gotV, err := b.Read(t.Context(), "large")
		if err != nil {
			t.Fatalf(`Read("large") = %v`, err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf(`Read("large") returned %d bytes differing from the %d written`, len(got), len(data))
		}
		if gotV != v {
			t.Errorf(`Read("large") version = %q, want %q`, gotV, v)
		}
	}},
	{"Keys", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		keys := []string{
			"a/b/c/d.json",
			"with space/x y",
			".hidden",
			"dots..in..name",
			"ünïcödé/日本語/🙂.txt",
			"-leading-dash",
		}
		for i, key := range keys {
			data := fmt.Appendf(nil, "object %d", i)
			v := mustWrite(t, b, key, data)
			wantContent(t, b, key, data, v, "any valid key is usable, including nested and non-ASCII ones")
		}
		want := slices.Clone(keys)
		slices.Sort(want)
		wantList(t, b, "", want, "every written key is listed")
	}},
	{"InvalidKeys", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		ctx := t.Context()
		for _, key := range []string{"", "..", "/abs", "a//b", "a/../b", "./a", "a/", "a\\b", "a\x00b", "\xff"} {
			why := "package store rejects invalid keys before they reach the driver"
			_, _, err := b.Read(ctx, key)
			wantErr(t, fmt.Sprintf("Read(%q)", key), err, store.ErrInvalidKey, why)
			_, err = b.Stat(ctx, key)
			wantErr(t, fmt.Sprintf("Stat(%q)", key), err, store.ErrInvalidKey, why)
			_, err = b.Write(ctx, key, []byte("x"))
			wantErr(t, fmt.Sprintf("Write(%q)", key), err, store.ErrInvalidKey, why)
			_, err = b.WriteIf(ctx, key, []byte("x"), store.IfAbsent())
			wantErr(t, fmt.Sprintf("WriteIf(%q, IfAbsent)", key), err, store.ErrInvalidKey, why)
			err = b.Delete(ctx, key)
			wantErr(t, fmt.Sprintf("Delete(%q)", key), err, store.ErrInvalidKey, why)
		}
		wantList(t, b, "", nil, "rejected writes store nothing")
	}},
	{"ReadReturnsCopy", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		in := []byte("original")
		v := mustWrite(t, b, "k", in)
		copy(in, "MUTATED!")
		wantContent(t, b, "k", []byte("original"), v, "the backend must not retain the caller's slice after Write")
		got, _, err := b.Read(t.Context(), "k")
		if err != nil {
			t.Fatal(err)
		}
		copy(got, "MUTATED!")
		wantContent(t, b, "k", []byte("original"), v, "Read must return a copy the caller may modify")
	}},
}

var conditionalCases = []testCase{
	{"IfAbsentMissing", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v, err := b.WriteIf(t.Context(), "k", []byte("new"), store.IfAbsent())
		if err != nil {
			t.Fatalf("WriteIf(IfAbsent) on a missing key = %v, want nil", err)
		}
		wantContent(t, b, "k", []byte("new"), v, "create-if-absent stores the object")
	}},
	{"IfAbsentExisting", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v := mustWrite(t, b, "k", []byte("old"))
		_, err := b.WriteIf(t.Context(), "k", []byte("new"), store.IfAbsent())
		wantErr(t, "WriteIf(IfAbsent) on an existing key", err, store.ErrPrecondition, "create-if-absent must not replace")
		wantContent(t, b, "k", []byte("old"), v, "a failed create-if-absent leaves the object unchanged")
	}},
	{"IfVersionCurrent", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v1 := mustWrite(t, b, "k", []byte("one"))
		v2, err := b.WriteIf(t.Context(), "k", []byte("two"), store.IfVersion(v1))
		if err != nil {
			t.Fatalf("WriteIf(IfVersion(current)) = %v, want nil", err)
		}
		if v2 == v1 || v2 == "" {
			t.Errorf("WriteIf(IfVersion) returned version %q after %q, want a new non-empty version", v2, v1)
		}
		wantContent(t, b, "k", []byte("two"), v2, "replace-if-version stores the object when the version matches")
	}},
	{"IfVersionStale", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v1 := mustWrite(t, b, "k", []byte("one"))
		v2 := mustWrite(t, b, "k", []byte("two"))
		_, err := b.WriteIf(t.Context(), "k", []byte("three"), store.IfVersion(v1))
		wantErr(t, "WriteIf(IfVersion(stale))", err, store.ErrPrecondition, "replace-if-version must not replace a newer version")
		wantContent(t, b, "k", []byte("two"), v2, "a failed replace-if-version leaves the object unchanged")
		_, err = b.WriteIf(t.Context(), "k", []byte("three"), store.IfVersion(""))
		wantErr(t, `WriteIf(IfVersion(""))`, err, store.ErrPrecondition, "no object has the empty version")
	}},
	{"IfVersionMissing", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v := mustWrite(t, b, "gone", []byte("soon deleted"))
		if err := b.Delete(t.Context(), "gone"); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"gone", "never", "no/such/dir/key"} {
			_, err := b.WriteIf(t.Context(), key, []byte("x"), store.IfVersion(v))
			wantErr(t, fmt.Sprintf("WriteIf(%q, IfVersion) on a missing key", key), err, store.ErrPrecondition,
				"replace-if-version requires the object to exist")
			wantMissing(t, b, key, "a failed replace-if-version creates nothing")
		}
	}},
	{"IfAbsentAfterDelete", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		mustWrite(t, b, "k", []byte("first life"))
		if err := b.Delete(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
		v, err := b.WriteIf(t.Context(), "k", []byte("second life"), store.IfAbsent())
		if err != nil {
			t.Fatalf("WriteIf(IfAbsent) after Delete = %v, want nil", err)
		}
		wantContent(t, b, "k", []byte("second life"), v, "a deleted key is absent")
	}},
}

var versionCases = []testCase{
	{"Stable", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v := mustWrite(t, b, "k", []byte("unchanged"))
		for i := range 2 {
			_, got, err := b.Read(t.Context(), "k")
			if err != nil || got != v {
				t.Errorf("Read #%d version = %q, %v; want %q (an unchanged object keeps its version)", i+1, got, err, v)
			}
			a, err := b.Stat(t.Context(), "k")
			if err != nil || a.Version != v {
				t.Errorf("Stat #%d version = %q, %v; want %q (Stat and Read agree)", i+1, a.Version, err, v)
			}
		}
	}},
	{"ChangesWithContent", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		seen := map[store.Version]int{}
		for i := range 10 {
			v := mustWrite(t, b, "k", fmt.Appendf(nil, "content %d", i))
			if j, dup := seen[v]; dup {
				t.Errorf("write #%d returned version %q, already returned by write #%d (a write of new bytes needs a new version)", i, v, j)
			}
			seen[v] = i
			wantContent(t, b, "k", fmt.Appendf(nil, "content %d", i), v, "Write's version is the one Read reports")
		}
	}},
	{"IndependentKeys", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		va := mustWrite(t, b, "a", []byte("a1"))
		mustWrite(t, b, "b", []byte("b1"))
		mustWrite(t, b, "b", []byte("b2"))
		wantContent(t, b, "a", []byte("a1"), va, "writes to one key do not change another key's version")
	}},
}

// needCheckedDelete skips t if the harness declares that the server does
// not enforce delete conditions.
func needCheckedDelete(t *testing.T, h Harness) {
	t.Helper()
	if h.UncheckedDeleteConditions != "" {
		t.Skipf("the server does not enforce delete conditions: %s", h.UncheckedDeleteConditions)
	}
}

var deleteCases = []testCase{
	{"DeleteIfStale", func(t *testing.T, h Harness) {
		needCheckedDelete(t, h)
		b := newBucket(t, h)
		v1 := mustWrite(t, b, "k", []byte("one"))
		v2 := mustWrite(t, b, "k", []byte("two"))
		err := b.DeleteIf(t.Context(), "k", store.IfVersion(v1))
		wantErr(t, "DeleteIf(IfVersion(stale))", err, store.ErrPrecondition, "delete-if-version must not delete a newer version")
		wantContent(t, b, "k", []byte("two"), v2, "a failed delete-if-version leaves the object")
	}},
	{"DeleteIfCurrent", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v := mustWrite(t, b, "k", []byte("one"))
		if err := b.DeleteIf(t.Context(), "k", store.IfVersion(v)); err != nil {
			t.Errorf("DeleteIf(IfVersion(current)) = %v, want nil", err)
		}
		wantMissing(t, b, "k", "delete-if-version removes the object when the version matches")
	}},
	{"DeleteMissing", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		for _, key := range []string{"missing", "no/such/dir/key"} {
			if err := b.Delete(t.Context(), key); err != nil {
				t.Errorf("Delete(%q) of a missing key = %v, want nil", key, err)
			}
		}
	}},
	{"DeleteIfMissing", func(t *testing.T, h Harness) {
		needCheckedDelete(t, h)
		b := newBucket(t, h)
		v := mustWrite(t, b, "k", []byte("x"))
		if err := b.Delete(t.Context(), "k"); err != nil {
			t.Fatal(err)
		}
		err := b.DeleteIf(t.Context(), "k", store.IfVersion(v))
		wantErr(t, "DeleteIf(IfVersion) of a missing key", err, store.ErrPrecondition, "delete-if-version requires the object")
	}},
	{"DeleteIfAbsentInvalid", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		v := mustWrite(t, b, "k", []byte("x"))
		if err := b.DeleteIf(t.Context(), "k", store.IfAbsent()); err == nil {
			t.Errorf("DeleteIf(IfAbsent) = nil, want an error (IfAbsent is not a delete condition)")
		}
		wantContent(t, b, "k", []byte("x"), v, "an invalid delete deletes nothing")
	}},
	{"Delete", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		mustWrite(t, b, "a/k", []byte("x"))
		mustWrite(t, b, "a/other", []byte("y"))
		if err := b.Delete(t.Context(), "a/k"); err != nil {
			t.Fatalf(`Delete("a/k") = %v`, err)
		}
		wantMissing(t, b, "a/k", "Delete removes the object")
		wantContent(t, b, "a/other", []byte("y"), "", "Delete removes only its key")
	}},
}

var listCases = []testCase{
	{"EmptyBucket", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		wantList(t, b, "", nil, "a new bucket is empty")
		wantList(t, b, "dir", nil, "listing a missing directory yields nothing")
	}},
	{"OrderAndPrefix", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		// No key is also a directory of other keys: a file system cannot
		// hold both. "a-b" < "a/x" < "a0" checks that order is by whole key,
		// not by directory walk.
		keys := []string{"a0", "a/y/z", "c/d/e/f", "a-b", "ü", "a/x", "b.txt", "c/d/e0"}
		for _, k := range keys {
			mustWrite(t, b, k, []byte(k))
		}
		all := slices.Clone(keys)
		slices.Sort(all)
		wantList(t, b, "", all, "List yields every key, recursively, in lexical order")
		wantList(t, b, "a", []string{"a/x", "a/y/z"}, "List(dir) yields the keys below dir")
		wantList(t, b, "a/", []string{"a/x", "a/y/z"}, `List("a/") equals List("a")`)
		wantList(t, b, "a/y", []string{"a/y/z"}, "List of a nested directory")
		wantList(t, b, "c", []string{"c/d/e/f", "c/d/e0"}, "List is recursive and ordered")
		wantList(t, b, "b.txt", nil, "List of an object's own key yields nothing: it is not a directory")
		wantList(t, b, "nothing", nil, "List of a missing directory yields nothing")
	}},
	{"AfterDelete", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		for _, k := range []string{"d/1", "d/2", "d/e/3"} {
			mustWrite(t, b, k, []byte(k))
		}
		if err := b.Delete(t.Context(), "d/2"); err != nil {
			t.Fatal(err)
		}
		wantList(t, b, "", []string{"d/1", "d/e/3"}, "deleted keys are not listed")
		for _, k := range []string{"d/1", "d/e/3"} {
			if err := b.Delete(t.Context(), k); err != nil {
				t.Fatal(err)
			}
		}
		wantList(t, b, "", nil, "a bucket whose objects were all deleted lists nothing")
	}},
	{"EarlyStop", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		for i := range 5 {
			mustWrite(t, b, fmt.Sprintf("k/%d", i), nil)
		}
		n := 0
		for _, err := range b.List(t.Context(), "") {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if n == 2 {
				break // the iterator must honour the stop
			}
		}
		if n != 2 {
			t.Errorf("iterated %d keys before break, want 2", n)
		}
	}},
}

var subCases = []testCase{
	{"SharedObjects", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		sub, err := b.Sub("dir/sub")
		if err != nil {
			t.Fatalf(`Sub("dir/sub") = %v`, err)
		}
		vk := mustWrite(t, sub, "k", []byte("via sub"))
		wantContent(t, b, "dir/sub/k", []byte("via sub"), vk, "a sub bucket's objects are its parent's objects under its prefix")
		vj := mustWrite(t, b, "dir/sub/j", []byte("via parent"))
		wantContent(t, sub, "j", []byte("via parent"), vj, "a parent's objects under the prefix are visible in the sub bucket")
		mustWrite(t, b, "dir/other", []byte("outside"))
		wantList(t, sub, "", []string{"j", "k"}, "a sub bucket lists only its own keys, relative to itself")
		wantList(t, b, "dir", []string{"dir/other", "dir/sub/j", "dir/sub/k"}, "the parent lists the sub bucket's keys")
		if _, err := sub.WriteIf(t.Context(), "k", []byte("v2"), store.IfVersion(vk)); err != nil {
			t.Errorf("sub WriteIf(IfVersion) with the version read before = %v, want nil", err)
		}
		_, err = b.WriteIf(t.Context(), "dir/sub/k", []byte("v3"), store.IfVersion(vk))
		wantErr(t, "parent WriteIf(IfVersion(stale))", err, store.ErrPrecondition, "versions are shared between a bucket and its sub bucket")
		if _, err := b.Sub("../x"); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf(`Sub("../x") = %v, want ErrInvalidKey`, err)
		}
	}},
}
