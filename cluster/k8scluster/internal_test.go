package k8scluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"example.com/cairn/cluster/driver"
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

// The prelude of a pack's containers runs, for each completion index, the
// element of that index with its own arguments and environment, exactly as
// given (no value is ever seen by a shell, whatever the names of the
// element's variables), and cairn's variables win over the element's.
func TestPackPrelude(t *testing.T) {
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	hostile := []string{`$(touch ` + canary + `)`, "`touch " + canary + "`", `'; touch ` + canary + `; '`, "two\nlines", "", " x ", `*`, `-n`, `a=b`}
	print := []string{"/bin/sh", "-c", `for a; do printf '<%s>' "$a"; done; printf '|%s|%s|%s|%s|%s|%s' "$CAIRN_JOB_ID" "$CAIRN_ATTEMPT" "$CAIRN_REPLICA" "${cairn_k-unset}" "$V" "${CAIRN_K8S_JOB-unset}"`, "sh"}
	specs := make([]*driver.JobSpec, 3)
	for i := range specs {
		specs[i] = &driver.JobSpec{
			Command: append(slices.Clone(print), hostile[i:]...),
			Attempt: 4 + i,
			Env: map[string]string{"V": hostile[i] + "v", "cairn_k": "7", "cairn_i": "x", "cairn_e": "-1",
				"cairn_x": "1", "CAIRN_K8S_JOB": "evil", "CAIRN_JOB_ID": "evil", "CAIRN_REPLICA": "9"},
		}
	}
	specs[1].Env = nil
	table := packTable(specs, make([]error, len(specs)))
	run := func(index, mode string, rest ...string) (string, int) {
		t.Helper()
		argv := slices.Concat([]string{"-c", packPrelude, "cairn-pack", packStartScript + `exec "$@"`, mode, ""}, table, rest)
		cmd := exec.Command("/bin/sh", argv...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "JOB_COMPLETION_INDEX=" + index, "CAIRN_K8S_JOB=pack", "CAIRN_K8S_JOB_UID=uid", "CAIRN_K8S_RESTARTS=1"}
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	for i, spec := range specs {
		got, code := run(strconv.Itoa(i), "step")
		want := ""
		for _, a := range spec.Command[4:] {
			want += "<" + a + ">"
		}
		v, k := "", "unset"
		if spec.Env != nil {
			v, k = spec.Env["V"], "7"
		}
		want += fmt.Sprintf("|pack/uid/%d|%d|0|%s|%s|unset", i, spec.Attempt+1, k, v)
		if code != 0 || got != want {
			t.Errorf("element %d: %q (exit %d), want %q", i, got, code, want)
		}
	}
	// Setup runs the setup command, in the element's environment.
	if got, code := run("2", "setup", print[0], print[1], print[2], print[3], "setup arg"); code != 0 ||
		got != fmt.Sprintf("<setup arg>|pack/uid/2|7|0|7|%sv|unset", hostile[2]) {
		t.Errorf("setup of element 2: %q (exit %d)", got, code)
	}
	if got, code := run("3", "step"); code != 126 || got != "" {
		t.Errorf("an index outside the pack: %q, exit %d; want exit 126", got, code)
	}
	if _, err := os.Stat(canary); err == nil {
		t.Error("a hostile value was run by a shell")
	}
}

func TestParseElementID(t *testing.T) {
	for _, bad := range []string{"a/b", "a/b/", "a/b/x", "a/b/-1", "a/b/01", "/b/1", "a//1", "a/b/1/2"} {
		if _, _, _, ok := parseElementID(bad); ok {
			t.Errorf("parseElementID(%q) accepted it", bad)
		}
	}
	if n, u, i, ok := parseElementID("pack/0f1e/12"); n != "pack" || u != "0f1e" || i != 12 || !ok {
		t.Errorf("parseElementID = %q, %q, %d, %v", n, u, i, ok)
	}
	if _, _, err := parseID("pack/0f1e/12"); err == nil {
		t.Error("parseID accepted an element's ID")
	}
}

func TestInIndexes(t *testing.T) {
	for _, c := range []struct {
		set  string
		i    int
		want bool
	}{{"", 0, false}, {"0", 0, true}, {"1,3-5", 4, true}, {"1,3-5", 2, false}, {"1,3-5", 5, true}, {"10-12", 1, false}, {"7", 70, false}} {
		if got := inIndexes(c.set, c.i); got != c.want {
			t.Errorf("inIndexes(%q, %d) = %v", c.set, c.i, got)
		}
	}
}

// A pack whose tables would make a large Job is split into Jobs within
// maxPackBytes, keeping the order of the specs.
func TestPackChunks(t *testing.T) {
	big := strings.Repeat("x", maxPackBytes/3)
	var specs []*driver.JobSpec
	for range 7 {
		specs = append(specs, &driver.JobSpec{Name: "s", Command: []string{"/bin/true", big}})
	}
	chunks := packChunks(specs)
	total := 0
	for _, c := range chunks {
		size := 0
		for _, s := range c {
			size += tableBytes(s)
		}
		if len(c) == 0 || len(c) > 1 && size > maxPackBytes {
			t.Errorf("chunk of %d specs, %d bytes", len(c), size)
		}
		for _, s := range c {
			if s != specs[total] {
				t.Fatal("chunks do not keep the order of the specs")
			}
			total++
		}
	}
	if total != len(specs) || len(chunks) < 3 {
		t.Errorf("%d specs in %d chunks", total, len(chunks))
	}
	small := []*driver.JobSpec{{Name: "s", Command: []string{"/bin/true"}}, {Name: "t", Command: []string{"/bin/true"}}}
	if got := packChunks(small); len(got) != 1 || len(got[0]) != 2 {
		t.Errorf("small pack split: %v", got)
	}
}
