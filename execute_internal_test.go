package cairn

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store/memstore"
)

// A status read ahead of the attempt may be stale by the time the step is
// ready; the read under the lease decides.
func TestAttemptWithStaleEarlyStatus(t *testing.T) {
	ran := 0
	s := &Step{Name: "s", Func: func(context.Context, *Output) (any, error) { ran++; return nil, nil }}
	id, _ := s.ID()
	for _, tc := range []struct {
		name         string
		stored       string // the status when the attempt runs
		rejectFailed bool
		want         Outcome
		wantErr      error
	}{
		{"finished meanwhile", statusfile.Success, false, Cached, nil},
		{"failed meanwhile, failures rejected", statusfile.Failed, true, Failed, ErrPreviouslyFailed},
		{"failed meanwhile, re-run", statusfile.Failed, false, Ran, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran = 0
			b := memstore.New().Bucket("p/" + id)
			if err := statusfile.WriteStatus(t.Context(), b, tc.stored); err != nil {
				t.Fatal(err)
			}
			x := newExecutor(&RunOptions{RejectPreviouslyFailed: tc.rejectFailed, Logger: slog.New(slog.DiscardHandler)})
			never := observed{} // read ahead: never ran
			res := x.attempt(t.Context(), s, id, "mem://p/"+id, b, false, &never, false)
			if res.outcome != tc.want || !errors.Is(res.err, tc.wantErr) || (tc.wantErr == nil && res.err != nil) {
				t.Errorf("attempt = %v, %v; want %v, %v", res.outcome, res.err, tc.want, tc.wantErr)
			}
			if wantRan := map[bool]int{true: 1, false: 0}[tc.want == Ran]; ran != wantRan {
				t.Errorf("function ran %d times, want %d", ran, wantRan)
			}
			if ok, _ := b.Exists(t.Context(), statusfile.LockKey); ok {
				t.Error("lease left behind")
			}
		})
	}
}
