// Package slurmcluster is a cluster backend that runs jobs on Slurm through
// its command-line tools: sbatch --parsable to submit, squeue (batched) and
// scontrol show job to watch, sacct when accounting is enabled for jobs
// Slurm no longer lists, and scancel.
//
// # Requests
//
// Resources map to sbatch options: CPUs to --cpus-per-task, Memory to
// --mem (per-CPU with several replicas), Disk to --tmp, GPUs to
// --gpus[-per-task]=[TYPE:]N, TimeLimit to --time (rounded up to whole
// minutes, Slurm's granularity), Replicas to --ntasks with the program
// started through srun. Options add --partition, --account and --qos.
// Regions are satisfiable only if Options.Region is among them. Container
// images and TPUs are rejected (cluster.ErrUnsupported). A request Slurm
// rejects at submission fails at once with Slurm's message
// (cluster.ErrUnsatisfiable), and so does a pending job whose reason says
// it can never run (PartitionConfig, BadConstraints, ...).
//
// # States
//
// COMPLETED is succeeded; FAILED (and SPECIAL_EXIT) failed with the exit
// code; CANCELLED stopped; TIMEOUT, OUT_OF_MEMORY and DEADLINE failed with
// that cause; PREEMPTED, NODE_FAIL and BOOT_FAIL failed with a cause the
// portable layer retries against the preemption budget. A job Slurm
// requeues in place (scontrol requeue, preemption with requeue) keeps its
// ID; each restart counts as a preempted attempt and logs to a new file.
//
// # Safety
//
// No value from a job spec is ever interpreted by a shell, whether the spec
// comes through package cluster or straight to [Scheduler.Submit], which
// validates it itself (driver.JobSpec.Validate: variable names must be
// identifiers, names and tags are restricted, no NUL bytes). sbatch is run
// with an argument vector, and the batch script, piped to sbatch's standard
// input (no file to race on), contains every value single-quoted; Slurm's
// filename patterns (%j, ...) never see user paths. With several replicas,
// srun runs a constant wrapper script, the program's argv following as
// positional arguments.
//
// A job with a digest (driver.JobSpec.Digest) copies its program into a
// new directory made by mktemp -d (mode 0700) on the node, checks the
// copy with sha256sum, and runs the copy (each replica its own copy), then
// removes it: the file at Command[0] is read once and never executed, so
// replacing it, before or during the job, cannot make the job run anything
// else. The nodes need mktemp and sha256sum (GNU coreutils).
//
// Jobs get the submitter's environment (sbatch's default --export=ALL)
// minus the variables of the submitter's own Slurm job, if it runs in one
// (driver.InheritedEnv): a requeued submitter's SLURM_RESTART_COUNT would
// otherwise number the job's attempts. Slurm commands run with that same
// environment.
//
// # Packs
//
// SubmitPack (driver.Packer) submits jobs that share a request as one job
// array (sbatch --array=0-(N-1), named cairn-pack), each element its own
// job: its ID is ARRAY_INDEX ("1234_5"), which squeue -r, scontrol and
// scancel take; its argv, environment, log directory and attempt are in
// the batch script, under a case on SLURM_ARRAY_TASK_ID fixed at
// submission; Find reads an element's name, tag and attempt from the
// manifest at the top of that script (scontrol write batch_script). The
// details of finished elements (exit codes) come from one scontrol call
// per array. See pack.go.
//
// Jobs outlive the client: Close does not cancel them, and Find lists the
// pending and running jobs of the current user (squeue --me, and the job's
// user ID checked again) by name, so that another process of the same user
// can adopt them. The job's comment, "cairn:TAG:ATTEMPT", records what Find
// returns.
package slurmcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/driver"
)

// Options configure a Scheduler. A nil *Options means all defaults.
type Options struct {
	// Partition, Account and QOS are passed to sbatch when set.
	Partition, Account, QOS string
	// Region is the cluster's region for Resources.Regions; "" means a job
	// restricted to regions can never run here.
	Region string
	// ExtraArgs are added to every sbatch command line, as separate
	// arguments (never through a shell).
	ExtraArgs []string
	// BinDir is the directory holding sbatch, squeue, scontrol, scancel and
	// sacct; "" means $PATH.
	BinDir string
	// Shell is the interpreter of the batch script, an absolute path
	// without spaces; "" means /bin/sh.
	Shell string
	// MaxPack is the largest pack SubmitPack accepts (see driver.Packer);
	// 0 means DefaultMaxPack. A pack larger than the cluster's MaxArraySize
	// is submitted as several job arrays.
	MaxPack int
}

