// Package progress renders a run's progress: it consumes the cairn.Events
// a run emits (RunOptions.OnEvent) into a Board, which a Live view redraws
// in place on a terminal a few times a second.
//
// A Board counts steps by state and knows, for each running step, its
// elapsed time, its cluster job (id, scheduler state, queue time) and the
// last line of its log; for each step waiting on another runner, the
// holder, its host and the time until its lease may be taken over. Render
// turns it into lines fitted to a terminal's width; it is a pure function
// of the Board and the time, so frames can be tested without a terminal.
package progress

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"example.com/cairn"
)

// State is what a step is doing, as far as the Board knows.
type State int

const (
	// Checking: the step has a slot and is being checked (cache, lease).
	Checking State = iota
	// Running: this run executes the step's function (for a remote step:
	// its job runs, or is being submitted).
	Running
	// Waiting: another runner holds the step's lease.
	Waiting
	// Queued: the step's cluster job is pending in the scheduler's queue.
	Queued
	// Cached: the step's output was there already, or another runner
	// produced it while this run waited.
	Cached
	// Done: this run executed the step and it succeeded.
	Done
	// Failed: the step failed.
	Failed
	// Skipped: a dependency failed.
	Skipped
	// Interrupted: the run was cancelled while the step ran.
	Interrupted
)

// Step is a Board's record of one step. Times are the events' times.
type Step struct {
	ID    string
	Path  string
	State State
	// Started is when the step's function started (Running, Queued).
	Started time.Time
	// Worker is this run's worker id for the step's attempt.
	Worker string
	// Remote steps: Cluster, JobID, JobState and Submitted, from the last
	// StepJob event.
	Cluster, JobID, JobState string
	Submitted                time.Time
	// JobRunning is when the job was first seen RUNNING; the time it
	// spent queued is JobRunning minus Submitted.
	JobRunning time.Time
	// LogPath is the attempt's log file, tailed by the Live view.
	LogPath string
	// LastLog is the last line the step logged (a log record through its
	// Output.Logger, or the last line of LogPath).
	LastLog string
	// Waiting steps: the holder's worker id and, as of WaitSeen, the time
	// until its lease may be taken over.
	Holder   string
	StaleIn  time.Duration
	WaitSeen time.Time
}

// Board is the state of a run's steps, fed by Observe. Its methods are
// safe for concurrent use.
type Board struct {
	start time.Time

	// mu guards the fields below.
	mu    sync.Mutex
	steps map[string]*Step
	order []string // by first event, for a stable display
}

// NewBoard returns an empty Board for a run that started at start.
func NewBoard(start time.Time) *Board {
	return &Board{start: start, steps: make(map[string]*Step)}
}

// Observe records e. It is meant to be RunOptions.OnEvent (or called from
// it).
func (b *Board) Observe(e cairn.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.step(e.Step)
	if e.Path != "" {
		s.Path = e.Path
	}
	switch e.Kind {
	case cairn.StepStarted:
		s.State = Checking
	case cairn.StepWaiting:
		s.State = Waiting
		s.Holder, s.StaleIn, s.WaitSeen = e.Holder, e.StaleIn, e.Time
	case cairn.StepRunning:
		if s.State == Running && s.Worker == e.Worker && e.Worker != "" {
			// The same attempt again: its log was created (cairn.StepRunning).
			if e.LogPath != "" && e.LogPath != s.LogPath {
				s.LogPath, s.LastLog = e.LogPath, ""
			}
			break
		}
		s.State, s.Started, s.Worker = Running, e.Time, e.Worker
		s.JobID, s.JobState, s.Cluster, s.LogPath, s.LastLog = "", "", "", e.LogPath, ""
		s.Submitted, s.JobRunning = time.Time{}, time.Time{}
	case cairn.StepJob:
		s.Cluster, s.JobID, s.JobState, s.Submitted = e.Cluster, e.JobID, e.JobState, e.Submitted
		if e.LogPath != "" && e.LogPath != s.LogPath {
			s.LogPath, s.LastLog = e.LogPath, ""
		}
		switch e.JobState {
		case "PENDING":
			s.State = Queued
		case "RUNNING":
			s.State = Running
			if s.JobRunning.IsZero() {
				s.JobRunning = e.Time
			}
		}
	case cairn.StepFinished:
		switch e.Outcome {
		case cairn.Ran, cairn.TookOver:
			s.State = Done
		case cairn.Cached, cairn.CompletedElsewhere:
			s.State = Cached
		case cairn.Skipped:
			s.State = Skipped
		case cairn.Interrupted, cairn.Unfinished:
			s.State = Interrupted
		default:
			s.State = Failed
		}
	}
}

func (b *Board) step(id string) *Step {
	s, ok := b.steps[id]
	if !ok {
		s = &Step{ID: id}
		b.steps[id] = s
		b.order = append(b.order, id)
	}
	return s
}

// SetLastLog records line as the last thing step id logged.
func (b *Board) SetLastLog(id, line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.steps[id]; ok {
		s.LastLog = line
	}
}

