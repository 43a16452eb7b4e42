package cairn

import (
	"fmt"

	"example.com/cairn/cluster"
	"example.com/cairn/internal/statusfile"
)

// recordedResources returns spec's resource request as the remote record
// keeps it, for run records (package runrecord).
func recordedResources(spec *RemoteSpec) *statusfile.Resources {
	res := spec.Resources
	r := &statusfile.Resources{CPUs: max(res.CPUs, 1), MemoryBytes: res.Memory, DiskBytes: res.Disk,
		Replicas: max(spec.Replicas, 1), TimeLimitS: res.TimeLimit.Seconds()}
	if d := res.Device; d != (cluster.Device{}) {
		kind := map[cluster.DeviceKind]string{cluster.GPUDevice: "gpu", cluster.TPUDevice: "tpu"}[d.Kind]
		r.Device = fmt.Sprintf("%s:%s×%d", kind, d.Type, max(d.Count, 1))
	}
	return r
}
