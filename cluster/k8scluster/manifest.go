package k8scluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"example.com/cairn/cluster/driver"
)

// Labels and annotations cairn puts on its Jobs and their pods.
const (
	// labelManagedBy (= "cairn") marks cairn's Jobs and pods.
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "cairn"
	// labelNameHash is the hex SHA-256 prefix of the job's name (a step's
	// name_with_hash), for Find to select by: names may exceed a label's 63
	// characters.
	labelNameHash = "cairn.dev/name-hash"
	// labelTagHash is the same of the job's tag, for kubectl users.
	labelTagHash = "cairn.dev/tag-hash"
	// annotationName, annotationTag and annotationAttempt hold the job's
	// name, tag and first attempt number exactly.
	annotationName    = "cairn.dev/name"
	annotationTag     = "cairn.dev/tag"
	annotationAttempt = "cairn.dev/attempt"
	// annotationCancelled marks a Job cancelled by cairn (and suspended).
	annotationCancelled = "cairn.dev/cancelled"
	// labelQueue is Kueue's queue label.
	labelQueue = "kueue.x-k8s.io/queue-name"

	// Set by the job controller.
	annotationIndex          = "batch.kubernetes.io/job-completion-index"
	annotationIgnoredFailure = "batch.kubernetes.io/job-index-ignored-failure-count"
	labelControllerUID       = "batch.kubernetes.io/controller-uid"

	// containerName is the program's container; setup commands run in
	// init containers setup-0, setup-1, ...
	containerName = "step"
)

// Resource names of devices.
const (
	resourceGPU     = corev1.ResourceName("nvidia.com/gpu")
	resourceTPU     = corev1.ResourceName("google.com/tpu")
	nodeLabelGPU    = "nvidia.com/gpu.product"
	nodeLabelTPU    = "cloud.google.com/gke-tpu-accelerator"
	nodeLabelRegion = "topology.kubernetes.io/region"
)

// nonRetriableExitCodes fail a Job at once (podFailurePolicy FailJob):
// 126, the program was refused (digest mismatch, a symbolic-link log) or
// cannot run, and 127, it does not exist.
var nonRetriableExitCodes = []int32{126, 127}

// maxJobName keeps an Indexed Job's pod host names (JOBNAME-INDEX) within
// a DNS label's 63 characters.
const maxJobName = 52

// jobName returns the Job name of attempt attempt of the job named name
// (driver.JobSpec.Name, [a-z0-9_.-]+): the name made a DNS label and cut
// to fit, a hash of the whole name (so that names differing only in what
// was cut or replaced differ), and the attempt.
func jobName(name string, attempt int) string {
	sum := sha256.Sum256([]byte(name))
	suffix := "-" + hex.EncodeToString(sum[:4]) + "-a" + strconv.Itoa(attempt)
	var b strings.Builder
	dash := false
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	base := strings.Trim(b.String(), "-")
	if n := maxJobName - len(suffix); len(base) > n {
		base = strings.TrimRight(base[:n], "-")
	}
	if base == "" {
		base = "job"
	}
	return base + suffix
}

