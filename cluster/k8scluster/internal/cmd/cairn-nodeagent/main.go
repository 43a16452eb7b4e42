// Command cairn-nodeagent plays the kubelet of test Nodes for cairn's
// Kubernetes tests (see package nodeagent for exactly what it plays);
// scripts/services.d/kubernetes.sh starts it.
//
//	cairn-nodeagent -kubeconfig FILE -nodes a,b -dir DIR [-cpu 8 -memory 16Gi -ephemeral-storage 100Gi -gpus 4]
//
// It runs until SIGTERM or SIGINT, then kills the processes of its pods.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"example.com/cairn/cluster/k8scluster/internal/nodeagent"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig `file` of the cluster")
	nodes := flag.String("nodes", "", "comma-separated `names` of the nodes to play")
	dir := flag.String("dir", "", "`directory` for the containers' logs")
	cpu := flag.String("cpu", "8", "each node's CPUs")
	memory := flag.String("memory", "16Gi", "each node's memory")
	disk := flag.String("ephemeral-storage", "100Gi", "each node's ephemeral storage")
	gpus := flag.String("gpus", "4", "each node's nvidia.com/gpu count")
	labels := flag.String("labels", "", "comma-separated KEY=VALUE `labels` added to each node")
	flag.Parse()
	if err := run(*kubeconfig, *nodes, *dir, *cpu, *memory, *disk, *gpus, *labels); err != nil {
		fmt.Fprintln(os.Stderr, "cairn-nodeagent:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, nodes, dir, cpu, memory, disk, gpus, labels string) error {
	if kubeconfig == "" || nodes == "" || dir == "" {
		return fmt.Errorf("-kubeconfig, -nodes and -dir are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	capacity := corev1.ResourceList{}
	for name, v := range map[corev1.ResourceName]string{
		corev1.ResourceCPU: cpu, corev1.ResourceMemory: memory, corev1.ResourceEphemeralStorage: disk, "nvidia.com/gpu": gpus,
	} {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return fmt.Errorf("%s %q: %w", name, v, err)
		}
		capacity[name] = q
	}
	lm := map[string]string{}
	if labels != "" {
		for _, kv := range strings.Split(labels, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("label %q: want KEY=VALUE", kv)
			}
			lm[k] = v
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := nodeagent.Start(ctx, client, nodeagent.Options{
		Nodes: strings.Split(nodes, ","), Capacity: capacity, Labels: lm, Dir: dir, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("cairn-nodeagent: playing the kubelet", "nodes", nodes)
	<-ctx.Done()
	a.Stop()
	return nil
}
