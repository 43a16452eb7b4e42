package k8scluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"example.com/cairn/cluster/driver"
)

// Packs (driver.Packer). A pack of n jobs with the same request is one
// Indexed Job with completions = parallelism = n: completion index i runs
// element i. Each element is its own job:
//
//   - its ID is "JOBNAME/UID/INDEX", and its CAIRN_JOB_ID is that ID;
//   - which element an index runs is fixed in the Job's spec: every
//     container's argv holds a table of the elements (attempt, environment,
//     arguments), and a constant script selects the entry of
//     JOB_COMPLETION_INDEX and runs it through env(1), so that no value is
//     ever seen by a shell; the annotation cairn.dev/pack lists each
//     element's name, tag and attempt, and a label per element
//     (cairn.dev/n-HASH of its name) lets Find select the packs holding
//     an element of a name;
//   - Kubernetes never lets one index's failure fail another: each index
//     may fail once (backoffLimitPerIndex 0) and every index may fail
//     (maxFailedIndexes n), so the Job runs until every index has
//     finished; a disrupted pod (DisruptionTarget) is replaced in place,
//     as for any job, and counted against its own index only;
//   - its status is its index's: succeeded when the index is in the Job's
//     completedIndexes, failed (with its pod's exit code) when in its
//     failedIndexes;
//   - Cancel marks the index cancelled (annotation cairn.dev/cancelled-INDEX)
//     and deletes the index's pods; a deleted pod fails its index, which
//     Kubernetes then never runs again. A pod of a cancelled index created
//     afterwards (the job controller had not seen the deletion, or a queue
//     admitted the pack later) is deleted by whichever client polls any
//     element of the pack. Once every index is cancelled or finished, the
//     Job itself is cancelled and suspended, as a job of its own is, so a
//     pack still waiting in a queue never starts.
//
// The Job's time limit (activeDeadlineSeconds) would count from the start
// of the whole Job, not of each element: jobs with a time limit are not
// packed into one Job but submitted one Job each (SubmitPack still
// submits them all or none).
const (
	annotationPack      = "cairn.dev/pack"
	annotationCancelIdx = "cairn.dev/cancelled-"
	labelElementPrefix  = "cairn.dev/n-"
	labelPack           = "cairn.dev/pack"

	// DefaultMaxPack is MaxPack: the most elements one SubmitPack
	// accepts. SubmitPack splits a pack into several Jobs when its table
	// would make a Job (or its pods) large; see maxPackBytes.
	DefaultMaxPack = 500
	// maxPackBytes bounds the bytes of the element table of one Job
	// (counted once per container, as it is in every container's argv).
	// The table is copied into every pod of the Job, so a Job of n
	// elements stores n times it: packs are kept small enough that this
	// costs the API server, the scheduler and the watches little (on the
	// test control plane, 128 KiB packs of 100 elements made a 100-step
	// run slower than one Job per step), and far below etcd's 1.5 MiB
	// object limit and the 256 KiB limit on annotations.
	maxPackBytes = 16 << 10
)

// packElement is an entry of a pack's manifest.
type packElement struct {
	Name    string `json:"name"`
	Tag     string `json:"tag"`
	Attempt int    `json:"attempt"`
}

// MaxPack implements driver.Packer.
func (s *Scheduler) MaxPack() int { return DefaultMaxPack }

