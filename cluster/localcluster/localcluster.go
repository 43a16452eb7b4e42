// Package localcluster is a cluster backend that runs each job as
// subprocesses of the current process, on this machine.
//
// Jobs are admitted in submission order while the CPUs, memory and GPUs
// they declare fit in the budget — by default what the machine has — and
// while fewer than Options.Workers jobs run; the budget is never
// oversubscribed, and a job that could never fit is rejected at submission
// (cluster.ErrUnsatisfiable). Each replica is one process, started with the
// submitter's environment plus the job's variables, in its own process
// group, its output appended to the attempt's log file. GPUs are numbered
// 0..GPUs-1 and handed out through CUDA_VISIBLE_DEVICES.
//
// It does not pack jobs (driver.Packer): a submission here is a fork, with
// no scheduler request or scheduling pass to save, so every job is
// submitted and started on its own, as soon as it fits.
//
// Jobs do not outlive their Scheduler: Close stops them, and they are
// killed if the submitting process dies (Linux parent-death signal). So
// Find only ever returns this Scheduler's own jobs, which are the current
// user's. Container images and TPUs are not supported
// (cluster.ErrUnsupported).
//
// Submit validates the spec itself (driver.JobSpec.Validate), so direct
// users of the driver get the same guarantees as users of package cluster;
// no value is ever interpreted by a shell. Jobs get the submitter's
// environment minus the variables of a Slurm job the submitter may run in
// (driver.InheritedEnv). A job with a digest runs a private copy of its
// program, made in a new 0700 directory and verified while it is copied,
// and removed when the job ends.
//
// Application code normally opens it through a cluster.Mux with the spec
// "local" or "local?workers=N&cpus=N&memory=BYTES&gpus=N".
package localcluster

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/driver"
)

// Options configure a Scheduler. A nil *Options means all defaults.
type Options struct {
	// Workers bounds the jobs running at once; 0 means no bound other than
	// the resource budget.
	Workers int
	// CPUs, Memory (bytes) and GPUs are the budget; 0 means what the
	// machine has (runtime.NumCPU, MemTotal of /proc/meminfo, and no GPUs).
	CPUs   int
	Memory int64
	GPUs   int
	// Region is this machine's region for Resources.Regions; "" means a
	// job restricted to regions can never run here.
	Region string
	// KillGrace is how long a cancelled or timed-out job has between
	// SIGTERM and SIGKILL; 0 means 5 seconds.
	KillGrace time.Duration
}

// Scheduler runs jobs as local subprocesses. It implements driver.Scheduler.
type Scheduler struct {
	workers   int
	cpus      int
	memory    int64
	gpus      int
	region    string
	killGrace time.Duration

	wg sync.WaitGroup // job goroutines

	// mu guards the fields below.
	mu       sync.Mutex
	next     int
	jobs     map[string]*job
	queue    []*job // pending, in submission order
	running  int
	usedCPU  int
	usedMem  int64
	freeGPUs []int
	closed   bool
}

type job struct {
	id   string
	spec driver.JobSpec
	gpus []int

	// guarded by Scheduler.mu
	status    driver.Status
	cancelled bool
	timedOut  bool
	stop      chan struct{} // closed to cancel a running job
}

// New returns a scheduler with the given budget.
func New(opts *Options) *Scheduler {
	var o Options
	if opts != nil {
		o = *opts
	}
	s := &Scheduler{
		workers:   o.Workers,
		cpus:      o.CPUs,
		memory:    o.Memory,
		gpus:      o.GPUs,
		region:    o.Region,
		killGrace: o.KillGrace,
		jobs:      make(map[string]*job),
	}
	if s.cpus <= 0 {
		s.cpus = runtime.NumCPU()
	}
	if s.memory <= 0 {
		s.memory = machineMemory()
	}
	if s.killGrace <= 0 {
		s.killGrace = 5 * time.Second
	}
	for i := range max(s.gpus, 0) {
		s.freeGPUs = append(s.freeGPUs, i)
	}
	return s
}

