package k8scluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"example.com/cairn/cluster/driver"
	"example.com/cairn/cluster/k8scluster"
)

// packSpec returns the spec of element i of a test pack.
func packSpec(t *testing.T, i int, script string, args ...string) *driver.JobSpec {
	return &driver.JobSpec{
		Name:      "pack-" + string(rune('a'+i)),
		Tag:       "tag-" + string(rune('a'+i)),
		Command:   append([]string{"/bin/sh", "-c", script, "sh"}, args...),
		Env:       map[string]string{"ELEMENT": string(rune('a' + i))},
		LogDir:    t.TempDir(),
		Attempt:   1,
		Replicas:  1,
		Resources: driver.Resources{CPUs: 1},
	}
}

// waitElement polls s until element id is finished.
func waitElement(t *testing.T, ctx context.Context, s *k8scluster.Scheduler, id string) driver.Status {
	t.Helper()
	var st driver.Status
	waitFor(t, ctx, "element "+id+" to finish", func() bool {
		sts, err := s.Status(ctx, []string{id})
		if err != nil {
			t.Fatalf("Status(%s): %v", id, err)
		}
		st = sts[0]
		return st.State == driver.Succeeded || st.State == driver.Failed || st.State == driver.Stopped
	})
	return st
}

// elementPods returns the pods of completion index ix of the Job of
// element id.
func elementPods(t *testing.T, ctx context.Context, kc kubernetes.Interface, ns, id, ix string) []corev1.Pod {
	t.Helper()
	parts := strings.Split(id, "/")
	pods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
		LabelSelector: "batch.kubernetes.io/controller-uid=" + parts[1] + ",batch.kubernetes.io/job-completion-index=" + ix,
	})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// A pack is one Indexed Job whose elements are their own jobs: one whose
// program fails fails alone, with its own exit code and log, and its
// pack-mates, including those that run after it failed, succeed. Setup
// runs for each element in the element's own environment, and its output
// goes to that element's log.
func TestPackOneElementFails(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	s := newScheduler(t, kc, ns)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	gate := filepath.Join(t.TempDir(), "gate")
	specs := []*driver.JobSpec{
		packSpec(t, 0, `echo "element $ELEMENT attempt $CAIRN_ATTEMPT replica $CAIRN_REPLICA of $CAIRN_REPLICAS"`),
		packSpec(t, 1, `echo "element $ELEMENT fails"; exit 9`),
		// Runs on after its pack-mate failed.
		packSpec(t, 2, `while [ ! -e "$1" ]; do sleep 0.05; done; echo "element $ELEMENT"`, gate),
	}
	for _, sp := range specs {
		sp.Setup = [][]string{{"/bin/sh", "-c", `echo "setup of $ELEMENT"`}}
	}
	ids, err := s.SubmitPack(ctx, specs)
	if err != nil {
		t.Fatalf("SubmitPack: %v", err)
	}
	job := func(id string) string { return id[:strings.LastIndexByte(id, '/')] }
	for i, id := range ids {
		if want := job(ids[0]) + "/" + string(rune('0'+i)); id != want {
			t.Fatalf("element %d has ID %s, want %s: one Job, one index per element", i, id, want)
		}
	}
	if st := waitElement(t, ctx, s, ids[1]); st.State != driver.Failed || st.ExitCode != 9 || st.Cause != driver.CauseExit {
		t.Errorf("failing element: %+v, want failed with exit code 9", st)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		if st := waitElement(t, ctx, s, ids[i]); st.State != driver.Succeeded || st.Restarts != 0 {
			t.Errorf("element %d: %+v, want succeeded: its pack-mate's failure is not its own", i, st)
		}
	}
	wants := []string{
		"setup of a\nelement a attempt 1 replica 0 of 1\n",
		"setup of b\nelement b fails\n",
		"setup of c\nelement c\n",
	}
	for i, want := range wants {
		if got := readFile(t, filepath.Join(specs[i].LogDir, driver.LogName(1))); got != want {
			t.Errorf("element %d log = %q, want %q", i, got, want)
		}
	}
}

