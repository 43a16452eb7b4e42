package clustertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"example.com/cairn/cluster"
	"example.com/cairn/cluster/driver"
)

// Many jobs with one request, submitted at once, are each their own job —
// whether or not the backend packs them (driver.Packer): each has its own
// ID, log, exit status and retry budget; one failing fails no other;
// cancelling one stops no other; a running one is adopted by its own name
// and tag.
func (s *suite) packed(t *testing.T, c *cluster.Client, ctx context.Context) {
	const n = 6
	base := t.TempDir()
	release := filepath.Join(base, "release")
	marker := filepath.Join(base, "retried")
	specs := make([]cluster.JobSpec, n)
	for i := range specs {
		specs[i] = cluster.JobSpec{
			Name:        fmt.Sprintf("packed-%d", i),
			Tag:         fmt.Sprintf("tag-%d", i),
			Command:     sh(`echo "element $1 job $CAIRN_JOB_ID attempt $CAIRN_ATTEMPT value $PACK_VALUE"`, fmt.Sprint(i)),
			Environment: cluster.Environment{Vars: map[string]string{"PACK_VALUE": fmt.Sprintf("v%d '$x'", i)}},
			LogDir:      filepath.Join(base, fmt.Sprint("logs-", i)),
			Resources:   cluster.Resources{CPUs: 1, Memory: 64 * cluster.MiB},
		}
	}
	const (
		fails   = 1 // exits 3
		cancels = 2 // runs until cancelled
		adopted = 3 // runs until released, adopted meanwhile
		retried = 4 // fails its first attempt, succeeds its second
	)
	specs[fails].Command = sh(`echo "element 1 fails"; exit 3`)
	specs[cancels].Command = sh(`echo "element 2 started"; sleep 600`)
	specs[adopted].Command = sh(`echo "element 3 started"; while [ ! -e "$1" ]; do sleep 0.05; done; echo "element 3 released"`, release)
	specs[retried].Command = sh(`if [ -e "$1" ]; then echo "element 4 attempt $CAIRN_ATTEMPT ok"; else : > "$1"; echo "element 4 attempt $CAIRN_ATTEMPT fails"; exit 7; fi`, marker)
	specs[retried].MaxRetriesFailure = 1

	// Submitted concurrently, as a runner submits the ready steps of a
	// pipeline: a backend that packs packs these.
	jobs := make([]*cluster.Job, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range specs {
		wg.Go(func() { jobs[i], errs[i] = c.Submit(ctx, specs[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Submit(%s): %v", specs[i].Name, err)
		}
	}
	defer func() {
		for _, j := range jobs {
			j.Cancel(context.WithoutCancel(ctx))
		}
	}()
	ids := map[string]bool{}
	for _, j := range jobs {
		if ids[j.ID()] {
			t.Fatalf("two jobs share the ID %s", j.ID())
		}
		ids[j.ID()] = true
	}

	waitRunning(t, ctx, jobs[adopted])
	other := c
	if s.h.AdoptAcrossClients {
		other = s.h.New(t)
		defer other.Close()
	}
	a, err := other.Adopt(ctx, specs[adopted])
	if err != nil {
		t.Fatalf("Adopt(%s): %v", specs[adopted].Name, err)
	}
	if a.ID() != jobs[adopted].ID() {
		t.Errorf("adopted %s, want %s", a.ID(), jobs[adopted].ID())
	}
	wrong := specs[adopted]
	wrong.Tag = specs[cancels].Tag // another element's tag
	if _, err := other.Adopt(ctx, wrong); !errors.Is(err, cluster.ErrNotFound) {
		t.Errorf("Adopt with another element's tag = %v, want ErrNotFound", err)
	}

	waitRunning(t, ctx, jobs[cancels])
	if err := jobs[cancels].Cancel(ctx); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if st, _ := jobs[cancels].Wait(ctx); st != cluster.Stopped {
		t.Errorf("cancelled element: %v, want stopped", st)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Wait(ctx); err != nil || st != cluster.Succeeded {
		t.Errorf("adopted element: %v, %v; want succeeded", st, err)
	}
	for i, j := range jobs {
		st, err := j.Wait(ctx)
		switch i {
		case cancels:
			continue
		case fails:
			if je, ok := errors.AsType[*cluster.JobError](err); !ok || je.ExitCode != 3 || st != cluster.Failed || !strings.Contains(je.LogTail, "element 1 fails") {
				t.Errorf("failing element: %v, %v; want failed with exit code 3 and its own log tail", st, err)
			}
			continue
		}
		if err != nil || st != cluster.Succeeded {
			t.Errorf("element %d: %v, %v; want succeeded (its pack-mates' failure and cancellation are not its own)", i, st, err)
		}
	}
	for _, i := range []int{0, 5} {
		want := fmt.Sprintf("element %d job %s attempt 1 value v%d '$x'\n", i, jobs[i].ID(), i)
		if got := lastLog(t, jobs[i]); got != want {
			t.Errorf("element %d log = %q, want %q", i, got, want)
		}
	}
	if got := lastLog(t, jobs[adopted]); got != "element 3 started\nelement 3 released\n" {
		t.Errorf("adopted element log = %q", got)
	}
	at := jobs[retried].Attempts()
	if len(at) != 2 || at[0].ExitCode != 7 || at[1].Status != cluster.Succeeded {
		t.Fatalf("retried element's attempts = %+v; want exit 7, then success", at)
	}
	if got := readLog(t, at[0].LogPath); got != "element 4 attempt 1 fails\n" {
		t.Errorf("retried element, attempt 1 log = %q", got)
	}
	if got := readLog(t, at[1].LogPath); got != "element 4 attempt 2 ok\n" {
		t.Errorf("retried element, attempt 2 log = %q", got)
	}
	// The retry was a submission of its own: no pack-mate ran again.
	for _, i := range []int{0, 5} {
		if n := len(jobs[i].Attempts()); n != 1 {
			t.Errorf("element %d has %d attempts, want 1", i, n)
		}
	}
}

// A driver that packs (Harness.Packs) runs every element of SubmitPack as
// its own job: hostile values reach each element exactly, each element has
// its own ID, log, status and exit code, Cancel stops one element only, and
// Find returns a running element by its own name with its own tag and
// attempt. A pack whose specs differ in their request is refused whole.
func (s *suite) driverPack(t *testing.T, d driver.Scheduler, ctx context.Context) {
	pk, ok := d.(driver.Packer)
	if !ok {
		if s.h.Packs {
			t.Fatalf("harness declares Packs, but %T does not implement driver.Packer", d)
		}
		t.Skip("harness: the backend does not pack (one job per Submit)")
	}
	if pk.MaxPack() < 2 {
		t.Fatalf("MaxPack() = %d, want at least 2", pk.MaxPack())
	}
	base := t.TempDir()
	canary := filepath.Join(base, "canary")
	values := hostileValues(canary)
	weird := "dir with 'quotes' $HOME %j %a %A ; `x` \n $(touch " + canary + ")"
	const n = 4
	specs := make([]*driver.JobSpec, n)
	for i := range specs {
		spec := driverSpec(t, sh(`for a; do printf '<%s>' "$a"; done; printf '<%s>' "$PACK_VALUE"`, append(values, fmt.Sprint(i))...)...)
		spec.Name, spec.Tag, spec.Attempt = fmt.Sprintf("pack-element-%d", i), fmt.Sprintf("tag-%d", i), i+1
		spec.LogDir = filepath.Join(base, weird, fmt.Sprint(i))
		spec.Env = map[string]string{"PACK_VALUE": values[i] + fmt.Sprint(i)}
		specs[i] = &spec
	}
	specs[1].Command = sh(`exit 5`)
	specs[2].Command = sh(`echo started; sleep 600`)

	bad := *specs[0]
	bad.Resources.CPUs = 2
	if _, err := pk.SubmitPack(ctx, []*driver.JobSpec{specs[0], &bad}); err == nil || d.ErrorCode(err) != driver.Invalid {
		t.Errorf("SubmitPack of specs with different requests = %v, want code Invalid", err)
	}

	ids, err := pk.SubmitPack(ctx, specs)
	if err != nil {
		t.Fatalf("SubmitPack: %v", err)
	}
	if len(ids) != n {
		t.Fatalf("SubmitPack returned %d IDs for %d specs", len(ids), n)
	}
	defer func() {
		for _, id := range ids {
			d.Cancel(context.WithoutCancel(ctx), id)
		}
	}()
	for _, i := range []int{0, 3} {
		if st := driverWait(t, ctx, d, ids[i]); st.State != driver.Succeeded {
			t.Errorf("element %d: %+v, want succeeded", i, st)
		}
		data, err := os.ReadFile(filepath.Join(specs[i].LogDir, driver.LogName(specs[i].Attempt)))
		if err != nil {
			t.Fatalf("element %d: %v", i, err)
		}
		want := ""
		for _, v := range append(values, fmt.Sprint(i), values[i]+fmt.Sprint(i)) {
			want += "<" + v + ">"
		}
		if string(data) != want {
			t.Errorf("element %d output differs:\n got %q\nwant %q", i, data, want)
		}
	}
	if st := driverWait(t, ctx, d, ids[1]); st.State != driver.Failed || st.ExitCode != 5 {
		t.Errorf("failing element: %+v, want failed with exit code 5", st)
	}
	// The sleeping element is found by its own name, with its own tag.
	found, err := d.Find(ctx, specs[2].Name)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if len(found) != 1 || found[0].ID != ids[2] || found[0].Tag != specs[2].Tag || found[0].Attempt != specs[2].Attempt {
		t.Errorf("Find(%s) = %+v, want element %s with tag %s, attempt %d", specs[2].Name, found, ids[2], specs[2].Tag, specs[2].Attempt)
	}
	if err := d.Cancel(ctx, ids[2]); err != nil {
		t.Fatalf("Cancel(%s): %v", ids[2], err)
	}
	if st := driverWait(t, ctx, d, ids[2]); st.State != driver.Stopped {
		t.Errorf("cancelled element: %+v, want stopped", st)
	}
	if _, err := os.Stat(canary); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a hostile value was run by a shell: %s exists", canary)
	}
}
