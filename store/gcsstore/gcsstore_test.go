package gcsstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/api/option"

	"example.com/cairn/store"
	"example.com/cairn/store/gcsstore"
	"example.com/cairn/store/storetest"
)

// The loopback GCS emulator started by scripts/services.d/objectstores.sh,
// and an optional real bucket (with Application Default Credentials).
const (
	envEmulator = "CAIRN_TEST_GCS_EMULATOR" // host:port
	envBucket   = "CAIRN_TEST_GCS_EMULATOR_BUCKET"
	envCloud    = "CAIRN_TEST_GCS_BUCKET" // a real bucket: "name" or "name/prefix"
)

func TestMain(m *testing.M) {
	if storetest.HelperProcess(context.Background(), openLocation) {
		return
	}
	os.Exit(m.Run())
}

// emulator returns the emulator's endpoint and test bucket, or skips t.
func emulator(t testing.TB) (endpoint, bucket string) {
	t.Helper()
	host, bucket := os.Getenv(envEmulator), os.Getenv(envBucket)
	if host == "" || bucket == "" {
		t.Skipf("%s or %s not set: start the test servers with `scripts/services.sh up` and export the variables it prints", envEmulator, envBucket)
	}
	return "http://" + host, bucket
}

// emulatorOptions reach the emulator at endpoint (http://host:port) without
// credentials, as STORAGE_EMULATOR_HOST would, but explicitly, so that a
// real bucket can be tested by the same process.
func emulatorOptions(endpoint string) *gcsstore.Options {
	return &gcsstore.Options{ClientOptions: []option.ClientOption{
		option.WithEndpoint(endpoint + "/storage/v1/"),
		option.WithoutAuthentication(),
	}}
}

// newBucket creates a bucket on the emulator and returns its name.
func newBucket(t *testing.T) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "conformance-" + hex.EncodeToString(b[:])
	resp, err := http.Post("http://"+os.Getenv(envEmulator)+"/storage/v1/b?project=cairn-test", "application/json",
		strings.NewReader(`{"name":"`+name+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("creating bucket %s on the emulator: %s", name, resp.Status)
	}
	return name
}

// openLocation opens a bucket from a Location string: "emulator BUCKET PREFIX" or
// "cloud BUCKET PREFIX". It runs in helper processes too.
func openLocation(ctx context.Context, loc string) (*store.Bucket, error) {
	f := strings.Fields(loc)
	switch {
	case len(f) == 3 && f[0] == "emulator":
		return gcsstore.Open(ctx, f[1], f[2], emulatorOptions("http://"+os.Getenv(envEmulator)))
	case len(f) == 3 && f[0] == "cloud":
		return gcsstore.Open(ctx, f[1], f[2], nil)
	}
	return nil, fmt.Errorf("bad location %q", loc)
}

// conformance runs the suite on buckets opened from the locations loc
// names ("KIND ... PREFIX"), removing their objects afterwards.
func conformance(t *testing.T, loc func(t *testing.T, prefix string) string, uncheckedDelete, large string) {
	h := storetest.OpenHarness(openLocation, loc)
	h.UncheckedDeleteConditions = uncheckedDelete
	h.LargeObjects = large
	storetest.Run(t, h)
}

// TestConformance runs the storage conformance suite, including the
// goroutine and process races, against fake-gcs-server. The emulator
// ignores ifGenerationMatch on DELETE, so the cases that need a checked
// conditional delete are skipped here; TestDeleteSendsGeneration checks the
// request, and TestConformanceCloud runs them against real GCS.
func TestConformance(t *testing.T) {
	emulator(t)
	// A bucket per test: fake-gcs-server's memory backend slows down as a
	// bucket fills (each upload is O(objects in the bucket)).
	conformance(t, func(t *testing.T, prefix string) string { return "emulator " + newBucket(t) + " " + prefix },
		"fake-gcs-server ignores ifGenerationMatch on DELETE",
		// Not the 1 GiB case: fake-gcs-server's memory backend grew to
		// 7 GB of RSS and, after 7.5 minutes, answered a chunk of the
		// resumable upload with 404 (the session lost). Unresolved; run
		// it against real GCS (TestConformanceCloud) until it is.
		"")
}

// TestConformanceCloud runs the whole suite against a real bucket named by
// CAIRN_TEST_GCS_BUCKET ("name" or "name/prefix"), with Application Default
// Credentials.
func TestConformanceCloud(t *testing.T) {
	name := os.Getenv(envCloud)
	if name == "" {
		t.Skipf("%s not set: no real GCS bucket to test against", envCloud)
	}
	bucket, base, _ := strings.Cut(name, "/")
	conformance(t, func(_ *testing.T, prefix string) string {
		return "cloud " + bucket + " " + strings.TrimPrefix(base+"/"+prefix, "/")
	}, "", "GCS")
}

// recorder is a reverse proxy to the emulator that records requests.
type recorder struct {
	target *url.URL
	mu     sync.Mutex
	reqs   []string // "METHOD PATH?QUERY"
	// fail, if set, is called with each request and the number of
	// requests before it; a non-zero status is answered instead of
	// forwarding the request.
	fail func(r *http.Request, n int) int
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	n := len(rec.reqs)
	rec.reqs = append(rec.reqs, r.Method+" "+r.URL.RequestURI())
	rec.mu.Unlock()
	if rec.fail != nil {
		if status := rec.fail(r, n); status != 0 {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "injected", status)
			return
		}
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.RequestURI = rec.target.Scheme, rec.target.Host, ""
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (rec *recorder) requests() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.reqs...)
}

