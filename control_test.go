package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
	"example.com/cairn/store/memstore"
)

// TestStepBucketProtectsControlFiles runs a step whose code tries to write
// and delete its own control files through Output.Bucket (issue 8, item
// 11): every such write is refused with store.ErrReserved, the runner's
// files are intact (the step ends SUCCESS with its artifact, and a second
// run finds it cached), and the step's listing shows only its own data.
func TestStepBucketProtectsControlFiles(t *testing.T) {
	st := cairntest.NewStorage(t)
	controls := []string{
		statusfile.LockKey, statusfile.StatusKey, statusfile.InfoKey, statusfile.ArtifactKey,
		statusfile.FailureKey, statusfile.RemoteKey, statusfile.LogsDir + "/attempt-1.log", ".executor_anything",
	}
	var (
		refused []string
		listed  []string
	)
	s := &cairn.Step{Name: "meddler", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		for _, k := range controls {
			if _, err := out.Bucket.Write(ctx, k, []byte("garbage")); errors.Is(err, store.ErrReserved) {
				refused = append(refused, "write "+k)
			} else {
				t.Errorf("Output.Bucket.Write(%q) = %v, want ErrReserved", k, err)
			}
			if err := out.Bucket.Delete(ctx, k); errors.Is(err, store.ErrReserved) {
				refused = append(refused, "delete "+k)
			} else {
				t.Errorf("Output.Bucket.Delete(%q) = %v, want ErrReserved", k, err)
			}
		}
		if _, err := out.Bucket.Write(ctx, "data/part-0", []byte("ok")); err != nil {
			return nil, err
		}
		for k, err := range out.Bucket.List(ctx, "") {
			if err != nil {
				return nil, err
			}
			listed = append(listed, k)
		}
		return "result", nil
	}}
	mustRun(t, st, nil, s)
	if len(refused) != 2*len(controls) {
		t.Errorf("refused %d writes and deletes, want %d", len(refused), 2*len(controls))
	}
	if !slices.Equal(listed, []string{"data/part-0"}) {
		t.Errorf("Output.Bucket.List = %q, want only the step's data", listed)
	}
	if got := readStatus(t, st, s); got != statusfile.Success {
		t.Errorf("status = %q, want SUCCESS", got)
	}
	b := st.StepBucket(t, s)
	if data, err := statusfile.ReadArtifact(t.Context(), b); err != nil || string(data) != `"result"` {
		t.Errorf("artifact = %s, %v; want \"result\"", data, err)
	}
	if ok, _ := b.Exists(t.Context(), statusfile.LockKey); ok {
		t.Errorf("the lease is still there after the run")
	}
	r := mustRun(t, st, nil, s)
	if o := outcomes(r); o["meddler"] != cairn.Cached {
		t.Errorf("second run: outcome %v, want cached", o["meddler"])
	}
}

// TestPermissionErrorStopsTheRun checks issue 13: when the storage refuses
// a step's lease (another user's directory this user cannot write), the
// run stops as a storage error, satisfying store.ErrPermission, instead of
// failing the step and going on; no other step starts, and none is
// reported as failed.
func TestPermissionErrorStopsTheRun(t *testing.T) {
	st := cairntest.NewStorage(t)
	var rec cairntest.Recorder
	a := &cairn.Step{Name: "a", Func: rec.Func("a", nil)}
	b := &cairn.Step{Name: "b", Func: rec.Func("b", nil)}
	aLock := st.StepBucket(t, a).URL(statusfile.LockKey)
	st.NS.SetFaults(memstore.Faults{BeforeOp: func(op, key string) error {
		if op == "write" && strings.HasSuffix(aLock, key) {
			return fmt.Errorf("injected: %w", store.ErrPermission)
		}
		return nil
	}})
	opts := st.Options()
	opts.MaxConcurrent = 1 // a is attempted first, and b waits for a slot
	r, err := cairn.Run(t.Context(), cairn.Steps(a, b), opts)
	if !errors.Is(err, store.ErrPermission) {
		t.Fatalf("Run = %v, want an error satisfying store.ErrPermission", err)
	}
	if errors.As(err, new(*cairn.RunError)) {
		t.Errorf("Run = %v, want no *RunError: no step failed", err)
	}
	if got := rec.Executed(); len(got) != 0 {
		t.Errorf("executed %v after the storage refused a lease, want nothing", got)
	}
	for name, o := range outcomes(r) {
		if o != cairn.Unfinished {
			t.Errorf("step %s: outcome %v, want unfinished", name, o)
		}
	}
}

// TestNonRegularControlFilesOnDisk puts a directory where a step's lease
// belongs, a FIFO where another's status belongs and a link to /dev/zero
// where a third's status belongs, on a local prefix (issue 8, items 6 and
// 8). Neither a run nor a dry run may hang, wait for the "absent" lease or
// say "would run": each step fails with an error satisfying
// store.ErrNotRegular, and nothing runs.
func TestNonRegularControlFilesOnDisk(t *testing.T) {
	dir := t.TempDir()
	mux := new(store.URLMux)
	mux.Register("file", filestore.URLOpener{})
	var rec cairntest.Recorder
	dirLease := &cairn.Step{Name: "dirlease", Func: rec.Func("dirlease", nil)}
	fifo := &cairn.Step{Name: "fifo", Func: rec.Func("fifo", nil)}
	zero := &cairn.Step{Name: "zero", Func: rec.Func("zero", nil)}
	plant := func(s *cairn.Step, key string, make func(p string) error) {
		p, err := s.OutputPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := make(filepath.Join(p, key)); err != nil {
			t.Fatal(err)
		}
	}
	plant(dirLease, statusfile.LockKey, func(p string) error { return os.Mkdir(p, 0o755) })
	plant(fifo, statusfile.StatusKey, func(p string) error { return syscall.Mkfifo(p, 0o644) })
	plant(zero, statusfile.StatusKey, func(p string) error { return os.Symlink("/dev/zero", p) })
	for _, dry := range []bool{true, false} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute) // a hang fails instead of blocking the suite
		r, err := cairn.Run(ctx, cairn.Steps(dirLease, fifo, zero), &cairn.RunOptions{
			Prefix: dir, Storage: mux, DryRun: dry, PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		})
		hung := ctx.Err() != nil
		cancel()
		if hung {
			t.Fatalf("DryRun %v: the run hung on non-regular control files", dry)
		}
		var re *cairn.RunError
		if !errors.As(err, &re) || len(re.Failed) != 3 {
			t.Fatalf("DryRun %v: Run = %v, want three failed steps", dry, err)
		}
		for _, f := range re.Failed {
			if !errors.Is(f, store.ErrNotRegular) {
				t.Errorf("DryRun %v: %v, want an error satisfying store.ErrNotRegular", dry, f)
			}
		}
		for name, o := range outcomes(r) {
			if o != cairn.Failed {
				t.Errorf("DryRun %v: step %s: outcome %v, want failed", dry, name, o)
			}
		}
	}
	if got := rec.Executed(); len(got) != 0 {
		t.Errorf("executed %v, want nothing", got)
	}
	// `cairn status` finds the steps whose status is not a file and says
	// what is wrong, without hanging on the FIFO.
	root, err := filestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	states, err := cairn.Inspect(t.Context(), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	problems := 0
	for _, st := range states {
		if strings.Contains(st.Problem, "not a regular file") {
			problems++
		}
	}
	if problems != 2 {
		t.Errorf("Inspect = %+v, want the FIFO and the link reported as not regular files", states)
	}
}
