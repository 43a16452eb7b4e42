package cairn_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
)

// loggingStep returns a step that logs line through out.Logger, then fails
// with err if err is not nil.
func loggingStep(name, line string, err error) *cairn.Step {
	return &cairn.Step{Name: name, Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		out.Logger.Info(line, "n", 1)
		out.Logger.Debug("a debug record")
		return nil, err
	}}
}

func diskOptions(dir string) *cairn.RunOptions {
	mux := new(store.URLMux)
	mux.Register("file", filestore.URLOpener{})
	return &cairn.RunOptions{Prefix: dir, Storage: mux, Logger: cairnDiscard()}
}

func cairnDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func readLog(t *testing.T, dir string, s *cairn.Step, n int) string {
	t.Helper()
	p, err := s.OutputPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(p, filepath.FromSlash(statusfile.LogKey(n))))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A local step's Logger records land in attempt-1.log, at every level, and
// the next attempt (here a re-run of a failed step) gets attempt-2.log,
// leaving attempt-1.log as it was. The failure record names the log.
func TestAttemptLogOnDisk(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	s := loggingStep("logger", "hello from the step", boom)
	if _, err := cairn.Run(t.Context(), cairn.Steps(s), diskOptions(dir)); !errors.Is(err, boom) {
		t.Fatalf("Run = %v, want boom", err)
	}
	first := readLog(t, dir, s, 1)
	for _, want := range []string{"attempt started", "hello from the step", "n=1", "a debug record", "step function failed", "boom"} {
		if !strings.Contains(first, want) {
			t.Errorf("attempt-1.log lacks %q:\n%s", want, first)
		}
	}
	p, _ := s.OutputPath(dir)
	b, err := filestore.Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, ok, err := statusfile.ReadFailure(t.Context(), b)
	if err != nil || !ok || f.Log != statusfile.LogKey(1) {
		t.Errorf("failure record %+v, %v, %v; want log %s", f, ok, err, statusfile.LogKey(1))
	}

	s2 := loggingStep("logger", "second attempt", nil)
	if _, err := cairn.Run(t.Context(), cairn.Steps(s2), diskOptions(dir)); err != nil {
		t.Fatal(err)
	}
	if got := readLog(t, dir, s, 1); got != first {
		t.Errorf("attempt-1.log changed:\n%s\nwant\n%s", got, first)
	}
	if second := readLog(t, dir, s, 2); !strings.Contains(second, "second attempt") || strings.Contains(second, "hello") {
		t.Errorf("attempt-2.log:\n%s", second)
	}
}

// A runner taking over a step from a dead holder writes attempt-2.log and
// leaves the dead holder's attempt-1.log intact; on an object store (here
// the in-memory one) the log is uploaded when the attempt ends.
func TestAttemptLogTakeover(t *testing.T) {
	st := cairntest.NewStorage(t)
	s := loggingStep("orphan", "the taker ran", nil)
	b := st.StepBucket(t, s)
	dead := lease.Record{WorkerID: "dead-host-1", Timestamp: time.Now()}
	if _, err := b.Write(t.Context(), statusfile.LockKey, dead.Marshal()); err != nil {
		t.Fatal(err)
	}
	if err := statusfile.WriteStatus(t.Context(), b, "RUNNING"); err != nil {
		t.Fatal(err)
	}
	const deadLog = "the dead holder's lines\n"
	if _, err := b.Write(t.Context(), statusfile.LogKey(1), []byte(deadLog)); err != nil {
		t.Fatal(err)
	}
	opts := st.Options()
	opts.Lease = &lease.Options{Interval: 20 * time.Millisecond, StaleAfter: 100 * time.Millisecond}
	opts.PollInterval = 10 * time.Millisecond
	r := mustRun(t, st, opts, s)
	if r.Steps[0].Outcome != cairn.TookOver {
		t.Fatalf("outcome %v, want took over", r.Steps[0].Outcome)
	}
	if data, _, err := b.Read(t.Context(), statusfile.LogKey(1)); err != nil || string(data) != deadLog {
		t.Errorf("attempt-1.log = %q, %v; want the dead holder's %q", data, err, deadLog)
	}
	data, _, err := b.Read(t.Context(), statusfile.LogKey(2))
	if err != nil || !strings.Contains(string(data), "the taker ran") {
		t.Errorf("attempt-2.log = %q, %v; want the taker's lines", data, err)
	}
	if ns, err := statusfile.ListLogs(t.Context(), b); err != nil || len(ns) != 2 {
		t.Errorf("ListLogs = %v, %v; want [1 2]", ns, err)
	}
}

// Runners racing to claim a log number never share one.
func TestClaimLogRace(t *testing.T) {
	st := cairntest.NewStorage(t)
	b := st.Bucket(t, st.Prefix+"/step_00000000")
	const n = 8
	got := make(chan int, n)
	for range n {
		go func() {
			k, err := statusfile.ClaimLog(context.Background(), b)
			if err != nil {
				t.Error(err)
			}
			got <- k
		}()
	}
	seen := map[int]bool{}
	for range n {
		k := <-got
		if seen[k] {
			t.Errorf("number %d claimed twice", k)
		}
		seen[k] = true
	}
}

// On an object store (here the in-memory one), the log of a running step
// is uploaded while the step runs, so that `logs -f` can follow it.
func TestAttemptLogUploadedWhileRunning(t *testing.T) {
	st := cairntest.NewStorage(t)
	release := make(chan struct{})
	s := &cairn.Step{Name: "slow", Func: func(ctx context.Context, out *cairn.Output) (any, error) {
		out.Logger.Info("working on it")
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}}
	done := make(chan error, 1)
	go func() {
		_, err := cairn.Run(t.Context(), cairn.Steps(s), st.Options())
		done <- err
	}()
	b := st.StepBucket(t, s)
	deadline := time.Now().Add(10*cairn.LogUploadInterval + time.Minute)
	for {
		data, _, err := b.Read(t.Context(), statusfile.LogKey(1))
		if err == nil && strings.Contains(string(data), "working on it") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running step's log was never uploaded: %q, %v", data, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	data, _, err := b.Read(t.Context(), statusfile.LogKey(1))
	if err != nil || !strings.Contains(string(data), "step function returned") {
		t.Errorf("final log = %q, %v", data, err)
	}
}
