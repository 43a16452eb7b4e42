// Command k8s measures what cairn adds to running work as Kubernetes Jobs:
//
//   - latency: one trivial remote step, end to end through cairn.Run (cache
//     check, lease, status files, the Job, the pod's log copied, the job
//     re-entering this binary in worker mode, artifact, SUCCESS), against
//     the same Job created directly with client-go (this binary in
//     "trivial" mode) and watched until it completes;
//   - throughput: N independent trivial remote steps in one run, against N
//     such Jobs created directly and watched together.
//
// It needs a Kubernetes cluster that can run this binary in a pod: the
// test control plane of scripts/services.d/kubernetes.sh, whose node agent
// runs pods' commands on this machine. Runs alternate bare and cairn, on
// fresh prefixes; medians are reported. Output is one JSON line per
// measurement on stdout and a summary on stderr.
//
// Usage:
//
//	KUBECONFIG=... go run ./bench/k8s [-repeat 10] [-throughput-repeat 3] [-steps 100] [-pack N] [-namespace default] [-image I] [-tmp DIR]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"example.com/cairn"
	"example.com/cairn/bench/internal/remotebench"
	"example.com/cairn/cli"
	"example.com/cairn/cluster"
	"example.com/cairn/cluster/k8scluster"
)

func main() {
	if code, ok := remotebench.JobMode(os.Args[1:]); ok { // a cairn job, or a bare one
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && err != flag.ErrHelp {
		fmt.Fprintf(os.Stderr, "bench/k8s: %v\n", err)
		os.Exit(1)
	}
}

type config struct {
	repeat    int
	trepeat   int
	steps     int
	namespace string
	image     string
	tmp       string
	pack      int
}

type result struct {
	Kind    string  `json:"kind"` // latency or throughput
	Tool    string  `json:"tool"` // bare or cairn
	Jobs    int     `json:"jobs"`
	Run     int     `json:"run"`
	Seconds float64 `json:"wall_s"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("k8s", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.repeat, "repeat", 10, "latency runs per tool")
	fs.IntVar(&c.trepeat, "throughput-repeat", 3, "throughput runs per tool")
	fs.IntVar(&c.steps, "steps", 100, "independent steps (jobs) in the throughput run")
	fs.StringVar(&c.namespace, "namespace", "default", "namespace of the Jobs")
	fs.StringVar(&c.image, "image", "cairn.test/host-filesystem:none", "container image of the Jobs (the test cluster's node agent uses none)")
	fs.StringVar(&c.tmp, "tmp", "", "parent of the temporary directory (default $TMPDIR)")
	fs.IntVar(&c.pack, "pack", 0, "most steps cairn packs into one Indexed Job (k8s?pack=N); 1 submits each alone, 0 is the default")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("no Kubernetes cluster (%v); start the test one with scripts/services.d/kubernetes.sh up and set KUBECONFIG", err)
	}
	cfg.QPS, cfg.Burst = 100, 200 // as k8scluster's opener
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp(c.tmp, "cairn-bench-k8s-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	params := url.Values{"namespace": {c.namespace}, "image": {c.image}}
	if c.pack > 0 {
		params.Set("pack", strconv.Itoa(c.pack))
	}
	spec := "k8s?" + params.Encode()
	prog, err := cairn.CurrentProgram()
	if err != nil {
		return err
	}
	b := &bench{cfg: c, prog: prog, exe: exe, root: root, spec: spec, client: client, enc: json.NewEncoder(stdout), stderr: stderr}
	var lat = map[string][]float64{}
	for i := range c.repeat {
		for _, tool := range []string{"bare", "cairn"} {
			d, err := b.measure(ctx, tool, 1, i)
			if err != nil {
				return err
			}
			lat[tool] = append(lat[tool], d)
		}
	}
	thrRuns := map[string][]float64{}
	for i := range c.trepeat {
		for _, tool := range []string{"bare", "cairn"} {
			d, err := b.measure(ctx, tool, c.steps, i)
			if err != nil {
				return err
			}
			thrRuns[tool] = append(thrRuns[tool], d)
		}
	}
	thr := map[string]float64{"bare": remotebench.Median(thrRuns["bare"]), "cairn": remotebench.Median(thrRuns["cairn"])}
	bare, crn := remotebench.Median(lat["bare"]), remotebench.Median(lat["cairn"])
	fmt.Fprintf(stderr, "\nlatency of one trivial job, median of %d (s):\n", c.repeat)
	fmt.Fprintf(stderr, "  %-28s %8.3f   (min %.3f, max %.3f)\n", "bare Jobs (client-go + watch)", bare, slices.Min(lat["bare"]), slices.Max(lat["bare"]))
	fmt.Fprintf(stderr, "  %-28s %8.3f   (min %.3f, max %.3f)\n", "cairn remote step", crn, slices.Min(lat["cairn"]), slices.Max(lat["cairn"]))
	fmt.Fprintf(stderr, "  ratio cairn/bare %.3f: overhead %+.0f ms = %+.1f%% of bare\n", crn/bare, (crn-bare)*1000, (crn-bare)/bare*100)
	fmt.Fprintf(stderr, "throughput of %d independent trivial jobs, median of %d (s):\n", c.steps, c.trepeat)
	fmt.Fprintf(stderr, "  %-28s %8.3f   (%.1f jobs/s; min %.3f, max %.3f)\n", "bare Jobs (client-go + watch)", thr["bare"], float64(c.steps)/thr["bare"], slices.Min(thrRuns["bare"]), slices.Max(thrRuns["bare"]))
	fmt.Fprintf(stderr, "  %-28s %8.3f   (%.1f steps/s; min %.3f, max %.3f)\n", "cairn remote steps", thr["cairn"], float64(c.steps)/thr["cairn"], slices.Min(thrRuns["cairn"]), slices.Max(thrRuns["cairn"]))
	fmt.Fprintf(stderr, "  ratio cairn/bare %.3f\n", thr["cairn"]/thr["bare"])
	return nil
}

type bench struct {
	cfg    config
	prog   cairn.Program // this binary, hashed once rather than in every timed run
	exe    string
	root   string
	spec   string
	client kubernetes.Interface
	enc    *json.Encoder
	stderr io.Writer
}

func (b *bench) measure(ctx context.Context, tool string, n, i int) (float64, error) {
	kind := "latency"
	if n > 1 {
		kind = "throughput"
	}
	dir := filepath.Join(b.root, fmt.Sprintf("%s-%s-%d", kind, tool, i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	var (
		d   time.Duration
		err error
	)
	if tool == "bare" {
		d, err = b.bare(ctx, dir, n)
	} else {
		d, err = b.cairn(ctx, dir, n)
	}
	if err != nil {
		return 0, fmt.Errorf("%s %s run %d: %w", kind, tool, i, err)
	}
	r := result{Kind: kind, Tool: tool, Jobs: n, Run: i, Seconds: d.Seconds()}
	return r.Seconds, b.enc.Encode(r)
}

// bare creates n Jobs running this binary in trivial mode, with the
// resources the cairn steps request and the same Job settings (Indexed,
// restartPolicy Never), and watches them until all are complete.
func (b *bench) bare(ctx context.Context, dir string, n int) (time.Duration, error) {
	start := time.Now()
	jobs := b.client.BatchV1().Jobs(b.cfg.namespace)
	run := strings.ToLower(filepath.Base(dir))
	sel := "cairn-bench-run=" + run
	one := int32(1)
	indexed := batchv1.IndexedCompletion
	q := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	for i := range n {
		j := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", run, i), Labels: map[string]string{"cairn-bench-run": run}},
			Spec: batchv1.JobSpec{
				CompletionMode: &indexed, Completions: &one, Parallelism: &one, BackoffLimit: new(int32),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{
						Name: "step", Image: b.cfg.image,
						Command:   []string{b.exe, "trivial", filepath.Join(dir, fmt.Sprintf("result-%d", i))},
						Resources: corev1.ResourceRequirements{Requests: q, Limits: q},
					}},
				}},
			},
		}
		if _, err := jobs.Create(ctx, j, metav1.CreateOptions{}); err != nil {
			return 0, fmt.Errorf("create job: %w", err)
		}
	}
	defer func() {
		bg := metav1.DeletePropagationBackground
		_ = jobs.DeleteCollection(context.WithoutCancel(ctx), metav1.DeleteOptions{PropagationPolicy: &bg}, metav1.ListOptions{LabelSelector: sel})
	}()
	w, err := jobs.Watch(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return 0, err
	}
	defer w.Stop()
	done := map[string]bool{}
	for ev := range w.ResultChan() {
		j, ok := ev.Object.(*batchv1.Job)
		if !ok {
			continue
		}
		for _, c := range j.Status.Conditions {
			if c.Status != corev1.ConditionTrue {
				continue
			}
			switch c.Type {
			case batchv1.JobComplete:
				done[j.Name] = true
			case batchv1.JobFailed:
				return 0, fmt.Errorf("a bare job failed: %s", c.Message)
			}
		}
		if len(done) == n {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("watch ended: %v", ctx.Err())
}

// cairn runs n remote steps through cairn.Run (remotebench.Run).
func (b *bench) cairn(ctx context.Context, dir string, n int) (time.Duration, error) {
	open := func(o *cluster.Options) (*cluster.Client, error) {
		mux := cli.DefaultClusters()
		mux.Register("k8s", &k8scluster.Opener{})
		return mux.Open(ctx, b.spec, o)
	}
	return remotebench.Run(ctx, open, &b.prog, dir, n, b.stderr, "cairn")
}
