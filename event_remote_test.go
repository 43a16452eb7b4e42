package cairn_test

import (
	"bytes"
	"log/slog"
	"regexp"
	"slices"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cluster"
	"example.com/cairn/cluster/localcluster"
)

// A remote step reports its job (StepJob: cluster, job id, state, log
// path), and a step remote through Step.Remote logs its "step started"
// line with the job id.
func TestEventsReportRemoteJobs(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()
	c := cluster.NewClient(localcluster.New(nil), &cluster.Options{Name: "local"})
	defer c.Close()
	var ev eventLog
	var logs bytes.Buffer
	ro := &cairn.RemoteOptions{
		Cluster: c,
		WorkerArgs: func(w cairn.WorkerJob) []string {
			return []string{workerArg, "--step", w.Step, "--path", w.Path, "--prefix", prefix, "--program-digest", w.Digest}
		},
	}
	_, err := cairn.Run(t.Context(), testPipeline("basic", prefix), &cairn.RunOptions{Prefix: prefix, Storage: testStorage(), Remote: ro,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	var running, jobs []cairn.Event
	for _, e := range ev.all() {
		switch e.Kind {
		case cairn.StepRunning:
			// One per attempt; a second one of the same attempt says its
			// log file was created.
			if !slices.ContainsFunc(running, func(r cairn.Event) bool { return r.Worker == e.Worker }) {
				running = append(running, e)
			}
		case cairn.StepJob:
			jobs = append(jobs, e)
		}
	}
	remote := 0
	for _, e := range running {
		if e.Remote {
			remote++ // only "marked": "square" calls a RemoteFunc from a plain Func
		}
	}
	if remote != 1 || len(running) != 4 {
		t.Errorf("StepRunning events %d (%d remote), want 4 (1 remote)", len(running), remote)
	}
	final := map[string]cairn.Event{}
	for _, e := range jobs {
		if e.Cluster != "local" || e.JobID == "" || e.Worker == "" || e.Submitted.IsZero() || e.LogPath == "" {
			t.Errorf("incomplete StepJob event %+v", e)
		}
		final[e.Step] = e
	}
	if len(final) != 2 {
		t.Errorf("StepJob events for %d steps, want 2 (square, marked)", len(final))
	}
	for id, e := range final {
		if e.JobState != "SUCCEEDED" {
			t.Errorf("last job state of %s = %q, want SUCCEEDED", id, e.JobState)
		}
	}
	re := regexp.MustCompile(`msg="step started" step=marked_[0-9a-f]{8} worker=\S+ cluster=local job=\S+ job_id=\S+`)
	if !re.Match(logs.Bytes()) {
		t.Errorf("no step started line with the job id for marked:\n%s", logs.String())
	}
}
