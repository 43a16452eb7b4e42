// Package k8scluster is a cluster backend that runs jobs as Kubernetes
// batch/v1 Jobs through client-go's typed clientset.
//
// # The Job
//
// One attempt of a job (driver.JobSpec) is one Job, named
// deterministically from the job's name and attempt (jobName): a runner
// creating the Job of an attempt that already exists adopts it if it is
// the same submission (same name, tag and attempt, not finished) and
// replaces it if it is finished. Every Job is an Indexed Job with
// completions = parallelism = replicas: a gang of replicas is one Job,
// each replica seeing its index in CAIRN_REPLICA. The portable layer
// retries failed attempts, so Kubernetes retries nothing itself
// (backoffLimitPerIndex 0, maxFailedIndexes 0: a replica that fails fails
// the gang), except that a pod disrupted by preemption, eviction or a node
// drain (pod condition DisruptionTarget) is ignored by the failure budget
// (podFailurePolicy action Ignore) and replaced in place; the replacement
// is an in-place restart (driver.Status.Restarts), counted by cairn against
// the job's preemption budget, with its own log file. The job controller
// records the number of such restarts on each replacement pod (annotation
// batch.kubernetes.io/job-index-ignored-failure-count), so a runner that
// adopts the Job counts them too. cairn's own exit codes that retrying
// cannot fix (126: program refused or not executable, 127: not found) fail
// the Job at once (action FailJob). podReplacementPolicy Failed means a
// replacement never overlaps its predecessor.
//
// Resources map to requests equal to limits: CPUs to cpu, Memory to memory
// (a container exceeding it is OOMKilled, reported as cause "out of
// memory"), Disk to ephemeral-storage, GPUs to nvidia.com/gpu with the
// node selector nvidia.com/gpu.product for a GPU type, a TPU type to
// google.com/tpu with GKE's node selector cloud.google.com/gke-tpu-accelerator.
// Regions become a required node affinity on topology.kubernetes.io/region.
// TimeLimit is activeDeadlineSeconds (rounded up to a second; the job ends
// with cause "time limit"), and finished Jobs are deleted by Kubernetes
// after Options.TTLAfterFinished. A pod the scheduler cannot place stays
// pending with the scheduler's reason; if no node of the cluster could ever
// hold it (its requests exceed every node's allocatable resources, read
// when the scheduler says it cannot place it), the job fails as
// unsatisfiable with the scheduler's message.
//
// # The program in the pod
//
// The container runs the image the job names (driver.JobSpec.Image, from a
// RemoteSpec's environment) or Options.Image. Either the image contains the
// program, or the program is on storage every node mounts (Options.Volumes,
// at the same path as on the submitter) and the job has a digest: then the
// container's first step copies the program into a private directory,
// checks its SHA-256 and runs the copy (the same small script as
// cluster/slurmcluster's), failing with exit code 126 if the digest
// differs. Setup commands are init containers of the same image,
// environment and working directory, run in order. The image must have
// /bin/sh, and for a verified program mktemp, cp, sha256sum and chmod.
//
// The job's environment is JobSpec.Env plus cairn's variables
// (CAIRN_REPLICA, CAIRN_REPLICAS, CAIRN_ATTEMPT, CAIRN_JOB_ID): a pod does
// not inherit the submitter's environment. No value of a job spec is ever
// interpreted by a shell: the script that starts the program is constant,
// the program's argv follows as positional arguments, and values reach the
// API as fields of the Job.
//
// # Logs
//
// The submitter (or the runner that adopted the Job) streams each pod's
// output, its init containers' and then its program's, from the API server
// (pods/log) into LogDir/attempt-N.log, line by line, so the log stays
// after Kubernetes deletes the pod. A finished job is reported finished
// only once its log is complete. The log file is opened without following
// symbolic links; a log directory or file that is a link fails the attempt
// without creating anything.
//
// # Packs
//
// Jobs with the same request that are ready together (driver.Packer) are
// submitted as one Indexed Job, element i running as completion index i,
// each element still its own job: its own ID ("JOBNAME/UID/INDEX"),
// environment and arguments (selected inside the pod by
// JOB_COMPLETION_INDEX from a table fixed in the Job's spec), log, exit
// status, in-place restarts and cancellation (its index's pods deleted,
// which fails that index alone). See pack.go. The image must then also
// have env(1).
//
// # Ownership and adoption
//
// Find lists only Jobs in the scheduler's namespace, created by cairn
// (label app.kubernetes.io/managed-by=cairn), with the job's name; it
// returns their tag (annotation cairn.dev/tag) for the portable layer to
// compare. Kubernetes does not record who created an object: within a
// namespace, everyone allowed to create Jobs there is trusted as the
// submitting user is on Slurm (they can run anything as the namespace's
// service accounts anyway). Jobs in other namespaces are never seen.
//
// Jobs outlive the client. A job's ID is "JOBNAME/UID": a Job deleted and
// recreated under the same name is another job.
package k8scluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/driver"
)