func recorded(t *testing.T) (*recorder, *store.Bucket) {
	t.Helper()
	endpoint, bucket := emulator(t)
	target, _ := url.Parse(endpoint)
	rec := &recorder{target: target}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	b, err := gcsstore.Open(t.Context(), bucket, storetest.UniquePrefix(t.Name()), emulatorOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	return rec, b
}

// The emulator cannot check a conditional delete, so check that the
// condition is on the wire, as the GCS JSON API defines it.
func TestDeleteSendsGeneration(t *testing.T) {
	rec, b := recorded(t)
	ctx := t.Context()
	v, err := b.Write(ctx, "k", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteIf(ctx, "k", store.IfVersion(v)); err != nil {
		t.Fatal(err)
	}
	var deletes []string
	for _, r := range rec.requests() {
		if strings.HasPrefix(r, "DELETE ") {
			deletes = append(deletes, r)
		}
	}
	if len(deletes) != 1 || !strings.Contains(deletes[0], "ifGenerationMatch="+string(v)) {
		t.Errorf("DELETE requests %q, want one with ifGenerationMatch=%s", deletes, v)
	}
}

// A read is one request whose response carries the generation of its bytes
// (reference §2.2 item 5, scenario 44): no metadata request before the
// download that a writer could slip between.
func TestReadIsOneRequest(t *testing.T) {
	rec, b := recorded(t)
	ctx := t.Context()
	v, err := b.Write(ctx, "k", []byte("content"))
	if err != nil {
		t.Fatal(err)
	}
	n := len(rec.requests())
	data, got, err := b.Read(ctx, "k")
	if err != nil || string(data) != "content" || got != v {
		t.Fatalf("Read = %q, %q, %v; want %q, %q, nil", data, got, err, "content", v)
	}
	if reqs := rec.requests()[n:]; len(reqs) != 1 {
		t.Errorf("Read made requests %q, want exactly one", reqs)
	}
}

// Every write, even of identical bytes, gets a new generation: no ABA.
func TestVersionsNeverRepeat(t *testing.T) {
	_, b := recorded(t)
	ctx := t.Context()
	v1, err := b.Write(ctx, "k", []byte("same"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := b.Write(ctx, "k", []byte("same"))
	if err != nil {
		t.Fatal(err)
	}
	if v1 == v2 {
		t.Errorf("two writes of the same bytes both have version %s", v1)
	}
	if _, err := b.WriteIf(ctx, "k", []byte("same"), store.IfVersion(v1)); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("WriteIf(IfVersion(first generation)) = %v, want ErrPrecondition", err)
	}
}

func TestPermanentErrors(t *testing.T) {
	endpoint, _ := emulator(t)
	ctx := t.Context()
	var retries atomic.Int32
	opts := emulatorOptions(endpoint)
	opts.Bucket = &store.Options{OnRetry: func(string, string, int, error) { retries.Add(1) }}
	b, err := gcsstore.Open(ctx, "no-such-bucket-"+storetest.UniquePrefix("x")[len("cairn-test/"):], "", opts)
	if err != nil {
		t.Fatal(err)
	}
	// Real GCS says "The specified bucket does not exist." in every 404 of
	// a missing bucket; the emulator says "Not Found", which for a read is a
	// missing object. An upload creates its object, so a 404 there can only
	// mean a missing bucket.
	_, err = b.Write(ctx, "k", []byte("x"))
	if !errors.Is(err, store.ErrPermission) || !strings.Contains(err.Error(), "does not exist: create it") {
		t.Errorf("Write in a missing bucket = %v, want ErrPermission saying the bucket does not exist", err)
	}
	if n := retries.Load(); n != 0 {
		t.Errorf("%d retries of permanent errors, want none", n)
	}
}

func TestURLOpener(t *testing.T) {
	endpoint, bucket := emulator(t)
	ctx := t.Context()
	mux := new(store.URLMux)
	mux.Register("gs", &gcsstore.URLOpener{Options: *emulatorOptions(endpoint)})
	prefix := storetest.UniquePrefix(t.Name())
	b, err := mux.OpenBucket(ctx, "gs://"+bucket+"/"+prefix)
	if err != nil {
		t.Fatal(err)
	}
	if want := "gs://" + bucket + "/" + prefix; b.String() != want {
		t.Errorf("String() = %q, want %q", b.String(), want)
	}
	if _, err := b.Write(ctx, "a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	sub, err := mux.OpenBucket(ctx, "gs://"+bucket+"/"+prefix+"/a")
	if err != nil {
		t.Fatal(err)
	}
	if data, _, err := sub.Read(ctx, "b"); err != nil || string(data) != "x" {
		t.Errorf("Read through a second URL = %q, %v; want \"x\"", data, err)
	}
	if err := b.Delete(ctx, "a/b"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"gs:///p", "gs://b/p?x=1", "gs://b/a/../c"} {
		if _, err := mux.OpenBucket(ctx, bad); err == nil {
			t.Errorf("OpenBucket(%q) = nil error, want an error", bad)
		}
	}
}