// Scheduler submits jobs to Slurm. It implements driver.Scheduler.
type Scheduler struct {
	opts Options

	// mu guards the fields below.
	mu      sync.Mutex
	submit  map[string]string // job ID -> submit time last seen (requeues change it)
	details map[string]detail // job ID -> last scontrol details
	noSacct bool              // sacct said accounting is disabled
	// manifests caches the manifests of packs (array job ID -> elements by
	// index); see pack.go.
	manifests map[string]map[string]element
	arraySize int // the cluster's MaxArraySize, once read; see pack.go
}

// New returns a scheduler. It fails if sbatch cannot be found.
func New(opts *Options) (*Scheduler, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Shell == "" {
		o.Shell = "/bin/sh"
	}
	// The shell is written on the script's #! line, unquoted.
	if !filepath.IsAbs(o.Shell) || strings.ContainsAny(o.Shell, " \t\r\n\x00") {
		return nil, fmt.Errorf("slurmcluster: shell %q: want an absolute path without spaces", o.Shell)
	}
	s := &Scheduler{opts: o, submit: map[string]string{}, details: map[string]detail{}, manifests: map[string]map[string]element{}}
	if _, err := exec.LookPath(s.bin("sbatch")); err != nil {
		return nil, fmt.Errorf("slurmcluster: %w", err)
	}
	return s, nil
}

// Opener opens a Scheduler from the parameters of a "slurm" cluster spec:
// partition, account, qos and region, each optional.
type Opener struct {
	// Defaults are used for parameters the spec does not set.
	Defaults Options
}

// OpenScheduler implements cluster.Opener.
func (o *Opener) OpenScheduler(_ context.Context, params url.Values) (driver.Scheduler, error) {
	p := cluster.NewParams(params)
	opts := o.Defaults
	opts.Partition = p.String("partition", opts.Partition)
	opts.Account = p.String("account", opts.Account)
	opts.QOS = p.String("qos", opts.QOS)
	opts.Region = p.String("region", opts.Region)
	if err := p.Done(); err != nil {
		return nil, err
	}
	return New(&opts)
}

func (s *Scheduler) bin(name string) string {
	if s.opts.BinDir == "" {
		return name
	}
	return s.opts.BinDir + "/" + name
}

// Error is a failed Slurm command.
type Error struct {
	// Command is the command line (for messages only).
	Command string
	// Stderr is what the command printed.
	Stderr string
	Code   driver.Code
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	return e.Command + ": " + msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode implements driver.Scheduler.
func (s *Scheduler) ErrorCode(err error) driver.Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return driver.Unknown
}

// Messages of sbatch that mean the request can never run.
var unsatisfiableMessages = []string{
	"requested node configuration is not available",
	"more processors requested than permitted",
	"memory specification can not be satisfied",
	"temporary disk specification can not be satisfied",
	"invalid generic resource",
	"invalid gres",
	"requested partition configuration not available",
	"invalid partition",
	"requested time limit is invalid",
	"invalid account",
	"invalid qos",
	"node count specification invalid",
	"job violates accounting/qos policy",
	"requested reservation is invalid",
	"invalid feature specification",
}

var transientMessages = []string{
	"unable to contact slurm controller",
	"socket timed out",
	"connection refused",
	"slurm_receive_msg",
	"zero bytes were transmitted",
	"communication connection failure",
}

// run runs a Slurm command with argv and returns its standard output.
func (s *Scheduler) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.bin(name), args...)
	// sbatch exports its own environment to the job: not the variables of
	// a Slurm job the submitter may itself be running in.
	cmd.Env = driver.InheritedEnv(os.Environ())
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	e := &Error{Command: name + " " + strings.Join(args, " "), Stderr: stderr.String(), Err: err}
	low := strings.ToLower(e.Stderr)
	switch {
	case strings.Contains(low, "invalid job id"):
		e.Code = driver.NotFound
	case strings.Contains(low, "accounting storage is disabled"):
		e.Code = driver.Unsupported
	case containsAny(low, unsatisfiableMessages):
		e.Code = driver.Unsatisfiable
	case containsAny(low, transientMessages):
		e.Code = driver.Transient
	}
	return nil, e
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// quote returns s as one single-quoted shell word.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func quoteArgs(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = quote(a)
	}
	return strings.Join(q, " ")
}