// DefaultTTLAfterFinished is Options.TTLAfterFinished when it is 0.
const DefaultTTLAfterFinished = time.Hour

// Options configure a Scheduler. A nil *Options means all defaults.
type Options struct {
	// Namespace holds the Jobs; "" means "default".
	Namespace string
	// Image is the container image of jobs that do not name one; a job
	// with neither fails at submission (cluster.ErrInvalidJob).
	Image string
	// Queue, if set, submits Jobs to this Kueue LocalQueue: they are
	// created suspended with the label kueue.x-k8s.io/queue-name, and Kueue
	// starts them when it admits them.
	Queue string
	// TTLAfterFinished is how long Kubernetes keeps a finished Job (and its
	// pods) before deleting it; 0 means DefaultTTLAfterFinished.
	TTLAfterFinished time.Duration
	// ServiceAccount runs the pods; "" means the namespace's default.
	ServiceAccount string
	// Volumes are mounted into every container: shared storage holding
	// step outputs and the staged program, at the same path as on the
	// submitter.
	Volumes []Volume
}

// Volume is storage mounted into every container of a job at MountPath.
type Volume struct {
	// Claim names a PersistentVolumeClaim in the namespace; if "",
	// HostPath is used.
	Claim string
	// HostPath is a directory of the node.
	HostPath string
	// MountPath is where the containers see it.
	MountPath string
}

// Scheduler runs jobs as Kubernetes Jobs. It implements driver.Scheduler,
// driver.Adopter and driver.Packer.
type Scheduler struct {
	client kubernetes.Interface
	ns     string
	opts   Options
	cache  *cache

	ctx    context.Context // ends when the scheduler closes; log streams use it
	cancel context.CancelFunc
	wg     sync.WaitGroup // log streams

	// mu guards the fields below.
	mu      sync.Mutex
	watched map[string]*watch        // by job ID: jobs this process streams logs of
	refused map[string]driver.Status // by job ID: submissions refused before creating a Job
	nodes   []nodeInfo               // allocatable resources, for unsatisfiable requests
	nodesAt time.Time                // when nodes was read
	closed  bool
}

