package k8scluster_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/cairn"
	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
)

// workerArg makes the test binary a remote-step worker (see TestMain), as
// package cli makes pipeline programs.
const workerArg = "cairn-k8s-test-worker"

func testWorker(args []string) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	step := fs.String("step", "", "")
	path := fs.String("path", "", "")
	prefix := fs.String("prefix", "", "")
	digest := fs.String("program-digest", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	replica, _ := strconv.Atoi(os.Getenv("CAIRN_REPLICA"))
	err := cairn.RunWorker(context.Background(), gangPipeline(), &cairn.WorkerOptions{
		Step: *step, Path: *path, Prefix: *prefix, Storage: fileStorage(), Digest: *digest, Replica: replica,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		return 1
	}
	return 0
}

func fileStorage() *store.URLMux {
	mux := new(store.URLMux)
	mux.Register("file", &filestore.URLOpener{})
	return mux
}

// gangPipeline is one remote step run by a gang of 4 replicas: each
// appends its index to replicas.txt in the step's output.
func gangPipeline() iter.Seq[*cairn.Step] {
	return cairn.Steps(&cairn.Step{Name: "gang", Remote: &cairn.RemoteSpec{Replicas: 4},
		Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			dir, _ := strings.CutPrefix(out.Path, "file://")
			f, err := os.OpenFile(filepath.Join(dir, "replicas.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			fmt.Fprintf(f, "replica %s\n", os.Getenv("CAIRN_REPLICA"))
			return map[string]string{"replica": os.Getenv("CAIRN_REPLICA")}, nil
		}})
}

// A remote step with 4 replicas is one Indexed Job of 4 pods: every
// replica runs the function, the runner is the step's only claimant (one
// lease, one status), and the artifact is replica 0's.
func TestGangOfFourOneClaimant(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	c := newClient(t, kc, ns)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	prefix := t.TempDir()
	var events []cairn.Event
	report, err := cairn.Run(ctx, gangPipeline(), &cairn.RunOptions{
		Prefix: prefix, Storage: fileStorage(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e cairn.Event) { events = append(events, e) },
		Remote: &cairn.RemoteOptions{Cluster: c, WorkerArgs: func(w cairn.WorkerJob) []string {
			return []string{workerArg, "--step", w.Step, "--path", w.Path, "--prefix", prefix, "--program-digest", w.Digest}
		}},
	})
	if err != nil {
		t.Fatalf("Run: %v (report %+v)", err, report)
	}
	m, _ := filepath.Glob(filepath.Join(prefix, "gang_*"))
	if len(m) != 1 {
		t.Fatalf("step outputs %v", m)
	}
	data, err := os.ReadFile(filepath.Join(m[0], "replicas.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	slices.Sort(lines)
	if want := []string{"replica 0", "replica 1", "replica 2", "replica 3"}; !slices.Equal(lines, want) {
		t.Errorf("replicas ran: %q, want %q", lines, want)
	}
	art, err := os.ReadFile(filepath.Join(m[0], ".artifact"))
	if err == nil && string(art) != `{"replica":"0"}` {
		t.Errorf("artifact %s, want replica 0's", art)
	}
	started := 0
	for _, e := range events {
		if e.Kind == cairn.StepStarted {
			started++
		}
	}
	if started != 1 {
		t.Errorf("the step started %d times, want once: one claimant for the gang", started)
	}
	jobs, err := kc.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 1 || *jobs.Items[0].Spec.Completions != 4 || *jobs.Items[0].Spec.Parallelism != 4 {
		t.Errorf("%d Jobs; want one Indexed Job of 4", len(jobs.Items))
	}
}