// script returns the batch script of spec. Every value from spec is
// single-quoted; everything else is constant.
func (s *Scheduler) script(spec *driver.JobSpec) []byte {
	var b strings.Builder
	s.scriptHeader(&b)
	b.WriteString("cairn_job_id=\"$SLURM_JOB_ID\"\n")
	writeElement(&b, spec, "")
	s.scriptBody(&b, spec)
	return []byte(b.String())
}

func (s *Scheduler) scriptHeader(b *strings.Builder) {
	fmt.Fprintf(b, "#!%s\n", s.opts.Shell)
	b.WriteString("# Written by cairn (cluster/slurmcluster). Every value below is single-quoted.\n")
	b.WriteString("set -e\n")
}

// writeElement writes the shell variables, exports and positional
// parameters that differ between the jobs of a pack: the log directory,
// the attempt number, the environment and the program's argv (preceded by
// the digest, if any: see scriptBody).
func writeElement(b *strings.Builder, spec *driver.JobSpec, indent string) {
	fmt.Fprintf(b, "%scairn_log_dir=%s\n", indent, quote(spec.LogDir))
	fmt.Fprintf(b, "%scairn_first_attempt=%d\n", indent, spec.Attempt)
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) { // keys are validated identifiers
		fmt.Fprintf(b, "%sexport %s=%s\n", indent, k, quote(spec.Env[k]))
	}
	argv := spec.Command
	if spec.Digest != "" {
		argv = append([]string{spec.Digest}, spec.Command...)
	}
	fmt.Fprintf(b, "%sset -- %s\n", indent, quoteArgs(argv))
}

// scriptBody writes what every job (or element of a pack) does once
// writeElement's variables are set: open its log, set the CAIRN_ variables,
// run the setup commands and the program. spec provides what the elements
// of a pack share.
func (s *Scheduler) scriptBody(b *strings.Builder, spec *driver.JobSpec) {
	b.WriteString("cairn_attempt=$((cairn_first_attempt + ${SLURM_RESTART_COUNT:-0}))\n")
	b.WriteString("mkdir -p -- \"$cairn_log_dir\"\n")
	// Refuse a log directory or file that is a symbolic link (or a file
	// that is not a regular file): anyone who can write under a shared
	// step output could otherwise make the job append to any file of its
	// user. The shell cannot open with O_NOFOLLOW, so this is a check, not
	// a guarantee against a link swapped in between.
	b.WriteString("cairn_log=\"$cairn_log_dir/attempt-$cairn_attempt.log\"\n")
	b.WriteString("if [ -L \"$cairn_log_dir\" ] || [ -L \"$cairn_log\" ] || { [ -e \"$cairn_log\" ] && [ ! -f \"$cairn_log\" ]; }; then\n")
	b.WriteString("\techo \"cairn: refusing to log to $cairn_log: a symbolic link or not a regular file\" >&2\n\texit 126\nfi\n")
	b.WriteString("exec >>\"$cairn_log\" 2>&1\n")
	b.WriteString("export CAIRN_ATTEMPT=\"$cairn_attempt\" CAIRN_JOB_ID=\"$cairn_job_id\"\n")
	fmt.Fprintf(b, "export CAIRN_REPLICAS=%d\n", spec.Replicas)
	if spec.Dir != "" {
		fmt.Fprintf(b, "cd -- %s\n", quote(spec.Dir))
	}
	for _, argv := range spec.Setup {
		fmt.Fprintf(b, "%s\n", quoteArgs(argv))
	}
	// run is the constant shell text that starts the program, its argv
	// (preceded by the digest, if any) being the positional parameters
	// writeElement set.
	run := `exec "$@"`
	if spec.Digest != "" {
		run = driver.VerifiedRun
	}
	if spec.Replicas == 1 {
		b.WriteString("export CAIRN_REPLICA=0\n")
		fmt.Fprintf(b, "%s\n", run)
	} else {
		// One task per replica; each learns its index from SLURM_PROCID
		// through a constant wrapper script, the program's argv following
		// as positional arguments.
		fmt.Fprintf(b, "exec srun --kill-on-bad-exit=1 %s -c %s cairn-replica \"$@\"\n",
			quote(s.opts.Shell), quote("CAIRN_REPLICA=$SLURM_PROCID; export CAIRN_REPLICA\n"+run))
	}
}

