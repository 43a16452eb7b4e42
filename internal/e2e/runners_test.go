package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/cairn/internal/statusfile"
)

// TestManyRunnersOneBucket runs several runner processes on one pipeline
// and prefix, on each backend, and kills one of them with SIGKILL mid-run.
// Every step must end SUCCESS; every step executed exactly once, except
// steps the killed runner had started, which another runner took over once
// their leases went stale; and no step ever executed twice at once.
func TestManyRunnersOneBucket(t *testing.T) {
	forEachBackend(t, true, func(t *testing.T, be backend) {
		n, runners := 300, 4
		if testing.Short() {
			n, runners = 90, 3
		}
		dir := t.TempDir()
		logPath := filepath.Join(dir, "executions")
		root := be.root(t)
		args := []string{"--prefix", root, "--max-concurrent", "8", "--log-format", "json",
			"--lease-interval", be.interval.String(), "--lease-stale-after", be.staleAfter.String(), "--poll-interval", "50ms"}
		env := append(append(os.Environ(), be.childEnv...),
			envRunner+"=1", envSteps+"="+strconv.Itoa(n), envLog+"="+logPath, envWork+"=10")

		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmds := make([]*exec.Cmd, runners)
		stderr := make([]bytes.Buffer, runners)
		errs := make([]error, runners)
		start := time.Now()
		var wg sync.WaitGroup
		victimDone := make(chan struct{}) // closed when runner 0 has ended
		startRunner := func(i int, env []string) {
			cmds[i] = exec.CommandContext(ctx, os.Args[0], args...)
			cmds[i].Env = env
			cmds[i].Stderr = &stderr[i]
			if err := cmds[i].Start(); err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				errs[i] = cmds[i].Wait()
				if i == 0 {
					close(victimDone)
				}
			})
		}

		// Runner 0, the one to be killed, starts alone and finishes k
		// steps; every step it starts after those works until the runner
		// is killed. So it is killed mid-step whatever the machine's load,
		// and it is never starved of steps by faster runners.
		k := n / (3 * runners)
		startRunner(0, append(env[:len(env):len(env)], envStallAfter+"="+strconv.Itoa(k)))
		victim := cmds[0].Process.Pid
		marker := fmt.Sprintf("-%d-", victim)
		// waitFor polls the execution log until cond holds for the
		// victim's and the survivors' executions. There is no wall-clock
		// bound: a loaded machine may be slow; a runner 0 that ends, or
		// the test's context, ends the wait.
		waitFor := func(what string, cond func(victimEnded, victimRunning, survivorsEnded int) bool) {
			t.Helper()
			for {
				ve, vr, se := 0, 0, 0
				for _, e := range executions(t, readFileLog(t, logPath)) {
					switch {
					case !strings.Contains(e.runner, marker):
						if e.end != 0 {
							se++
						}
					case e.end != 0:
						ve++
					default:
						vr++
					}
				}
				if cond(ve, vr, se) {
					return
				}
				select {
				case <-victimDone:
					wg.Wait()
					t.Fatalf("runner 0 ended (%v) while waiting until %s:\n%s", errs[0], what, tail(stderr[0].String()))
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
		waitFor("it had finished some steps and was executing others", func(ve, vr, _ int) bool { return ve >= k && vr > 0 })
		// The others race it, and each other, for the rest.
		for i := 1; i < runners; i++ {
			startRunner(i, env)
		}
		waitFor("the other runners had finished some steps", func(_, _, se int) bool { return se >= k })
		killedAt := time.Now().UnixNano()
		if err := cmds[0].Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		elapsed := time.Since(start)
		// A survivor that cannot refresh a lease in time on an overloaded
		// machine loses the step (it is not failed: the survivor goes back
		// to waiting, and the step runs again, once, by whoever takes it
		// over). No survivor may fail.
		for i := 1; i < runners; i++ {
			if errs[i] != nil {
				t.Errorf("runner %d failed: %v\n%s", i, errs[i], tail(stderr[i].String()))
			}
		}

		// Takeovers, lost leases and failed attempts, from every runner's
		// log (the killed one's too: it may have failed a step, under load,
		// before it was killed, and a survivor then ran the step again).
		takeovers, lost, failedBefore := map[string]bool{}, map[string]bool{}, map[string]bool{}
		logLines := map[string][]string{}
		for _, o := range stderr {
			for line := range strings.SplitSeq(o.String(), "\n") {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) != nil {
					continue
				}
				step := fmt.Sprint(m["step"])
				logLines[step] = append(logLines[step], line)
				switch m["msg"] {
				case "step ran after taking over":
					takeovers[step] = true
				case "lease lost; the step goes back to waiting for its holder":
					lost[step] = true
				case "step failed":
					failedBefore[step] = true
				}
			}
		}

		execs := executions(t, readFileLog(t, logPath))
		counts := checkNoOverlap(t, execs, killedAt)
		byVictim := map[string]bool{}
		for _, e := range execs {
			if strings.Contains(e.runner, marker) {
				byVictim[e.step] = true
			}
		}
		duplicates := 0
		for step, c := range counts {
			if c == 1 {
				continue
			}
			duplicates++
			if !takeovers[step] && !failedBefore[step] {
				t.Errorf("step %s executed %d times without a takeover or a failure; its log lines:\n%s", step, c, strings.Join(logLines[step], "\n"))
			}
			if !byVictim[step] && !lost[step] && !failedBefore[step] {
				t.Errorf("step %s executed %d times, but the killed runner never started it and no survivor lost or failed it; its log lines:\n%s", step, c, strings.Join(logLines[step], "\n"))
			}
		}
		if len(counts) != n {
			t.Errorf("%d distinct steps executed, want %d", len(counts), n)
		}
		mux := be.storage(be.endpoint, nil)
		for _, s := range pipeline(n, 0, nil, 0) {
			path, _ := s.OutputPath(root)
			b, err := mux.OpenBucket(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			if st, err := statusfile.ReadStatus(t.Context(), b); st != statusfile.Success {
				id, _ := s.ID()
				t.Errorf("%s: status %q, %v; want SUCCESS", id, st, err)
			}
		}
		t.Logf("%s: %d runner processes, %d steps, runner 0 killed at %s, done in %s: "+
			"%d executions, %d duplicates (steps run again after a takeover), %d takeovers, %d leases lost by survivors, no step run twice at once",
			be.name, runners, n, time.Duration(killedAt-start.UnixNano()).Round(time.Millisecond),
			elapsed.Round(time.Millisecond), len(execs), duplicates, len(takeovers), len(lost))
	})
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}
