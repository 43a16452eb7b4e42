package k8scluster

import (
	"regexp"
	"strings"
	"testing"
)

// Job names are DNS labels short enough for an Indexed Job's pod host
// names, deterministic, and different for names that differ only where
// they were cut or replaced.
func TestJobName(t *testing.T) {
	label := regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	long := strings.Repeat("a", 200)
	names := []string{"train_4406d67d", "ngram.train-4406d67d", "ngram_train-4406d67d", "x", "_", "-.-", long, long + "b", "évil; $(touch x)"}
	seen := map[string]string{}
	for _, n := range names {
		got := jobName(n, 12)
		if !label.MatchString(got) || len(got) > maxJobName || !strings.HasSuffix(got, "-a12") {
			t.Errorf("jobName(%q) = %q: not a DNS label of at most %d characters ending in -a12", n, got, maxJobName)
		}
		if got != jobName(n, 12) {
			t.Errorf("jobName(%q) is not deterministic", n)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("jobName(%q) = jobName(%q) = %q", n, other, got)
		}
		seen[got] = n
	}
	if jobName("a", 1) == jobName("a", 2) {
		t.Error("attempts share a Job name")
	}
}

func TestParseID(t *testing.T) {
	for _, bad := range []string{"", "name", "/uid", "name/"} {
		if _, _, err := parseID(bad); err == nil {
			t.Errorf("parseID(%q) accepted it", bad)
		}
	}
	if n, u, err := parseID("job-1/0f1e"); n != "job-1" || u != "0f1e" || err != nil {
		t.Errorf("parseID = %q, %q, %v", n, u, err)
	}
}
