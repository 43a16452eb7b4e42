package e2e_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"google.golang.org/api/option"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/internal/faultproxy"
	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
	"example.com/cairn/store/gcsstore"
	"example.com/cairn/store/s3store"
)

// Environment written by scripts/services.d/objectstores.sh.
const (
	envS3Server    = "CAIRN_TEST_S3_SERVER"
	envS3Bucket    = "CAIRN_TEST_S3_SERVER_BUCKET"
	envS3AccessKey = "CAIRN_TEST_S3_SERVER_ACCESS_KEY"
	envS3SecretKey = "CAIRN_TEST_S3_SERVER_SECRET_KEY"
	envGCSEmulator = "CAIRN_TEST_GCS_EMULATOR"
	envGCSBucket   = "CAIRN_TEST_GCS_EMULATOR_BUCKET"
)

// The test binary doubles as a pipeline program (a runner): with envRunner
// set, TestMain runs the pipeline of envSteps steps through cli.Main with
// every storage backend registered the way a user's program registers
// them: openers configured by the standard environment variables.
const (
	envRunner = "CAIRN_E2E_RUNNER"
	envSteps  = "CAIRN_E2E_STEPS"
	envLog    = "CAIRN_E2E_LOG"
	envWork   = "CAIRN_E2E_WORK" // milliseconds each step works
	// envStallAfter makes a runner's steps, from its (N+1)th started step
	// on, work until their context ends: a runner that is to be killed
	// mid-step then cannot finish before it is killed, however the
	// machine schedules it.
	envStallAfter = "CAIRN_E2E_STALL_AFTER"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRunner) != "" {
		var n, work, stallAfter int
		fmt.Sscan(os.Getenv(envSteps), &n)
		fmt.Sscan(os.Getenv(envWork), &work)
		fmt.Sscan(os.Getenv(envStallAfter), &stallAfter)
		steps := pipeline(n, time.Duration(work)*time.Millisecond, fileLog(os.Getenv(envLog)), stallAfter)
		os.Exit(cli.Main(cairn.Steps(steps...), &cli.Options{Storage: userStorage()}))
	}
	os.Exit(m.Run())
}

// userStorage is the storage a pipeline program wires: local disk, and the
// object stores configured by the environment (AWS_* for S3,
// STORAGE_EMULATOR_HOST or Application Default Credentials for GCS).
func userStorage() *store.URLMux {
	mux := cli.DefaultStorage()
	mux.Register("s3", &s3store.URLOpener{})
	mux.Register("gs", &gcsstore.URLOpener{})
	return mux
}

// backend is one kind of shared storage the tests run pipelines on.
type backend struct {
	name string
	// root returns a fresh prefix (a path or URL) for one test.
	root func(t *testing.T) string
	// childEnv configures a runner process for the backend through the
	// standard variables.
	childEnv []string
	// storage returns an in-process mux whose object-store requests go to
	// endpoint (the server, or a proxy in front of it), with opts for the
	// buckets.
	storage func(endpoint string, opts *store.Options) *store.URLMux
	// endpoint is the server's base URL ("" for local disk).
	endpoint string
	// interval and staleAfter are the lease timings runners use on it.
	interval, staleAfter time.Duration
}

func uniqueName(t *testing.T) string {
	var b [6]byte
	rand.Read(b[:])
	return strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + "-" + hex.EncodeToString(b[:])
}

func localBackend() backend {
	return backend{
		name:       "local",
		interval:   500 * time.Millisecond,
		staleAfter: 3 * time.Second,
		root:       func(t *testing.T) string { return filepath.Join(t.TempDir(), "prefix") },
		storage: func(string, *store.Options) *store.URLMux {
			mux := new(store.URLMux)
			mux.Register("file", &filestore.URLOpener{})
			return mux
		},
	}
}

