package statusfile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"example.com/cairn/store"
)

// RemoteKey is the provenance record of a step that ran as a cluster job,
// and LogsDir the directory of its jobs' logs (attempt-N.log), both under
// the step's output path.
const (
	RemoteKey = ".cairn_remote.json"
	LogsDir   = ".cairn_logs"
)

// RemoteFormat is the version of the remote record format.
const RemoteFormat = 1

// Program identifies the binary a job ran.
type Program struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Build  string `json:"build,omitempty"`
}

// Remote records how a step ran as a cluster job: written by the submitting
// runner when it submits (or adopts) the job and again when the job ends.
type Remote struct {
	Format  int      `json:"format"`
	Cluster string   `json:"cluster"`
	Job     string   `json:"job"`
	JobIDs  []string `json:"job_ids"`
	Adopted bool     `json:"adopted,omitempty"`
	Program Program  `json:"program"`
	// LogDir is where the jobs wrote their logs; Logs lists one file per
	// attempt, under the step's output path when it is local.
	LogDir    string    `json:"log_dir"`
	Logs      []string  `json:"logs,omitempty"`
	State     string    `json:"state"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Submitted time.Time `json:"submitted"`
	Finished  time.Time `json:"finished,omitzero"`
	WorkerID  string    `json:"worker_id"`
	// UID is the user ID of the submitting runner's process.
	UID *int `json:"uid,omitempty"`
	// Resources is what the job asked for, per replica (absent in records
	// written before it was added).
	Resources *Resources `json:"resources,omitempty"`
	// Token is the adoption secret of the job: its tag is an HMAC of the
	// output path under Token (see the remote runner). Written before the
	// job is submitted; readable by whoever can read the step's output.
	Token string `json:"token,omitempty"`
}

// WriteRemote replaces the remote record.
func WriteRemote(ctx context.Context, b *store.Bucket, r Remote) error {
	r.Format = RemoteFormat
	if r.JobIDs == nil {
		r.JobIDs = []string{}
	}
	data, err := marshalIndent(r)
	if err != nil {
		return err
	}
	_, err = b.Write(ctx, RemoteKey, data)
	return err
}

// ReadRemote returns the remote record; ok is false if there is none.
func ReadRemote(ctx context.Context, b *store.Bucket) (r Remote, ok bool, err error) {
	data, _, err := read(ctx, b, RemoteKey)
	if errors.Is(err, store.ErrNotExist) {
		return Remote{}, false, nil
	}
	if err != nil {
		return Remote{}, false, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return Remote{}, false, fmt.Errorf("%s: %w: %v", b.URL(RemoteKey), ErrCorrupt, err)
	}
	return r, true, nil
}

// Resources is a remote step's resource request, as recorded in Remote.
type Resources struct {
	CPUs        int     `json:"cpus"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	DiskBytes   int64   `json:"disk_bytes,omitempty"`
	Device      string  `json:"device,omitempty"`
	Replicas    int     `json:"replicas,omitempty"`
	TimeLimitS  float64 `json:"time_limit_s,omitempty"`
}
