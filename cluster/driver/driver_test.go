package driver_test

import (
	"slices"
	"testing"

	"example.com/cairn/cluster/driver"
)

// A job does not inherit what describes the submitter's own job and
// program copy.
func TestInheritedEnv(t *testing.T) {
	got := driver.InheritedEnv([]string{"HOME=/h", "SLURM_JOB_ID=7", "SLURM_CONF=/etc/slurm.conf",
		"SLURM_RESTART_COUNT=3", driver.VerifiedProgramEnv + "=sha256:ab /tmp/p", "CAIRN_PREFIX=/p"})
	want := []string{"HOME=/h", "SLURM_CONF=/etc/slurm.conf", "CAIRN_PREFIX=/p"}
	if !slices.Equal(got, want) {
		t.Errorf("InheritedEnv = %q, want %q", got, want)
	}
}
