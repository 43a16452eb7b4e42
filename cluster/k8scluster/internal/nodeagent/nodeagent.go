// Package nodeagent is test infrastructure: it plays the kubelet of
// Node objects on a machine without a container runtime, so that cairn's
// Kubernetes backend can be tested against a real API server, job
// controller and scheduler.
//
// What it plays:
//
//   - Node registration: it creates (or updates) each Node with the given
//     capacity and allocatable resources (cpu, memory, ephemeral-storage,
//     pods, nvidia.com/gpu), labels, address 127.0.0.1 and a Ready
//     condition, and removes the not-ready taint the API server adds at
//     creation (the node lifecycle controller's job in a real cluster).
//     It sends no heartbeats: no node lifecycle controller runs.
//   - Running pods: it watches the pods bound to its nodes and runs each
//     container's command and arguments as a local process on this machine,
//     init containers first, in order, then the containers together,
//     with the container's environment (values and the downward API
//     fields metadata.name, .namespace, .uid, .labels['K'],
//     .annotations['K'], spec.nodeName, spec.serviceAccountName,
//     status.podIP, status.hostIP) plus PATH, HOSTNAME and HOME as a
//     container runtime sets them, in the container's working directory
//     (created if missing). The image is not used: the process runs on the
//     host's file system; volumes are not mounted (a hostPath volume mounted
//     at its own path is what the container sees anyway). A container
//     without a command fails to start (CreateContainerError).
//   - Memory limits: it samples the resident memory of each container's
//     process group every 50 ms and kills the group with SIGKILL when it
//     exceeds the container's memory limit, reporting the container
//     terminated with reason OOMKilled and exit code 137, as the kernel's
//     cgroup OOM killer and the kubelet would (sampling can miss a spike
//     shorter than the interval).
//   - Pod status: phase Pending, Running, then Succeeded or Failed; pod
//     conditions Initialized, ContainersReady, Ready; container states
//     waiting, running and terminated with exit code, signal, reason
//     (Completed, Error, OOMKilled) and times. Conditions others set (the
//     API server's DisruptionTarget on eviction) are kept.
//   - Deletion: a pod marked for deletion (eviction through the Eviction
//     API, the job controller, the garbage collector) has its processes
//     stopped, SIGTERM then SIGKILL after the grace period, is given a
//     terminal phase (Failed, unless it had succeeded), and is then deleted
//     for good (grace period 0), as the kubelet does.
//   - Logs: each container's output, stdout and stderr interleaved, is
//     kept in a file and served on the kubelet's log endpoint,
//     GET /containerLogs/NAMESPACE/POD/CONTAINER (follow=true streams until
//     the container exits), over HTTPS on a port per node that the Node
//     advertises (status.daemonEndpoints.kubeletEndpoint), so pods/log
//     requests through the API server work unchanged. Other options of the
//     log endpoint (tail, since, timestamps, previous) are ignored.
//
// What it does not play: images, volumes, networking (every pod's IP is
// 127.0.0.1), probes, restarts (restartPolicy other than Never is run as
// Never), resource isolation other than the memory limit, exec/attach/
// port-forward, node heartbeats and leases, static pods.
package nodeagent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// Options configure an Agent.
type Options struct {
	// Nodes are the names of the Nodes the agent plays the kubelet of.
	Nodes []string
	// Capacity is each node's capacity and allocatable resources. "pods"
	// defaults to 1000.
	Capacity corev1.ResourceList
	// Labels are added to each node's (kubernetes.io/hostname is set).
	Labels map[string]string
	// Dir holds the containers' logs; required.
	Dir string
	// Logger receives what the agent does; nil means slog.Default().
	Logger *slog.Logger
}

// Agent plays the kubelet of some nodes. Create one with Start.
type Agent struct {
	client kubernetes.Interface
	opts   Options
	log    *slog.Logger
	ports  map[string]int // node -> kubelet port

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	memory *memoryMonitor // the containers' memory limits

	// mu guards the field below.
	mu   sync.Mutex
	pods map[types.UID]*podRun
}

