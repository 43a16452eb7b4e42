package progress

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// DefaultInterval is how often a Live view is redrawn.
const DefaultInterval = 200 * time.Millisecond

// LiveOptions configure a Live view. The zero value is usable.
type LiveOptions struct {
	// Interval is the redraw period; 0 means DefaultInterval.
	Interval time.Duration
	// Size returns the terminal's width and height; nil, or a zero
	// result, means 80×24. TerminalSize gives it for a file.
	Size func() (width, height int)
	// Now returns the time; nil means time.Now.
	Now func() time.Time
}

// Live draws a Board in place at the bottom of a terminal: every Interval
// it moves the cursor up over the lines it drew last, rewrites each line
// (erasing what is left of the old one) and erases what is below. Each
// frame goes out in one write, so the terminal never shows a half-drawn
// frame, and nothing above the frame is touched: no full-screen clear.
//
// Log lines must be written through LogWriter, which puts them above the
// frame; anything else written to the terminal meanwhile tears the view.
type Live struct {
	w     io.Writer
	board *Board
	opts  LiveOptions

	// mu guards the fields below and serialises writes to w.
	mu      sync.Mutex
	drawn   int  // lines of the frame on screen
	started bool // Start was called
	stopped bool
	tails   map[string]*tail // by log path

	quit chan struct{}
	wg   sync.WaitGroup
}

// NewLive returns a Live view of b on w, a terminal. Start starts it.
func NewLive(w io.Writer, b *Board, opts *LiveOptions) *Live {
	l := &Live{w: w, board: b, quit: make(chan struct{}), tails: make(map[string]*tail)}
	if opts != nil {
		l.opts = *opts
	}
	if l.opts.Interval <= 0 {
		l.opts.Interval = DefaultInterval
	}
	if l.opts.Now == nil {
		l.opts.Now = time.Now
	}
	return l
}

// Start draws the first frame and redraws it every Interval until Stop.
func (l *Live) Start() {
	l.mu.Lock()
	l.started = true
	l.mu.Unlock()
	l.Redraw()
	l.wg.Go(func() {
		t := time.NewTicker(l.opts.Interval)
		defer t.Stop()
		for {
			select {
			case <-l.quit:
				return
			case <-t.C:
				l.Redraw()
			}
		}
	})
}

// Stop stops the redraws and erases the frame, leaving the cursor where
// the frame began, so that what is printed next follows the log lines.
// It is safe to call more than once.
func (l *Live) Stop() {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.stopped = true
	if !l.started {
		l.mu.Unlock()
		return
	}
	close(l.quit)
	var buf bytes.Buffer
	l.erase(&buf)
	l.w.Write(buf.Bytes())
	l.drawn = 0
	l.mu.Unlock()
	l.wg.Wait()
}

// Redraw draws the current frame now.
func (l *Live) Redraw() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started || l.stopped {
		return
	}
	var buf bytes.Buffer
	l.up(&buf)
	l.frame(&buf)
	buf.WriteString("\x1b[J") // what is left of a taller old frame
	l.w.Write(buf.Bytes())
}

// LogWriter returns a writer whose writes go above the frame: the frame
// is erased, the bytes written, and the frame drawn again below them, in
// one write. A structured logger (slog) writes one record per Write.
func (l *Live) LogWriter() io.Writer { return logWriter{l} }

type logWriter struct{ l *Live }

func (w logWriter) Write(p []byte) (int, error) {
	l := w.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started || l.stopped {
		return l.w.Write(p)
	}
	var buf bytes.Buffer
	l.erase(&buf)
	buf.Write(p)
	if len(p) > 0 && p[len(p)-1] != '\n' {
		buf.WriteByte('\n')
	}
	l.frame(&buf)
	if _, err := l.w.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// up moves the cursor to the first line of the frame on screen.
func (l *Live) up(buf *bytes.Buffer) {
	buf.WriteByte('\r')
	if l.drawn > 0 {
		buf.WriteString("\x1b[" + strconv.Itoa(l.drawn) + "A")
	}
}

// erase removes the frame from the screen, leaving the cursor at its
// first line.
func (l *Live) erase(buf *bytes.Buffer) {
	l.up(buf)
	buf.WriteString("\x1b[J")
	l.drawn = 0
}

// frame writes the frame, each line overwriting the one below the cursor
// and erasing the rest of it, and records its height.
func (l *Live) frame(buf *bytes.Buffer) {
	width, height := 80, 24
	if l.opts.Size != nil {
		if w, h := l.opts.Size(); w > 0 && h > 0 {
			width, height = w, h
		}
	}
	l.tailLogs()
	// One line short of the screen: a frame taller than the screen would
	// scroll its top away, and moving up would no longer reach it.
	lines := l.board.Render(l.opts.Now(), RenderOptions{Width: width, MaxLines: min(height-1, 20)})
	for _, line := range lines {
		buf.WriteString(line)
		buf.WriteString("\x1b[K\n")
	}
	l.drawn = len(lines)
}

// tailLogs sets the last log line of every active step with a log file.
func (l *Live) tailLogs() {
	seen := make(map[string]bool)
	for _, s := range l.board.Active() {
		if s.LogPath == "" || s.State == Waiting {
			continue
		}
		seen[s.LogPath] = true
		t := l.tails[s.LogPath]
		if t == nil {
			t = &tail{path: s.LogPath}
			l.tails[s.LogPath] = t
		}
		if line, ok := t.last(); ok {
			l.board.SetLastLog(s.ID, line)
		}
	}
	for p := range l.tails {
		if !seen[p] {
			delete(l.tails, p)
		}
	}
}

// tailBytes is how much of the end of a log file is read for its last
// line.
const tailBytes = 4 << 10

// tail reads the last line of a growing file, re-reading only when its
// size changed.
type tail struct {
	path string
	size int64
}

// last returns the file's last non-empty line, and whether it changed.
func (t *tail) last() (string, bool) {
	f, err := os.Open(t.path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == t.size {
		return "", false
	}
	t.size = fi.Size()
	off := max(0, t.size-tailBytes)
	buf := make([]byte, t.size-off)
	n, _ := f.ReadAt(buf, off)
	buf = bytes.TrimRight(buf[:n], "\r\n \t")
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	line := clean(string(buf))
	return line, line != ""
}
