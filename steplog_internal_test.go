package cairn

import (
	"log/slog"
	"slices"
	"testing"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store/memstore"
)

// An attempt log the step has not written to is given to the step's job
// (handover: the job logs to its number) or, when a job is adopted,
// deleted; one the step wrote to is kept. On an object store the number is
// claimed with the log's first upload.
func TestAttemptLogRelease(t *testing.T) {
	for _, tc := range []struct {
		name     string
		logged   bool // the step logged after the header
		drop     bool
		wantOK   bool
		wantLogs []int
	}{
		{"handover", false, false, true, []int{1}},
		{"adopted", false, true, true, nil},
		{"step logged", true, false, false, []int{1}},
		{"step logged, adopted", true, true, false, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := memstore.New().Bucket("p/s_00000000")
			l, err := openAttemptLog(t.Context(), b, "mem://p/s_00000000")
			if err != nil {
				t.Fatal(err)
			}
			_, file := stepLogger(slog.New(slog.DiscardHandler), "s_00000000", l)
			file.Info("attempt started")
			if tc.logged {
				file.Info("the step's own record")
			}
			n, ok := l.release(t.Context(), tc.drop)
			if ok != tc.wantOK || (ok && !tc.drop && n != 1) {
				t.Errorf("release(drop=%v) = %d, %v; want ok=%v", tc.drop, n, ok, tc.wantOK)
			}
			if err := l.close(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got, err := statusfile.ListLogs(t.Context(), b); err != nil || !slices.Equal(got, tc.wantLogs) {
				t.Errorf("logs = %v, %v; want %v", got, err, tc.wantLogs)
			}
		})
	}
}