// SubmitPack implements driver.Packer: one Indexed Job for specs (several
// if their tables are large), each spec the element of its index.
func (s *Scheduler) SubmitPack(ctx context.Context, specs []*driver.JobSpec) ([]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	invalid := func(err error) error { return &Error{Op: "submit pack", Code: driver.Invalid, Err: err} }
	if len(specs) > s.MaxPack() {
		return nil, invalid(fmt.Errorf("a pack of %d jobs exceeds MaxPack %d", len(specs), s.MaxPack()))
	}
	for i, spec := range specs {
		if err := spec.Validate(); err != nil {
			return nil, invalid(fmt.Errorf("pack element %d: %w", i, err))
		}
		if !driver.Packable(specs[0], spec) {
			return nil, invalid(fmt.Errorf("pack element %d (%s) does not share the request of element 0 (%s)", i, spec.Name, specs[0].Name))
		}
	}
	image, err := s.image(specs[0])
	if err != nil {
		return nil, err
	}
	undo := func(ids []string) {
		for _, id := range ids {
			_ = s.Cancel(context.WithoutCancel(ctx), id)
		}
	}
	if specs[0].Resources.TimeLimit > 0 {
		var ids []string
		for _, spec := range specs {
			id, err := s.Submit(ctx, spec)
			if err != nil {
				undo(ids)
				return nil, err
			}
			ids = append(ids, id)
		}
		return ids, nil
	}
	var ids []string
	for _, chunk := range packChunks(specs) {
		got, err := s.submitPackJob(ctx, chunk, image)
		if err != nil {
			undo(ids)
			return nil, err
		}
		ids = append(ids, got...)
	}
	return ids, nil
}

// packChunks splits specs into runs whose tables fit maxPackBytes.
func packChunks(specs []*driver.JobSpec) [][]*driver.JobSpec {
	var chunks [][]*driver.JobSpec
	start, size := 0, 0
	for i, spec := range specs {
		n := (len(spec.Setup) + 1) * tableBytes(spec)
		if i > start && size+n > maxPackBytes {
			chunks = append(chunks, specs[start:i])
			start, size = i, 0
		}
		size += n
	}
	return append(chunks, specs[start:])
}

// tableBytes estimates the bytes of spec's entry in a pack's table and
// manifest.
func tableBytes(spec *driver.JobSpec) int {
	n := len(spec.Name) + len(spec.Tag) + 64
	for k, v := range spec.Env {
		n += len(k) + len(v) + 8
	}
	for _, a := range spec.Command {
		n += len(a) + 8
	}
	return n
}

// submitPackJob creates the Job of one pack and starts streaming the
// elements' logs.
func (s *Scheduler) submitPackJob(ctx context.Context, specs []*driver.JobSpec, image string) ([]string, error) {
	// The logs are opened before anything runs: an element whose log path
	// is a symbolic link is refused (a failed element of its own) without
	// the pack running it.
	watches := make([]*watch, len(specs))
	refused := make([]error, len(specs))
	for i, spec := range specs {
		w := newWatch(spec.LogDir, spec.Attempt, 1, false)
		if err := w.open(spec.Attempt); err != nil {
			refused[i] = err
			w.close()
			continue
		}
		watches[i] = w
	}
	closeAll := func() {
		for _, w := range watches {
			if w != nil {
				w.close()
			}
		}
	}
	want, err := s.packJob(specs, image, refused)
	if err != nil {
		closeAll()
		return nil, err
	}
	created, err := s.client.BatchV1().Jobs(s.ns).Create(ctx, want, metav1.CreateOptions{})
	if err != nil {
		closeAll()
		return nil, apiError("create job "+want.Name, err)
	}
	ids := make([]string, len(specs))
	for i := range specs {
		ids[i] = jobID(created) + "/" + strconv.Itoa(i)
		if refused[i] != nil {
			s.mu.Lock()
			s.refused[ids[i]] = driver.Status{State: driver.Failed, Cause: driver.CauseOther, ExitCode: -1, Reason: refused[i].Error()}
			s.mu.Unlock()
			continue
		}
		s.track(ids[i], watches[i])
	}
	return ids, nil
}