// s3Backend returns the S3 server's backend, or ok == false if it is not
// running.
func s3Backend() (backend, bool) {
	endpoint, bucket := os.Getenv(envS3Server), os.Getenv(envS3Bucket)
	if endpoint == "" || bucket == "" {
		return backend{}, false
	}
	key, secret := os.Getenv(envS3AccessKey), os.Getenv(envS3SecretKey)
	return backend{
		name:       "s3",
		endpoint:   endpoint,
		interval:   500 * time.Millisecond,
		staleAfter: 3 * time.Second,
		root:       func(t *testing.T) string { return "s3://" + bucket + "/e2e/" + uniqueName(t) },
		childEnv: []string{
			"AWS_ENDPOINT_URL_S3=" + endpoint, "AWS_ACCESS_KEY_ID=" + key, "AWS_SECRET_ACCESS_KEY=" + secret,
			"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
		},
		storage: func(endpoint string, opts *store.Options) *store.URLMux {
			mux := new(store.URLMux)
			mux.Register("s3", &s3store.URLOpener{Options: s3store.Options{
				Endpoint:        endpoint,
				Credentials:     credentials.NewStaticCredentialsProvider(key, secret, ""),
				ResponseTimeout: time.Second,
				Bucket:          opts,
			}})
			return mux
		},
	}, true
}

// gcsBackend returns the GCS emulator's backend, or ok == false if it is
// not running.
func gcsBackend() (backend, bool) {
	host, bucket := os.Getenv(envGCSEmulator), os.Getenv(envGCSBucket)
	if host == "" || bucket == "" {
		return backend{}, false
	}
	return backend{
		name:       "gcs",
		endpoint:   "http://" + host,
		interval:   500 * time.Millisecond,
		staleAfter: 3 * time.Second,
		// A bucket per test: fake-gcs-server's memory backend slows down
		// with the number of objects in a bucket (each upload is O(n)).
		root:     func(t *testing.T) string { return "gs://" + newEmulatorBucket(t, host) + "/e2e" },
		childEnv: []string{"STORAGE_EMULATOR_HOST=" + host},
		storage: func(endpoint string, opts *store.Options) *store.URLMux {
			mux := new(store.URLMux)
			mux.Register("gs", &gcsstore.URLOpener{Options: gcsstore.Options{
				ClientOptions:   []option.ClientOption{option.WithEndpoint(endpoint + "/storage/v1/"), option.WithoutAuthentication()},
				ResponseTimeout: time.Second,
				Bucket:          opts,
			}})
			return mux
		},
	}, true
}

// newEmulatorBucket creates a bucket on the GCS emulator at host and
// returns its name.
func newEmulatorBucket(t *testing.T, host string) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "e2e-" + hex.EncodeToString(b[:])
	resp, err := http.Post("http://"+host+"/storage/v1/b?project=cairn-test", "application/json",
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

// forEachBackend runs f for local disk and each object store that is
// running; the object stores' subtests skip, saying why, when not.
func forEachBackend(t *testing.T, local bool, f func(t *testing.T, be backend)) {
	if local {
		t.Run("local", func(t *testing.T) { f(t, localBackend()) })
	}
	t.Run("s3", func(t *testing.T) {
		be, ok := s3Backend()
		if !ok {
			t.Skipf("%s not set: start the servers with `scripts/services.sh up` and export the variables it prints", envS3Server)
		}
		f(t, be)
	})
	t.Run("gcs", func(t *testing.T) {
		be, ok := gcsBackend()
		if !ok {
			t.Skipf("%s not set: start the servers with `scripts/services.sh up` and export the variables it prints", envGCSEmulator)
		}
		f(t, be)
	})
}

// proxy starts a fault proxy in front of the backend's server.
func proxy(t *testing.T, be backend, opts *faultproxy.Options) (*faultproxy.Proxy, string) {
	t.Helper()
	target, err := url.Parse(be.endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := faultproxy.New(target, opts)
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close(); p.Close() })
	return p, srv.URL
}

// An execution log records when each step's function started and ended,
// in which runner. Lines: "START|END STEP RUNNER UNIXNANO".
type execLog interface {
	record(event, step, runner string)
}

type memLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *memLog) record(event, step, runner string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf("%s %s %s %d", event, step, runner, time.Now().UnixNano()))
}

// fileLog appends to a file shared by runner processes: one write(2) of a
// short line to an O_APPEND file is atomic.
type fileLog string

