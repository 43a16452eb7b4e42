package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"example.com/cairn"
	"example.com/cairn/store"
)

// How much of a failed step's log and stack the end of a run and `status`
// show; the rest is in the files they name.
const (
	failureLogLines   = 10
	failureStackLines = 40
	// maxTailRead bounds the log read to take its tail.
	maxTailRead = 32 << 20
)

// failureDetail is what is shown about a failed step beyond its status.
type failureDetail struct {
	Error string
	// Log is the URL of the attempt's log, Tail its last lines.
	Log, Tail string
	// Stack is the stack of a panic or Goexit; StackFile the URL of the
	// failure record holding it in full.
	Stack, StackFile string
}

// readFailureDetail reads what the control files under b, a failed step's
// output, say about its failure. msg, if not "", is the error the run saw:
// the recorded failure is used only if it is that error's (an older one
// may be left from an earlier attempt), and err gives a panic's stack if
// the record has none.
func readFailureDetail(ctx context.Context, b *store.Bucket, msg string, err error) failureDetail {
	d := failureDetail{Error: msg}
	f, ok, rerr := cairn.ReadFailureRecord(ctx, b)
	recordMatches := ok && rerr == nil && (msg == "" || strings.Contains(msg, f.Error))
	logKey := ""
	if recordMatches {
		if d.Error == "" {
			d.Error = f.Error
		}
		if f.Stack != "" {
			d.Stack, d.StackFile = f.Stack, b.URL(cairn.FailureFile)
		}
		logKey = f.Log
	}
	if d.Stack == "" && err != nil {
		if pe, ok := errors.AsType[*cairn.PanicError](err); ok {
			d.Stack = string(pe.Stack)
		} else if ge, ok := errors.AsType[*cairn.GoexitError](err); ok {
			d.Stack = string(ge.Stack)
		}
	}
	if logKey == "" {
		// A remote step's log is its job's (the latest attempt's).
		if ns, err := cairn.AttemptLogs(ctx, b); err == nil && len(ns) > 0 {
			logKey = cairn.AttemptLogKey(ns[len(ns)-1])
		}
	}
	if logKey != "" {
		d.Log = b.URL(logKey)
		data, _, err := b.ReadLimit(ctx, logKey, maxTailRead)
		switch {
		case errors.Is(err, store.ErrTooLarge):
			d.Tail = "(the log is too large to tail here)"
		case err == nil:
			if d.Stack == "" {
				data = d.stackFromLog(data)
			}
			d.Tail = logTail(data, failureLogLines)
		}
	}
	return d
}

// write prints d under a heading naming the step.
func (d failureDetail) write(w io.Writer, step string) {
	msg := d.Error
	if i := strings.Index(msg, "; last lines:\n"); i >= 0 && d.Tail != "" {
		msg = msg[:i] // a job's error carries its log's tail, shown below
	}
	fmt.Fprintf(w, "FAILED %s: %s\n", step, indentRest(msg))
	if d.Log != "" {
		if d.Tail == "" {
			fmt.Fprintf(w, "  log %s: (empty)\n", d.Log)
		} else {
			fmt.Fprintf(w, "  log %s (last %d lines):\n", d.Log, failureLogLines)
			writeIndented(w, d.Tail, 0)
		}
	}
	if d.Stack != "" {
		where := ""
		if d.StackFile != "" {
			where = " (in full in " + d.StackFile + ")"
		}
		fmt.Fprintf(w, "  stack%s:\n", where)
		writeIndented(w, fromPanic(d.Stack), failureStackLines)
	}
}

// indentRest indents the lines after the first of a multi-line message.
func indentRest(s string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// writeIndented writes text with every line prefixed by "    | ", at most
// max lines (0: all).
func writeIndented(w io.Writer, text string, max int) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		if max > 0 && i == max {
			fmt.Fprintf(w, "    | … %d more lines\n", len(lines)-i)
			break
		}
		fmt.Fprintf(w, "    | %s\n", l)
	}
}

// printRunFailures prints, for every step of the run that failed here,
// its error, the tail of its log and a panic's stack.
func printRunFailures(ctx context.Context, w io.Writer, storage cairn.BucketOpener, r *cairn.Report) {
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, s := range r.Steps {
		if s.Outcome != cairn.Failed || s.Err == nil || errors.Is(s.Err, cairn.ErrPreviouslyFailed) {
			continue
		}
		b, err := storage.OpenBucket(ctx, s.Path)
		if err != nil {
			failureDetail{Error: s.Err.Error()}.write(w, s.Step)
			continue
		}
		readFailureDetail(ctx, b, s.Err.Error(), s.Err).write(w, s.Step)
	}
}

// printStatusFailures prints, below `status`'s table, the same details for
// every FAILED step listed.
func printStatusFailures(ctx context.Context, w io.Writer, root *store.Bucket, states []cairn.StepState) {
	first := true
	for _, s := range states {
		if s.Status != cairn.StatusFailed {
			continue
		}
		b, err := root.Sub(s.Dir)
		if err != nil {
			continue
		}
		d := readFailureDetail(ctx, b, "", nil)
		if d.Error == "" {
			d.Error = "(no failure record: the step failed under a runner that records none, such as Marin)"
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		d.write(w, s.Dir)
	}
}

// fromPanic drops the frames of a recovered goroutine's stack that lie
// above the panic (or runtime.Goexit): the recovery's own, which say
// nothing about the step. The stack is returned whole if it has neither.
func fromPanic(stack string) string {
	lines := strings.Split(stack, "\n")
	for i := 1; i+1 < len(lines); i++ {
		if strings.HasPrefix(lines[i], "panic(") || strings.HasPrefix(lines[i], "runtime.Goexit(") {
			return lines[0] + "\n" + strings.Join(lines[i+2:], "\n")
		}
	}
	return stack
}

// stackFromLog finds the stack a remote step's worker printed in its job's
// log after a panic's (or Goexit's) message (cairn.RunWorker), sets it as
// d's stack, and returns the log without it.
func (d *failureDetail) stackFromLog(data []byte) []byte {
	i := bytes.LastIndex(data, []byte("\ngoroutine "))
	if i < 0 {
		return data
	}
	prev := data[:i]
	if j := bytes.LastIndexByte(prev, '\n'); j >= 0 {
		prev = prev[j+1:]
	}
	if !bytes.HasPrefix(prev, []byte("panic: ")) && !bytes.Contains(prev, []byte("runtime.Goexit")) {
		return data
	}
	rest := data[i+1:]
	end := bytes.Index(rest, []byte("\n\n"))
	if end < 0 {
		end = len(rest)
	}
	d.Stack, d.StackFile = string(rest[:end]), d.Log
	return append(append([]byte(nil), data[:i+1]...), bytes.TrimLeft(rest[end:], "\n")...)
}

// logTail returns the last n lines of log, without a trailing newline.
func logTail(log []byte, n int) string {
	log = bytes.TrimRight(log, "\n")
	if len(log) == 0 || n <= 0 {
		return ""
	}
	i := len(log)
	for range n {
		j := bytes.LastIndexByte(log[:i], '\n')
		if j < 0 {
			return string(log)
		}
		i = j
	}
	return string(log[i+1:])
}
