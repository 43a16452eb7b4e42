package k8scluster_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/clustertest"
	"example.com/cairn/cluster/driver"
	"example.com/cairn/cluster/k8scluster"
)

// testImage names the image of the tests' jobs. The test cluster's node
// agent runs containers' commands on this machine and uses no image.
const testImage = "cairn.test/host-filesystem:none"

// Helper modes of the test binary (see TestMain).
const (
	hogEnv    = "CAIRN_K8S_TEST_HOG"    // allocate memory until killed
	submitEnv = "CAIRN_K8S_TEST_SUBMIT" // submit a job, print its ID, block
)

func TestMain(m *testing.M) {
	switch {
	case os.Getenv(hogEnv) != "":
		hog()
	case os.Getenv(submitEnv) != "":
		os.Exit(submitAndBlock())
	case len(os.Args) > 1 && os.Args[1] == workerArg:
		os.Exit(testWorker(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// hog touches 1 GiB of memory, a page at a time, then sleeps.
func hog() {
	var chunks [][]byte
	for range 64 {
		b := make([]byte, 16<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		chunks = append(chunks, b)
	}
	fmt.Println("allocated", len(chunks)*16, "MiB")
	time.Sleep(10 * time.Minute)
}

// kubeconfig returns the test cluster's kubeconfig, or skips the test.
func kubeconfig(t testing.TB) string {
	t.Helper()
	kc := os.Getenv("CAIRN_TEST_K8S_KUBECONFIG")
	if kc == "" {
		t.Skip("CAIRN_TEST_K8S_KUBECONFIG is not set: start the test control plane with `bash scripts/services.d/kubernetes.sh up` (or scripts/services.sh up) and source $CAIRN_SERVICES_ENV (default /tmp/cairn-services.env)")
	}
	return kc
}

func clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// namespace creates a namespace of its own for the test, with the
// ServiceAccount pods need (no serviceaccount controller runs), and deletes
// its Jobs at the end.
func namespace(t testing.TB, kc kubernetes.Interface) string {
	t.Helper()
	ns := "cairn-test-" + strings.ToLower(rand.Text()[:10])
	ctx := context.Background()
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		bg := metav1.DeletePropagationBackground
		_ = kc.BatchV1().Jobs(ns).DeleteCollection(ctx, metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{})
	})
	return ns
}

func newScheduler(t testing.TB, kc kubernetes.Interface, ns string) *k8scluster.Scheduler {
	t.Helper()
	s, err := k8scluster.New(kc, &k8scluster.Options{Namespace: ns, Image: testImage})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newClient(t testing.TB, kc kubernetes.Interface, ns string) *cluster.Client {
	return cluster.NewClient(newScheduler(t, kc, ns), &cluster.Options{Name: "k8s", PollMax: 100 * time.Millisecond})
}

func TestConformance(t *testing.T) {
	kc := clientset(t)
	ns := namespace(t, kc)
	clustertest.Run(t, clustertest.Harness{
		New:    func(t *testing.T) *cluster.Client { return newClient(t, kc, ns) },
		Driver: func(t *testing.T) driver.Scheduler { return newScheduler(t, kc, ns) },
		// Kubernetes records no Job's creator: the namespace is the
		// boundary (see the package doc). Another user's job is a job in
		// another namespace, named and tagged as ours.
		ForeignJob: func(t *testing.T, ctx context.Context, name, tag string) {
			other := namespace(t, kc)
			foreign := newScheduler(t, kc, other)
			defer foreign.Close()
			spec := driver.JobSpec{Name: name, Tag: tag, Command: []string{"/bin/sh", "-c", "sleep 600"}, LogDir: t.TempDir(),
				Attempt: 1, Replicas: 1, Resources: driver.Resources{CPUs: 1}}
			if _, err := foreign.Submit(ctx, &spec); err != nil {
				t.Fatal(err)
			}
		},
		UnsatisfiableCPUs:  1000,
		AdoptAcrossClients: true,
		Replicas:           true,
		TimeLimit:          time.Second, // activeDeadlineSeconds: whole seconds
		TimeLimitRounding:  time.Second,
		Packs:              true,
		Timeout:            3 * time.Minute,
	})
}

func submit(t *testing.T, ctx context.Context, c *cluster.Client, spec cluster.JobSpec) *cluster.Job {
	t.Helper()
	if spec.LogDir == "" {
		spec.LogDir = t.TempDir()
	}
	j, err := c.Submit(ctx, spec)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	return j
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runningPod returns the running pod of the Job with the given ID.
func runningPod(t *testing.T, ctx context.Context, kc kubernetes.Interface, ns, id string) *corev1.Pod {
	t.Helper()
	_, uid, _ := strings.Cut(id, "/")
	var pod *corev1.Pod
	waitFor(t, ctx, "a running pod of "+id, func() bool {
		pods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/controller-uid=" + uid})
		if err != nil {
			t.Fatal(err)
		}
		for i := range pods.Items {
			if p := &pods.Items[i]; p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				pod = p
				return true
			}
		}
		return false
	})
	return pod
}

// evict evicts pod through the Eviction API, as a node drain does.
func evict(t *testing.T, ctx context.Context, kc kubernetes.Interface, pod *corev1.Pod) {
	t.Helper()
	err := kc.PolicyV1().Evictions(pod.Namespace).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}})
	if err != nil {
		t.Fatalf("evicting %s: %v", pod.Name, err)
	}
}

// An evicted pod (condition DisruptionTarget) does not count against the
// failure budget: Kubernetes replaces it in place, cairn counts it as a
// preemption with a new attempt and log, and the job goes on. A job out of
// preemption budget fails as preempted.
func TestEvictionRetriedAgainstPreemptionBudget(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	c := newClient(t, kc, ns)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	marker := filepath.Join(t.TempDir(), "go-on")
	j := submit(t, ctx, c, cluster.JobSpec{
		Name:                 "evicted",
		Command:              []string{"/bin/sh", "-c", `echo "attempt $CAIRN_ATTEMPT"; while [ ! -e "$1" ]; do sleep 0.05; done; echo done`, "sh", marker},
		MaxRetriesPreemption: 2,
	})
	evict(t, ctx, kc, runningPod(t, ctx, kc, ns, j.ID()))
	waitFor(t, ctx, "the second attempt", func() bool {
		a := j.Attempts()
		if len(a) < 2 {
			return false
		}
		data, _ := os.ReadFile(a[1].LogPath)
		return string(data) == "attempt 2\n"
	})
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := j.Wait(ctx); err != nil || st != cluster.Succeeded {
		t.Fatalf("Wait = %v, %v; want the restarted job to succeed", st, err)
	}
	a := j.Attempts()
	if len(a) != 2 || a[0].ID != a[1].ID {
		t.Fatalf("attempts %+v; want two attempts of the same Job", a)
	}
	if got := readFile(t, a[0].LogPath); got != "attempt 1\n" {
		t.Errorf("attempt 1 log %q", got)
	}
	if got := readFile(t, a[1].LogPath); got != "attempt 2\ndone\n" {
		t.Errorf("attempt 2 log %q", got)
	}

	// No preemption budget: the first eviction fails the job.
	j = submit(t, ctx, c, cluster.JobSpec{Name: "evicted-no-budget", Command: []string{"/bin/sh", "-c", "sleep 600"}, MaxRetriesPreemption: -1, MaxRetriesFailure: 5})
	evict(t, ctx, kc, runningPod(t, ctx, kc, ns, j.ID()))
	_, err := j.Wait(ctx)
	if je, ok := errors.AsType[*cluster.JobError](err); !ok || je.Cause != "preempted" {
		t.Fatalf("Wait = %v; want a failure with cause preempted", err)
	}
}

// A failure of the program is retried within MaxRetriesFailure only, each
// retry a new Job; Kubernetes never retries a pod itself.
func TestCodeFailureNotRetriedBeyondBudget(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	c := newClient(t, kc, ns)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	j := submit(t, ctx, c, cluster.JobSpec{Name: "code-failure", Command: []string{"/bin/sh", "-c", `echo "attempt $CAIRN_ATTEMPT"; exit 3`}, MaxRetriesFailure: 1})
	_, err := j.Wait(ctx)
	je, ok := errors.AsType[*cluster.JobError](err)
	if !ok || je.ExitCode != 3 || je.Cause != "exit" || je.Attempts != 2 {
		t.Fatalf("Wait = %v; want exit code 3 after 2 attempts", err)
	}
	a := j.Attempts()
	if a[0].ID == a[1].ID {
		t.Errorf("the retry reused the Job %s", a[0].ID)
	}
	for i, at := range a {
		if got, want := readFile(t, at.LogPath), fmt.Sprintf("attempt %d\n", i+1); got != want {
			t.Errorf("attempt %d log %q, want %q", i+1, got, want)
		}
		name, _, _ := strings.Cut(at.ID, "/")
		pods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + name})
		if err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 1 {
			t.Errorf("Job %s has %d pods, want 1 (no retry by Kubernetes)", name, len(pods.Items))
		}
	}
}

