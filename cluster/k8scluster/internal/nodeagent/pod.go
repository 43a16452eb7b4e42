package nodeagent

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func resourcePods(n int64) *resource.Quantity { return resource.NewQuantity(n, resource.DecimalSI) }

// podRun runs one pod.
type podRun struct {
	a   *Agent
	pod *corev1.Pod // as first seen: its spec does not change
	dir string

	stopping chan struct{} // closed when the pod is to stop (deleted)
	stopOnce sync.Once
	writeMu  sync.Mutex // serialises status writes

	// mu guards the fields below.
	mu        sync.Mutex
	phase     corev1.PodPhase
	init      []corev1.ContainerStatus
	main      []corev1.ContainerStatus
	started   *metav1.Time
	procs     map[string]*exec.Cmd     // running containers
	ended     map[string]chan struct{} // closed when a container has ended
	oom       map[string]bool
	grace     time.Duration
	killed    bool
	initsDone bool
	finished  bool // run has reported the pod's final status
}

func newPodRun(a *Agent, p *corev1.Pod) *podRun {
	r := &podRun{
		a: a, pod: p.DeepCopy(), dir: filepath.Join(a.opts.Dir, string(p.UID)),
		stopping: make(chan struct{}), phase: corev1.PodPending,
		procs: map[string]*exec.Cmd{}, ended: map[string]chan struct{}{}, oom: map[string]bool{},
		grace: 30 * time.Second,
	}
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil {
		r.grace = time.Duration(*g) * time.Second
	}
	waiting := func(cs []corev1.Container, reason string) []corev1.ContainerStatus {
		out := make([]corev1.ContainerStatus, len(cs))
		for i, c := range cs {
			out[i] = corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
			r.ended[c.Name] = make(chan struct{})
		}
		return out
	}
	r.init = waiting(p.Spec.InitContainers, "PodInitializing")
	r.main = waiting(p.Spec.Containers, "PodInitializing")
	if len(p.Spec.InitContainers) == 0 {
		for i := range r.main {
			r.main[i].State.Waiting.Reason = "ContainerCreating"
		}
	}
	return r
}

// terminate stops the pod, which is being deleted: SIGTERM now, SIGKILL
// after the grace period.
func (r *podRun) terminate(grace *int64) {
	r.mu.Lock()
	if grace != nil {
		r.grace = time.Duration(*grace) * time.Second
	}
	r.mu.Unlock()
	r.stopOnce.Do(func() {
		close(r.stopping)
		r.signal(syscall.SIGTERM)
		r.mu.Lock()
		g := r.grace
		r.mu.Unlock()
		go func() {
			t := time.NewTimer(g)
			defer t.Stop()
			select {
			case <-t.C:
				r.kill()
			case <-r.a.ctx.Done():
			}
		}()
	})
}

// kill kills every process of the pod now.
func (r *podRun) kill() {
	r.stopOnce.Do(func() { close(r.stopping) })
	r.mu.Lock()
	r.killed = true
	r.mu.Unlock()
	r.signal(syscall.SIGKILL)
}

func (r *podRun) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.procs {
		if c.Process != nil {
			_ = syscall.Kill(-c.Process.Pid, sig) // the container's process group
		}
	}
}

func (r *podRun) isStopping() bool {
	select {
	case <-r.stopping:
		return true
	default:
		return false
	}
}

// run runs the pod to its end and reports its status.
func (r *podRun) run() {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		r.a.log.Warn("nodeagent: pod directory", "error", err)
		return
	}
	now := metav1.Now()
	r.mu.Lock()
	r.started = &now
	r.mu.Unlock()
	ok := true
	for i, c := range r.pod.Spec.InitContainers {
		if r.isStopping() {
			ok = false
			break
		}
		if code := r.runContainer(c, &r.init, i); code != 0 {
			ok = false
			break
		}
	}
	r.mu.Lock()
	r.initsDone = ok
	r.mu.Unlock()
	if ok && !r.isStopping() {
		var wg sync.WaitGroup
		codes := make([]int32, len(r.pod.Spec.Containers))
		for i, c := range r.pod.Spec.Containers {
			wg.Go(func() { codes[i] = r.runContainer(c, &r.main, i) })
		}
		wg.Wait()
		for _, code := range codes {
			if code != 0 {
				ok = false
			}
		}
	}
	r.mu.Lock()
	if ok && !r.isStopping() {
		r.phase = corev1.PodSucceeded
	} else if ok && r.allMainSucceeded() {
		r.phase = corev1.PodSucceeded
	} else {
		r.phase = corev1.PodFailed
	}
	// Containers that never ran.
	for _, list := range [][]corev1.ContainerStatus{r.init, r.main} {
		for i := range list {
			if list[i].State.Waiting != nil && r.isStopping() {
				list[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "ContainerStatusUnknown", Message: "the pod was stopped before the container started"}}
			}
		}
	}
	killed := r.killed && r.a.ctx.Err() != nil
	r.mu.Unlock()
	if killed {
		return // the agent stopped: leave the pod as it is
	}
	r.write()
	r.mu.Lock()
	r.finished = true
	r.mu.Unlock()
	if r.isStopping() {
		r.a.remove(r.pod)
	}
}