// machineMemory returns MemTotal from /proc/meminfo, or 0 (no memory
// budget) if it cannot be read.
func machineMemory() int64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// Opener opens a Scheduler from the parameters of a "local" cluster spec:
// workers, cpus, memory (bytes), gpus and region, each optional.
type Opener struct {
	// Defaults are used for parameters the spec does not set.
	Defaults Options
}

// OpenScheduler implements cluster.Opener.
func (o *Opener) OpenScheduler(_ context.Context, params url.Values) (driver.Scheduler, error) {
	p := cluster.NewParams(params)
	opts := o.Defaults
	opts.Workers = p.Int("workers", opts.Workers)
	opts.CPUs = p.Int("cpus", opts.CPUs)
	opts.Memory = int64(p.Int("memory", int(opts.Memory)))
	opts.GPUs = p.Int("gpus", opts.GPUs)
	opts.Region = p.String("region", opts.Region)
	if err := p.Done(); err != nil {
		return nil, err
	}
	return New(&opts), nil
}

// Error is the error type of this driver.
type Error struct {
	Code driver.Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func errorf(code driver.Code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ErrorCode implements driver.Scheduler.
func (s *Scheduler) ErrorCode(err error) driver.Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return driver.Unknown
}

// Submit implements driver.Scheduler.
func (s *Scheduler) Submit(_ context.Context, spec *driver.JobSpec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", errorf(driver.Invalid, "localcluster: %v", err)
	}
	r := spec.Resources
	n := spec.Replicas
	switch {
	case spec.Image != "":
		return "", errorf(driver.Unsupported, "localcluster: container images are not supported (image %q)", spec.Image)
	case r.TPUType != "":
		return "", errorf(driver.Unsupported, "localcluster: TPUs are not supported (%s)", r.TPUType)
	case len(r.Regions) > 0 && !slices.Contains(r.Regions, s.region):
		return "", errorf(driver.Unsatisfiable, "localcluster: regions %v do not include this machine's region %q", r.Regions, s.region)
	case r.CPUs*n > s.cpus:
		return "", errorf(driver.Unsatisfiable, "localcluster: %d replica(s) x %d CPUs exceed the %d CPUs of the budget", n, r.CPUs, s.cpus)
	case s.memory > 0 && r.Memory*int64(n) > s.memory:
		return "", errorf(driver.Unsatisfiable, "localcluster: %d replica(s) x %d bytes of memory exceed the %d bytes of the budget", n, r.Memory, s.memory)
	case r.GPUs*n > s.gpus:
		return "", errorf(driver.Unsatisfiable, "localcluster: %d replica(s) x %d GPUs exceed the %d GPUs of the budget", n, r.GPUs, s.gpus)
	}
	if err := os.MkdirAll(spec.LogDir, 0o777); err != nil {
		return "", fmt.Errorf("localcluster: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", errors.New("localcluster: scheduler closed")
	}
	s.next++
	j := &job{
		id:     fmt.Sprintf("local-%d-%s", s.next, spec.Name),
		spec:   *spec,
		status: driver.Status{State: driver.Pending, ExitCode: -1, Reason: "waiting for resources"},
	}
	s.jobs[j.id] = j
	s.queue = append(s.queue, j)
	s.dispatch()
	return j.id, nil
}

// dispatch starts queued jobs, in order, while the head fits; s.mu is held.
func (s *Scheduler) dispatch() {
	for len(s.queue) > 0 && !s.closed {
		j := s.queue[0]
		r, n := j.spec.Resources, j.spec.Replicas
		if s.workers > 0 && s.running >= s.workers ||
			s.usedCPU+r.CPUs*n > s.cpus ||
			s.memory > 0 && s.usedMem+r.Memory*int64(n) > s.memory ||
			r.GPUs*n > len(s.freeGPUs) {
			return
		}
		s.queue = s.queue[1:]
		s.running++
		s.usedCPU += r.CPUs * n
		s.usedMem += r.Memory * int64(n)
		j.gpus = slices.Clone(s.freeGPUs[:r.GPUs*n])
		s.freeGPUs = s.freeGPUs[r.GPUs*n:]
		j.status = driver.Status{State: driver.Running, ExitCode: -1}
		j.stop = make(chan struct{})
		s.wg.Go(func() { s.run(j) })
	}
}

// run executes j's setup commands and replicas and records the outcome.
func (s *Scheduler) run(j *job) {
	st := s.execute(j)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case j.cancelled:
		st = driver.Status{State: driver.Stopped, Cause: driver.CauseCancelled, ExitCode: st.ExitCode, Signal: st.Signal, Reason: "cancelled"}
	case j.timedOut:
		st = driver.Status{State: driver.Failed, Cause: driver.CauseTimeLimit, ExitCode: st.ExitCode, Signal: st.Signal, Reason: "time limit " + j.spec.Resources.TimeLimit.String() + " reached"}
	}
	j.status = st
	r, n := j.spec.Resources, j.spec.Replicas
	s.running--
	s.usedCPU -= r.CPUs * n
	s.usedMem -= r.Memory * int64(n)
	s.freeGPUs = append(s.freeGPUs, j.gpus...)
	slices.Sort(s.freeGPUs)
	s.dispatch()
}

