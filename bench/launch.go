package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// spawnFlag, as the first argument, selects launcher mode: run one command
// and report its wall time and resource usage on file descriptor 3.
//
// Why a launcher: Go starts children with vfork (CLONE_VM), and on exec
// Linux folds the high-water RSS of the mm being left, the parent's, into
// the child's ru_maxrss. A child started directly by the bench process
// would thus report at least the bench's own peak RSS, which grows as it
// builds graphs and collects output. The launcher is a fresh, minimal
// process, so the floor under every tool's peak RSS is small, constant and
// the same for all tools; it is reported as rss_floor_mb.
const spawnFlag = "-spawn"

// spawnReport is what the launcher writes on fd 3.
type spawnReport struct {
	WallNS   int64  `json:"wall_ns"`
	CPUNS    int64  `json:"cpu_ns"`
	MaxRSS   int64  `json:"maxrss_kib"`
	FloorRSS int64  `json:"floor_kib"` // the launcher's VmHWM before starting the command
	Err      string `json:"error,omitempty"`
}

// procStats are what the launcher measured of one command.
type procStats struct {
	wall      time.Duration // from just before fork to just after wait
	cpu       time.Duration // user + system, including reaped descendants
	maxRSSKiB int64         // peak RSS of the process or its largest reaped descendant
	floorKiB  int64         // lower bound on maxRSSKiB due to the launcher
}

// launcher runs commands through a re-executed copy of this binary in
// launcher mode.
type launcher struct {
	exe string // this binary
}

// run runs argv in dir through the launcher, with the command's stdout and
// stderr going to stdout and stderr, and returns what the launcher measured.
func (l launcher) run(ctx context.Context, dir string, stdout, stderr io.Writer, argv ...string) (procStats, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return procStats{}, err
	}
	defer r.Close()
	cmd := exec.CommandContext(ctx, l.exe, append([]string{spawnFlag, "-dir", dir, "--"}, argv...)...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{w} // fd 3
	err = cmd.Start()
	w.Close()
	if err != nil {
		return procStats{}, err
	}
	data, readErr := io.ReadAll(r)
	if err := errors.Join(cmd.Wait(), readErr); err != nil {
		return procStats{}, fmt.Errorf("launcher: %w", err)
	}
	var rep spawnReport
	if err := json.Unmarshal(data, &rep); err != nil {
		return procStats{}, fmt.Errorf("launcher: bad report %q: %w", data, err)
	}
	st := procStats{
		wall:      time.Duration(rep.WallNS),
		cpu:       time.Duration(rep.CPUNS),
		maxRSSKiB: rep.MaxRSS,
		floorKiB:  rep.FloorRSS,
	}
	if rep.Err != "" {
		return st, errors.New(rep.Err)
	}
	return st, nil
}

// spawnMain runs launcher mode with args (after spawnFlag): it runs the
// command after "--", measures it, writes a spawnReport to report and
// returns the process exit code, which is non-zero only if the launcher
// itself failed; the command's failure is in the report.
func spawnMain(args []string, stderr io.Writer, report io.Writer) int {
	fs := flag.NewFlagSet("bench "+spawnFlag, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "working directory of the command")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "bench -spawn: no command")
		return 2
	}
	rep := measure(fs.Args(), *dir)
	if err := json.NewEncoder(report).Encode(rep); err != nil {
		fmt.Fprintf(stderr, "bench -spawn: %v\n", err)
		return 1
	}
	return 0
}

// measure runs argv in dir, with the launcher's stdin, stdout and stderr,
// and measures it.
func measure(argv []string, dir string) spawnReport {
	rep := spawnReport{FloorRSS: ownHighWaterKiB()}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // die with the launcher
	start := time.Now()
	err := cmd.Run()
	rep.WallNS = time.Since(start).Nanoseconds()
	if err != nil {
		rep.Err = fmt.Sprintf("%s: %v", argv[0], err)
	}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rep.CPUNS = ru.Utime.Nano() + ru.Stime.Nano()
			rep.MaxRSS = ru.Maxrss // KiB on Linux
		}
	}
	return rep
}

// ownHighWaterKiB returns VmHWM, the peak RSS of this process's address
// space, from /proc/self/status, or 0 if it cannot be read. Unlike
// getrusage's ru_maxrss it excludes what was inherited from the parent,
// and it is what a child started with vfork inherits.
func ownHighWaterKiB() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}