// Active returns copies of the steps that are running, queued remotely or
// waiting on another runner, in the order the Board first saw them.
func (b *Board) Active() []Step {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Step
	for _, id := range b.order {
		s := b.steps[id]
		if s.State == Running || s.State == Queued || s.State == Waiting {
			out = append(out, *s)
		}
	}
	return out
}

// Running returns the IDs of the steps whose function this run is
// executing (Running or Queued), in the order the Board first saw them.
func (b *Board) Running() []string {
	var ids []string
	for _, s := range b.Active() {
		if s.State != Waiting {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// Counts returns how many steps are in each state.
func (b *Board) Counts() map[State]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := make(map[State]int)
	for _, s := range b.steps {
		c[s.State]++
	}
	return c
}

// RenderOptions shape a frame.
type RenderOptions struct {
	// Width is the terminal's width in columns; lines are cut to fit
	// (Width-1 columns, so that no line wraps). 0 means 80.
	Width int
	// MaxLines bounds the frame's height; 0 means 20. Steps that do not
	// fit are counted on a last line.
	MaxLines int
}

// Render returns the frame for the Board at now: a counts line, then one
// line per running, queued or waiting step (running first, then queued,
// then waiting; by start time within each).
func (b *Board) Render(now time.Time, opts RenderOptions) []string {
	width := opts.Width
	if width <= 0 {
		width = 80
	}
	maxLines := opts.MaxLines
	if maxLines <= 0 {
		maxLines = 20
	}
	c := b.Counts()
	head := fmt.Sprintf("cairn %s  %d cached · %d running · %d waiting on another runner · %d queued remotely · %d done · %d failed · %d skipped",
		clock(now.Sub(b.start)), c[Cached], c[Running], c[Waiting], c[Queued], c[Done], c[Failed], c[Skipped])
	if n := c[Interrupted]; n > 0 {
		head += fmt.Sprintf(" · %d interrupted", n)
	}
	if utf8.RuneCountInString(head) > width-1 { // the short form keeps every count
		head = fmt.Sprintf("%s %d cached·%d run·%d wait·%d queue·%d done·%d fail·%d skip",
			clock(now.Sub(b.start)), c[Cached], c[Running], c[Waiting], c[Queued], c[Done], c[Failed], c[Skipped])
		if n := c[Interrupted]; n > 0 {
			head += fmt.Sprintf("·%d intr", n)
		}
	}
	lines := []string{head}
	active := b.Active()
	rank := map[State]int{Running: 0, Queued: 1, Waiting: 2}
	sort.SliceStable(active, func(i, j int) bool { return rank[active[i].State] < rank[active[j].State] })
	for i, s := range active {
		if len(lines) == maxLines-1 && i < len(active)-1 {
			lines = append(lines, fmt.Sprintf("  … and %d more", len(active)-i))
			break
		}
		lines = append(lines, stepLine(s, now))
	}
	for i, l := range lines {
		lines[i] = fit(l, width-1)
	}
	return lines
}

func stepLine(s Step, now time.Time) string {
	var b strings.Builder
	switch s.State {
	case Running:
		fmt.Fprintf(&b, "  running  %s  %s", s.ID, clock(now.Sub(s.Started)))
		if s.JobID != "" {
			fmt.Fprintf(&b, "  job %s %s", s.JobID, s.JobState)
			if s.Cluster != "" {
				fmt.Fprintf(&b, " on %s", s.Cluster)
			}
			if !s.JobRunning.IsZero() && !s.Submitted.IsZero() && s.JobRunning.Sub(s.Submitted) >= time.Second {
				fmt.Fprintf(&b, " after %s in queue", clock(s.JobRunning.Sub(s.Submitted)))
			}
		}
	case Queued:
		fmt.Fprintf(&b, "  queued   %s  job %s PENDING %s in queue", s.ID, s.JobID, clock(now.Sub(s.Submitted)))
		if s.Cluster != "" {
			fmt.Fprintf(&b, " on %s", s.Cluster)
		}
	case Waiting:
		// The countdown before the holder: on a narrow terminal the
		// holder's long id is what gets cut.
		fmt.Fprintf(&b, "  waiting  %s  ", s.ID)
		if left := s.StaleIn - now.Sub(s.WaitSeen); left > 0 {
			fmt.Fprintf(&b, "takeover possible in %s", clock(left))
		} else {
			b.WriteString("takeover possible now")
		}
		fmt.Fprintf(&b, ", held by %s", s.Holder)
		if h := cairn.HolderHost(s.Holder); h != "" {
			fmt.Fprintf(&b, " (host %s)", h)
		}
	}
	if s.LastLog != "" && s.State != Waiting {
		fmt.Fprintf(&b, "  | %s", s.LastLog)
	}
	return b.String()
}

// clock formats d as M:SS, or H:MM:SS from an hour on.
func clock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// fit cuts s to at most n columns (counting runes: the frame holds no
// wide characters beyond what steps log), ending a cut line with "…".
func fit(s string, n int) string {
	if n < 1 {
		n = 1
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// clean makes a log line safe to draw: no control characters (which
// could move the cursor), tabs as spaces, trimmed.
func clean(s string) string {
	s = strings.TrimRight(s, "\r\n")
	if i := strings.LastIndexByte(s, '\r'); i >= 0 { // progress bars redraw with \r
		s = s[i+1:]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}
