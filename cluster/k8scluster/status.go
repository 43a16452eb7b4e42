package k8scluster

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"example.com/cairn/cluster/driver"
)

// Status implements driver.Scheduler. It reads the cache (see cache), so
// polling costs no request once a Job has been seen.
func (s *Scheduler) Status(ctx context.Context, ids []string) ([]driver.Status, error) {
	sts := make([]driver.Status, len(ids))
	for i, id := range ids {
		st, err := s.status(ctx, id)
		if err != nil {
			return nil, err
		}
		sts[i] = st
	}
	return sts, nil
}

func (s *Scheduler) status(ctx context.Context, id string) (driver.Status, error) {
	s.mu.Lock()
	if st, ok := s.refused[id]; ok {
		s.mu.Unlock()
		return st, nil
	}
	w := s.watched[id]
	s.mu.Unlock()
	if name, uid, index, ok := parseElementID(id); ok {
		return s.elementStatus(ctx, id, name, uid, index)
	}
	gone := driver.Status{State: driver.Gone, ExitCode: -1}
	name, uid, err := parseID(id)
	if err != nil {
		return gone, nil
	}
	j, err := s.cache.job(ctx, name, uid)
	if apierrors.IsNotFound(err) || err == nil && j == nil {
		return gone, nil
	}
	if err != nil {
		return driver.Status{}, apiError("get job "+name, err)
	}
	pods, err := s.cache.podsOf(ctx, uid)
	if err != nil {
		return driver.Status{}, apiError("list pods of job "+name, err)
	}
	slices.SortFunc(pods, func(a, b *corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	st := s.jobStatus(ctx, j, pods)
	st.Restarts = restartsOf(pods)
	// A cancelled Job stays, suspended and without pods, for every client
	// watching it to see it stopped (a deleted one would look lost); the
	// next submission of the same attempt replaces it.
	return s.withLog(ctx, id, w, pods, st), nil
}

// withLog completes st, the status of job (or pack element) id whose pods
// are pods, with the streaming of its log into w, if this process streams
// it (w not nil): a log that cannot be written fails the attempt (its
// path is a symbolic link) and cancels it; a finished attempt whose
// output is not all in the log yet is still running; the stream of a
// finished one is closed.
func (s *Scheduler) withLog(ctx context.Context, id string, w *watch, pods []*corev1.Pod, st driver.Status) driver.Status {
	if w == nil {
		return st
	}
	if err := w.failure(); err != nil {
		_ = s.Cancel(context.WithoutCancel(ctx), id)
		return driver.Status{State: driver.Failed, Cause: driver.CauseOther, ExitCode: -1, Reason: err.Error(), Restarts: st.Restarts}
	}
	complete := s.stream(w, pods)
	finished := st.State != driver.Pending && st.State != driver.Running
	if !complete && finished {
		return driver.Status{State: driver.Running, ExitCode: -1, Reason: "finished; copying its log", Restarts: st.Restarts}
	}
	if finished {
		s.mu.Lock()
		delete(s.watched, id)
		s.mu.Unlock()
		w.close()
	}
	return st
}

// restartsOf counts the in-place restarts of a Job: the pods the job
// controller replaced because they were disrupted (their failures ignored
// by the pod failure policy), per index, as the replacements' annotation
// records, plus disrupted pods not replaced yet.
func restartsOf(pods []*corev1.Pod) int {
	perIndex := map[string]int{}
	for _, p := range pods {
		n, _ := strconv.Atoi(p.Annotations[annotationIgnoredFailure])
		if p.Status.Phase == corev1.PodFailed && disrupted(p) {
			n++ // its replacement will carry n+1
		}
		ix := p.Annotations[annotationIndex]
		perIndex[ix] = max(perIndex[ix], n)
	}
	total := 0
	for _, n := range perIndex {
		total += n
	}
	return total
}

// disrupted reports whether p was preempted, evicted or drained.
func disrupted(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// jobStatus maps a Job and its pods to a status.
func (s *Scheduler) jobStatus(ctx context.Context, j *batchv1.Job, pods []*corev1.Pod) driver.Status {
	st := driver.Status{ExitCode: -1}
	var active []*corev1.Pod
	for _, p := range pods {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			active = append(active, p)
		}
	}
	if j.Annotations[annotationCancelled] != "" {
		st.Cause, st.Reason = driver.CauseCancelled, "cancelled"
		if len(active) > 0 || j.Status.Active > 0 {
			st.State = driver.Running
			return st
		}
		st.State = driver.Stopped
		return st
	}
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			st.State, st.ExitCode, st.Reason = driver.Succeeded, 0, "Complete"
			return st
		case batchv1.JobFailed:
			return failure(c, pods)
		}
	}
	return s.unfinishedStatus(ctx, j, active, st)
}