// hashLabel returns a label value identifying s.
func hashLabel(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// startScript begins every container's command: it derives cairn's
// variables from those the Job sets (an in-place restart is a new
// attempt), then runs "$@". It is constant: values follow as positional
// arguments.
const startScript = `CAIRN_ATTEMPT=$((CAIRN_K8S_ATTEMPT + ${CAIRN_K8S_RESTARTS:-0}))
CAIRN_JOB_ID="$CAIRN_K8S_JOB/$CAIRN_K8S_JOB_UID"
export CAIRN_ATTEMPT CAIRN_JOB_ID
unset CAIRN_K8S_ATTEMPT CAIRN_K8S_RESTARTS CAIRN_K8S_JOB CAIRN_K8S_JOB_UID
`

// job returns the Job of one attempt of spec. spec is valid; image is the
// container image.
func (s *Scheduler) job(spec *driver.JobSpec, image string) *batchv1.Job {
	name := jobName(spec.Name, spec.Attempt)
	r := spec.Resources
	replicas := int32(spec.Replicas)
	labels := map[string]string{
		labelManagedBy: managedBy,
		labelNameHash:  hashLabel(spec.Name),
		labelTagHash:   hashLabel(spec.Tag),
	}
	podLabels := maps.Clone(labels)
	if s.opts.Queue != "" {
		labels[labelQueue] = s.opts.Queue
	}
	annotations := map[string]string{
		annotationName:    spec.Name,
		annotationTag:     spec.Tag,
		annotationAttempt: strconv.Itoa(spec.Attempt),
	}

	quantities := corev1.ResourceList{
		corev1.ResourceCPU: *resource.NewQuantity(int64(r.CPUs), resource.DecimalSI),
	}
	if r.Memory > 0 {
		quantities[corev1.ResourceMemory] = *resource.NewQuantity(r.Memory, resource.BinarySI)
	}
	if r.Disk > 0 {
		quantities[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(r.Disk, resource.BinarySI)
	}
	nodeSelector := map[string]string{}
	if r.GPUs > 0 {
		quantities[resourceGPU] = *resource.NewQuantity(int64(r.GPUs), resource.DecimalSI)
		if r.GPUType != "" {
			nodeSelector[nodeLabelGPU] = r.GPUType
		}
	}
	if r.TPUType != "" {
		accel, chips := tpu(r.TPUType)
		quantities[resourceTPU] = *resource.NewQuantity(int64(chips), resource.DecimalSI)
		nodeSelector[nodeLabelTPU] = accel
	}
	requirements := corev1.ResourceRequirements{Requests: quantities, Limits: quantities.DeepCopy()}

	env := make([]corev1.EnvVar, 0, len(spec.Env)+8)
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, corev1.EnvVar{Name: k, Value: spec.Env[k]})
	}
	fieldRef := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	// cairn's variables come last: they win over the job's own.
	env = append(env,
		corev1.EnvVar{Name: "CAIRN_REPLICAS", Value: strconv.Itoa(spec.Replicas)},
		corev1.EnvVar{Name: "CAIRN_REPLICA", ValueFrom: fieldRef("metadata.annotations['" + annotationIndex + "']")},
		corev1.EnvVar{Name: "CAIRN_K8S_ATTEMPT", Value: strconv.Itoa(spec.Attempt)},
		corev1.EnvVar{Name: "CAIRN_K8S_RESTARTS", ValueFrom: fieldRef("metadata.annotations['" + annotationIgnoredFailure + "']")},
		corev1.EnvVar{Name: "CAIRN_K8S_JOB", Value: name},
		corev1.EnvVar{Name: "CAIRN_K8S_JOB_UID", ValueFrom: fieldRef("metadata.labels['" + labelControllerUID + "']")},
	)

	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for i, v := range s.opts.Volumes {
		vname := "cairn-" + strconv.Itoa(i)
		vol := corev1.Volume{Name: vname}
		if v.Claim != "" {
			vol.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: v.Claim}
		} else {
			vol.HostPath = &corev1.HostPathVolumeSource{Path: v.HostPath}
		}
		volumes = append(volumes, vol)
		mounts = append(mounts, corev1.VolumeMount{Name: vname, MountPath: v.MountPath})
	}
	container := func(name string, command []string) corev1.Container {
		return corev1.Container{
			Name:                     name,
			Image:                    image,
			Command:                  command,
			WorkingDir:               spec.Dir,
			Env:                      env,
			Resources:                *requirements.DeepCopy(),
			VolumeMounts:             mounts,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		}
	}
	var inits []corev1.Container
	for i, argv := range spec.Setup {
		cmd := append([]string{"/bin/sh", "-c", startScript + `exec "$@"`, "cairn-setup"}, argv...)
		inits = append(inits, container("setup-"+strconv.Itoa(i), cmd))
	}
	cmd := append([]string{"/bin/sh", "-c", startScript + `exec "$@"`, "cairn-step"}, spec.Command...)
	if spec.Digest != "" {
		cmd = append([]string{"/bin/sh", "-c", startScript + driver.VerifiedRun, "cairn-step", spec.Digest}, spec.Command...)
	}

	var affinity *corev1.Affinity
	if len(r.Regions) > 0 {
		affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: nodeLabelRegion, Operator: corev1.NodeSelectorOpIn, Values: slices.Clone(r.Regions),
				}}}},
			},
		}}
	}
	if len(nodeSelector) == 0 {
		nodeSelector = nil
	}

	indexed := batchv1.IndexedCompletion
	failed := batchv1.Failed
	j := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.ns, Labels: labels, Annotations: annotations},
		Spec: batchv1.JobSpec{
			CompletionMode:       &indexed,
			Completions:          &replicas,
			Parallelism:          &replicas,
			BackoffLimitPerIndex: ptr(int32(0)),
			MaxFailedIndexes:     ptr(int32(0)),
			PodReplacementPolicy: &failed,
			PodFailurePolicy: &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
				{
					Action:          batchv1.PodFailurePolicyActionIgnore,
					OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
				},
				{
					Action:      batchv1.PodFailurePolicyActionFailJob,
					OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: nonRetriableExitCodes},
				},
			}},
			TTLSecondsAfterFinished: ptr(int32(min((s.opts.TTLAfterFinished+time.Second-1)/time.Second, 1<<31-1))),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					RestartPolicy:      corev1.RestartPolicyNever,
					InitContainers:     inits,
					Containers:         []corev1.Container{container(containerName, cmd)},
					NodeSelector:       nodeSelector,
					Affinity:           affinity,
					Volumes:            volumes,
					ServiceAccountName: s.opts.ServiceAccount,
					EnableServiceLinks: ptr(false),
				},
			},
		},
	}
	if r.TimeLimit > 0 {
		j.Spec.ActiveDeadlineSeconds = ptr(int64((r.TimeLimit + time.Second - 1) / time.Second))
	}
	if s.opts.Queue != "" {
		j.Spec.Suspend = ptr(true) // Kueue starts it
	}
	return j
}