// sbatchArgs returns sbatch's arguments for spec.
func (s *Scheduler) sbatchArgs(spec *driver.JobSpec) []string {
	r := spec.Resources
	args := []string{
		"--parsable",
		"--job-name=" + spec.Name,
		"--comment=" + comment(spec.Tag, spec.Attempt),
		// The script sends everything to the attempt's log; Slurm's own
		// output file is not needed, and user paths must not meet Slurm's
		// %-patterns.
		"--output=/dev/null",
		"--cpus-per-task=" + strconv.Itoa(r.CPUs),
	}
	n := spec.Replicas
	if n > 1 {
		args = append(args, "--ntasks="+strconv.Itoa(n))
		if r.Memory > 0 {
			args = append(args, "--mem-per-cpu="+strconv.FormatInt(ceilMiB(r.Memory, int64(r.CPUs)), 10)+"M")
		}
		if r.GPUs > 0 {
			args = append(args, "--gpus-per-task="+gpus(r))
		}
	} else {
		if r.Memory > 0 {
			args = append(args, "--mem="+strconv.FormatInt(ceilMiB(r.Memory, 1), 10)+"M")
		}
		if r.GPUs > 0 {
			args = append(args, "--gpus="+gpus(r))
		}
	}
	if r.Disk > 0 {
		args = append(args, "--tmp="+strconv.FormatInt(ceilMiB(r.Disk, 1), 10)+"M")
	}
	if r.TimeLimit > 0 {
		args = append(args, "--time="+strconv.FormatInt(int64((r.TimeLimit+time.Minute-1)/time.Minute), 10))
	}
	if s.opts.Partition != "" {
		args = append(args, "--partition="+s.opts.Partition)
	}
	if s.opts.Account != "" {
		args = append(args, "--account="+s.opts.Account)
	}
	if s.opts.QOS != "" {
		args = append(args, "--qos="+s.opts.QOS)
	}
	return append(args, s.opts.ExtraArgs...)
}

func gpus(r driver.Resources) string {
	if r.GPUType != "" {
		return r.GPUType + ":" + strconv.Itoa(r.GPUs)
	}
	return strconv.Itoa(r.GPUs)
}

// ceilMiB returns ceil(bytes / per / MiB), at least 1.
func ceilMiB(bytes, per int64) int64 {
	const mib = 1 << 20
	per = max(per, 1)
	return max((bytes+per*mib-1)/(per*mib), 1)
}

func comment(tag string, attempt int) string {
	return "cairn:" + tag + ":" + strconv.Itoa(attempt)
}

func parseComment(c string) (tag string, attempt int, ok bool) {
	rest, ok := strings.CutPrefix(c, "cairn:")
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(rest[i+1:])
	if err != nil {
		return "", 0, false
	}
	return rest[:i], n, true
}

// Submit implements driver.Scheduler.
func (s *Scheduler) Submit(ctx context.Context, spec *driver.JobSpec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", &Error{Command: "sbatch", Code: driver.Invalid, Stderr: err.Error(), Err: err}
	}
	if err := s.supported(spec); err != nil {
		return "", err
	}
	return s.sbatch(ctx, s.script(spec), s.sbatchArgs(spec))
}

// supported rejects what this backend cannot run.
func (s *Scheduler) supported(spec *driver.JobSpec) error {
	r := spec.Resources
	switch {
	case spec.Image != "":
		return &Error{Command: "sbatch", Code: driver.Unsupported, Stderr: fmt.Sprintf("container images are not supported by slurmcluster (image %q)", spec.Image)}
	case r.TPUType != "":
		return &Error{Command: "sbatch", Code: driver.Unsupported, Stderr: fmt.Sprintf("TPUs are not supported by slurmcluster (%s)", r.TPUType)}
	case len(r.Regions) > 0 && !slices.Contains(r.Regions, s.opts.Region):
		return &Error{Command: "sbatch", Code: driver.Unsatisfiable, Stderr: fmt.Sprintf("regions %v do not include this cluster's region %q", r.Regions, s.opts.Region)}
	}
	return nil
}