// execute runs j and returns its status, ignoring cancellation.
func (s *Scheduler) execute(j *job) driver.Status {
	fail := func(err error) driver.Status {
		return driver.Status{State: driver.Failed, Cause: driver.CauseOther, ExitCode: -1, Reason: err.Error()}
	}
	logPath := filepath.Join(j.spec.LogDir, driver.LogName(j.spec.Attempt))
	logf, err := openLog(logPath)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()

	var timeout <-chan time.Time
	if tl := j.spec.Resources.TimeLimit; tl > 0 {
		t := time.NewTimer(tl)
		defer t.Stop()
		timeout = t.C
	}
	program := j.spec.Command[0]
	if j.spec.Digest != "" {
		dir, p, err := privateCopy(program, j.spec.Digest)
		if err != nil {
			fmt.Fprintf(logf, "localcluster: %v\n", err)
			return driver.Status{State: driver.Failed, Cause: driver.CauseExit, ExitCode: 126, Reason: err.Error()}
		}
		defer os.RemoveAll(dir)
		program = p
	}
	env := driver.InheritedEnv(os.Environ())
	for _, k := range slices.Sorted(maps.Keys(j.spec.Env)) {
		env = append(env, k+"="+j.spec.Env[k])
	}
	env = append(env,
		"CAIRN_ATTEMPT="+strconv.Itoa(j.spec.Attempt),
		"CAIRN_REPLICAS="+strconv.Itoa(j.spec.Replicas),
		"CAIRN_JOB_ID="+j.id,
	)
	if j.spec.Digest != "" {
		// As driver.VerifiedRun does: the copy that runs was checked.
		env = append(env, driver.VerifiedProgramEnv+"=sha256:"+j.spec.Digest+" "+program)
	}
	// Setup commands run once, before the replicas.
	for _, argv := range j.spec.Setup {
		st, ok := s.wait(j, []*exec.Cmd{s.command(j, argv, env, 0, logf)}, timeout)
		if !ok {
			return st
		}
	}
	cmds := make([]*exec.Cmd, j.spec.Replicas)
	per := j.spec.Resources.GPUs
	for i := range cmds {
		renv := slices.Clone(env)
		if per > 0 {
			ids := make([]string, per)
			for k, g := range j.gpus[i*per : (i+1)*per] {
				ids[k] = strconv.Itoa(g)
			}
			renv = append(renv, "CUDA_VISIBLE_DEVICES="+strings.Join(ids, ","))
		}
		argv := append([]string{program}, j.spec.Command[1:]...)
		cmds[i] = s.command(j, argv, renv, i, logf)
	}
	st, _ := s.wait(j, cmds, timeout)
	return st
}

