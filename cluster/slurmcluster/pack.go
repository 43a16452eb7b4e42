package slurmcluster

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"example.com/cairn/cluster/driver"
)

// Packs (driver.Packer). A pack of n jobs with the same request is one
// Slurm job array, sbatch --array=0-(n-1), named packName and commented
// packComment. Its batch script holds, for every array index, the element's
// log directory, attempt, environment and argv in a case on
// SLURM_ARRAY_TASK_ID, so that which element runs which job is fixed at
// submission, and a manifest of comment lines, one per element:
//
//	# cairn-element index=3 name=NAME tag=TAG attempt=N
//
// which Find reads back from slurmctld (scontrol write batch_script) to
// find an element by its own name and tag. Each element is its own job for
// everything else: its ID is ARRAY_INDEX ("1234_5"), which squeue -r,
// scontrol and scancel accept; it logs to its own attempt-N.log; its
// CAIRN_JOB_ID is its ID.
const (
	packName    = "cairn-pack"
	packComment = "cairn-pack:1"
	// DefaultMaxPack is Options.MaxPack when it is 0: within Slurm's
	// default MaxArraySize (1001, so indices up to 1000).
	DefaultMaxPack = 1000
)

// MaxPack implements driver.Packer.
func (s *Scheduler) MaxPack() int {
	if s.opts.MaxPack > 0 {
		return s.opts.MaxPack
	}
	return DefaultMaxPack
}

// SubmitPack implements driver.Packer: one sbatch --array for all specs.
func (s *Scheduler) SubmitPack(ctx context.Context, specs []*driver.JobSpec) ([]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	invalid := func(format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		return &Error{Command: "sbatch", Code: driver.Invalid, Stderr: msg}
	}
	if len(specs) > s.MaxPack() {
		return nil, invalid("a pack of %d jobs exceeds MaxPack %d", len(specs), s.MaxPack())
	}
	for i, spec := range specs {
		if err := spec.Validate(); err != nil {
			return nil, &Error{Command: "sbatch", Code: driver.Invalid, Stderr: fmt.Sprintf("pack element %d: %v", i, err), Err: err}
		}
		if !driver.Packable(specs[0], spec) {
			return nil, invalid("pack element %d (%s) does not share the request of element 0 (%s)", i, spec.Name, specs[0].Name)
		}
	}
	if err := s.supported(specs[0]); err != nil {
		return nil, err
	}
	args := s.sbatchArgs(specs[0])
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--job-name="):
			args[i] = "--job-name=" + packName
		case strings.HasPrefix(a, "--comment="):
			args[i] = "--comment=" + packComment
		}
	}
	// A cluster whose MaxArraySize is below the pack gets several arrays;
	// if one cannot be submitted, those already submitted are cancelled,
	// so that the pack is submitted whole or not at all.
	limit, err := s.maxArraySize(ctx)
	if err != nil {
		return nil, err
	}
	var ids []string
	for chunk := range slices.Chunk(specs, limit) {
		id, err := s.sbatch(ctx, s.packScript(chunk), append(slices.Clone(args), "--array=0-"+strconv.Itoa(len(chunk)-1)))
		if err != nil {
			for _, done := range ids {
				_ = s.Cancel(context.WithoutCancel(ctx), done)
			}
			return nil, err
		}
		for i := range chunk {
			ids = append(ids, id+"_"+strconv.Itoa(i))
		}
	}
	return ids, nil
}

var maxArraySizeRE = regexp.MustCompile(`(?m)^MaxArraySize\s*=\s*(\d+)`)

// maxArraySize returns the cluster's MaxArraySize (array indices go up to
// one less), read once from scontrol show config; DefaultMaxPack if
// scontrol does not say.
func (s *Scheduler) maxArraySize(ctx context.Context) (int, error) {
	s.mu.Lock()
	n := s.arraySize
	s.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	out, err := s.run(ctx, nil, "scontrol", "show", "config")
	if err != nil {
		return 0, err
	}
	n = DefaultMaxPack
	if m := maxArraySizeRE.FindSubmatch(out); m != nil {
		if v, err := strconv.Atoi(string(m[1])); err == nil && v > 0 {
			n = v
		}
	}
	s.mu.Lock()
	s.arraySize = n
	s.mu.Unlock()
	return n, nil
}