// packPrelude begins every container of a pack. Its arguments are the
// second stage (a constant script), a mode ("step": run the element's own
// argv; "setup": run the setup command that follows the table), the
// digest of a verified program or "", the number of elements, the table
// (per element: attempt, number of environment entries, the entries as
// NAME=VALUE, number of arguments, the arguments), then the setup command.
// It selects the entry of JOB_COMPLETION_INDEX by moving its environment
// and arguments to the end of "$@" and dropping the rest of the table,
// and runs the second stage through env(1) with the element's
// environment and then cairn's variables (which win). The shell itself
// never assigns a value of the table to a variable of its own, so no
// element's environment can change what it does.
const packPrelude = `cairn_stage2=$1 cairn_mode=$2 cairn_digest=$3 cairn_n=$4
shift 4
cairn_index=${JOB_COMPLETION_INDEX:-}
cairn_i=0 cairn_e=0 cairn_m=0 cairn_attempt= cairn_k=0
while [ "$cairn_i" -lt "$cairn_n" ]; do
	if [ "$cairn_i" = "$cairn_index" ]; then
		cairn_attempt=$1 cairn_e=$2
		shift 2
		cairn_k=$cairn_e
		while [ "$cairn_k" -gt 0 ]; do set -- "$@" "$1"; shift; cairn_k=$((cairn_k - 1)); done
		cairn_k=$1
		shift
		if [ "$cairn_mode" = step ]; then
			cairn_m=$cairn_k
			while [ "$cairn_k" -gt 0 ]; do set -- "$@" "$1"; shift; cairn_k=$((cairn_k - 1)); done
		else
			shift "$cairn_k"
		fi
	else
		cairn_k=$2
		shift 2
		shift "$cairn_k"
		cairn_k=$1
		shift
		shift "$cairn_k"
	fi
	cairn_i=$((cairn_i + 1))
done
if [ -z "$cairn_attempt" ]; then
	echo "cairn: completion index ${JOB_COMPLETION_INDEX:-(none)} is not in this pack" >&2
	exit 126
fi
# "$@": the setup command (setup mode), the environment, the arguments
# (step mode). Make it: the environment, the second stage, the command.
cairn_k=$(($# - cairn_e - cairn_m))
while [ "$cairn_k" -gt 0 ]; do set -- "$@" "$1"; shift; cairn_k=$((cairn_k - 1)); done
cairn_x=$(($# - cairn_e))
cairn_k=$cairn_e
while [ "$cairn_k" -gt 0 ]; do set -- "$@" "$1"; shift; cairn_k=$((cairn_k - 1)); done
set -- "$@" "CAIRN_K8S_ATTEMPT=$cairn_attempt" "CAIRN_K8S_INDEX=$cairn_index" \
	"CAIRN_K8S_RESTARTS=${CAIRN_K8S_RESTARTS:-0}" "CAIRN_K8S_JOB=${CAIRN_K8S_JOB:-}" "CAIRN_K8S_JOB_UID=${CAIRN_K8S_JOB_UID:-}" \
	CAIRN_REPLICA=0 CAIRN_REPLICAS=1 /bin/sh -c "$cairn_stage2" "cairn-$cairn_mode"
if [ -n "$cairn_digest" ]; then set -- "$@" "$cairn_digest"; fi
cairn_k=$cairn_x
while [ "$cairn_k" -gt 0 ]; do set -- "$@" "$1"; shift; cairn_k=$((cairn_k - 1)); done
exec env "$@"
`

// packStartScript is startScript for an element of a pack: its
// CAIRN_JOB_ID is the element's ID.
const packStartScript = `CAIRN_ATTEMPT=$((CAIRN_K8S_ATTEMPT + ${CAIRN_K8S_RESTARTS:-0}))
CAIRN_JOB_ID="$CAIRN_K8S_JOB/$CAIRN_K8S_JOB_UID/$CAIRN_K8S_INDEX"
export CAIRN_ATTEMPT CAIRN_JOB_ID
unset CAIRN_K8S_ATTEMPT CAIRN_K8S_RESTARTS CAIRN_K8S_JOB CAIRN_K8S_JOB_UID CAIRN_K8S_INDEX
`

// packTable returns the element table of specs (see packPrelude). A
// refused element's entry runs nothing: its index fails with 126.
func packTable(specs []*driver.JobSpec, refused []error) []string {
	table := []string{strconv.Itoa(len(specs))}
	for i, spec := range specs {
		table = append(table, strconv.Itoa(spec.Attempt))
		keys := slices.Sorted(maps.Keys(spec.Env))
		table = append(table, strconv.Itoa(len(keys)))
		for _, k := range keys {
			table = append(table, k+"="+spec.Env[k])
		}
		argv := spec.Command
		if refused[i] != nil {
			argv = []string{"/bin/sh", "-c", "exit 126"}
		}
		table = append(table, strconv.Itoa(len(argv)))
		table = append(table, argv...)
	}
	return table
}