func ptr[T any](v T) *T { return &v }

// tpu returns GKE's accelerator label value and the chips per host of a
// TPU type such as v5p-8 (reference §6.1: v4 and v5p count cores, two per
// chip; v5e and v6e count chips; a host has at most 4 chips, or 8 for
// single-host v5e/v6e slices of 8).
func tpu(typ string) (accel string, chips int) {
	family, size, _ := strings.Cut(typ, "-")
	n, err := strconv.Atoi(size)
	if err != nil || n < 1 {
		n = 4
	}
	switch family {
	case "v4":
		return "tpu-v4-podslice", min(n/2, 4)
	case "v5p":
		return "tpu-v5p-slice", min(n/2, 4)
	case "v5litepod", "v5e":
		if n <= 8 {
			return "tpu-v5-lite-podslice", n
		}
		return "tpu-v5-lite-podslice", 4
	case "v6e":
		if n <= 8 {
			return "tpu-v6e-slice", n
		}
		return "tpu-v6e-slice", 4
	}
	return "tpu-" + family, 4
}

// describe returns "JOBNAME/UID".
func jobID(j *batchv1.Job) string { return j.Name + "/" + string(j.UID) }

// parseID splits a job ID.
func parseID(id string) (name, uid string, err error) {
	name, uid, ok := strings.Cut(id, "/")
	if !ok || name == "" || uid == "" || strings.Contains(uid, "/") {
		return "", "", fmt.Errorf("invalid job ID %q: want JOBNAME/UID", id)
	}
	return name, uid, nil
}