func (l fileLog) record(event, step, runner string) {
	f, err := os.OpenFile(string(l), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s %s %d\n", event, step, runner, time.Now().UnixNano())
}

func readFileLog(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// execution is one run of a step's function.
type execution struct {
	step, runner string
	start, end   int64 // end is 0 if the function never returned (killed)
}

// executions pairs START and END lines.
func executions(t *testing.T, lines []string) []execution {
	t.Helper()
	open := map[[2]string]int{} // step, runner -> index of the unfinished execution
	var out []execution
	for _, line := range lines {
		var ev, step, runner string
		var ts int64
		if _, err := fmt.Sscan(line, &ev, &step, &runner, &ts); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		k := [2]string{step, runner}
		switch ev {
		case "START":
			open[k] = len(out)
			out = append(out, execution{step: step, runner: runner, start: ts})
		case "END":
			i, ok := open[k]
			if !ok {
				t.Fatalf("END without START: %q", line)
			}
			out[i].end = ts
			delete(open, k)
		}
	}
	return out
}

// checkNoOverlap reports executions of one step that overlapped in time;
// an unfinished execution (its runner was killed) lasts until killedAt.
// It returns how many executions each step had.
func checkNoOverlap(t *testing.T, execs []execution, killedAt int64) map[string]int {
	t.Helper()
	by := map[string][]execution{}
	for _, e := range execs {
		by[e.step] = append(by[e.step], e)
	}
	counts := map[string]int{}
	for step, es := range by {
		counts[step] = len(es)
		sort.Slice(es, func(i, j int) bool { return es[i].start < es[j].start })
		for i := 1; i < len(es); i++ {
			prevEnd := es[i-1].end
			if prevEnd == 0 {
				prevEnd = killedAt
				if killedAt == 0 {
					t.Errorf("step %s: execution by %s never ended, yet nobody was killed", step, es[i-1].runner)
					continue
				}
			}
			if es[i].start < prevEnd {
				t.Errorf("step %s ran twice at once: %s from %d to %d, %s from %d",
					step, es[i-1].runner, es[i-1].start, prevEnd, es[i].runner, es[i].start)
			}
		}
	}
	return counts
}

// pipeline returns n steps in layers of up to 30: each step of a layer
// depends on two of the previous layer. Each step's function records its
// execution in log, writes an output object, works for about work (while
// its context lasts) and returns an artifact.
func pipeline(n int, work time.Duration, log execLog, stallAfter int) []*cairn.Step {
	const width = 30
	var all, prev []*cairn.Step
	started := new(atomic.Int64)
	for i := 0; i < n; i += width {
		var layer []*cairn.Step
		for j := 0; j < width && i+j < n; j++ {
			s := &cairn.Step{Name: fmt.Sprintf("l%02d/s%02d", i/width, j), Attrs: map[string]int{"i": i + j}}
			if len(prev) > 0 {
				s.Deps = []*cairn.Step{prev[j%len(prev)], prev[(j+1)%len(prev)]}
			}
			s.Func = stepFunc(work, log, stallAfter, started)
			layer = append(layer, s)
		}
		all = append(all, layer...)
		prev = layer
	}
	return all
}

// stepFunc returns a step that writes one file and works for work. With
// stallAfter > 0, every step started after the first stallAfter ones (as
// counted in started) works until its context ends instead.
func stepFunc(work time.Duration, log execLog, stallAfter int, started *atomic.Int64) cairn.Func {
	return func(ctx context.Context, out *cairn.Output) (any, error) {
		work := work
		if stallAfter > 0 && started.Add(1) > int64(stallAfter) {
			work = time.Duration(math.MaxInt64)
		}
		log.record("START", out.ID, out.WorkerID)
		defer log.record("END", out.ID, out.WorkerID)
		if _, err := out.Bucket.Write(ctx, "out.txt", []byte("output of "+out.ID)); err != nil {
			return nil, err
		}
		// Work, but stop as soon as the lease is lost.
		t := time.NewTimer(work)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
		return map[string]string{"step": out.ID}, nil
	}
}