// allMainSucceeded reports whether every container exited 0; r.mu held.
func (r *podRun) allMainSucceeded() bool {
	for _, cs := range r.main {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			return false
		}
	}
	return len(r.main) > 0
}

// runContainer runs container c, whose status is (*list)[i], and returns
// its exit code.
func (r *podRun) runContainer(c corev1.Container, list *[]corev1.ContainerStatus, i int) int32 {
	defer close(r.ended[c.Name])
	terminated := func(t corev1.ContainerStateTerminated) int32 {
		r.mu.Lock()
		t.ContainerID = (*list)[i].ContainerID
		if t.FinishedAt.IsZero() {
			t.FinishedAt = metav1.Now()
		}
		(*list)[i].State = corev1.ContainerState{Terminated: &t}
		(*list)[i].Ready = false
		r.mu.Unlock()
		r.write()
		return t.ExitCode
	}
	logf, err := os.OpenFile(r.a.logPath(r.pod.UID, c.Name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return terminated(corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error()})
	}
	defer logf.Close()
	argv := append(append([]string(nil), c.Command...), c.Args...)
	if len(c.Command) == 0 {
		return terminated(corev1.ContainerStateTerminated{ExitCode: 128, Reason: "CreateContainerError",
			Message: "cairn nodeagent runs a container's command on the host and cannot use an image's entrypoint"})
	}
	env, err := r.environment(c)
	if err != nil {
		return terminated(corev1.ContainerStateTerminated{ExitCode: 128, Reason: "CreateContainerConfigError", Message: err.Error()})
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return terminated(corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error()})
	}
	if c.WorkingDir != "" {
		if err := os.MkdirAll(c.WorkingDir, 0o755); err != nil {
			return terminated(corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error()})
		}
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Env: env, Dir: c.WorkingDir, Stdout: logf, Stderr: logf,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	r.mu.Lock()
	if r.isStopping() {
		r.mu.Unlock()
		return terminated(corev1.ContainerStateTerminated{ExitCode: 137, Reason: "Error", Message: "the pod was stopped"})
	}
	err = cmd.Start()
	if err == nil {
		r.procs[c.Name] = cmd
		start := metav1.Now()
		(*list)[i].ContainerID = "cairn-nodeagent://" + strconv.Itoa(cmd.Process.Pid)
		(*list)[i].Started = new(bool)
		*(*list)[i].Started = true
		(*list)[i].Ready = true
		(*list)[i].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}}
		if list == &r.main {
			r.phase = corev1.PodRunning
		}
	}
	r.mu.Unlock()
	if err != nil {
		return terminated(corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error()})
	}
	started := metav1.Now()
	r.write()

	stopWatch := func() {}
	if limit, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && !limit.IsZero() {
		stopWatch = r.a.memory.watch(cmd.Process.Pid, limit.Value(), func() {
			r.mu.Lock()
			r.oom[c.Name] = true
			r.mu.Unlock()
		})
	}
	werr := cmd.Wait()
	stopWatch()
	// The group may have stragglers (a backgrounded child): a container
	// ends with its main process.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)

	r.mu.Lock()
	delete(r.procs, c.Name)
	oom := r.oom[c.Name]
	r.mu.Unlock()
	t := corev1.ContainerStateTerminated{StartedAt: started, Reason: "Completed"}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Signaled():
			t.Signal = int32(ws.Signal())
			t.ExitCode = 128 + t.Signal
		default:
			t.ExitCode = int32(ws.ExitStatus())
		}
	} else if werr != nil {
		t.ExitCode = 1
	}
	if t.ExitCode != 0 {
		t.Reason = "Error"
	}
	if oom {
		t.Reason, t.ExitCode, t.Signal = "OOMKilled", 137, int32(syscall.SIGKILL)
	}
	return terminated(t)
}