// packJob returns the Job of a pack: the Job of specs[0] made a pack.
func (s *Scheduler) packJob(specs []*driver.JobSpec, image string, refused []error) (*batchv1.Job, error) {
	j := s.job(specs[0], image)
	n := int32(len(specs))
	j.Name = "cairn-pack-" + strings.ToLower(rand.Text()[:12])
	manifest := make([]packElement, len(specs))
	for i, spec := range specs {
		manifest[i] = packElement{Name: spec.Name, Tag: spec.Tag, Attempt: spec.Attempt}
	}
	data, err := json.Marshal(manifest)
	if err != nil {
		return nil, &Error{Op: "submit pack", Code: driver.Invalid, Err: err}
	}
	j.Annotations = map[string]string{annotationPack: string(data)}
	delete(j.Labels, labelNameHash)
	delete(j.Labels, labelTagHash)
	j.Labels[labelPack] = "true"
	for _, spec := range specs {
		j.Labels[labelElementPrefix+hashLabel(spec.Name)] = "true"
	}
	pl := j.Spec.Template.Labels
	delete(pl, labelNameHash)
	delete(pl, labelTagHash)
	pl[labelPack] = "true"

	j.Spec.Completions, j.Spec.Parallelism = &n, &n
	j.Spec.BackoffLimitPerIndex = ptr(int32(0))
	j.Spec.MaxFailedIndexes = &n
	// Only disruptions are ignored (an in-place restart of that index);
	// any other failure fails the index alone.
	j.Spec.PodFailurePolicy.Rules = slices.DeleteFunc(j.Spec.PodFailurePolicy.Rules, func(r batchv1.PodFailurePolicyRule) bool {
		return r.Action != batchv1.PodFailurePolicyActionIgnore
	})

	table := packTable(specs, refused)
	command := func(mode string, rest []string) []string {
		stage2 := packStartScript + `exec "$@"`
		digest := ""
		if mode == "step" && specs[0].Digest != "" {
			stage2, digest = packStartScript+driver.VerifiedRun, specs[0].Digest
		}
		cmd := []string{"/bin/sh", "-c", packPrelude, "cairn-pack", stage2, mode, digest}
		return slices.Concat(cmd, table, rest)
	}
	pod := &j.Spec.Template.Spec
	for i := range pod.InitContainers {
		pod.InitContainers[i].Command = command("setup", specs[0].Setup[i])
		pod.InitContainers[i].Env = packEnv(pod.InitContainers[i].Env, j.Name)
	}
	pod.Containers[0].Command = command("step", nil)
	pod.Containers[0].Env = packEnv(pod.Containers[0].Env, j.Name)
	return j, nil
}

// packEnv keeps, of a container's environment, the variables the prelude
// reads, the Job's name being job; the elements' own environments are in
// the table.
func packEnv(env []corev1.EnvVar, job string) []corev1.EnvVar {
	env = slices.DeleteFunc(slices.Clone(env), func(e corev1.EnvVar) bool {
		switch e.Name {
		case "CAIRN_K8S_RESTARTS", "CAIRN_K8S_JOB", "CAIRN_K8S_JOB_UID":
			return false
		}
		return true
	})
	for i := range env {
		if env[i].Name == "CAIRN_K8S_JOB" {
			env[i].Value = job
		}
	}
	return env
}

// parseElementID splits an element's ID "JOBNAME/UID/INDEX".
func parseElementID(id string) (name, uid string, index int, ok bool) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", 0, false
	}
	index, err := strconv.Atoi(parts[2])
	if err != nil || index < 0 || strconv.Itoa(index) != parts[2] {
		return "", "", 0, false
	}
	return parts[0], parts[1], index, true
}

// inIndexes reports whether index i is in a Job's index set ("1,3-5").
func inIndexes(set string, i int) bool {
	for r := range strings.SplitSeq(set, ",") {
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		if a <= i && i <= b {
			return true
		}
	}
	return false
}

