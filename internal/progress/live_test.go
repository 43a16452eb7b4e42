package progress_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/cairn"
	"example.com/cairn/internal/progress"
)

// syncBuffer is a bytes.Buffer safe for the Live view's goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A log line goes above the frame: the frame is erased (cursor up over its
// lines, erase below), the line written and the frame drawn again, in one
// write; no full-screen clear ever.
func TestLiveLogLinesGoAboveTheFrame(t *testing.T) {
	b := progress.NewBoard(t0)
	b.Observe(cairn.Event{Kind: cairn.StepRunning, Step: "a_1", Time: t0})
	var out syncBuffer
	l := progress.NewLive(&out, b, &progress.LiveOptions{Interval: time.Hour, Now: func() time.Time { return t0.Add(3 * time.Second) },
		Size: func() (int, int) { return 140, 30 }})
	l.LogWriter().Write([]byte("before start\n")) // not started: written as is
	l.Start()
	l.LogWriter().Write([]byte("a log line\n"))
	l.Stop()
	got := out.String()
	frame := "cairn 0:03  0 cached · 1 running · 0 waiting on another runner · 0 queued remotely · 0 done · 0 failed · 0 skipped\x1b[K\n" +
		"  running  a_1  0:03\x1b[K\n"
	want := "before start\n" +
		"\r" + frame + "\x1b[J" + // first frame
		"\r\x1b[2A\x1b[J" + "a log line\n" + frame + // erased, the line, drawn again
		"\r\x1b[2A\x1b[J" // erased at Stop
	if got != want {
		t.Errorf("terminal output\n got %q\nwant %q", got, want)
	}
	if strings.Contains(got, "\x1b[2J") || strings.Contains(got, "\x1b[H") {
		t.Errorf("full-screen clear in %q", got)
	}
}

// The frame never grows taller than the terminal (minus one line), so
// moving the cursor up always reaches its first line.
func TestLiveFrameFitsTheTerminal(t *testing.T) {
	b := progress.NewBoard(t0)
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		b.Observe(cairn.Event{Kind: cairn.StepRunning, Step: id, Time: t0})
	}
	var out syncBuffer
	l := progress.NewLive(&out, b, &progress.LiveOptions{Interval: time.Hour, Size: func() (int, int) { return 80, 4 }})
	l.Start()
	l.Stop()
	if n := strings.Count(out.String(), "\x1b[K\n"); n != 3 {
		t.Errorf("frame of %d lines in a 4-line terminal:\n%q", n, out.String())
	}
}

// A step with a log file (a remote job's) shows the file's last line,
// cleaned of control characters, as it grows.
func TestLiveTailsTheLogFile(t *testing.T) {
	log := filepath.Join(t.TempDir(), "attempt-1.log")
	if err := os.WriteFile(log, []byte("starting\nepoch 1 loss=0.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := progress.NewBoard(t0)
	b.Observe(cairn.Event{Kind: cairn.StepRunning, Step: "train_1", Remote: true, Time: t0})
	b.Observe(cairn.Event{Kind: cairn.StepJob, Step: "train_1", JobID: "7", JobState: "RUNNING", LogPath: log, Time: t0})
	var out syncBuffer
	l := progress.NewLive(&out, b, &progress.LiveOptions{Interval: time.Hour})
	l.Start()
	if got := b.Active()[0].LastLog; got != "epoch 1 loss=0.9" {
		t.Errorf("last log %q", got)
	}
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("progress 10%\rprogress 50%\x1b[31m red\n")
	f.Close()
	l.Redraw()
	l.Stop()
	if got := b.Active()[0].LastLog; got != "progress 50%[31m red" {
		t.Errorf("last log %q", got)
	}
}
