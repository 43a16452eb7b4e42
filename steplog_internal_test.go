package cairn

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
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
			l := newAttemptLog(b, "mem://p/s_00000000", nil, func(err error) { t.Error(err) })
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

// An attempt log is created at the step's first record, not before: a
// step that logs nothing has none, one that logs has its header and its
// records, and the key of a new log is reported once it exists.
func TestAttemptLogIsLazy(t *testing.T) {
	dir := t.TempDir()
	b, err := filestoreOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	l := newAttemptLog(b, dir, func(k string) { keys = append(keys, k) }, func(err error) { t.Error(err) })
	_, file := stepLogger(slog.New(slog.DiscardHandler), "s", l)
	file.Info("attempt started")
	if l.exists() || l.key() != "" {
		t.Fatal("the log was created by its header alone")
	}
	if ns, err := statusfile.ListLogs(t.Context(), b); err != nil || len(ns) != 0 {
		t.Fatalf("logs before the step logged: %v, %v", ns, err)
	}
	file.Info("the step's own record")
	if err := l.close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keys, []string{statusfile.LogKey(1)}) {
		t.Errorf("reported keys %v, want [%s]", keys, statusfile.LogKey(1))
	}
	data, _, err := b.Read(t.Context(), statusfile.LogKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("attempt started")) || !bytes.Contains(data, []byte("the step's own record")) {
		t.Errorf("log holds %q, want the header and the record", data)
	}

	// A log that cannot be created is reported once and loses nothing
	// else: the step's records still go to the run's log.
	var warned int
	bad := &attemptLog{open: func(context.Context) (*logBackend, error) { return nil, errors.New("no space") }, warn: func(error) { warned++ }}
	_, file = stepLogger(slog.New(slog.DiscardHandler), "s", bad)
	file.Info("attempt started")
	file.Info("one")
	file.Info("two")
	if warned != 1 || bad.exists() {
		t.Errorf("warned %d times (want 1), exists %v", warned, bad.exists())
	}
}

func filestoreOpen(dir string) (*store.Bucket, error) { return filestore.Open(dir, nil) }