// elementPods returns the pods of index i, oldest first.
func elementPods(pods []*corev1.Pod, i int) []*corev1.Pod {
	ix := strconv.Itoa(i)
	var out []*corev1.Pod
	for _, p := range pods {
		if p.Annotations[annotationIndex] == ix {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return out
}

func cancelledIndex(j *batchv1.Job, i int) bool {
	return j.Annotations[annotationCancelIdx+strconv.Itoa(i)] != "" || j.Annotations[annotationCancelled] != ""
}

// elementStatus is status for an element's ID.
func (s *Scheduler) elementStatus(ctx context.Context, id, name, uid string, index int) (driver.Status, error) {
	s.mu.Lock()
	w := s.watched[id]
	s.mu.Unlock()
	gone := driver.Status{State: driver.Gone, ExitCode: -1}
	j, err := s.cache.job(ctx, name, uid)
	if apierrors.IsNotFound(err) || err == nil && j == nil {
		return gone, nil
	}
	if err != nil {
		return driver.Status{}, apiError("get job "+name, err)
	}
	if j.Spec.Completions == nil || index >= int(*j.Spec.Completions) || j.Annotations[annotationPack] == "" {
		return gone, nil
	}
	all, err := s.cache.podsOf(ctx, uid)
	if err != nil {
		return driver.Status{}, apiError("list pods of job "+name, err)
	}
	// Any client polling any element of the pack stops the pods of
	// cancelled indexes (created after their Cancel, as when a queue
	// admits the pack later).
	var stale []*corev1.Pod
	for _, p := range all {
		ix, err := strconv.Atoi(p.Annotations[annotationIndex])
		if err == nil && ix != index && j.Annotations[annotationCancelIdx+strconv.Itoa(ix)] != "" &&
			p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			stale = append(stale, p)
		}
	}
	s.stopPods(ctx, stale)
	pods := elementPods(all, index)
	st := s.indexStatus(ctx, j, index, pods)
	st.Restarts = restartsOf(pods)
	return s.withLog(ctx, id, w, pods, st), nil
}

// indexStatus maps index i of a pack and its pods to a status.
func (s *Scheduler) indexStatus(ctx context.Context, j *batchv1.Job, i int, pods []*corev1.Pod) driver.Status {
	st := driver.Status{ExitCode: -1}
	var active []*corev1.Pod
	for _, p := range pods {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			active = append(active, p)
		}
	}
	if inIndexes(j.Status.CompletedIndexes, i) {
		st.State, st.ExitCode, st.Reason = driver.Succeeded, 0, "Complete"
		return st
	}
	if cancelledIndex(j, i) {
		st.Cause, st.Reason = driver.CauseCancelled, "cancelled"
		s.stopPods(ctx, active)
		suspended := j.Spec.Suspend != nil && *j.Spec.Suspend
		if len(active) == 0 && (suspended || finished(j) || j.Status.FailedIndexes != nil && inIndexes(*j.Status.FailedIndexes, i)) {
			st.State = driver.Stopped
			return st
		}
		st.State = driver.Running
		return st
	}
	if j.Status.FailedIndexes != nil && inIndexes(*j.Status.FailedIndexes, i) {
		st.State, st.Cause, st.Reason = driver.Failed, driver.CauseOther, "Failed"
		for k := len(pods) - 1; k >= 0; k-- {
			p := pods[k]
			if p.Status.Phase != corev1.PodFailed || disrupted(p) {
				continue
			}
			if t := terminatedWithError(p); t != nil {
				st.ExitCode, st.Signal, st.Cause = int(t.ExitCode), int(t.Signal), driver.CauseExit
				if t.Reason == "OOMKilled" {
					st.Cause = driver.CauseOutOfMemory
				}
				st.Reason = "Failed: " + t.Reason
			}
			break
		}
		return st
	}
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return failure(c, pods)
		}
	}
	return s.unfinishedStatus(ctx, j, active, st)
}

// stopPods deletes pods of a cancelled element that are not being
// deleted yet. Deleting a pod fails its index for good.
func (s *Scheduler) stopPods(ctx context.Context, pods []*corev1.Pod) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		uid := p.UID
		err := s.client.CoreV1().Pods(s.ns).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		_ = err // gone already, or retried at the next poll
	}
}