// privateCopy copies the program at path into a new directory only this
// user can enter, hashing what it copies, and returns the directory and
// the copy's path if the SHA-256 is want (hex). The file at path is read
// once and never executed, so replacing it cannot change what runs
// (issue 8, item 12). The directory is made under os.TempDir(), which must
// not let other users rename its entries (/tmp is sticky).
func privateCopy(path, want string) (dir, copyPath string, err error) {
	src, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("cannot read the program: %w", err)
	}
	defer src.Close()
	dir, err = os.MkdirTemp("", "cairn-program-")
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	copyPath = filepath.Join(dir, "program")
	dst, err := os.OpenFile(copyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(dst, h), src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", fmt.Errorf("copying the program %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return "", "", fmt.Errorf("the program %s has SHA-256 %s, not %s as submitted: refusing to run it", path, got, want)
	}
	return dir, copyPath, nil
}

// command builds the process of one replica (or setup command).
func (s *Scheduler) command(j *job, argv, env []string, replica int, logf *os.File) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(slices.Clip(env), "CAIRN_REPLICA="+strconv.Itoa(replica))
	cmd.Dir = j.spec.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so that cancelling reaches the program's children;
	// killed with the submitting process, since nothing could adopt it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// wait starts cmds (replicas of one gang) and waits for all of them,
// stopping the gang when one fails, when the job is cancelled or when
// timeout fires. ok reports success.
func (s *Scheduler) wait(j *job, cmds []*exec.Cmd, timeout <-chan time.Time) (driver.Status, bool) {
	started := make([]*exec.Cmd, 0, len(cmds))
	var startErr error
	for _, c := range cmds {
		c, err := start(c)
		if err != nil {
			startErr = err
			fmt.Fprintf(c.Stdout, "localcluster: start %s: %v\n", c.Path, err)
			break
		}
		started = append(started, c)
	}
	stop := j.stop // set before the job's goroutine started

	type exit struct {
		i   int
		err error
	}
	exits := make(chan exit, len(started))
	var wg sync.WaitGroup
	for i, c := range started {
		wg.Go(func() { exits <- exit{i, c.Wait()} })
	}
	live := make(map[int]*exec.Cmd, len(started))
	for i, c := range started {
		live[i] = c
	}
	var (
		first      error
		grace      <-chan time.Time // SIGKILL what SIGTERM did not end
		graceTimer *time.Timer
	)
	terminate := func(sig syscall.Signal) {
		for _, c := range live {
			_ = syscall.Kill(-c.Process.Pid, sig)
		}
		if sig == syscall.SIGTERM && graceTimer == nil {
			graceTimer = time.NewTimer(s.killGrace)
			grace = graceTimer.C
		}
	}
	if startErr != nil {
		terminate(syscall.SIGKILL)
	}
	for len(live) > 0 {
		select {
		case e := <-exits:
			delete(live, e.i)
			if e.err != nil && first == nil {
				first = e.err
				terminate(syscall.SIGTERM) // a gang fails as a whole
			}
		case <-stop:
			stop = nil
			terminate(syscall.SIGTERM)
		case <-timeout:
			timeout = nil
			s.mu.Lock()
			j.timedOut = true
			s.mu.Unlock()
			terminate(syscall.SIGTERM)
		case <-grace:
			grace = nil
			terminate(syscall.SIGKILL)
		}
	}
	if graceTimer != nil {
		graceTimer.Stop()
	}
	wg.Wait()
	if startErr != nil {
		return driver.Status{State: driver.Failed, Cause: driver.CauseExit, ExitCode: 127, Reason: startErr.Error()}, false
	}
	if first == nil {
		return driver.Status{State: driver.Succeeded, ExitCode: 0}, true
	}
	st := driver.Status{State: driver.Failed, Cause: driver.CauseExit, ExitCode: -1, Reason: first.Error()}
	if ee, ok := errors.AsType[*exec.ExitError](first); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			st.Signal = int(ws.Signal())
		} else {
			st.ExitCode = ee.ExitCode()
		}
	}
	return st, false
}

