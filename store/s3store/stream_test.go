package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"example.com/cairn/store"
	"example.com/cairn/store/s3store"
	"example.com/cairn/store/storetest"
)

// requestLog records the multipart requests that pass a proxy, and lets a
// test fail chosen ones.
type requestLog struct {
	mu   sync.Mutex
	seen map[string]int // "PUT part 2", "POST create", "DELETE abort", ...
	fail func(kind string, n int) int
}

func (l *requestLog) kind(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		return "create"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		return "complete"
	case r.Method == http.MethodPut && q.Has("partNumber"):
		return "part " + q.Get("partNumber")
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		return "abort"
	}
	return r.Method
}

// handler proxies to target, answering with the status fail returns for
// the n-th request of a kind (0: forward it).
func (l *requestLog) handler(target *url.URL) http.Handler {
	proxy := countingProxy(target, func(*http.Request) {})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := l.kind(r)
		l.mu.Lock()
		l.seen[k]++
		n := l.seen[k]
		l.mu.Unlock()
		if l.fail != nil {
			if status := l.fail(k, n); status != 0 {
				io.Copy(io.Discard, r.Body)
				http.Error(w, "injected", status)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})
}

func (l *requestLog) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[kind]
}

// proxied opens a bucket at a fresh prefix through a proxy logging to l,
// with 5 MiB parts and retries without waiting.
func proxied(t *testing.T, l *requestLog) (*store.Bucket, *s3.Client, string) {
	t.Helper()
	opts, bucket := serverOptions(t)
	target, err := url.Parse(opts.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	l.seen = map[string]int{}
	srv := httptest.NewServer(l.handler(target))
	t.Cleanup(srv.Close)
	o := *opts
	o.Endpoint = srv.URL
	o.PartSize = 5 << 20
	o.Bucket = &store.Options{Retry: store.RetryPolicy{MaxAttempts: 3, Backoff: func(int) time.Duration { return 0 }}}
	prefix := storetest.UniquePrefix(t.Name())
	b, err := s3store.Open(t.Context(), bucket, prefix, &o)
	if err != nil {
		t.Fatal(err)
	}
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(opts.Endpoint), Region: s3store.DefaultRegion, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(os.Getenv(envAccessKey), os.Getenv(envSecretKey), ""),
	})
	t.Cleanup(func() {
		for k, err := range b.List(context.Background(), "") {
			if err == nil {
				b.Delete(context.Background(), k)
			}
		}
	})
	return b, client, bucket + " " + prefix
}

// wantNoUploads reports if a multipart upload is left under prefix.
func wantNoUploads(t *testing.T, client *s3.Client, bucketPrefix string) {
	t.Helper()
	var bucket, prefix string
	for i := range bucketPrefix {
		if bucketPrefix[i] == ' ' {
			bucket, prefix = bucketPrefix[:i], bucketPrefix[i+1:]
			break
		}
	}
	out, err := client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: aws.String(prefix + "/")})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	if len(out.Uploads) > 0 {
		t.Errorf("%d multipart uploads left under %s, want none: a failed or cancelled write must abort its upload", len(out.Uploads), prefix)
	}
}

func randomData(n int) []byte {
	data := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(data)
	return data
}

// A transient failure of one part repeats that part, not the object.
func TestStreamRetriesOnePart(t *testing.T) {
	l := &requestLog{fail: func(kind string, n int) int {
		if kind == "part 2" && n == 1 {
			return http.StatusServiceUnavailable
		}
		return 0
	}}
	b, client, loc := proxied(t, l)
	data := randomData(12 << 20) // three parts of 5 MiB
	w, err := b.NewWriter(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil after one retried part", err)
	}
	got, _, err := b.Read(t.Context(), "obj")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Read = %d bytes, %v; want the %d bytes written", len(got), err, len(data))
	}
	for kind, want := range map[string]int{"create": 1, "part 1": 1, "part 2": 2, "part 3": 1, "complete": 1, "abort": 0} {
		if n := l.count(kind); n != want {
			t.Errorf("%d %s requests, want %d", n, kind, want)
		}
	}
	wantNoUploads(t, client, loc)
}

// A part that fails for good fails the write, which aborts its upload.
func TestStreamPermanentFailureAborts(t *testing.T) {
	l := &requestLog{fail: func(kind string, n int) int {
		if kind == "part 2" {
			return http.StatusForbidden
		}
		return 0
	}}
	b, client, loc := proxied(t, l)
	w, err := b.NewWriter(t.Context(), "obj")
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(randomData(12 << 20))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if !errors.Is(err, store.ErrPermission) {
		t.Errorf("write with a part refused = %v, want ErrPermission", err)
	}
	if n := l.count("part 2"); n != 1 {
		t.Errorf("%d attempts of the refused part, want 1 (a permanent error is not retried)", n)
	}
	// versitygw may answer 500 to an abort that races the part uploads the
	// cancellation stopped; the abort is then retried.
	if l.count("abort") < 1 || l.count("complete") != 0 {
		t.Errorf("%d abort and %d complete requests, want an abort and no complete", l.count("abort"), l.count("complete"))
	}
	if _, err := b.Stat(t.Context(), "obj"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat after a failed write = %v, want ErrNotExist", err)
	}
	wantNoUploads(t, client, loc)
}

// Cancelling the context mid-write aborts the multipart upload.
func TestStreamCancelAborts(t *testing.T) {
	l := &requestLog{}
	b, client, loc := proxied(t, l)
	ctx, cancel := context.WithCancel(t.Context())
	w, err := b.NewWriter(ctx, "obj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randomData(11 << 20)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := w.Close(); !errors.Is(err, context.Canceled) {
		t.Errorf("Close after cancel = %v, want context.Canceled", err)
	}
	if l.count("create") != 1 || l.count("abort") < 1 || l.count("complete") != 0 {
		t.Errorf("create %d, abort %d, complete %d requests; want 1, at least 1 (retried), 0", l.count("create"), l.count("abort"), l.count("complete"))
	}
	wantNoUploads(t, client, loc)
}
