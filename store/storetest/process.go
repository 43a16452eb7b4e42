package storetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/cairn/store"
)

// The environment of a helper process. envHelper marks the process; the
// others describe its one task.
const (
	envHelper   = "CAIRN_STORETEST_HELPER" // "1"
	envLocation = "CAIRN_STORETEST_LOCATION"
	envOp       = "CAIRN_STORETEST_OP" // opCreate, opReplace or opIncrement
	envKey      = "CAIRN_STORETEST_KEY"
	envID       = "CAIRN_STORETEST_ID"
	envCount    = "CAIRN_STORETEST_COUNT"    // rounds or increments
	envVersion  = "CAIRN_STORETEST_VERSION_" // + round, for opReplace
)

const (
	opCreate    = "create"    // WriteIf(key/r, IfAbsent) for each round r
	opReplace   = "replace"   // WriteIf(key/r, IfVersion(envVersion+r)) for each round r
	opIncrement = "increment" // envCount increments of the counter at key
	opStream    = "stream"    // write envCount pseudo-random bytes to key with NewWriter
)

// Lines a helper process prints on stdout.
const (
	lineReady = "READY" // the bucket is open; waiting for stdin to close
	lineDone  = "DONE"  // all increments applied
	lineError = "ERROR" // followed by the error
	// After a race, one word per round.
	wordWon  = "WON"  // the conditional write succeeded
	wordLost = "LOST" // it failed with ErrPrecondition
)

const (
	processRacers     = 8  // processes racing on each key
	processRaceRounds = 8  // keys raced on, in order, after one start signal
	processWorkers    = 4  // processes incrementing one counter
	processIncrements = 50 // increments per process
	processTimeout    = 2 * time.Minute
)

// HelperProcess runs the storetest side of a process race if this process
// is a helper started by the suite, and reports whether it was. A backend
// whose [Harness] sets Location must call it first thing in TestMain, and
// return without running the tests if it reports true.
//
// The helper opens the bucket with open, at the location Harness.Location
// returned, prints "READY", waits until its standard input is closed (the
// start signal the suite gives all helpers at once), performs its contended
// operations, and prints their outcome. Errors, including from open, are
// reported to the suite on standard output; the process still exits 0.
func HelperProcess(ctx context.Context, open func(ctx context.Context, location string) (*store.Bucket, error)) bool {
	if os.Getenv(envHelper) != "1" {
		return false
	}
	if err := helper(ctx, open, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stdout, lineError, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return true
}

func helper(ctx context.Context, open func(context.Context, string) (*store.Bucket, error), start io.Reader, out io.Writer) error {
	b, err := open(ctx, os.Getenv(envLocation))
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer b.Close()
	key, id := os.Getenv(envKey), os.Getenv(envID)
	fmt.Fprintln(out, lineReady)
	if _, err := io.Copy(io.Discard, start); err != nil {
		return fmt.Errorf("waiting for the start signal: %w", err)
	}

	op := os.Getenv(envOp)
	n, err := strconv.Atoi(os.Getenv(envCount))
	if err != nil {
		return fmt.Errorf("bad %s: %w", envCount, err)
	}
	if op == opStream {
		return streamObject(ctx, b, key, int64(n), out)
	}
	if op == opIncrement {
		for range n {
			if _, err := increment(ctx, b, key, id); err != nil {
				return err
			}
		}
		fmt.Fprintln(out, lineDone)
		return nil
	}
	// All helpers were released together and do the same work per round, so
	// they race on every key, not only the first.
	words := make([]string, n)
	for r := range n {
		var err error
		k := fmt.Sprintf("%s/%d", key, r)
		switch op {
		case opCreate:
			_, err = b.WriteIf(ctx, k, processBody(id), store.IfAbsent())
		case opReplace:
			v := store.Version(os.Getenv(envVersion + strconv.Itoa(r)))
			_, err = b.WriteIf(ctx, k, processBody(id), store.IfVersion(v))
		default:
			return fmt.Errorf("unknown operation %q", op)
		}
		switch {
		case err == nil:
			words[r] = wordWon
		case errors.Is(err, store.ErrPrecondition):
			words[r] = wordLost
		default:
			return fmt.Errorf("round %d: %w", r, err)
		}
	}
	fmt.Fprintln(out, strings.Join(words, " "))
	return nil
}

func processBody(id string) []byte { return []byte("written by process " + id) }

var processCases = []testCase{
	{"RaceIfAbsent", func(t *testing.T, h Harness) {
		b, loc := processBucket(t, h)
		results := runProcesses(t, loc, processRacers, func(i int) []string {
			return []string{envOp + "=" + opCreate, envKey + "=lease", envCount + "=" + strconv.Itoa(processRaceRounds)}
		})
		checkProcessWinners(t, b, "lease", "WriteIf(IfAbsent)", results)
	}},
	{"RaceIfVersion", func(t *testing.T, h Harness) {
		b, loc := processBucket(t, h)
		env := []string{envOp + "=" + opReplace, envKey + "=lease", envCount + "=" + strconv.Itoa(processRaceRounds)}
		for r := range processRaceRounds {
			v := mustWrite(t, b, fmt.Sprintf("lease/%d", r), []byte("initial"))
			env = append(env, envVersion+strconv.Itoa(r)+"="+string(v))
		}
		results := runProcesses(t, loc, processRacers, func(int) []string { return env })
		checkProcessWinners(t, b, "lease", "WriteIf(IfVersion)", results)
	}},
	{"Counter", func(t *testing.T, h Harness) {
		b, loc := processBucket(t, h)
		mustWrite(t, b, "counter", counterBody(0, "init"))
		results := runProcesses(t, loc, processWorkers, func(i int) []string {
			return []string{envOp + "=" + opIncrement, envKey + "=counter", envCount + "=" + strconv.Itoa(processIncrements)}
		})
		for i, r := range results {
			if r != lineDone {
				t.Errorf("process %d: %s, want %s", i, r, lineDone)
			}
		}
		checkCounter(t, b, "counter", processWorkers*processIncrements)
	}},
}

// processBucket returns a fresh bucket and the location other processes open
// it by, or skips t if the harness cannot share buckets between processes.
func processBucket(t *testing.T, h Harness) (*store.Bucket, string) {
	t.Helper()
	if h.Location == nil {
		t.Skip("Harness.Location is nil: the backend cannot share a bucket between processes")
	}
	b := newBucket(t, h)
	return b, h.Location(t, b)
}

// runProcesses starts n helper processes on the bucket at loc, the i-th with
// the extra environment env(i), waits until all are ready, releases them at
// once and returns the outcome line each printed.
func runProcesses(t *testing.T, loc string, n int, env func(i int) []string) []string {
	t.Helper()
	return runProcessesFor(t, processTimeout, loc, n, env)
}

// runProcessesFor is runProcesses with a timeout other than processTimeout.
func runProcessesFor(t *testing.T, timeout time.Duration, loc string, n int, env func(i int) []string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	return runProgram(t, exe, timeout, loc, n, env)
}

// runProgram is runProcessesFor with the helper processes running exe, a
// build of the test binary.
func runProgram(t *testing.T, exe string, timeout time.Duration, loc string, n int, env func(i int) []string) []string {
	t.Helper()
	var err error
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()

	type child struct {
		cmd    *exec.Cmd
		start  io.WriteCloser
		out    *bufio.Scanner
		stderr bytes.Buffer
	}
	children := make([]*child, n)
	defer func() {
		// On an early return, stop whatever is still running.
		for _, c := range children {
			if c != nil && c.cmd.ProcessState == nil && c.cmd.Process != nil {
				c.cmd.Process.Kill()
				c.cmd.Wait()
			}
		}
	}()
	for i := range n {
		c := &child{}
		c.cmd = exec.CommandContext(ctx, exe, "-test.run=^$")
		c.cmd.Env = append(os.Environ(), envHelper+"=1", envLocation+"="+loc, envID+"="+strconv.Itoa(i))
		c.cmd.Env = append(c.cmd.Env, env(i)...)
		c.cmd.Stderr = &c.stderr
		c.cmd.WaitDelay = 10 * time.Second
		if c.start, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		stdout, err := c.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		c.out = bufio.NewScanner(stdout)
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("starting helper process %d: %v", i, err)
		}
		children[i] = c
	}
	for i, c := range children {
		if !c.out.Scan() || c.out.Text() != lineReady {
			c.start.Close()
			c.cmd.Wait()
			t.Fatalf("helper process %d printed %q, want %q; does the backend's TestMain call storetest.HelperProcess? stderr:\n%s",
				i, c.out.Text(), lineReady, c.stderr.String())
		}
	}
	// The start signal: every helper is blocked reading stdin, and all of
	// them become runnable within microseconds of each other.
	for _, c := range children {
		c.start.Close()
	}
	results := make([]string, n)
	for i, c := range children {
		var lines []string
		for c.out.Scan() {
			lines = append(lines, c.out.Text())
		}
		err := c.cmd.Wait()
		results[i] = strings.Join(lines, " | ")
		if err != nil || len(lines) != 1 {
			t.Errorf("helper process %d: exit %v, output %q; want exit 0 and one outcome line. stderr:\n%s",
				i, err, results[i], c.stderr.String())
		}
	}
	return results
}

