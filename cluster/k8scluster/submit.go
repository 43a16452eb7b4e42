package k8scluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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

// Submit implements driver.Scheduler: it creates the attempt's Job, or
// adopts it if this very submission already created it (a runner
// restarted between creating the Job and recording it), or replaces a
// finished Job of the same name.
func (s *Scheduler) Submit(ctx context.Context, spec *driver.JobSpec) (string, error) {
	if err := spec.Validate(); err != nil {
		return "", &Error{Op: "submit", Code: driver.Invalid, Err: err}
	}
	image, err := s.image(spec)
	if err != nil {
		return "", err
	}
	w := newWatch(spec.LogDir, spec.Attempt, spec.Replicas, false)
	// The log is opened before anything runs: a log path that is a
	// symbolic link refuses the job without creating it.
	if err := w.open(spec.Attempt); err != nil {
		id := jobName(spec.Name, spec.Attempt) + "/refused-" + rand.Text()[:8]
		s.mu.Lock()
		s.refused[id] = driver.Status{State: driver.Failed, Cause: driver.CauseOther, ExitCode: -1, Reason: err.Error()}
		s.mu.Unlock()
		w.close()
		return id, nil
	}
	want := s.job(spec, image)
	jobs := s.client.BatchV1().Jobs(s.ns)
	for try := 0; ; try++ {
		created, err := jobs.Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			return s.track(jobID(created), w), nil
		}
		if !apierrors.IsAlreadyExists(err) || try == 3 {
			w.close()
			return "", apiError("create job "+want.Name, err)
		}
		old, err := jobs.Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			w.close()
			return "", apiError("get job "+want.Name, err)
		}
		if !finished(old) && old.Annotations[annotationCancelled] == "" {
			if old.Labels[labelManagedBy] == managedBy && old.Annotations[annotationName] == spec.Name &&
				old.Annotations[annotationTag] == spec.Tag && old.Annotations[annotationAttempt] == strconv.Itoa(spec.Attempt) {
				// Our own submission (a runner restarted between creating
				// the Job and recording it): adopt it, continuing its log.
				w.adopted = true
				return s.track(jobID(old), w), nil
			}
			w.close()
			return "", &Error{Op: "create job " + want.Name, Code: driver.Unknown,
				Err: fmt.Errorf("a Job of that name is running for another submission (tag %q, attempt %s)", old.Annotations[annotationTag], old.Annotations[annotationAttempt])}
		}
		// A finished (or cancelled) Job of an earlier submission: replace it.
		uid := old.UID
		bg := metav1.DeletePropagationBackground
		err = jobs.Delete(ctx, want.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			w.close()
			return "", apiError("delete finished job "+want.Name, err)
		}
	}
}

// image returns the container image of spec.
func (s *Scheduler) image(spec *driver.JobSpec) (string, error) {
	image := spec.Image
	if image == "" {
		image = s.opts.Image
	}
	if image == "" {
		return "", &Error{Op: "submit " + spec.Name, Code: driver.Invalid,
			Err: errors.New("no container image: name one in the job's environment (RemoteSpec) or with k8s?image=")}
	}
	if strings.ContainsAny(image, " \t\r\n") {
		return "", &Error{Op: "submit " + spec.Name, Code: driver.Invalid, Err: fmt.Errorf("container image %q contains white space", image)}
	}
	return image, nil
}

// track starts streaming the logs of job id into w and returns id.
func (s *Scheduler) track(id string, w *watch) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.watched[id]; old != nil {
		w.close()
		return id
	}
	s.watched[id] = w
	return id
}

// Adopt implements driver.Adopter: the portable layer adopted job id (found
// by Find) for spec, whose log directory the pods' output goes to.
func (s *Scheduler) Adopt(_ context.Context, id string, spec *driver.JobSpec) error {
	if _, _, _, ok := parseElementID(id); ok {
		s.track(id, newWatch(spec.LogDir, spec.Attempt, 1, true))
		return nil
	}
	if _, _, err := parseID(id); err != nil {
		return &Error{Op: "adopt", Code: driver.NotFound, Err: err}
	}
	s.track(id, newWatch(spec.LogDir, spec.Attempt, spec.Replicas, true))
	return nil
}

// finished reports whether a Job is complete or failed.
func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// Find implements driver.Scheduler: the namespace's pending and running
// cairn Jobs named name.
func (s *Scheduler) Find(ctx context.Context, name string) ([]driver.Found, error) {
	list, err := s.client.BatchV1().Jobs(s.ns).List(ctx, metav1.ListOptions{
		LabelSelector: labelManagedBy + "=" + managedBy + "," + labelNameHash + "=" + hashLabel(name),
	})
	if err != nil {
		return nil, apiError("list jobs", err)
	}
	var found []driver.Found
	for i := range list.Items {
		j := &list.Items[i]
		if j.Annotations[annotationName] != name || finished(j) || j.Annotations[annotationCancelled] != "" || j.DeletionTimestamp != nil {
			continue
		}
		attempt, _ := strconv.Atoi(j.Annotations[annotationAttempt])
		st, err := s.status(ctx, jobID(j))
		if err != nil {
			return nil, err
		}
		if st.State != driver.Pending && st.State != driver.Running {
			continue
		}
		found = append(found, driver.Found{ID: jobID(j), Tag: j.Annotations[annotationTag], State: st.State, Attempt: max(attempt, 0)})
	}
	elements, err := s.findElements(ctx, name)
	if err != nil {
		return nil, err
	}
	found = append(found, elements...)
	slices.SortFunc(found, func(a, b driver.Found) int { return strings.Compare(a.ID, b.ID) })
	return found, nil
}

// Cancel implements driver.Scheduler: the Job is marked cancelled and
// suspended, which makes the job controller stop its pods. It is not
// deleted (Kubernetes' TTL does not apply to suspended Jobs): every
// client watching it must see it stopped, not gone; a later submission
// of the same attempt replaces it.
func (s *Scheduler) Cancel(ctx context.Context, id string) error {
	s.mu.Lock()
	_, refused := s.refused[id]
	s.mu.Unlock()
	if refused {
		return nil
	}
	if name, uid, index, ok := parseElementID(id); ok {
		return s.cancelElement(ctx, id, name, uid, index)
	}
	name, uid, err := parseID(id)
	if err != nil {
		return &Error{Op: "cancel", Code: driver.NotFound, Err: err}
	}
	return s.cancelJob(ctx, name, uid)
}

// cancelJob marks the Job name (UID uid) cancelled and suspends it.
func (s *Scheduler) cancelJob(ctx context.Context, name, uid string) error {
	id := name + "/" + uid
	// The test operation makes the patch apply to this Job only, not to
	// one recreated under the same name.
	patch := fmt.Sprintf(`[{"op":"test","path":"/metadata/uid","value":%q},`+
		`{"op":"add","path":"/metadata/annotations/%s","value":"true"},`+
		`{"op":"add","path":"/spec/suspend","value":true}]`, uid, strings.ReplaceAll(annotationCancelled, "/", "~1"))
	_, err := s.client.BatchV1().Jobs(s.ns).Patch(ctx, name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{})
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		return apiError("cancel "+id, err)
	case apierrors.IsInvalid(err) || strings.Contains(err.Error(), "test operation"):
		// The test failed (another Job of that name) or the Job is
		// finished and can no longer be suspended.
		j, gerr := s.cache.job(ctx, name, uid)
		if gerr == nil && j == nil {
			return &Error{Op: "cancel " + id, Code: driver.NotFound, Err: errors.New("no such job")}
		}
		if gerr == nil && finished(j) {
			return nil
		}
	}
	return apiError("cancel "+id, err)
}