// environment returns container c's environment, as a container runtime
// and the kubelet make it.
func (r *podRun) environment(c corev1.Container) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, errors.New("cairn nodeagent does not support envFrom")
	}
	p := r.pod
	host := p.Spec.Hostname
	if host == "" {
		host = p.Name
	}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + host, "HOME=" + homeDir()}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef == nil {
				return nil, fmt.Errorf("environment variable %s: only fieldRef sources are supported", e.Name)
			}
			var err error
			if v, err = fieldValue(p, r.a, e.ValueFrom.FieldRef.FieldPath); err != nil {
				return nil, fmt.Errorf("environment variable %s: %w", e.Name, err)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

func homeDir() string {
	if h, err := os.UserHomeDir(); err == nil {
		return h
	}
	return "/"
}

// fieldValue resolves a downward API field of p.
func fieldValue(p *corev1.Pod, a *Agent, path string) (string, error) {
	key := func(prefix string) (string, bool) {
		if rest, ok := strings.CutPrefix(path, prefix+"['"); ok {
			if k, ok := strings.CutSuffix(rest, "']"); ok {
				return k, true
			}
		}
		return "", false
	}
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return p.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.podIP", "status.hostIP":
		return "127.0.0.1", nil
	}
	if k, ok := key("metadata.labels"); ok {
		return p.Labels[k], nil
	}
	if k, ok := key("metadata.annotations"); ok {
		return p.Annotations[k], nil
	}
	return "", fmt.Errorf("unsupported field %q", path)
}

// lookPath finds a command as a container runtime does, in the
// container's PATH.
func lookPath(cmd string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		return cmd, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, cmd)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable file %q not found in $PATH", cmd)
}

// write reports the pod's status, keeping conditions others set.
func (r *podRun) write() {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	pods := r.a.client.CoreV1().Pods(r.pod.Namespace)
	for try := 0; try < 10 && r.a.ctx.Err() == nil; try++ {
		p, err := pods.Get(r.a.ctx, r.pod.Name, metav1.GetOptions{})
		if err != nil || p.UID != r.pod.UID {
			return // gone
		}
		r.mu.Lock()
		st := &p.Status
		st.Phase = r.phase
		st.HostIP, st.PodIP = "127.0.0.1", "127.0.0.1"
		st.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
		st.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
		st.StartTime = r.started
		st.InitContainerStatuses = deepStatuses(r.init)
		st.ContainerStatuses = deepStatuses(r.main)
		initialized := r.initsDone || len(r.init) == 0
		ready := r.phase == corev1.PodRunning
		r.mu.Unlock()
		setCondition(st, corev1.PodInitialized, initialized)
		setCondition(st, corev1.ContainersReady, ready)
		setCondition(st, corev1.PodReady, ready)
		_, err = pods.UpdateStatus(r.a.ctx, p, metav1.UpdateOptions{})
		if err == nil || !apierrors.IsConflict(err) {
			if err != nil && !apierrors.IsNotFound(err) && r.a.ctx.Err() == nil {
				r.a.log.Warn("nodeagent: updating pod status failed", "pod", p.Namespace+"/"+p.Name, "error", err)
			}
			return
		}
	}
}

func deepStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, len(in))
	for i := range in {
		in[i].DeepCopyInto(&out[i])
	}
	return out
}

func setCondition(st *corev1.PodStatus, t corev1.PodConditionType, ok bool) {
	s := corev1.ConditionFalse
	if ok {
		s = corev1.ConditionTrue
	}
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			if st.Conditions[i].Status != s {
				st.Conditions[i].Status, st.Conditions[i].LastTransitionTime = s, metav1.Now()
			}
			return
		}
	}
	st.Conditions = append(st.Conditions, corev1.PodCondition{Type: t, Status: s, LastTransitionTime: metav1.Now()})
}

// serveLogs is the kubelet's GET /containerLogs/NAMESPACE/POD/CONTAINER.
func (a *Agent) serveLogs(w http.ResponseWriter, req *http.Request) {
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/containerLogs/"), "/")
	if req.Method != http.MethodGet || !strings.HasPrefix(req.URL.Path, "/containerLogs/") || len(parts) != 3 {
		http.Error(w, "cairn nodeagent serves only /containerLogs/NAMESPACE/POD/CONTAINER", http.StatusNotFound)
		return
	}
	ns, name, container := parts[0], parts[1], parts[2]
	a.mu.Lock()
	var r *podRun
	for _, pr := range a.pods {
		if pr.pod.Namespace == ns && pr.pod.Name == name {
			r = pr
		}
	}
	a.mu.Unlock()
	if r == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s not found on this node", ns, name), http.StatusNotFound)
		return
	}
	ended, ok := r.ended[container]
	if !ok {
		http.Error(w, fmt.Sprintf("container %q is not in pod %s", container, name), http.StatusNotFound)
		return
	}
	f, err := os.Open(a.logPath(r.pod.UID, container))
	if err != nil {
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start", container, name), http.StatusBadRequest)
		return
	}
	defer f.Close()
	follow := req.URL.Query().Get("follow") == "true"
	w.Header().Set("Content-Type", "text/plain")
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			continue
		}
		if err != nil && err != io.EOF {
			return
		}
		if !follow {
			return
		}
		select {
		case <-ended:
			// Read what was written before the container ended.
			if _, err := io.Copy(w, f); err != nil {
				return
			}
			return
		case <-req.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
