package cairn_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
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