// sbatch submits script with args and returns the job ID.
func (s *Scheduler) sbatch(ctx context.Context, script []byte, args []string) (string, error) {
	out, err := s.run(ctx, script, "sbatch", args...)
	if err != nil {
		return "", err
	}
	// --parsable prints "ID" or "ID;CLUSTER".
	id, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return "", &Error{Command: "sbatch", Stderr: fmt.Sprintf("unexpected output %q", out)}
	}
	return id, nil
}

// squeueFormat: ID, state, reason, submit time, user ID, comment. Names
// are not needed. The comment comes last, as anyone's job may have any
// comment; ours are "cairn:TAG:N" with TAG in [A-Za-z0-9_.-].
const squeueFormat = "%i|%T|%r|%V|%U|%k"

type queueLine struct {
	id, state, reason, submit, uid, comment string
}

func parseQueue(out []byte) map[string]queueLine {
	m := map[string]queueLine{}
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.SplitN(strings.TrimSpace(line), "|", 6)
		if len(f) < 6 {
			continue
		}
		m[f[0]] = queueLine{id: f[0], state: f[1], reason: f[2], submit: f[3], uid: f[4], comment: f[5]}
	}
	return m
}

// Status implements driver.Scheduler: one squeue for all ids, plus
// scontrol for jobs that finished or were requeued, plus sacct (when
// available) for jobs squeue no longer lists.
func (s *Scheduler) Status(ctx context.Context, ids []string) ([]driver.Status, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var lines map[string]queueLine
	// -r lists the elements of job arrays (packs) one per line, by their
	// own IDs ("1234_5"), pending ones included.
	out, err := s.run(ctx, nil, "squeue", "-h", "-r", "--states=all", "-j", strings.Join(ids, ","), "-o", squeueFormat)
	switch {
	case err == nil:
		lines = parseQueue(out)
	case s.ErrorCode(err) == driver.NotFound: // every ID is unknown
		lines = map[string]queueLine{}
	default:
		return nil, err
	}
	sts := make([]driver.Status, len(ids))
	var missing []int
	arrays, err := s.finishedElements(ctx, ids, lines)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		l, ok := lines[id]
		if !ok {
			// Gone from squeue: sacct (or Gone) answers for it from now on.
			missing = append(missing, i)
			s.forget(id)
			continue
		}
		st, err := s.status(ctx, l, arrays)
		if err != nil {
			return nil, err
		}
		sts[i] = st
	}
	if len(missing) > 0 {
		if err := s.fromAccounting(ctx, ids, missing, sts); err != nil {
			return nil, err
		}
	}
	return sts, nil
}

// finishedElements returns the scontrol details of the elements of packs
// among ids that squeue lists as finished: one scontrol call per array
// rather than one per element, as a pack's elements tend to finish
// together.
func (s *Scheduler) finishedElements(ctx context.Context, ids []string, lines map[string]queueLine) (map[string]detail, error) {
	var arrays []string
	for _, id := range ids {
		l, ok := lines[id]
		a := arrayOf(id)
		if !ok || a == "" || slices.Contains(arrays, a) {
			continue
		}
		if st := mapState(l.state, l.reason); st.State != driver.Pending && st.State != driver.Running {
			arrays = append(arrays, a)
		}
	}
	if len(arrays) == 0 {
		return nil, nil
	}
	details := map[string]detail{}
	for _, a := range arrays {
		m, err := s.arrayDetails(ctx, a)
		switch {
		case err == nil:
			maps.Copy(details, m)
		case s.ErrorCode(err) != driver.NotFound:
			return nil, err
		}
	}
	return details, nil
}

// status maps one squeue line, asking scontrol for details when needed
// (unless elements, from finishedElements, has them).
func (s *Scheduler) status(ctx context.Context, l queueLine, elements map[string]detail) (driver.Status, error) {
	st := mapState(l.state, l.reason)
	s.mu.Lock()
	prev, seen := s.submit[l.id]
	s.submit[l.id] = l.submit
	d, haveDetail := s.details[l.id]
	s.mu.Unlock()
	requeued := seen && prev != l.submit
	final := st.State != driver.Pending && st.State != driver.Running
	if e, ok := elements[l.id]; ok && final && !requeued {
		d, haveDetail = e, true
	} else if requeued || final || !haveDetail && (strings.HasPrefix(l.state, "REQUEUE") || l.reason == "BeginTime") {
		fresh, err := s.detail(ctx, l.id)
		switch {
		case err == nil:
			d, haveDetail = fresh, true
			s.remember(l.id, l.submit, d)
		case s.ErrorCode(err) != driver.NotFound:
			return driver.Status{}, err
		}
	}
	if haveDetail {
		st.Restarts = d.restarts
		if final {
			st.ExitCode, st.Signal = d.exit, d.signal
		}
	}
	if final { // the portable layer stops asking
		s.forget(l.id)
	}
	return st, nil
}

