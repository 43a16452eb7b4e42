package progress_test

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/internal/progress"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden frames in testdata")

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// board is a run 75 s in: two cached steps, one done, one failed, one
// skipped; a local step running with a last log line; a remote step
// running; a remote step queued; a step waiting on another runner.
func board() *progress.Board {
	b := progress.NewBoard(t0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, e := range []cairn.Event{
		{Kind: cairn.StepStarted, Step: "raw_aaaa1111", Time: at(0)},
		{Kind: cairn.StepFinished, Step: "raw_aaaa1111", Outcome: cairn.Cached, Time: at(0)},
		{Kind: cairn.StepStarted, Step: "vocab_bbbb2222", Time: at(0)},
		{Kind: cairn.StepFinished, Step: "vocab_bbbb2222", Outcome: cairn.CompletedElsewhere, Time: at(3)},
		{Kind: cairn.StepStarted, Step: "clean_cccc3333", Time: at(1)},
		{Kind: cairn.StepRunning, Step: "clean_cccc3333", Worker: "vm-12-abcdef.1", Time: at(1)},
		{Kind: cairn.StepFinished, Step: "clean_cccc3333", Outcome: cairn.Ran, Time: at(9)},
		{Kind: cairn.StepStarted, Step: "broken_dddd4444", Time: at(1)},
		{Kind: cairn.StepRunning, Step: "broken_dddd4444", Time: at(1)},
		{Kind: cairn.StepFinished, Step: "broken_dddd4444", Outcome: cairn.Failed, Err: errors.New("boom"), Time: at(2)},
		{Kind: cairn.StepFinished, Step: "eval_eeee5555", Outcome: cairn.Skipped, Time: at(2)},
		{Kind: cairn.StepStarted, Step: "tokenize_ffff6666", Time: at(10)},
		{Kind: cairn.StepRunning, Step: "tokenize_ffff6666", Worker: "vm-12-abcdef.2", Time: at(10)},
		{Kind: cairn.StepStarted, Step: "train_00007777", Time: at(10)},
		{Kind: cairn.StepRunning, Step: "train_00007777", Worker: "vm-12-abcdef.3", Remote: true, Time: at(10)},
		{Kind: cairn.StepJob, Step: "train_00007777", Cluster: "slurm", JobID: "4242", JobState: "PENDING", Submitted: at(11), Time: at(11)},
		{Kind: cairn.StepJob, Step: "train_00007777", Cluster: "slurm", JobID: "4242", JobState: "RUNNING", Submitted: at(11), Time: at(40)},
		{Kind: cairn.StepStarted, Step: "sweep_11118888", Time: at(20)},
		{Kind: cairn.StepRunning, Step: "sweep_11118888", Remote: true, Time: at(20)},
		{Kind: cairn.StepJob, Step: "sweep_11118888", Cluster: "slurm", JobID: "4243", JobState: "PENDING", Submitted: at(21), Time: at(21)},
		{Kind: cairn.StepStarted, Step: "shared_22229999", Time: at(5)},
		{Kind: cairn.StepWaiting, Step: "shared_22229999", Holder: "gpu-node-3.cluster-9876-0a1b2c.4", StaleIn: 90 * time.Second, Time: at(5)},
		{Kind: cairn.StepWaiting, Step: "shared_22229999", Holder: "gpu-node-3.cluster-9876-0a1b2c.4", StaleIn: 50 * time.Second, Time: at(70)},
	} {
		b.Observe(e)
	}
	b.SetLastLog("tokenize_ffff6666", "shard 17/64 done rows=1200000")
	b.SetLastLog("train_00007777", "epoch 3 step 1200 loss=0.4132")
	return b
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts progress.RenderOptions
	}{
		{"wide", progress.RenderOptions{Width: 160}},
		{"narrow", progress.RenderOptions{Width: 60}},
		{"short", progress.RenderOptions{Width: 160, MaxLines: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(board().Render(t0.Add(75*time.Second), tc.opts), "\n") + "\n"
			path := filepath.Join("testdata", tc.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("frame (-want +got):\n%s", diff)
			}
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				if n := len([]rune(line)); n > tc.opts.Width-1 {
					t.Errorf("line of %d columns in a %d-column terminal: %q", n, tc.opts.Width, line)
				}
			}
		})
	}
}

func TestRunningAndCounts(t *testing.T) {
	b := board()
	if got, want := b.Running(), []string{"tokenize_ffff6666", "train_00007777", "sweep_11118888"}; !cmp.Equal(got, want) {
		t.Errorf("Running() = %v, want %v", got, want)
	}
	c := b.Counts()
	want := map[progress.State]int{progress.Cached: 2, progress.Done: 1, progress.Failed: 1, progress.Skipped: 1,
		progress.Running: 2, progress.Queued: 1, progress.Waiting: 1}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("Counts() (-want +got):\n%s", diff)
	}
}

// The handler records what a step logged through its Output.Logger (a
// logger With "step") as its last log line, and passes every record on.
func TestHandlerRecordsStepLogLines(t *testing.T) {
	b := progress.NewBoard(t0)
	b.Observe(cairn.Event{Kind: cairn.StepRunning, Step: "a_1", Time: t0})
	var buf bytes.Buffer
	log := slog.New(b.Handler(slog.NewTextHandler(&buf, nil)))
	log.With("step", "a_1").Info("reading\tshard", "n", 3)
	log.Info("unrelated")
	log.WithGroup("g").Info("grouped", "step", "a_1")
	if !strings.Contains(buf.String(), "msg=unrelated") || !strings.Contains(buf.String(), "n=3") {
		t.Errorf("records not passed on:\n%s", buf.String())
	}
	if got := b.Active()[0].LastLog; got != "reading shard n=3" {
		t.Errorf("last log %q, want %q", got, "reading shard n=3")
	}
}

// A second StepRunning of the same attempt (same worker) says its log
// file was created: the step keeps its start time and gets the log to
// tail; a new attempt (another worker) starts afresh.
func TestRunningAgainGivesTheLog(t *testing.T) {
	b := progress.NewBoard(t0)
	b.Observe(cairn.Event{Kind: cairn.StepRunning, Step: "s", Worker: "w.1", Time: t0})
	b.Observe(cairn.Event{Kind: cairn.StepRunning, Step: "s", Worker: "w.1", LogPath: "/p/s/.cairn_logs/attempt-1.log", Time: t0.Add(time.Minute)})
	active := b.Active()
	if len(active) != 1 || !active[0].Started.Equal(t0) || active[0].LogPath != "/p/s/.cairn_logs/attempt-1.log" {
		t.Fatalf("after the log's creation: %+v, want started at %v with the log", active, t0)
	}
	b.Observe(cairn.Event{Kind: cairn.StepRunning, Step: "s", Worker: "w.2", Time: t0.Add(2 * time.Minute)})
	if active := b.Active(); len(active) != 1 || !active[0].Started.Equal(t0.Add(2*time.Minute)) || active[0].LogPath != "" {
		t.Errorf("a new attempt: %+v, want started afresh without a log", active)
	}
}
