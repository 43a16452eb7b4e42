package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"example.com/cairn/store"
)

// Sizes of the streaming cases.
const (
	// streamSize is larger than two parts of s3store's default part size,
	// so that multipart uploads are exercised, and not a multiple of any
	// power of two.
	streamSize = 20<<20 + 7
	// LargeObjectSize is the size of the object of the large-object case.
	LargeObjectSize = 1 << 30
	// MaxStreamRSS bounds the peak resident memory of a process that
	// writes LargeObjectSize bytes through Bucket.NewWriter.
	MaxStreamRSS = 100 << 20
	// largeTimeout bounds the helper process that writes the large object:
	// generous, since emulators can be slow (fake-gcs-server's memory
	// backend takes minutes for 1 GiB); the case asserts behaviour, not
	// speed.
	largeTimeout = 20 * time.Minute
)

// writeChunks writes data to w in pieces of irregular sizes, so that no
// backend sees only aligned writes.
func writeChunks(w io.Writer, data []byte, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	for len(data) > 0 {
		n := min(len(data), 1+r.IntN(300<<10))
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// streamWrite writes data to key with NewWriter and returns the version.
func streamWrite(t *testing.T, b *store.Bucket, key string, data []byte) store.Version {
	t.Helper()
	w, err := b.NewWriter(t.Context(), key)
	if err != nil {
		t.Fatalf("NewWriter(%q) = %v, want nil", key, err)
	}
	if err := writeChunks(w, data, uint64(len(data))); err != nil {
		w.Abort()
		t.Fatalf("writing %q: %v", key, err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close of the writer of %q = %v, want nil", key, err)
	}
	return w.Version()
}

// streamRead reads the range of key with NewRangeReader.
func streamRead(t *testing.T, b *store.Bucket, key string, off, length int64) ([]byte, store.Attributes) {
	t.Helper()
	r, err := b.NewRangeReader(t.Context(), key, off, length)
	if err != nil {
		t.Fatalf("NewRangeReader(%q, %d, %d) = %v, want nil", key, off, length, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %q [%d, +%d): %v", key, off, length, err)
	}
	return data, r.Attributes()
}

// wantObjects reports if List("") is not exactly keys: a failed or
// cancelled streaming write must leave nothing a listing shows.
func wantObjects(t *testing.T, b *store.Bucket, keys []string, why string) {
	t.Helper()
	wantList(t, b, "", keys, why)
}

var streamCases = []testCase{
	{"RoundTrip", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		for _, n := range []int{0, 1, 100 << 10, streamSize} {
			key := fmt.Sprintf("obj-%d", n)
			data := randomBytes(uint64(n), n)
			v := streamWrite(t, b, key, data)
			if v == "" {
				t.Errorf("Writer.Version() of %q after Close is empty, want the new version", key)
			}
			a, err := b.Stat(t.Context(), key)
			if err != nil {
				t.Fatalf("Stat(%q) = %v", key, err)
			}
			if a.Size != int64(n) || a.Version != v {
				t.Errorf("Stat(%q) = size %d version %q, want %d and the writer's %q", key, a.Size, a.Version, n, v)
			}
			got, ra := streamRead(t, b, key, 0, -1)
			if !bytes.Equal(got, data) {
				t.Errorf("NewReader(%q) read %s, want the %d bytes written", key, abbrev(got), n)
			}
			if ra.Size != int64(n) || ra.Version != "" && ra.Version != v {
				t.Errorf("Reader.Attributes() of %q = size %d version %q, want %d and %q (or an empty version)", key, ra.Size, ra.Version, n, v)
			}
			wantContent(t, b, key, data, v, "a streamed object reads back whole with Read, with the writer's version")
		}
	}},
	{"Ranges", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		data := randomBytes(7, streamSize)
		mustWrite(t, b, "obj", data)
		n := int64(len(data))
		for _, r := range []struct{ off, length int64 }{
			{0, -1}, {0, 10}, {5, 100}, {n - 10, -1}, {n - 10, 100}, {n, -1}, {n + 5, 10},
			{1000, 0}, {6<<20 - 3, 7 << 20}, {0, n}, {1, n - 2},
		} {
			got, a := streamRead(t, b, "obj", r.off, r.length)
			start := min(r.off, n)
			end := n
			if r.length >= 0 {
				end = min(r.off+r.length, n)
			}
			if !bytes.Equal(got, data[start:end]) {
				t.Errorf("NewRangeReader(off %d, length %d) read %d bytes %s, want bytes [%d, %d)", r.off, r.length, len(got), abbrev(got), start, end)
			}
			if a.Size != n {
				t.Errorf("NewRangeReader(off %d, length %d).Attributes().Size = %d, want the object's size %d", r.off, r.length, a.Size, n)
			}
		}
		if _, err := b.NewRangeReader(t.Context(), "obj", -1, 1); err == nil {
			t.Error("NewRangeReader with a negative offset = nil error, want an error")
		}
	}},
	{"ReaderMissing", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		_, err := b.NewReader(t.Context(), "missing")
		wantErr(t, "NewReader(missing)", err, store.ErrNotExist, "a missing key")
		_, err = b.NewRangeReader(t.Context(), "missing", 10, 0)
		wantErr(t, "NewRangeReader(missing, 10, 0)", err, store.ErrNotExist, "a missing key, even for an empty range")
	}},
	{"InvalidKey", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		_, err := b.NewWriter(t.Context(), "a/../b")
		wantErr(t, "NewWriter(a/../b)", err, store.ErrInvalidKey, "keys are validated")
		_, err = b.NewReader(t.Context(), "/a")
		wantErr(t, "NewReader(/a)", err, store.ErrInvalidKey, "keys are validated")
	}},
	{"Reserved", func(t *testing.T, h Harness) {
		b := newBucket(t, h).WithReserved("the runner", func(k string) bool { return k == ".control" })
		_, err := b.NewWriter(t.Context(), ".control")
		wantErr(t, "NewWriter(.control) through a reserved view", err, store.ErrReserved, "streamed writes are refused like the others")
		wantMissing(t, b, ".control", "a refused write changes nothing")
		streamWrite(t, b, "data", []byte("user data"))
	}},
	{"InvisibleUntilClose", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		old := []byte("old content")
		mustWrite(t, b, "replaced", old)
		data := randomBytes(3, streamSize)
		wNew, err := b.NewWriter(t.Context(), "new")
		if err != nil {
			t.Fatal(err)
		}
		wRep, err := b.NewWriter(t.Context(), "replaced")
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []*store.Writer{wNew, wRep} {
			if err := writeChunks(w, data, 3); err != nil {
				t.Fatal(err)
			}
		}
		wantMissing(t, b, "new", "an object being streamed does not exist before Close")
		wantContent(t, b, "replaced", old, "", "an object being replaced keeps its old content until Close")
		wantObjects(t, b, []string{"replaced"}, "a write in progress shows nothing in a listing")
		for _, w := range []*store.Writer{wNew, wRep} {
			if err := w.Close(); err != nil {
				t.Fatalf("Close() = %v", err)
			}
		}
		wantContent(t, b, "new", data, "", "after Close the object holds what was written")
		wantContent(t, b, "replaced", data, "", "after Close the object holds what was written")
	}},
	{"Abort", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		old := []byte("old content")
		mustWrite(t, b, "replaced", old)
		data := randomBytes(4, streamSize)
		for _, key := range []string{"new", "replaced"} {
			w, err := b.NewWriter(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeChunks(w, data, 4); err != nil {
				t.Fatal(err)
			}
			if err := w.Abort(); err != nil {
				t.Errorf("Abort() = %v, want nil", err)
			}
			if err := w.Close(); err == nil {
				t.Errorf("Close() after Abort = nil, want an error")
			}
		}
		wantMissing(t, b, "new", "an aborted write creates nothing")
		wantContent(t, b, "replaced", old, "", "an aborted write leaves the old object")
		wantObjects(t, b, []string{"replaced"}, "an aborted write leaves nothing behind")
	}},
	{"CancelMidWrite", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		old := []byte("old content")
		mustWrite(t, b, "replaced", old)
		data := randomBytes(5, streamSize)
		for _, key := range []string{"new", "replaced"} {
			ctx, cancel := context.WithCancel(t.Context())
			w, err := b.NewWriter(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if err := writeChunks(w, data[:len(data)/2], 5); err != nil {
				t.Fatal(err)
			}
			cancel()
			err = writeChunks(w, data[len(data)/2:], 6)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("writing %q after its context was cancelled, then Close = %v, want an error satisfying errors.Is(err, context.Canceled)", key, err)
			}
		}
		wantMissing(t, b, "new", "a write cancelled midway creates nothing")
		wantContent(t, b, "replaced", old, "", "a write cancelled midway leaves the old object")
		wantObjects(t, b, []string{"replaced"}, "a cancelled write leaves nothing behind")
	}},
	{"ConcurrentWriters", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		const writers = 4
		sums := make([]string, writers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			data := randomBytes(uint64(100+i), streamSize)
			s := sha256.Sum256(data)
			sums[i] = hex.EncodeToString(s[:])
			w, err := b.NewWriter(t.Context(), "obj")
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				<-start
				if err := writeChunks(w, data, uint64(i)); err != nil {
					w.Abort()
					t.Errorf("writer %d: %v", i, err)
					return
				}
				if err := w.Close(); err != nil {
					t.Errorf("writer %d: Close() = %v, want nil", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		got, _, err := b.Read(t.Context(), "obj")
		if err != nil {
			t.Fatalf("Read = %v", err)
		}
		s := sha256.Sum256(got)
		if !slices.Contains(sums, hex.EncodeToString(s[:])) {
			t.Errorf("after %d concurrent streaming writes of one key, it holds %d bytes matching none of them; want exactly one writer's content, never a mix", writers, len(got))
		}
		wantObjects(t, b, []string{"obj"}, "concurrent writers leave one object")
	}},
	{"Directories", func(t *testing.T, h Harness) {
		b := newBucket(t, h)
		src := t.TempDir()
		files := map[string][]byte{
			"a.txt":            []byte("a"),
			"sub/b.bin":        randomBytes(8, 1<<20),
			"sub/deep/c":       {},
			"sub/deep/d.json":  []byte(`{"d": 1}`),
			"other/e/f/g/h.gz": randomBytes(9, 70<<10),
		}
		for rel, data := range files {
			p := filepath.Join(src, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o666); err != nil {
				t.Fatal(err)
			}
		}
		mustWrite(t, b, "outside", []byte("not under up/"))
		if err := b.UploadDir(t.Context(), src, "up", &store.TransferOptions{Concurrency: 3}); err != nil {
			t.Fatalf("UploadDir = %v", err)
		}
		var keys []string
		for rel, data := range files {
			keys = append(keys, "up/"+rel)
			wantContent(t, b, "up/"+rel, data, "", "UploadDir writes each file at dir/REL")
		}
		slices.Sort(keys)
		wantList(t, b, "up", keys, "UploadDir writes every file and nothing else")

		dst := filepath.Join(t.TempDir(), "new")
		if err := b.DownloadDir(t.Context(), "up", dst, nil); err != nil {
			t.Fatalf("DownloadDir = %v", err)
		}
		var got []string
		err := filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dst, p)
			got = append(got, filepath.ToSlash(rel))
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Equal(data, files[filepath.ToSlash(rel)]) {
				t.Errorf("downloaded %s = %s, want %s", rel, abbrev(data), abbrev(files[filepath.ToSlash(rel)]))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		var want []string
		for _, k := range keys {
			want = append(want, k[len("up/"):])
		}
		if !slices.Equal(got, want) {
			t.Errorf("DownloadDir wrote %q, want %q (and no temporary files)", got, want)
		}
	}},
	{"Large", func(t *testing.T, h Harness) {
		if h.LargeObjects == "" {
			t.Skip("Harness.LargeObjects is empty: the backend holds objects in memory")
		}
		if testing.Short() {
			t.Skip("a 1 GiB object; skipped with -short")
		}
		b := newBucket(t, h)
		var sum string
		if h.Location != nil {
			// Write in a helper process, whose peak RSS is the writer's
			// alone, built without the race detector if this test runs
			// with it.
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			if raceEnabled {
				exe = buildWithoutRace(t)
			}
			res := runProgram(t, exe, largeTimeout, h.Location(t, b), 1, func(int) []string {
				return []string{envOp + "=" + opStream, envKey + "=large", envCount + "=" + fmt.Sprint(LargeObjectSize)}
			})
			var rss int64
			if _, err := fmt.Sscanf(res[0], lineDone+" %s %d", &sum, &rss); err != nil {
				t.Fatalf("helper process printed %q, want %q SHA256 VmHWM", res[0], lineDone)
			}
			t.Logf("peak RSS of the process writing %d bytes: %.1f MB", LargeObjectSize, float64(rss)/1e6)
			if rss >= MaxStreamRSS {
				t.Errorf("the process that wrote %d bytes with NewWriter peaked at %d bytes of RSS, want under %d: streaming writes must use bounded memory",
					LargeObjectSize, rss, MaxStreamRSS)
			}
		} else {
			w, err := b.NewWriter(t.Context(), "large")
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.Copy(io.MultiWriter(w, h), pseudoRandom(0, LargeObjectSize)); err != nil {
				w.Abort()
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			sum = hex.EncodeToString(h.Sum(nil))
		}
		r, err := b.NewReader(t.Context(), "large")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rh := sha256.New()
		n, err := io.Copy(rh, r)
		if err != nil {
			t.Fatalf("reading the large object back after %d bytes: %v", n, err)
		}
		if n != LargeObjectSize || hex.EncodeToString(rh.Sum(nil)) != sum {
			t.Errorf("read back %d bytes with SHA-256 %x, want %d bytes with %s", n, rh.Sum(nil), LargeObjectSize, sum)
		}
		a, err := b.Stat(t.Context(), "large")
		if err != nil || a.Size != LargeObjectSize {
			t.Errorf("Stat(large) = %+v, %v; want size %d", a, err, LargeObjectSize)
		}
		// Delete it now rather than at cleanup, to give the space back.
		if err := b.Delete(t.Context(), "large"); err != nil {
			t.Error(err)
		}
	}},
}

// pseudoRandom returns a reader of n deterministic pseudo-random bytes.
func pseudoRandom(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), 'c', 'a', 'i', 'r', 'n'}), n)
}

// streamObject is the helper side of the large-object case: it writes n
// pseudo-random bytes to key with NewWriter and prints their SHA-256 and
// the process's peak RSS.
func streamObject(ctx context.Context, b *store.Bucket, key string, n int64, out io.Writer) error {
	w, err := b.NewWriter(ctx, key)
	if err != nil {
		return err
	}
	var h hash.Hash = sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), pseudoRandom(0, n)); err != nil {
		w.Abort()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	rss, err := peakRSS()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, lineDone, hex.EncodeToString(h.Sum(nil)), rss)
	return nil
}

// peakRSS returns this process's peak resident set size in bytes, from
// VmHWM in /proc/self/status.
func peakRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(data) {
		var kb int64
		if _, err := fmt.Sscanf(string(line), "VmHWM: %d kB", &kb); err == nil {
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}