// Cancelling one element stops its pod only: Kubernetes never runs its
// index again, and its pack-mates run on and succeed.
func TestPackCancelOneElement(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	s := newScheduler(t, kc, ns)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	gate := filepath.Join(t.TempDir(), "gate")
	const script = `echo "element $ELEMENT started"; while [ ! -e "$1" ]; do sleep 0.05; done; echo "element $ELEMENT done"`
	specs := []*driver.JobSpec{packSpec(t, 0, script, gate), packSpec(t, 1, script, gate), packSpec(t, 2, script, gate)}
	ids, err := s.SubmitPack(ctx, specs)
	if err != nil {
		t.Fatalf("SubmitPack: %v", err)
	}
	defer func() {
		for _, id := range ids {
			s.Cancel(context.WithoutCancel(ctx), id)
		}
	}()
	for i, id := range ids {
		waitFor(t, ctx, "element "+id+" running", func() bool {
			sts, err := s.Status(ctx, []string{id})
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(specs[i].LogDir, driver.LogName(1)))
			return sts[0].State == driver.Running && len(data) > 0
		})
	}
	found, err := s.Find(ctx, specs[1].Name)
	if err != nil || len(found) != 1 || found[0].ID != ids[1] || found[0].Tag != specs[1].Tag {
		t.Fatalf("Find(%s) = %+v, %v; want element %s", specs[1].Name, found, err, ids[1])
	}
	if err := s.Cancel(ctx, ids[1]); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if st := waitElement(t, ctx, s, ids[1]); st.State != driver.Stopped || st.Cause != driver.CauseCancelled {
		t.Fatalf("cancelled element: %+v, want stopped", st)
	}
	// Its pod is stopped; its pack-mates' are not.
	for _, p := range elementPods(t, ctx, kc, ns, ids[1], "1") {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			t.Errorf("pod %s of the cancelled element still runs", p.Name)
		}
	}
	for _, ix := range []string{"0", "2"} {
		running := 0
		for _, p := range elementPods(t, ctx, kc, ns, ids[0], ix) {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running++
			}
		}
		if running != 1 {
			t.Errorf("index %s has %d running pods, want 1: cancelling a pack-mate stopped it", ix, running)
		}
	}
	if found, err := s.Find(ctx, specs[1].Name); err != nil || len(found) != 0 {
		t.Errorf("Find(%s) after Cancel = %+v, %v; want nothing", specs[1].Name, found, err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2} {
		if st := waitElement(t, ctx, s, ids[i]); st.State != driver.Succeeded {
			t.Errorf("element %d: %+v, want succeeded", i, st)
		}
		want := "element " + string(rune('a'+i)) + " started\nelement " + string(rune('a'+i)) + " done\n"
		if got := readFile(t, filepath.Join(specs[i].LogDir, driver.LogName(1))); got != want {
			t.Errorf("element %d log = %q, want %q", i, got, want)
		}
	}
	// The cancelled index never ran again: it has the one pod it had,
	// stopped, and its log ends where it was stopped.
	if pods := elementPods(t, ctx, kc, ns, ids[1], "1"); len(pods) > 1 {
		t.Errorf("the cancelled index has %d pods, want at most 1", len(pods))
	}
	if got := readFile(t, filepath.Join(specs[1].LogDir, driver.LogName(1))); got != "element b started\n" {
		t.Errorf("cancelled element log = %q", got)
	}
	if st := waitElement(t, ctx, s, ids[1]); st.State != driver.Stopped {
		t.Errorf("cancelled element after its pack finished: %+v, want stopped", st)
	}
}

// An evicted element is restarted in place, alone: its own restart count
// and attempt-2 log; its pack-mate is untouched.
func TestPackElementEvicted(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	s := newScheduler(t, kc, ns)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	gate := filepath.Join(t.TempDir(), "gate")
	const script = `echo "element $ELEMENT attempt $CAIRN_ATTEMPT"; while [ ! -e "$1" ]; do sleep 0.05; done`
	specs := []*driver.JobSpec{packSpec(t, 0, script, gate), packSpec(t, 1, script, gate)}
	ids, err := s.SubmitPack(ctx, specs)
	if err != nil {
		t.Fatalf("SubmitPack: %v", err)
	}
	var pod *corev1.Pod
	// Evicted once its first attempt has logged (a pod evicted before its
	// command ran would leave no first log to check).
	waitFor(t, ctx, "a running pod of index 1 whose first line is in the log", func() bool {
		if _, err := s.Status(ctx, ids); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(filepath.Join(specs[1].LogDir, driver.LogName(1))); string(data) != "element b attempt 1\n" {
			return false
		}
		for _, p := range elementPods(t, ctx, kc, ns, ids[1], "1") {
			if p.Status.Phase == corev1.PodRunning {
				pod = &p
				return true
			}
		}
		return false
	})
	evict(t, ctx, kc, pod)
	waitFor(t, ctx, "element 1's second attempt", func() bool {
		sts, err := s.Status(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(specs[1].LogDir, driver.LogName(2)))
		return sts[1].Restarts == 1 && string(data) == "element b attempt 2\n"
	})
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		st := waitElement(t, ctx, s, id)
		if st.State != driver.Succeeded || st.Restarts != i {
			t.Errorf("element %d: %+v, want succeeded after %d restarts", i, st, i)
		}
	}
	if got := readFile(t, filepath.Join(specs[0].LogDir, driver.LogName(1))); got != "element a attempt 1\n" {
		t.Errorf("element 0 log = %q", got)
	}
	if got := readFile(t, filepath.Join(specs[1].LogDir, driver.LogName(1))); got != "element b attempt 1\n" {
		t.Errorf("element 1, attempt 1 log = %q", got)
	}
}

