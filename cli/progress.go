package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"example.com/cairn"
	"example.com/cairn/internal/progress"
)

// stillWaitingEvery is how often, off a terminal, a step waiting on
// another runner logs that it still waits, with the time until takeover.
const stillWaitingEvery = 30 * time.Second

// runView shows a run's progress (issue 9): on a terminal a live view
// (package progress) with the log lines printed above it; elsewhere plain
// structured log lines, with a line for each remote job's state change
// and a periodic one for each step waiting on another runner.
type runView struct {
	board  *progress.Board
	live   *progress.Live // nil: plain lines
	logger *slog.Logger
	// out is where the CLI's own messages go: above the live view.
	out io.Writer

	// mu guards the fields below (plain mode's bookkeeping).
	mu         sync.Mutex
	waitLogged map[string]time.Time // step → last "still waiting" line
	jobState   map[string]string    // step → last job state logged
}

// newRunView sets up the progress display of a run started at start,
// logging at level in format (text or json) to o.Stderr; live allows the
// live view (not for a dry run, which runs nothing).
func newRunView(o Options, level, format string, live bool, start time.Time) (*runView, error) {
	v := &runView{board: progress.NewBoard(start), out: o.Stderr,
		waitLogged: make(map[string]time.Time), jobState: make(map[string]string)}
	if live && progress.UseLive(o.Stderr, o.Getenv, format) {
		f := o.Stderr.(*os.File) // UseLive checked it
		v.live = progress.NewLive(f, v.board, &progress.LiveOptions{
			Size: func() (int, int) { return progress.TerminalSize(f) },
		})
		v.out = v.live.LogWriter()
	}
	logger, err := newLogger(v.out, level, format)
	if err != nil {
		return nil, err
	}
	v.logger = slog.New(v.board.Handler(logger.Handler()))
	return v, nil
}

// start starts the live view, if any.
func (v *runView) start() {
	if v.live != nil {
		v.live.Start()
	}
}

// stop erases the live view, if any: what follows is the run's summary.
func (v *runView) stop() {
	if v.live != nil {
		v.live.Stop()
	}
}

// onEvent is the run's RunOptions.OnEvent.
func (v *runView) onEvent(e cairn.Event) {
	v.board.Observe(e)
	if v.live != nil {
		return // the live view shows it all
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	switch e.Kind {
	case cairn.StepWaiting:
		last, ok := v.waitLogged[e.Step]
		if !ok {
			v.waitLogged[e.Step] = e.Time // the core logs the first wait
			return
		}
		if e.Time.Sub(last) >= stillWaitingEvery {
			v.waitLogged[e.Step] = e.Time
			v.logger.Info("still waiting for another worker", "step", e.Step, "holder", e.Holder,
				"holder_host", cairn.HolderHost(e.Holder), "takeover_in", e.StaleIn.Round(time.Second))
		}
	case cairn.StepJob:
		if v.jobState[e.Step] == e.JobState {
			return
		}
		v.jobState[e.Step] = e.JobState
		attrs := []any{"step", e.Step, "cluster", e.Cluster, "job_id", e.JobID, "state", e.JobState}
		if e.JobState == "RUNNING" && !e.Submitted.IsZero() {
			attrs = append(attrs, "queued", e.Time.Sub(e.Submitted).Round(time.Second))
		}
		if e.LogPath != "" && (e.JobState == "PENDING" || e.JobState == "RUNNING") {
			attrs = append(attrs, "log", e.LogPath)
		}
		v.logger.Info("job "+stateWord(e.JobState), attrs...)
	case cairn.StepRunning:
		delete(v.waitLogged, e.Step)
	}
}

func stateWord(s string) string {
	if s == "PENDING" {
		return "queued"
	}
	return strings.ToLower(s) // running, succeeded, failed, stopped
}

// printf prints one of the CLI's own messages above the live view.
func (v *runView) printf(format string, args ...any) {
	fmt.Fprintf(v.out, format, args...)
}
