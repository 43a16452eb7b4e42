package slurmcluster

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/cairn/cluster/driver"
)

func packSpecs(t *testing.T, n int) []*driver.JobSpec {
	t.Helper()
	specs := make([]*driver.JobSpec, n)
	for i := range specs {
		specs[i] = &driver.JobSpec{
			Name: "element-" + string(rune('a'+i)), Tag: "tag-" + string(rune('a'+i)), Attempt: i + 1, Replicas: 1,
			Command:   []string{"/bin/sh", "-c", `printf '%s|%s|%s' "$1" "$ELEMENT" "$CAIRN_ATTEMPT"`, "sh", hostile[i%len(hostile)]},
			Env:       map[string]string{"ELEMENT": string(rune('a' + i))},
			LogDir:    filepath.Join(t.TempDir(), "logs"),
			Resources: driver.Resources{CPUs: 1},
		}
	}
	return specs
}

// A pack's batch script lists its elements in a manifest Find can read
// back, and each array index runs its own element only: its argv,
// environment, attempt and log. An index outside the pack runs nothing.
func TestPackScript(t *testing.T) {
	s := &Scheduler{opts: Options{Shell: "/bin/sh"}}
	specs := packSpecs(t, 3)
	script := s.packScript(specs)
	m := parseManifest(script)
	if len(m) != 3 {
		t.Fatalf("manifest = %+v, want 3 elements", m)
	}
	for i, spec := range specs {
		e := m[string(rune('0'+i))]
		if e.name != spec.Name || e.tag != spec.Tag || e.attempt != spec.Attempt {
			t.Errorf("manifest[%d] = %+v, want %s %s %d", i, e, spec.Name, spec.Tag, spec.Attempt)
		}
	}
	for i, spec := range specs {
		cmd := exec.Command("/bin/sh", "-s")
		cmd.Stdin = strings.NewReader(string(script))
		cmd.Env = append(os.Environ(), "SLURM_ARRAY_JOB_ID=77", "SLURM_ARRAY_TASK_ID="+string(rune('0'+i)))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("element %d: %v %s", i, err, out)
		}
		data, err := os.ReadFile(filepath.Join(spec.LogDir, driver.LogName(spec.Attempt)))
		if err != nil {
			t.Fatalf("element %d: %v", i, err)
		}
		want := hostile[i] + "|" + spec.Env["ELEMENT"] + "|" + string(rune('1'+i))
		if string(data) != want {
			t.Errorf("element %d printed %q, want %q", i, data, want)
		}
	}
	cmd := exec.Command("/bin/sh", "-s")
	cmd.Stdin = strings.NewReader(string(script))
	cmd.Env = append(os.Environ(), "SLURM_ARRAY_TASK_ID=3")
	if err := cmd.Run(); err == nil {
		t.Errorf("array index 3 of a pack of 3 ran")
	} else if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 126 {
		t.Errorf("array index 3 of a pack of 3: %v, want exit 126", err)
	}
}

// A pack larger than the cluster's MaxArraySize goes as several arrays;
// if one cannot be submitted, the arrays already submitted are cancelled
// and the pack fails whole.
func TestSubmitPackSplitsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	calls, cancelled := filepath.Join(dir, "calls"), filepath.Join(dir, "cancelled")
	bin := fakeBin(t, map[string]string{
		"sbatch":   `cat >/dev/null; echo x >> '` + calls + `'; n=$(wc -l < '` + calls + `'); if [ "$n" -ge 2 ]; then echo "sbatch: error: Batch job submission failed: Something" >&2; exit 1; fi; echo 500`,
		"scontrol": `echo "MaxArraySize            = 2"`,
		"scancel":  `echo "$@" >> '` + cancelled + `'`,
	})
	s, err := New(&Options{BinDir: bin})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.SubmitPack(ctx, packSpecs(t, 3)); err == nil {
		t.Fatal("SubmitPack succeeded though its second array was refused")
	}
	data, _ := os.ReadFile(cancelled)
	if got := strings.Fields(string(data)); strings.Join(got, " ") != "500_0 500_1" {
		t.Errorf("cancelled %q, want the first array's elements 500_0 500_1", got)
	}

	if os.Getenv("CAIRN_TEST_SLURM") == "" {
		t.Skip("CAIRN_TEST_SLURM is not set: the rest needs a Slurm cluster")
	}
	s, err = New(&Options{Partition: os.Getenv("CAIRN_TEST_SLURM_PARTITION")})
	if err != nil {
		t.Fatal(err)
	}
	s.arraySize = 2
	specs := packSpecs(t, 3)
	ids, err := s.SubmitPack(ctx, specs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || arrayOf(ids[0]) != arrayOf(ids[1]) || arrayOf(ids[2]) == arrayOf(ids[0]) || !strings.HasSuffix(ids[2], "_0") {
		t.Fatalf("IDs %v; want two elements of one array, then one of another", ids)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		sts, err := s.Status(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		done := 0
		for _, st := range sts {
			if st.State == driver.Succeeded {
				done++
			} else if st.State != driver.Pending && st.State != driver.Running {
				t.Fatalf("statuses %+v", sts)
			}
		}
		if done == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %+v after 2 minutes", sts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, spec := range specs {
		data, err := os.ReadFile(filepath.Join(spec.LogDir, driver.LogName(spec.Attempt)))
		if want := hostile[i] + "|" + spec.Env["ELEMENT"] + "|" + string(rune('1'+i)); err != nil || string(data) != want {
			t.Errorf("element %d printed %q (%v), want %q", i, data, err, want)
		}
	}
}