// remember records what status compares and reuses between polls of job id:
// its submit time (a change means a requeue) and its scontrol details.
func (s *Scheduler) remember(id, submit string, d detail) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.submit[id] = submit
	s.details[id] = d
}

// forget drops what remember recorded for id.
func (s *Scheduler) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.submit, id)
	delete(s.details, id)
}

type detail struct {
	restarts int
	exit     int
	signal   int
}

// The fields of scontrol show job -o that status needs.
var (
	restartsRE = regexp.MustCompile(`(?:^| )Restarts=(\d+)`)
	exitCodeRE = regexp.MustCompile(`(?:^| )ExitCode=(\d+):(\d+)`)
)

// detail runs scontrol show job -o ID. Fields are taken from their first
// occurrence: Restarts and ExitCode come before any field a user
// value could reach (paths, command).
func (s *Scheduler) detail(ctx context.Context, id string) (detail, error) {
	out, err := s.run(ctx, nil, "scontrol", "show", "job", "-o", id)
	if err != nil {
		return detail{}, err
	}
	return parseDetail(string(out)), nil
}

// parseDetail reads the fields detail needs from one line of scontrol show
// job -o.
func parseDetail(line string) detail {
	d := detail{exit: -1}
	if m := restartsRE.FindStringSubmatch(line); m != nil {
		d.restarts, _ = strconv.Atoi(m[1])
	}
	if m := exitCodeRE.FindStringSubmatch(line); m != nil {
		d.exit, _ = strconv.Atoi(m[1])
		d.signal, _ = strconv.Atoi(m[2])
	}
	return d
}