// A container exceeding its memory limit is OOMKilled, and the job fails
// with cause "out of memory".
func TestOOMKilled(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	c := newClient(t, kc, ns)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	j := submit(t, ctx, c, cluster.JobSpec{
		Name: "oom", Command: []string{self}, Resources: cluster.Resources{Memory: 128 * cluster.MiB},
		Environment: cluster.Environment{Vars: map[string]string{hogEnv: "1"}},
	})
	_, err = j.Wait(ctx)
	je, ok := errors.AsType[*cluster.JobError](err)
	if !ok || je.Cause != "out of memory" || je.ExitCode != 137 {
		t.Fatalf("Wait = %v; want a failure with cause out of memory, exit code 137", err)
	}
}

// A request no node can hold fails at once with the scheduler's reason; one
// that only has to wait for resources stays pending, with that reason.
func TestUnschedulable(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	c := newClient(t, kc, ns)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	j := submit(t, ctx, c, cluster.JobSpec{Name: "too-many-gpus", Command: []string{"/bin/true"}, Resources: cluster.Resources{Device: cluster.GPU("", 64)}})
	_, err := j.Wait(ctx)
	if !errors.Is(err, cluster.ErrUnsatisfiable) || !strings.Contains(err.Error(), "Insufficient nvidia.com/gpu") {
		t.Fatalf("Wait = %v; want ErrUnsatisfiable with the scheduler's reason (Insufficient nvidia.com/gpu)", err)
	}
	j = submit(t, ctx, c, cluster.JobSpec{Name: "no-such-gpu-type", Command: []string{"/bin/true"}, Resources: cluster.Resources{Device: cluster.GPU("H100", 1)}})
	if _, err := j.Wait(ctx); !errors.Is(err, cluster.ErrUnsatisfiable) || !strings.Contains(err.Error(), "node affinity/selector") {
		t.Fatalf("Wait = %v; want ErrUnsatisfiable saying no node matches the GPU type's selector", err)
	}

	// The nodes have 4 GPUs each: a third job of 4 GPUs waits.
	d := newScheduler(t, kc, ns)
	defer d.Close()
	var ids []string
	for i := range 3 {
		spec := driver.JobSpec{Name: fmt.Sprint("gpus-", i), Command: []string{"/bin/sh", "-c", "sleep 600"}, LogDir: t.TempDir(),
			Attempt: 1, Replicas: 1, Resources: driver.Resources{CPUs: 1, GPUs: 4}}
		id, err := d.Submit(ctx, &spec)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		defer d.Cancel(context.WithoutCancel(ctx), id)
	}
	var sts []driver.Status
	waitFor(t, ctx, "a job pending for GPUs, the others running", func() bool {
		sts, err = d.Status(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		running, pending := 0, 0
		for _, st := range sts {
			switch {
			case st.State == driver.Running:
				running++
			case st.State == driver.Pending && strings.Contains(st.Reason, "Insufficient nvidia.com/gpu"):
				pending++
			}
		}
		// Other tests may hold GPUs too.
		return pending >= 1 && running+pending == 3
	})
}

// A job adopted after the process that submitted it was killed (SIGKILL)
// is the same Job, and its log goes on where the dead submitter left it.
func TestAdoptAfterSubmitterKilled(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "go-on")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), submitEnv+"=1", "CAIRN_K8S_TEST_NS="+ns, "CAIRN_K8S_TEST_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the submitter printed no job ID: %v", err)
	}
	id := strings.TrimSpace(line)
	// The submitter has copied the first line of the job's log.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	c := newClient(t, kc, ns)
	defer c.Close()
	j, err := c.Adopt(ctx, adoptSpec(dir, marker))
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if j.ID() != id || !j.Adopted() {
		t.Fatalf("adopted %s (adopted %v), want %s", j.ID(), j.Adopted(), id)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := j.Wait(ctx); err != nil || st != cluster.Succeeded {
		t.Fatalf("Wait = %v, %v", st, err)
	}
	if got, want := readFile(t, filepath.Join(dir, "logs", "attempt-1.log")), "one\ntwo\n"; got != want {
		t.Errorf("log %q, want %q (nothing lost or repeated)", got, want)
	}
}

