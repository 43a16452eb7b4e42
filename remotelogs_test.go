package cairn_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cluster"
	"example.com/cairn/cluster/localcluster"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store/filestore"
)

// A remote step's jobs number their logs after the step's earlier
// attempts: re-running a failed remote step logs to attempt-2.log and
// leaves attempt-1.log intact, on a local prefix (the job writes under the
// output path) and on one the job cannot write (the runner copies the
// logs). The failure record names the latest attempt's log.
func TestRemoteJobLogsNeverShareANumber(t *testing.T) {
	t.Parallel()
	for _, shared := range []bool{false, true} {
		dir := t.TempDir()
		runOnce := func() {
			t.Helper()
			var err error
			if shared {
				prefix := "shared://" + dir
				storage := testStorage()
				storage.Register("shared", filestore.URLOpener{})
				c := cluster.NewClient(localcluster.New(nil), &cluster.Options{Name: "local", LogRoot: t.TempDir()})
				defer c.Close()
				_, err = cairn.Run(t.Context(), testPipeline("fail", prefix), &cairn.RunOptions{Prefix: prefix, Storage: storage, Logger: discardLogger(),
					Remote: &cairn.RemoteOptions{Cluster: c, WorkerArgs: func(w cairn.WorkerJob) []string {
						return []string{workerArg, "--step", w.Step, "--prefix", dir, "--program-digest", w.Digest}
					}}})
			} else {
				_, err = remoteRun(t, t.Context(), "fail", dir, nil)
			}
			if !errors.Is(err, cluster.ErrFailed) {
				t.Fatalf("shared=%v: run = %v, want the job's failure", shared, err)
			}
		}
		runOnce()
		logs := filepath.Join(stepDir(t, dir, "fails"), statusfile.LogsDir)
		first := readJSON(t, filepath.Join(logs, "attempt-1.log"))
		if !strings.Contains(first, "about to fail") {
			t.Errorf("shared=%v: attempt-1.log = %q", shared, first)
		}
		runOnce()
		if got := readJSON(t, filepath.Join(logs, "attempt-1.log")); got != first {
			t.Errorf("shared=%v: attempt-1.log changed:\n%s\nwas\n%s", shared, got, first)
		}
		if second := readJSON(t, filepath.Join(logs, "attempt-2.log")); !strings.Contains(second, "about to fail") {
			t.Errorf("shared=%v: attempt-2.log = %q", shared, second)
		}
		if entries, _ := os.ReadDir(logs); len(entries) != 2 {
			t.Errorf("shared=%v: %d logs, want 2", shared, len(entries))
		}
		var f statusfile.Failure
		if err := decodeFile(filepath.Join(filepath.Dir(logs), statusfile.FailureKey), &f); err != nil || f.Log != statusfile.LogKey(2) {
			t.Errorf("shared=%v: failure record %+v, %v; want log %s", shared, f, err, statusfile.LogKey(2))
		}
	}
}