// fromAccounting fills sts[i] for ids squeue did not list: from sacct if
// accounting is enabled, else Gone.
func (s *Scheduler) fromAccounting(ctx context.Context, ids []string, missing []int, sts []driver.Status) error {
	for _, i := range missing {
		sts[i] = driver.Status{State: driver.Gone, ExitCode: -1}
	}
	s.mu.Lock()
	noSacct := s.noSacct
	s.mu.Unlock()
	if noSacct {
		return nil
	}
	want := make([]string, len(missing))
	for k, i := range missing {
		want[k] = ids[i]
	}
	out, err := s.run(ctx, nil, "sacct", "-n", "-P", "-X", "-j", strings.Join(want, ","), "-o", "JobID,State,ExitCode")
	if s.ErrorCode(err) == driver.Unsupported {
		s.mu.Lock()
		s.noSacct = true
		s.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	byID := map[string][]string{}
	for line := range strings.SplitSeq(string(out), "\n") {
		if f := strings.Split(strings.TrimSpace(line), "|"); len(f) == 3 {
			byID[f[0]] = f
		}
	}
	for _, i := range missing {
		f, ok := byID[ids[i]]
		if !ok {
			continue
		}
		state, _, _ := strings.Cut(f[1], " ") // "CANCELLED by 0"
		st := mapState(state, "")
		code, sig, _ := strings.Cut(f[2], ":")
		st.ExitCode, _ = strconv.Atoi(code)
		st.Signal, _ = strconv.Atoi(sig)
		sts[i] = st
	}
	return nil
}

// Pending reasons that mean the job can never start.
var neverReasons = map[string]bool{
	"PartitionConfig":          true,
	"PartitionNodeLimit":       true,
	"PartitionTimeLimit":       true,
	"BadConstraints":           true,
	"InvalidAccount":           true,
	"InvalidQOS":               true,
	"AccountNotAllowed":        true,
	"QOSNotAllowed":            true,
	"PartitionDown":            false, // may come back up
	"ReqNodeNotAvail":          false,
	"DependencyNeverSatisfied": true,
}

// mapState maps a Slurm job state (and pending reason) to a status.
func mapState(state, reason string) driver.Status {
	st := driver.Status{ExitCode: -1, Reason: state}
	if reason != "" && reason != "None" && reason != "(null)" {
		st.Reason = state + " (" + reason + ")"
	}
	switch state {
	case "PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SUSPENDED", "STOPPED":
		st.State = driver.Pending
		if state == "SUSPENDED" || state == "STOPPED" {
			st.State = driver.Running
		}
		if state == "PENDING" && neverReasons[reason] {
			st.State, st.Cause = driver.Failed, driver.CauseUnsatisfiable
		}
	case "RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING":
		st.State = driver.Running
	case "COMPLETED":
		st.State, st.ExitCode = driver.Succeeded, 0
	case "FAILED", "SPECIAL_EXIT":
		st.State, st.Cause = driver.Failed, driver.CauseExit
	case "CANCELLED", "REVOKED":
		st.State, st.Cause = driver.Stopped, driver.CauseCancelled
	case "TIMEOUT":
		st.State, st.Cause = driver.Failed, driver.CauseTimeLimit
	case "OUT_OF_MEMORY":
		st.State, st.Cause = driver.Failed, driver.CauseOutOfMemory
	case "NODE_FAIL", "BOOT_FAIL":
		st.State, st.Cause = driver.Failed, driver.CauseNodeFailure
	case "PREEMPTED":
		st.State, st.Cause = driver.Failed, driver.CausePreempted
	case "DEADLINE":
		st.State, st.Cause = driver.Failed, driver.CauseDeadline
	default:
		// A state this version does not know: fail rather than wait forever.
		st.State, st.Cause = driver.Failed, driver.CauseOther
		st.Reason = "unknown Slurm state " + state
	}
	return st
}

// Cancel implements driver.Scheduler.
func (s *Scheduler) Cancel(ctx context.Context, id string) error {
	if !jobIDRE.MatchString(id) {
		return &Error{Command: "scancel", Code: driver.NotFound, Stderr: fmt.Sprintf("invalid job id %q", id)}
	}
	_, err := s.run(ctx, nil, "scancel", id)
	return err
}

// Find implements driver.Scheduler: the current user's jobs only (issue 8,
// item 13). squeue --me asks Slurm for them, and each line's user ID is
// checked again, so that a co-user's job named and tagged like ours is
// never adopted. A job submitted alone is found by its Slurm name and
// comment; an element of a pack (named packName) by the name, tag and
// attempt its pack's manifest records for its array index.
func (s *Scheduler) Find(ctx context.Context, name string) ([]driver.Found, error) {
	if strings.ContainsAny(name, ", \t\n") { // no valid job name; squeue would read a list
		return nil, nil
	}
	out, err := s.run(ctx, nil, "squeue", "-h", "-r", "--me", "--name="+name+","+packName, "--states=all", "-o", squeueFormat)
	if err != nil {
		return nil, err
	}
	uid := strconv.Itoa(os.Getuid())
	var found []driver.Found
	for _, l := range parseQueue(out) {
		if l.uid != uid {
			continue
		}
		st := mapState(l.state, l.reason)
		if st.State != driver.Pending && st.State != driver.Running {
			continue
		}
		var f driver.Found
		if array := arrayOf(l.id); array != "" && l.comment == packComment {
			m, err := s.manifest(ctx, array)
			if s.ErrorCode(err) == driver.NotFound {
				continue // ended meanwhile
			}
			if err != nil {
				return nil, err
			}
			_, index, _ := strings.Cut(l.id, "_")
			e, ok := m[index]
			if !ok || e.name != name {
				continue
			}
			f = driver.Found{ID: l.id, Tag: e.tag, State: st.State, Attempt: e.attempt}
		} else {
			tag, attempt, ok := parseComment(l.comment)
			if !ok {
				continue // not submitted by cairn
			}
			f = driver.Found{ID: l.id, Tag: tag, State: st.State, Attempt: attempt}
		}
		if d, err := s.detail(ctx, l.id); err == nil {
			s.remember(l.id, l.submit, d)
		}
		found = append(found, f)
	}
	slices.SortFunc(found, func(a, b driver.Found) int { return strings.Compare(a.ID, b.ID) })
	return found, nil
}

// Close implements driver.Scheduler. Jobs keep running.
func (s *Scheduler) Close() error { return nil }
