package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"example.com/cairn"
	"example.com/cairn/store"
)

// TestExitCodeStorage checks that a run stopped because the storage refused
// this user exits with ExitStorage, also when other steps failed before
// (issue 13), while plain step failures still exit with ExitFailed.
func TestExitCodeStorage(t *testing.T) {
	perm := fmt.Errorf("cairn: stopping the run: step s: %w", store.ErrPermission)
	failed := &cairn.RunError{Failed: []*cairn.StepError{{Step: "t", Err: errors.New("boom")}}}
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"StorageStop", perm, ExitStorage},
		{"StorageStopAndFailures", errors.Join(perm, failed), ExitStorage},
		{"Failures", failed, ExitFailed},
	} {
		if got := exitCode(context.Background(), tc.err, io.Discard); got != tc.want {
			t.Errorf("%s: exitCode(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
}