// Jobs with a time limit are not packed into one Job (its deadline would
// count from the start of the whole pack, not of each element): SubmitPack
// submits each as a Job of its own, with its own deadline.
func TestPackWithTimeLimitIsOneJobEach(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	s := newScheduler(t, kc, ns)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	specs := []*driver.JobSpec{packSpec(t, 0, `echo "element $ELEMENT"`), packSpec(t, 1, `echo "element $ELEMENT"`)}
	for _, sp := range specs {
		sp.Resources.TimeLimit = time.Minute
	}
	ids, err := s.SubmitPack(ctx, specs)
	if err != nil {
		t.Fatalf("SubmitPack: %v", err)
	}
	for i, id := range ids {
		if strings.Count(id, "/") != 1 {
			t.Errorf("element %d has ID %s, want a Job of its own (JOBNAME/UID)", i, id)
		}
		if st := waitElement(t, ctx, s, id); st.State != driver.Succeeded {
			t.Errorf("element %d: %+v", i, st)
		}
		want := "element " + string(rune('a'+i)) + "\n"
		if got := readFile(t, filepath.Join(specs[i].LogDir, driver.LogName(1))); got != want {
			t.Errorf("element %d log = %q, want %q", i, got, want)
		}
	}
	jobs, err := kc.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs.Items {
		if j.Spec.ActiveDeadlineSeconds == nil || *j.Spec.ActiveDeadlineSeconds != 60 || *j.Spec.Completions != 1 {
			t.Errorf("Job %s: deadline %v, completions %d; want 60 s, 1", j.Name, j.Spec.ActiveDeadlineSeconds, *j.Spec.Completions)
		}
	}
}

// An element whose log directory is a symbolic link fails alone, before
// anything runs, writing nothing through the link; its pack-mates run.
func TestPackSymlinkedLogFailsOneElement(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	s := newScheduler(t, kc, ns)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	specs := []*driver.JobSpec{packSpec(t, 0, `echo "element $ELEMENT"`), packSpec(t, 1, `echo "element $ELEMENT"`), packSpec(t, 2, `echo "element $ELEMENT"`)}
	target := t.TempDir()
	link := filepath.Join(t.TempDir(), "logs")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	specs[1].LogDir = link
	ids, err := s.SubmitPack(ctx, specs)
	if err != nil {
		t.Fatalf("SubmitPack: %v", err)
	}
	if st := waitElement(t, ctx, s, ids[1]); st.State != driver.Failed || !strings.Contains(st.Reason, "symbolic link") {
		t.Errorf("element with a symbolic-link log: %+v, want failed", st)
	}
	for _, i := range []int{0, 2} {
		if st := waitElement(t, ctx, s, ids[i]); st.State != driver.Succeeded {
			t.Errorf("element %d: %+v, want succeeded", i, st)
		}
		want := "element " + string(rune('a'+i)) + "\n"
		if got := readFile(t, filepath.Join(specs[i].LogDir, driver.LogName(1))); got != want {
			t.Errorf("element %d log = %q, want %q", i, got, want)
		}
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("wrote %d files through the symbolic link", len(entries))
	}
}

// Cancelling every element of a pack cancels its Job as a whole
// (suspended), so that a pack still waiting in a queue never starts.
func TestPackCancelAllElements(t *testing.T) {
	kc := clientset(t)
	t.Parallel()
	ns := namespace(t, kc)
	s := newScheduler(t, kc, ns)
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	specs := []*driver.JobSpec{packSpec(t, 0, `sleep 600`), packSpec(t, 1, `sleep 600`)}
	ids, err := s.SubmitPack(ctx, specs)
	if err != nil {
		t.Fatalf("SubmitPack: %v", err)
	}
	name := ids[0][:strings.IndexByte(ids[0], '/')]
	if err := s.Cancel(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	j, err := kc.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if j.Spec.Suspend != nil && *j.Spec.Suspend {
		t.Fatal("cancelling one element of two suspended the pack")
	}
	if err := s.Cancel(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	if j, err = kc.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if j.Spec.Suspend == nil || !*j.Spec.Suspend {
		t.Error("cancelling every element did not suspend the pack")
	}
	for i, id := range ids {
		if st := waitElement(t, ctx, s, id); st.State != driver.Stopped {
			t.Errorf("element %d: %+v, want stopped", i, st)
		}
	}
}