func adoptSpec(dir, marker string) cluster.JobSpec {
	return cluster.JobSpec{
		Name:    "adopt-after-kill",
		Command: []string{"/bin/sh", "-c", `echo one; while [ ! -e "$1" ]; do sleep 0.05; done; echo two`, "sh", marker},
		LogDir:  filepath.Join(dir, "logs"),
		Tag:     "secret-tag",
	}
}

// submitAndBlock is the submitter of TestAdoptAfterSubmitterKilled: it
// submits the job, waits until its log has the first line, prints the
// job's ID and blocks until killed.
func submitAndBlock() int {
	kc, err := clientcmd.BuildConfigFromFlags("", os.Getenv("CAIRN_TEST_K8S_KUBECONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cs, err := kubernetes.NewForConfig(kc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := k8scluster.New(cs, &k8scluster.Options{Namespace: os.Getenv("CAIRN_K8S_TEST_NS"), Image: testImage})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c := cluster.NewClient(s, nil)
	dir := os.Getenv("CAIRN_K8S_TEST_DIR")
	spec := adoptSpec(dir, filepath.Join(dir, "go-on"))
	ctx := context.Background()
	j, err := c.Submit(ctx, spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		if data, _ := os.ReadFile(filepath.Join(spec.LogDir, "attempt-1.log")); string(data) == "one\n" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println(j.ID())
	select {}
}

// Every Job is what the package doc promises, for a gang too: Indexed,
// completions = parallelism = replicas, no retry by Kubernetes but for
// disruptions, requests equal to limits, deadline, TTL, labels.
func TestJobManifest(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	d := newScheduler(t, kc, ns)
	defer d.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	spec := driver.JobSpec{Name: "manifest_step.v1-0123abcd", Tag: "tag-1", Command: []string{"/bin/sh", "-c", "exit 0"}, LogDir: t.TempDir(),
		Attempt: 3, Replicas: 4, Setup: [][]string{{"/bin/echo", "setup"}},
		Resources: driver.Resources{CPUs: 2, Memory: 256 << 20, Disk: 1 << 30, GPUs: 1, TimeLimit: 90 * time.Second}}
	id, err := d.Submit(ctx, &spec)
	if err != nil {
		t.Fatal(err)
	}
	name, _, _ := strings.Cut(id, "/")
	j, err := kc.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	js := j.Spec
	if !strings.HasSuffix(name, "-a3") || len(name) > 52 || *js.CompletionMode != batchv1.IndexedCompletion || *js.Completions != 4 || *js.Parallelism != 4 ||
		*js.BackoffLimitPerIndex != 0 || *js.MaxFailedIndexes != 0 || *js.PodReplacementPolicy != batchv1.Failed ||
		*js.ActiveDeadlineSeconds != 90 || *js.TTLSecondsAfterFinished != 3600 || js.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("Job spec %+v", js)
	}
	rules := js.PodFailurePolicy.Rules
	if len(rules) != 2 || rules[0].Action != batchv1.PodFailurePolicyActionIgnore || rules[0].OnPodConditions[0].Type != corev1.DisruptionTarget ||
		rules[1].Action != batchv1.PodFailurePolicyActionFailJob || !slices.Equal(rules[1].OnExitCodes.Values, []int32{126, 127}) {
		t.Errorf("pod failure policy %+v", rules)
	}
	ctr := js.Template.Spec.Containers[0]
	want := map[corev1.ResourceName]string{"cpu": "2", "memory": "256Mi", "ephemeral-storage": "1Gi", "nvidia.com/gpu": "1"}
	for k, v := range want {
		if q := ctr.Resources.Requests[k]; q.String() != v {
			t.Errorf("request %s = %s, want %s", k, q.String(), v)
		}
		if q := ctr.Resources.Limits[k]; q.String() != v {
			t.Errorf("limit %s = %s, want %s", k, q.String(), v)
		}
	}
	if len(js.Template.Spec.InitContainers) != 1 || j.Annotations["cairn.dev/name"] != spec.Name || j.Annotations["cairn.dev/tag"] != "tag-1" ||
		j.Labels["app.kubernetes.io/managed-by"] != "cairn" {
		t.Errorf("init containers %d, annotations %v, labels %v", len(js.Template.Spec.InitContainers), j.Annotations, j.Labels)
	}
	// Submitting the same attempt again adopts the running Job.
	if id2, err := d.Submit(ctx, &spec); err != nil || id2 != id {
		t.Errorf("second Submit = %q, %v; want the same Job %q", id2, err, id)
	}
	_ = d.Cancel(ctx, id)
}