// start starts c, or a copy of it, and returns the command it started. A
// program this process has just written (a verified private copy) can fail
// to start with ETXTBSY while a concurrent fork still holds the copy's write
// descriptor, until that child execs (golang/go#22315): retry for a while
// with fresh copies, since a Cmd cannot be started twice.
func start(c *exec.Cmd) (*exec.Cmd, error) {
	for try := 1; ; try++ {
		err := c.Start()
		if !errors.Is(err, syscall.ETXTBSY) || try == 50 {
			return c, err
		}
		time.Sleep(time.Duration(try) * time.Millisecond)
		next := exec.Command(c.Path, c.Args[1:]...)
		next.Env, next.Dir, next.Stdout, next.Stderr, next.SysProcAttr = c.Env, c.Dir, c.Stdout, c.Stderr, c.SysProcAttr
		c = next
	}
}

// Status implements driver.Scheduler.
func (s *Scheduler) Status(_ context.Context, ids []string) ([]driver.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]driver.Status, len(ids))
	for i, id := range ids {
		if j, ok := s.jobs[id]; ok {
			out[i] = j.status
		} else {
			out[i] = driver.Status{State: driver.Gone, ExitCode: -1}
		}
	}
	return out, nil
}

// Cancel implements driver.Scheduler.
func (s *Scheduler) Cancel(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return errorf(driver.NotFound, "localcluster: no job %q", id)
	}
	switch j.status.State {
	case driver.Pending:
		s.queue = slices.DeleteFunc(s.queue, func(q *job) bool { return q == j })
		j.cancelled = true
		j.status = driver.Status{State: driver.Stopped, Cause: driver.CauseCancelled, ExitCode: -1, Reason: "cancelled while pending"}
		s.dispatch()
	case driver.Running:
		if !j.cancelled {
			j.cancelled = true
			close(j.stop)
		}
	}
	return nil
}

// Find implements driver.Scheduler: this scheduler's unfinished jobs named
// name (jobs do not outlive their scheduler).
func (s *Scheduler) Find(_ context.Context, name string) ([]driver.Found, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []driver.Found
	for _, j := range s.jobs {
		if j.spec.Name == name && (j.status.State == driver.Pending || j.status.State == driver.Running) {
			out = append(out, driver.Found{ID: j.id, Tag: j.spec.Tag, State: j.status.State, Attempt: j.spec.Attempt})
		}
	}
	slices.SortFunc(out, func(a, b driver.Found) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Close implements driver.Scheduler: it cancels every pending and running
// job and waits for them to end.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, j := range s.queue {
		j.cancelled = true
		j.status = driver.Status{State: driver.Stopped, Cause: driver.CauseCancelled, ExitCode: -1, Reason: "scheduler closed"}
	}
	s.queue = nil
	for _, j := range s.jobs {
		if j.status.State == driver.Running && !j.cancelled {
			j.cancelled = true
			close(j.stop)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// openLog opens a job's log for appending without following a symbolic
// link in its last two components (the log directory, under a step's
// output on a shared prefix, and the file): anyone who can write there
// could otherwise make the job append to any file its user can write. It
// also refuses anything but a regular file, and never blocks on a FIFO.
func openLog(path string) (*os.File, error) {
	dir, err := os.OpenFile(filepath.Dir(path), os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("localcluster: log directory %s (a symbolic link?): %w", filepath.Dir(path), err)
	}
	defer dir.Close()
	fd, err := syscall.Openat(int(dir.Fd()), filepath.Base(path),
		syscall.O_WRONLY|syscall.O_CREAT|syscall.O_APPEND|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o666)
	if err != nil {
		return nil, fmt.Errorf("localcluster: log %s (a symbolic link?): %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("localcluster: log %s is not a regular file", path)
	}
	return f, nil
}
