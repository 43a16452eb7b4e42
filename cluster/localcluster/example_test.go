package localcluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/localcluster"
)

func Example() {
	mux := new(cluster.Mux)
	mux.Register("local", &localcluster.Opener{})
	ctx := context.Background()
	c, err := mux.Open(ctx, "local?workers=2", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	logs, _ := os.MkdirTemp("", "cairn-example-")
	defer os.RemoveAll(logs)

	job, err := c.Submit(ctx, cluster.JobSpec{
		Name:        "Say Hello!",
		Command:     []string{"/bin/sh", "-c", `echo "hello, $WHO"; exit 3`},
		Resources:   cluster.Resources{CPUs: 1},
		Environment: cluster.Environment{Vars: map[string]string{"WHO": "cluster"}},
		LogDir:      logs,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	status, err := job.Wait(ctx)
	fmt.Println(job.Name(), status)
	if je, ok := errors.AsType[*cluster.JobError](err); ok {
		fmt.Printf("exit code %d, log: %s", je.ExitCode, je.LogTail)
	}
	// Output:
	// say-hello failed
	// exit code 3, log: hello, cluster
}