// unfinishedStatus completes st for a Job (or an index of a pack) that
// has not finished, from its unfinished pods active: running if one of
// them runs; else pending, with why (suspended, waiting for Kueue, the
// scheduler's reason), or failed as unsatisfiable if no node could ever
// hold the pod.
func (s *Scheduler) unfinishedStatus(ctx context.Context, j *batchv1.Job, active []*corev1.Pod, st driver.Status) driver.Status {
	for _, p := range active {
		if p.Status.Phase == corev1.PodRunning {
			st.State, st.Reason = driver.Running, "Running"
			return st
		}
	}
	st.State, st.Reason = driver.Pending, "Pending"
	if j.Spec.Suspend != nil && *j.Spec.Suspend {
		st.Reason = "Pending (suspended"
		if q := j.Labels[labelQueue]; q != "" {
			st.Reason += ": waiting for Kueue to admit it from queue " + q
		}
		st.Reason += ")"
		return st
	}
	for _, p := range active {
		if why := pendingReason(p); why != "" {
			st.Reason = "Pending (" + why + ")"
			if unschedulable(p) && !s.fitsSomeNode(ctx, p) {
				st.State, st.Cause = driver.Failed, driver.CauseUnsatisfiable
				st.Reason = "no node can ever run it: " + why
			}
			break
		}
	}
	return st
}

// failure maps a Job's Failed condition.
func failure(c batchv1.JobCondition, pods []*corev1.Pod) driver.Status {
	st := driver.Status{State: driver.Failed, Cause: driver.CauseOther, ExitCode: -1, Reason: c.Reason}
	if c.Message != "" {
		st.Reason += ": " + c.Message
	}
	if c.Reason == batchv1.JobReasonDeadlineExceeded {
		st.Cause = driver.CauseTimeLimit
		return st
	}
	// The first replica (lowest index) that failed on its own says why.
	var failed []*corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodFailed && !disrupted(p) {
			failed = append(failed, p)
		}
	}
	slices.SortStableFunc(failed, func(a, b *corev1.Pod) int {
		x, _ := strconv.Atoi(a.Annotations[annotationIndex])
		y, _ := strconv.Atoi(b.Annotations[annotationIndex])
		return x - y
	})
	for _, p := range failed {
		if t := terminatedWithError(p); t != nil {
			st.ExitCode, st.Signal = int(t.ExitCode), int(t.Signal)
			st.Cause = driver.CauseExit
			if t.Reason == "OOMKilled" {
				st.Cause = driver.CauseOutOfMemory
			}
			return st
		}
	}
	return st
}

// terminatedWithError returns the state of p's first container (init
// containers first) that ended unsuccessfully.
func terminatedWithError(p *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if t := cs.State.Terminated; t != nil && (t.ExitCode != 0 || t.Reason == "OOMKilled") {
			return t
		}
	}
	return nil
}

// pendingReason returns why a pod is not running yet, in the words of the
// scheduler (not placed) or the kubelet (a container waiting), or "".
func pendingReason(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" && w.Reason != "ContainerCreating" {
			return strings.TrimSpace(w.Reason + ": " + w.Message)
		}
	}
	return ""
}

// unschedulable reports whether the scheduler said it cannot place p.
func unschedulable(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// nodeInfo is what decides whether a pod could ever run on a node.
type nodeInfo struct {
	labels      labels.Set
	allocatable corev1.ResourceList
}

// nodesTTL bounds how long the list of nodes is reused.
const nodesTTL = 10 * time.Second

// fitsSomeNode reports whether some node of the cluster has the
// allocatable resources and labels p asks for, ignoring what other pods
// use: if none has, p can never run. When the nodes cannot be listed (the
// user may not), it answers true: the job stays pending with the
// scheduler's reason.
func (s *Scheduler) fitsSomeNode(ctx context.Context, p *corev1.Pod) bool {
	s.mu.Lock()
	nodes, at := s.nodes, s.nodesAt
	s.mu.Unlock()
	if nodes == nil || time.Since(at) > nodesTTL {
		list, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return true
		}
		nodes = make([]nodeInfo, 0, len(list.Items))
		for _, n := range list.Items {
			if n.Spec.Unschedulable {
				continue
			}
			nodes = append(nodes, nodeInfo{labels: n.Labels, allocatable: n.Status.Allocatable})
		}
		s.mu.Lock()
		s.nodes, s.nodesAt = nodes, time.Now()
		s.mu.Unlock()
	}
	want := corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		for k, q := range c.Resources.Requests {
			sum := want[k]
			sum.Add(q)
			want[k] = sum
		}
	}
	for _, c := range p.Spec.InitContainers {
		for k, q := range c.Resources.Requests {
			if cur, ok := want[k]; !ok || q.Cmp(cur) > 0 {
				want[k] = q
			}
		}
	}
	sel := labels.SelectorFromSet(p.Spec.NodeSelector)
	for _, n := range nodes {
		if !sel.Matches(n.labels) || !affinityMatches(p, n.labels) {
			continue
		}
		fits := true
		for k, q := range want {
			have, ok := n.allocatable[k]
			if !ok && q.IsZero() {
				continue
			}
			if !ok || have.Cmp(q) < 0 {
				fits = false
				break
			}
		}
		if fits {
			return true
		}
	}
	return false
}

// affinityMatches checks the required node affinity cairn sets (regions).
func affinityMatches(p *corev1.Pod, l labels.Set) bool {
	a := p.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		ok := true
		for _, e := range term.MatchExpressions {
			if e.Operator == corev1.NodeSelectorOpIn && !slices.Contains(e.Values, l[e.Key]) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}