// checkProcessWinners is checkOneWinner for the outcomes of the process
// races on key/0, key/1, ...
func checkProcessWinners(t *testing.T, b *store.Bucket, key, call string, results []string) {
	t.Helper()
	outcomes := make([][]string, len(results))
	for i, r := range results {
		if outcomes[i] = strings.Fields(r); len(outcomes[i]) != processRaceRounds {
			t.Errorf("process %d printed %q, want %d words %s or %s", i, r, processRaceRounds, wordWon, wordLost)
			return
		}
	}
	for r := range processRaceRounds {
		k := fmt.Sprintf("%s/%d", key, r)
		winner, wins := -1, 0
		for i := range outcomes {
			switch outcomes[i][r] {
			case wordWon:
				winner = i
				wins++
			case wordLost:
			default:
				t.Errorf("process %d: %s on %q = %s, want %s or %s", i, call, k, outcomes[i][r], wordWon, wordLost)
			}
		}
		if wins != 1 {
			t.Errorf("%d of %d processes racing %s on %q won, want exactly 1: conditional writes must be atomic between processes",
				wins, len(results), call, k)
		}
		if wins == 1 {
			wantContent(t, b, k, processBody(strconv.Itoa(winner)), "", "the object holds the body of the process that was told it won")
		}
	}
}

// buildWithoutRace builds the running test's package as a test binary
// without the race detector, which multiplies a program's memory several
// times over: a bound on a helper process's peak RSS (streaming writes)
// must be measured on the program as users build it. The test's working
// directory is its package's, as `go test` runs it.
func buildWithoutRace(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "norace.test")
	cmd := exec.CommandContext(t.Context(), "go", "test", "-c", "-o", exe, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test binary without the race detector: %v\n%s", err, out)
	}
	return exe
}