// Start registers the nodes, serves their log endpoints and starts
// running their pods. It returns once the nodes are Ready; Stop stops it.
func Start(ctx context.Context, client kubernetes.Interface, opts Options) (*Agent, error) {
	if opts.Dir == "" || len(opts.Nodes) == 0 {
		return nil, errors.New("nodeagent: Options.Dir and Options.Nodes are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(context.Background())
	a := &Agent{client: client, opts: opts, log: opts.Logger, ports: map[string]int{}, ctx: actx, cancel: cancel, pods: map[types.UID]*podRun{},
		memory: newMemoryMonitor()}
	a.wg.Go(func() { a.memory.run(actx.Done()) })
	cert, err := selfSigned()
	if err != nil {
		a.Stop()
		return nil, err
	}
	for _, node := range opts.Nodes {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
		if err != nil {
			a.Stop()
			return nil, err
		}
		a.ports[node] = ln.Addr().(*net.TCPAddr).Port
		srv := &http.Server{Handler: http.HandlerFunc(a.serveLogs), ReadHeaderTimeout: 10 * time.Second}
		a.wg.Go(func() { _ = srv.Serve(ln) })
		a.wg.Go(func() {
			<-actx.Done()
			_ = srv.Close()
		})
	}
	for _, node := range opts.Nodes {
		if err := a.register(ctx, node); err != nil {
			a.Stop()
			return nil, fmt.Errorf("nodeagent: registering node %s: %w", node, err)
		}
	}
	for _, node := range opts.Nodes {
		a.wg.Go(func() { a.watchPods(node) })
	}
	return a, nil
}

// Stop stops the agent and kills the processes of the pods it runs
// (their pods' status is not updated).
func (a *Agent) Stop() {
	a.cancel()
	a.mu.Lock()
	runs := make([]*podRun, 0, len(a.pods))
	for _, r := range a.pods {
		runs = append(runs, r)
	}
	a.mu.Unlock()
	for _, r := range runs {
		r.kill()
	}
	a.wg.Wait()
}

// register creates or updates the Node, Ready and untainted.
func (a *Agent) register(ctx context.Context, name string) error {
	capacity := a.opts.Capacity.DeepCopy()
	if capacity == nil {
		capacity = corev1.ResourceList{}
	}
	if _, ok := capacity[corev1.ResourcePods]; !ok {
		capacity[corev1.ResourcePods] = *resourcePods(1000)
	}
	labels := map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
	for k, v := range a.opts.Labels {
		labels[k] = v
	}
	nodes := a.client.CoreV1().Nodes()
	n, err := nodes.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		n, err = nodes.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	}
	if err != nil {
		return err
	}
	for k, v := range labels {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[k] = v
	}
	n.Spec.Taints = nil
	n.Spec.Unschedulable = false
	if n, err = nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		return err
	}
	now := metav1.Now()
	n.Status = corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "cairn nodeagent plays this node's kubelet", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}, {Type: corev1.NodeHostName, Address: name}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(a.ports[name])}},
		NodeInfo:        corev1.NodeSystemInfo{KubeletVersion: "cairn-nodeagent", OperatingSystem: "linux", Architecture: "amd64"},
	}
	_, err = nodes.UpdateStatus(ctx, n, metav1.UpdateOptions{})
	return err
}

// watchPods runs the pods bound to node until the agent stops.
func (a *Agent) watchPods(node string) {
	sel := fields.OneTermEqualSelector("spec.nodeName", node).String()
	pods := a.client.CoreV1().Pods(metav1.NamespaceAll)
	for a.ctx.Err() == nil {
		list, err := pods.List(a.ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			a.pause()
			continue
		}
		for i := range list.Items {
			a.sync(&list.Items[i])
		}
		w, err := pods.Watch(a.ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
		if err != nil {
			a.pause()
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			if p, ok := ev.Object.(*corev1.Pod); ok {
				if ev.Type == watch.Deleted {
					a.forget(p.UID)
				} else {
					a.sync(p)
				}
			}
		}
		w.Stop()
	}
}

func (a *Agent) pause() {
	t := time.NewTimer(200 * time.Millisecond)
	defer t.Stop()
	select {
	case <-a.ctx.Done():
	case <-t.C:
	}
}

// sync acts on the latest version of a pod bound to one of the nodes.
func (a *Agent) sync(p *corev1.Pod) {
	a.mu.Lock()
	r := a.pods[p.UID]
	if r == nil {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			a.mu.Unlock()
			if p.DeletionTimestamp != nil {
				a.wg.Go(func() { a.remove(p) })
			}
			return
		}
		r = newPodRun(a, p)
		a.pods[p.UID] = r
		a.mu.Unlock()
		a.wg.Go(r.run)
	} else {
		a.mu.Unlock()
	}
	if p.DeletionTimestamp != nil {
		r.terminate(p.DeletionGracePeriodSeconds)
		r.mu.Lock()
		done := r.finished
		r.mu.Unlock()
		if done { // it ended before it was deleted
			a.wg.Go(func() { a.remove(p) })
		}
	}
}

// forget drops a deleted pod.
func (a *Agent) forget(uid types.UID) {
	a.mu.Lock()
	r := a.pods[uid]
	delete(a.pods, uid)
	a.mu.Unlock()
	if r != nil {
		r.kill()
		_ = os.RemoveAll(r.dir)
	}
}

// remove deletes a terminal pod marked for deletion for good, as the
// kubelet does once its containers are stopped.
func (a *Agent) remove(p *corev1.Pod) {
	uid := p.UID
	err := a.client.CoreV1().Pods(p.Namespace).Delete(a.ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && a.ctx.Err() == nil {
		a.log.Warn("nodeagent: deleting a stopped pod failed", "pod", p.Namespace+"/"+p.Name, "error", err)
	}
}

// selfSigned returns a certificate for the log endpoints. The API server
// does not verify kubelets' certificates unless given a CA
// (--kubelet-certificate-authority), which the test cluster is not.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cairn-nodeagent"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// logPath returns where container c of the pod with uid logs.
func (a *Agent) logPath(uid types.UID, c string) string {
	return filepath.Join(a.opts.Dir, string(uid), c+".log")
}
