package runrecord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"example.com/cairn/store"
)

// UsageDir is where, under a remote step's output path, each job replica
// reports what it used: UsageDir/JOB_ID-rREPLICA.json.
const UsageDir = ".cairn_usage"

// Usage is one job replica's usage report, written by the job's worker
// process ("prog worker") when the step's function returns: its own and
// its waited-for children's getrusage(2), so it is measured the same way
// on every cluster backend, with or without Slurm accounting.
type Usage struct {
	JobID       string  `json:"job_id"`
	Replica     int     `json:"replica"`
	Host        string  `json:"host"`
	MaxRSSBytes int64   `json:"max_rss_bytes"`
	CPUUserS    float64 `json:"cpu_user_s"`
	CPUSystemS  float64 `json:"cpu_system_s"`
	Source      string  `json:"source"`
	// Started and Ended are when the worker process began and when it
	// reported: the job's running time, after any wait in the cluster's
	// queue.
	Started time.Time `json:"started,omitzero"`
	Ended   time.Time `json:"ended,omitzero"`
}

func usageKey(jobID string, replica int) (string, error) {
	if jobID == "" || strings.ContainsAny(jobID, "/\\") || strings.HasPrefix(jobID, ".") {
		return "", fmt.Errorf("runrecord: bad job id %q", jobID)
	}
	return fmt.Sprintf("%s/%s-r%d.json", UsageDir, jobID, replica), nil
}

// WriteUsage stores u under the step's output bucket b, which must not be
// the step's reserved view (cairn.Output.Bucket refuses .cairn files).
func WriteUsage(ctx context.Context, b *store.Bucket, u Usage) error {
	key, err := usageKey(u.JobID, u.Replica)
	if err != nil {
		return err
	}
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	_, err = b.Write(ctx, key, data)
	return err
}

// ReadUsage returns the reports of job jobID's replicas under b.
func ReadUsage(ctx context.Context, b *store.Bucket, jobID string) ([]Usage, error) {
	if _, err := usageKey(jobID, 0); err != nil {
		return nil, err
	}
	var out []Usage
	for key, err := range b.List(ctx, UsageDir) {
		if errors.Is(err, store.ErrNotExist) {
			break
		}
		if err != nil {
			return out, err
		}
		base := path.Base(key)
		if !strings.HasPrefix(base, jobID+"-r") || !strings.HasSuffix(base, ".json") {
			continue
		}
		data, _, err := b.Read(ctx, key)
		if err != nil {
			return out, err
		}
		var u Usage
		if err := json.Unmarshal(data, &u); err != nil || u.JobID != jobID {
			continue
		}
		out = append(out, u)
	}
	return out, nil
}