// cancelElement is Cancel for an element: its index is marked cancelled
// and its pods are deleted. An element that has finished is left as is.
func (s *Scheduler) cancelElement(ctx context.Context, id, name, uid string, index int) error {
	j, err := s.cache.job(ctx, name, uid)
	if apierrors.IsNotFound(err) || err == nil && j == nil {
		return &Error{Op: "cancel " + id, Code: driver.NotFound, Err: errors.New("no such job")}
	}
	if err != nil {
		return apiError("cancel "+id, err)
	}
	if j.Spec.Completions == nil || index >= int(*j.Spec.Completions) || j.Annotations[annotationPack] == "" {
		return &Error{Op: "cancel " + id, Code: driver.NotFound, Err: errors.New("no such element")}
	}
	if inIndexes(j.Status.CompletedIndexes, index) || j.Status.FailedIndexes != nil && inIndexes(*j.Status.FailedIndexes, index) || finished(j) {
		return nil
	}
	patch := fmt.Sprintf(`[{"op":"test","path":"/metadata/uid","value":%q},`+
		`{"op":"add","path":"/metadata/annotations/%s","value":"true"}]`, uid, strings.ReplaceAll(annotationCancelIdx+strconv.Itoa(index), "/", "~1"))
	patched, err := s.client.BatchV1().Jobs(s.ns).Patch(ctx, name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		if apierrors.IsInvalid(err) || strings.Contains(err.Error(), "test operation") {
			return &Error{Op: "cancel " + id, Code: driver.NotFound, Err: errors.New("no such job")}
		}
		return apiError("cancel "+id, err)
	}
	// When no index is left to run, the whole Job is cancelled (and
	// suspended), as a job of its own is: a pack waiting in a queue is
	// then never started.
	left := false
	for i := range int(*patched.Spec.Completions) {
		if !cancelledIndex(patched, i) && !inIndexes(patched.Status.CompletedIndexes, i) &&
			(patched.Status.FailedIndexes == nil || !inIndexes(*patched.Status.FailedIndexes, i)) {
			left = true
			break
		}
	}
	if !left {
		if err := s.cancelJob(ctx, name, uid); err != nil {
			return err
		}
	}
	// The pods of the index, read from the API server: the cache may not
	// have the newest yet.
	list, err := s.client.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{
		LabelSelector: labelControllerUID + "=" + uid + "," + batchv1.JobCompletionIndexAnnotation + "=" + strconv.Itoa(index),
	})
	if err != nil {
		return nil // the next poll deletes them
	}
	var active []*corev1.Pod
	for i := range list.Items {
		if p := &list.Items[i]; p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			active = append(active, p)
		}
	}
	s.stopPods(ctx, active)
	return nil
}

// findElements returns the pending and running elements named name of the
// namespace's packs.
func (s *Scheduler) findElements(ctx context.Context, name string) ([]driver.Found, error) {
	list, err := s.client.BatchV1().Jobs(s.ns).List(ctx, metav1.ListOptions{
		LabelSelector: labelManagedBy + "=" + managedBy + "," + labelElementPrefix + hashLabel(name),
	})
	if err != nil {
		return nil, apiError("list jobs", err)
	}
	var found []driver.Found
	for k := range list.Items {
		j := &list.Items[k]
		if finished(j) || j.Annotations[annotationCancelled] != "" || j.DeletionTimestamp != nil {
			continue
		}
		var manifest []packElement
		if err := json.Unmarshal([]byte(j.Annotations[annotationPack]), &manifest); err != nil {
			continue
		}
		for i, e := range manifest {
			if e.Name != name || cancelledIndex(j, i) {
				continue
			}
			id := jobID(j) + "/" + strconv.Itoa(i)
			st, err := s.status(ctx, id)
			if err != nil {
				return nil, err
			}
			if st.State != driver.Pending && st.State != driver.Running {
				continue
			}
			found = append(found, driver.Found{ID: id, Tag: e.Tag, State: st.State, Attempt: max(e.Attempt, 0)})
		}
	}
	return found, nil
}
