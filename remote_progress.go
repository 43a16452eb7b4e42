package cairn

import (
	"strings"
	"sync"
	"time"

	"example.com/cairn/cluster"
)

// jobWatchInterval is how often a remote step's job is checked for state
// changes to report (StepJob events). It reads the job's in-memory state,
// which the cluster client keeps current; it does not query the scheduler.
const jobWatchInterval = 250 * time.Millisecond

// watchJob logs the "step started" line of the remote step out runs, if
// not logged yet, and reports j's progress as StepJob events: now, then on
// every change of its id, state or log until the returned stop is called.
// stop waits for the watcher to end.
func (o *Output) watchJob(j *cluster.Job, clusterName string, submitted time.Time) (stop func()) {
	if !o.startLogged {
		o.startLogged = true
		o.Logger.Info("step started", "worker", o.WorkerID, "cluster", clusterName, "job", j.Name(), "job_id", j.ID())
	}
	if o.events == nil {
		return func() {}
	}
	var last Event
	report := func() {
		e := Event{Kind: StepJob, Step: o.label, Path: o.Path, Worker: o.WorkerID, Cluster: clusterName,
			JobID: j.ID(), JobState: strings.ToUpper(j.Status().String()), Submitted: submitted}
		if a := j.Attempts(); len(a) > 0 {
			e.LogPath = a[len(a)-1].LogPath
		}
		if e.JobID == last.JobID && e.JobState == last.JobState && e.LogPath == last.LogPath {
			return
		}
		last = e
		o.events.emit(e)
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(jobWatchInterval)
		defer t.Stop()
		for {
			report()
			select {
			case <-quit:
				return
			case <-j.Done():
				report()
				return
			case <-t.C:
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
	}
}
