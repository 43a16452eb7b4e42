package main

import (
	"example.com/cairn"
	"example.com/cairn/cluster"
)

// trainRemote is the job request of the train step: it runs as a cluster
// job — a local subprocess by default, a Slurm job with CAIRN_CLUSTER=slurm
// — while the other steps run in the runner's process.
func trainRemote() *cairn.RemoteSpec {
	return &cairn.RemoteSpec{Resources: cluster.Resources{CPUs: 1, Memory: 512 * cluster.MiB}}
}
