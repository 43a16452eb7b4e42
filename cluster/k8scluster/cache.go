package k8scluster

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
)

// cache watches the namespace's cairn Jobs and their pods (one watch each,
// however many jobs a run has), so that polling every job costs no
// request. An object not (yet) in the cache is read from the API server.
type cache struct {
	client  kubernetes.Interface
	ns      string
	factory informers.SharedInformerFactory
	jobs    toolscache.SharedIndexInformer
	pods    toolscache.SharedIndexInformer
}

// byJob indexes pods by the UID of the Job that owns them.
const byJob = "job-uid"

func newCache(client kubernetes.Interface, ns string) *cache {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.Set{labelManagedBy: managedBy}.String()
		}))
	c := &cache{client: client, ns: ns, factory: f, jobs: f.Batch().V1().Jobs().Informer(), pods: f.Core().V1().Pods().Informer()}
	_ = c.pods.AddIndexers(toolscache.Indexers{byJob: func(obj any) ([]string, error) {
		if p, ok := obj.(*corev1.Pod); ok {
			if uid := p.Labels[labelControllerUID]; uid != "" {
				return []string{uid}, nil
			}
		}
		return nil, nil
	}})
	return c
}

// start starts the watches; they stop when ctx ends.
func (c *cache) start(ctx context.Context) { c.factory.Start(ctx.Done()) }

// job returns the Job named name with UID uid, or nil if it does not
// exist. A Job missing from the cache (just created) is asked for.
func (c *cache) job(ctx context.Context, name, uid string) (*batchv1.Job, error) {
	if obj, ok, _ := c.jobs.GetStore().GetByKey(c.ns + "/" + name); ok {
		if j := obj.(*batchv1.Job); string(j.UID) == uid {
			return j, nil
		}
	}
	j, err := c.client.BatchV1().Jobs(c.ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if string(j.UID) != uid {
		return nil, nil
	}
	return j, nil
}

// podsOf returns the pods of the Job with UID uid.
func (c *cache) podsOf(ctx context.Context, uid string) ([]*corev1.Pod, error) {
	if !c.pods.HasSynced() {
		list, err := c.client.CoreV1().Pods(c.ns).List(ctx, metav1.ListOptions{LabelSelector: labelControllerUID + "=" + uid})
		if err != nil {
			return nil, err
		}
		pods := make([]*corev1.Pod, len(list.Items))
		for i := range list.Items {
			pods[i] = &list.Items[i]
		}
		return pods, nil
	}
	objs, err := c.pods.GetIndexer().ByIndex(byJob, uid)
	if err != nil {
		return nil, err
	}
	pods := make([]*corev1.Pod, len(objs))
	for i, o := range objs {
		pods[i] = o.(*corev1.Pod)
	}
	return pods, nil
}

// pod returns the cached pod named name, or nil.
func (c *cache) pod(name string) *corev1.Pod {
	if obj, ok, _ := c.pods.GetStore().GetByKey(c.ns + "/" + name); ok {
		return obj.(*corev1.Pod)
	}
	return nil
}
