package cairn_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
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
