package cairn

import (
	"context"
	"os"
	"sync"
	"time"

	"example.com/cairn/cluster"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
)

// Logs of remote steps (see statusfile.LogKey for the numbering). A runner
// submitting a step's job first claims the next attempt-N.log under the
// step's output path (through ctl, its own bucket), and submits the job
// with FirstAttempt N: the job's first attempt logs to attempt-N.log and
// the cluster's retries and the scheduler's restarts of it to the numbers
// after. A runner adopting a job (a takeover) keeps the job's numbers. On a
// local or shared disk the job writes its logs under the output path
// directly; on an object store it writes them on the runner's disk, and
// the runner uploads them every LogUploadInterval while they grow and once
// the job has ended.

// claimJobLog claims the log number of a job about to be submitted for the
// step of out: the attempt's own log's, if the step's function (calling
// RemoteFunc.Call) has logged nothing to it yet, else the next free one.
func claimJobLog(ctx context.Context, ctl *store.Bucket, out *Output) (int, error) {
	if out.alog != nil {
		if n, ok := out.alog.release(ctx, false); ok {
			return n, nil
		}
	}
	n, err := statusfile.ClaimLog(ctx, ctl)
	if err != nil {
		return 0, err
	}
	out.logKey = statusfile.LogKey(n)
	return n, nil
}

// adoptedLog prepares the attempt at out for adopting a job, which logs
// to its own, earlier, attempt logs: the attempt's own log is deleted if
// the step's function has logged nothing to it yet, so that the job's log
// is the latest.
func adoptedLog(ctx context.Context, out *Output) {
	if out.alog != nil {
		out.alog.release(ctx, true)
	}
}

// adoptedLogNumber returns the number of the latest attempt of the job
// recorded in logs (statusfile.Remote.Logs), for an adopted job to go on
// numbering from; 0 if unknown.
func adoptedLogNumber(logs []string) int {
	if len(logs) == 0 {
		return 0
	}
	n, _ := statusfile.LogNumber(logs[len(logs)-1])
	return n
}

// noteJobLog records the job's latest attempt log as the step's.
func noteJobLog(out *Output, j *cluster.Job) {
	if a := j.Attempts(); len(a) > 0 {
		if n, ok := statusfile.LogNumber(a[len(a)-1].LogPath); ok {
			out.logKey = statusfile.LogKey(n)
		}
	}
}

// syncLogs uploads the job's logs through ctl every LogUploadInterval
// while they grow, until the returned stop is called.
func (r *remoteRunner) syncLogs(ctx context.Context, ctl *store.Bucket, j *cluster.Job) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(LogUploadInterval)
		defer t.Stop()
		sizes := map[string]int64{}
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			changed := false
			for _, a := range j.Attempts() {
				if fi, err := os.Stat(a.LogPath); err == nil && fi.Size() != sizes[a.LogPath] {
					sizes[a.LogPath], changed = fi.Size(), true
				}
			}
			if changed {
				r.copyLogs(ctx, ctl, j)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}