// packScript returns the batch script of the job array running specs.
func (s *Scheduler) packScript(specs []*driver.JobSpec) []byte {
	var b strings.Builder
	s.scriptHeader(&b)
	fmt.Fprintf(&b, "# %s: %d jobs, one per array index.\n", packComment, len(specs))
	for i, spec := range specs { // names and tags are validated: no spaces, no newlines
		fmt.Fprintf(&b, "# cairn-element index=%d name=%s tag=%s attempt=%d\n", i, spec.Name, spec.Tag, spec.Attempt)
	}
	b.WriteString("cairn_job_id=\"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n")
	b.WriteString("case \"${SLURM_ARRAY_TASK_ID:-}\" in\n")
	for i, spec := range specs {
		fmt.Fprintf(&b, "%d)\n", i)
		writeElement(&b, spec, "\t")
		b.WriteString("\t;;\n")
	}
	b.WriteString("*)\n\techo \"cairn: array index ${SLURM_ARRAY_TASK_ID:-(none)} is not in this pack\" >&2\n\texit 126\n\t;;\nesac\n")
	s.scriptBody(&b, specs[0])
	return []byte(b.String())
}

// element is one line of a pack's manifest.
type element struct {
	name, tag string
	attempt   int
}

// parseManifest returns the elements a pack's batch script lists, by
// array index.
func parseManifest(script []byte) map[string]element {
	m := map[string]element{}
	for line := range strings.SplitSeq(string(script), "\n") {
		rest, ok := strings.CutPrefix(line, "# cairn-element ")
		if !ok {
			continue
		}
		var idx string
		var e element
		for f := range strings.FieldsSeq(rest) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "index":
				idx = v
			case "name":
				e.name = v
			case "tag":
				e.tag = v
			case "attempt":
				e.attempt, _ = strconv.Atoi(v)
			}
		}
		if idx != "" && e.name != "" {
			m[idx] = e
		}
	}
	return m
}

// manifest returns the manifest of the pack whose array job ID is id, read
// from slurmctld once (a submitted batch script never changes).
func (s *Scheduler) manifest(ctx context.Context, id string) (map[string]element, error) {
	s.mu.Lock()
	m, ok := s.manifests[id]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	out, err := s.run(ctx, nil, "scontrol", "write", "batch_script", id, "-")
	if err != nil {
		return nil, err
	}
	m = parseManifest(out)
	s.mu.Lock()
	s.manifests[id] = m
	s.mu.Unlock()
	return m, nil
}

// jobIDRE matches the IDs this driver hands out: a job, or an element of an
// array.
var jobIDRE = regexp.MustCompile(`^[0-9]+(_[0-9]+)?$`)

// arrayOf returns the array job ID of an element ID ("1234" of "1234_5"),
// or "" for a plain job ID.
func arrayOf(id string) string {
	a, _, ok := strings.Cut(id, "_")
	if !ok {
		return ""
	}
	return a
}

// arrayDetails runs scontrol show job -o for the array job id, which lists
// every element that has started, and returns their details by element ID.
func (s *Scheduler) arrayDetails(ctx context.Context, id string) (map[string]detail, error) {
	out, err := s.run(ctx, nil, "scontrol", "show", "job", "-o", id)
	if err != nil {
		return nil, err
	}
	m := map[string]detail{}
	for line := range strings.SplitSeq(string(out), "\n") {
		a := arrayJobRE.FindStringSubmatch(line)
		if a == nil {
			continue // a pending range ("ArrayTaskId=8-99") or not an array
		}
		m[a[1]+"_"+a[2]] = parseDetail(line)
	}
	return m, nil
}

// arrayJobRE matches the leading fields of an array element in scontrol
// show job -o, which come before any field a user value could reach.
var arrayJobRE = regexp.MustCompile(`^JobId=\d+ ArrayJobId=(\d+) ArrayTaskId=(\d+) `)