// New returns a scheduler creating Jobs through client in opts.Namespace.
// It starts watching the namespace's cairn Jobs and their pods; Close
// stops it.
func New(client kubernetes.Interface, opts *Options) (*Scheduler, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.TTLAfterFinished <= 0 {
		o.TTLAfterFinished = DefaultTTLAfterFinished
	}
	for _, v := range o.Volumes {
		if !strings.HasPrefix(v.MountPath, "/") || (v.Claim == "") == (v.HostPath == "") {
			return nil, fmt.Errorf("k8scluster: volume %+v: want an absolute mount path and exactly one of a claim or a host path", v)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Scheduler{
		client:  client,
		ns:      o.Namespace,
		opts:    o,
		ctx:     ctx,
		cancel:  cancel,
		watched: map[string]*watch{},
		refused: map[string]driver.Status{},
	}
	s.cache = newCache(client, o.Namespace)
	s.cache.start(ctx)
	return s, nil
}

// Opener opens a Scheduler from a "k8s" cluster spec. Parameters, each
// optional: namespace, context (of the kubeconfig), queue (a Kueue
// LocalQueue), image (the default container image), ttl (a duration,
// Options.TTLAfterFinished), serviceaccount, and any number of
// volume=CLAIM:/mount/path (a PersistentVolumeClaim) or
// hostpath=/path (a node directory mounted at the same path).
//
// The kubeconfig is found as kubectl finds it: $KUBECONFIG (a list of
// files), else ~/.kube/config, else the in-cluster configuration of a pod.
// The namespace defaults to the kubeconfig context's, else "default".
type Opener struct {
	// Defaults are used for parameters the spec does not set.
	Defaults Options
}

// OpenScheduler implements cluster.Opener.
func (o *Opener) OpenScheduler(_ context.Context, params url.Values) (driver.Scheduler, error) {
	vols := params["volume"]
	hosts := params["hostpath"]
	delete(params, "volume")
	delete(params, "hostpath")
	p := cluster.NewParams(params)
	opts := o.Defaults
	opts.Namespace = p.String("namespace", opts.Namespace)
	kctx := p.String("context", "")
	opts.Queue = p.String("queue", opts.Queue)
	opts.Image = p.String("image", opts.Image)
	opts.ServiceAccount = p.String("serviceaccount", opts.ServiceAccount)
	ttl := p.String("ttl", "")
	if err := p.Done(); err != nil {
		return nil, err
	}
	if ttl != "" {
		d, err := time.ParseDuration(ttl)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: ttl=%q: want a positive duration such as 1h", cluster.ErrBadSpec, ttl)
		}
		opts.TTLAfterFinished = d
	}
	for _, v := range vols {
		claim, mount, ok := strings.Cut(v, ":")
		if !ok || claim == "" || !strings.HasPrefix(mount, "/") {
			return nil, fmt.Errorf("%w: volume=%q: want CLAIM:/mount/path", cluster.ErrBadSpec, v)
		}
		opts.Volumes = append(opts.Volumes, Volume{Claim: claim, MountPath: mount})
	}
	for _, h := range hosts {
		if !strings.HasPrefix(h, "/") {
			return nil, fmt.Errorf("%w: hostpath=%q: want an absolute path", cluster.ErrBadSpec, h)
		}
		opts.Volumes = append(opts.Volumes, Volume{HostPath: h, MountPath: h})
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kctx})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("k8scluster: kubeconfig: %w", err)
	}
	if opts.Namespace == "" {
		if ns, _, err := cc.Namespace(); err == nil {
			opts.Namespace = ns
		}
	}
	// The poller asks for every watched job at once, and a run may create
	// hundreds of Jobs: client-go's default of 5 requests a second would
	// be the bottleneck.
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("k8scluster: %w", err)
	}
	return New(client, &opts)
}

// Error is a failed request to Kubernetes, or a job spec it cannot run.
type Error struct {
	// Op says what was asked ("create job x").
	Op   string
	Code driver.Code
	Err  error
}

func (e *Error) Error() string { return "k8scluster: " + e.Op + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode implements driver.Scheduler.
func (s *Scheduler) ErrorCode(err error) driver.Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return driver.Unknown
}

// apiError wraps an error of the API server, classified.
func apiError(op string, err error) error {
	code := driver.Unknown
	var netErr net.Error
	switch {
	case apierrors.IsNotFound(err):
		code = driver.NotFound
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		code = driver.Invalid
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		code = driver.Unsatisfiable
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err),
		errors.As(err, &netErr), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		code = driver.Transient
	}
	return &Error{Op: op, Code: code, Err: err}
}

// Close implements driver.Scheduler: it stops watching and streaming
// logs. Jobs keep running; a runner adopting them streams the rest.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.watched {
		w.close()
	}
	return nil
}
