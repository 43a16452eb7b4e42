// Package explain says why a step would run, or why it would not: it
// compares what a pipeline asks for with the files earlier runs left on
// shared storage — status, failure record, lease and the `.executor_info`
// of earlier outputs of the same step — and nothing else, so it explains
// the outputs of any runner, Marin's included.
//
// A step's reason is found from the plan a dry run made for it (cached,
// would run, running elsewhere, failed before): a step that would run is
// "new" when no earlier output of the same name exists beside it, is
// "changed" with the fields that differ from the most recent one, or is
// "changed upstream" when its own fields are the same and a dependency is
// not, traced to the first changed ancestor.
package explain

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
)

// Reason kinds.
const (
	KindCached           = "cached"
	KindNew              = "new"
	KindChanged          = "changed"
	KindChangedUpstream  = "changed upstream"
	KindUnfinished       = "unfinished"
	KindFailedBefore     = "failed before"
	KindRunningElsewhere = "running elsewhere"
	KindForced           = "forced"
	KindError            = "error"
)

// Plan outcomes, as package cairn names them (cairn.Outcome.String).
const (
	PlanCached           = "cached"
	PlanWouldRun         = "would run"
	PlanRunningElsewhere = "running elsewhere"
	PlanFailedBefore     = "failed before"
)

// Step is one step of a pipeline, as explain needs to see it.
type Step struct {
	// ID is how users see the step (its directory under the prefix).
	ID string
	// Name is the step's name, shared by all its versions.
	Name string
	// Path is the step's output path.
	Path string
	// Config is the step's identity-bearing configuration, decoded as
	// Decode or Normalize does: the core step's attributes, or, if
	// Versioned, the versioned fields of a recipe (or Marin) step by name.
	// ConfigKnown is false when it is not known (a dependency named only
	// by its ID).
	Config      any
	ConfigKnown bool
	Versioned   bool
	// Deps are the step's dependencies.
	Deps []*Step
	// Remote describes where the step would run as a cluster job ("" for
	// a local step): cluster and resources.
	Remote string

	// Plan is what the dry run found.
	Plan Plan
}

// Plan is what a dry run found for one step.
type Plan struct {
	Outcome  string // one of the Plan constants
	Holder   string // running elsewhere: the lease holder
	LeaseAge time.Duration
	Err      string // the probe failed
	Forced   bool   // --force selected the step
}

// Reason says why a step would or would not run.
type Reason struct {
	Kind string `json:"kind"`
	// Since and By: when the step succeeded (its status file's
	// modification time) or failed, and which worker did it, when known.
	Since *time.Time `json:"since,omitempty"`
	By    string     `json:"by,omitempty"`
	// Earlier is the output the step was compared with; Changes the
	// fields that differ from it.
	Earlier string   `json:"earlier,omitempty"`
	Changes []Change `json:"changes,omitempty"`
	// Upstream is the first changed ancestor and UpstreamChanges its
	// changed fields (empty when its fields are the same: its function
	// or identity changed, or its earlier record is gone).
	Upstream        string   `json:"upstream,omitempty"`
	UpstreamChanges []Change `json:"upstream_changes,omitempty"`
	// Error is a failed step's recorded error, or why the plan could not
	// be made; Stack says the failure record holds a stack.
	Error string `json:"error,omitempty"`
	Stack bool   `json:"stack,omitempty"`
	// Holder, Host and LeaseAgeSeconds describe another runner's lease:
	// the age is by the holder's clock (a hint, never a verdict).
	Holder          string  `json:"holder,omitempty"`
	Host            string  `json:"host,omitempty"`
	LeaseAgeSeconds float64 `json:"lease_age_seconds,omitempty"`
	// Remote is where the step would run as a cluster job.
	Remote string `json:"remote,omitempty"`
	// Also is a reason for re-running on top of Kind (forced steps: what
	// else would have been found).
	Also string `json:"also,omitempty"`
}

// String is the reason on one line, as --dry-run prints it.
func (r Reason) String() string {
	var b strings.Builder
	switch r.Kind {
	case KindCached:
		b.WriteString("cached")
		if r.Since != nil {
			fmt.Fprintf(&b, " since %s", r.Since.Local().Format("2006-01-02 15:04:05"))
		}
		if r.By != "" {
			fmt.Fprintf(&b, " by %s", r.By)
		}
	case KindNew:
		b.WriteString("new: no earlier output of this step")
	case KindChanged:
		b.WriteString("changed: ")
		if len(r.Changes) > 0 {
			b.WriteString(changes(r.Changes, 3))
		} else {
			_, base := split(r.Earlier)
			fmt.Fprintf(&b, "identity differs from %s (no recorded field does)", base)
		}
		if r.Upstream != "" {
			fmt.Fprintf(&b, "; upstream %s", upstream(r))
		}
	case KindChangedUpstream:
		fmt.Fprintf(&b, "changed upstream: %s", upstream(r))
	case KindUnfinished:
		b.WriteString("unfinished: an earlier attempt did not finish")
		if r.By != "" {
			fmt.Fprintf(&b, " (%s)", r.By)
		}
	case KindFailedBefore:
		b.WriteString("failed before")
		if r.Since != nil {
			fmt.Fprintf(&b, " at %s", r.Since.Local().Format("2006-01-02 15:04:05"))
		}
		if r.Error != "" {
			fmt.Fprintf(&b, ": %s", firstLine(r.Error, 120))
		}
	case KindRunningElsewhere:
		fmt.Fprintf(&b, "running elsewhere: held by %s", r.Holder)
		if r.Host != "" {
			fmt.Fprintf(&b, " on %s", r.Host)
		}
		fmt.Fprintf(&b, ", last refresh %s ago by its clock", roundSeconds(r.LeaseAgeSeconds))
	case KindForced:
		b.WriteString("forced (--force)")
		if r.Also != "" {
			fmt.Fprintf(&b, "; %s", r.Also)
		}
	case KindError:
		fmt.Fprintf(&b, "error: %s", r.Error)
	default:
		b.WriteString(r.Kind)
	}
	if r.Remote != "" && r.Kind != KindCached && r.Kind != KindRunningElsewhere {
		fmt.Fprintf(&b, "; remote: %s", r.Remote)
	}
	return b.String()
}

func upstream(r Reason) string {
	if len(r.UpstreamChanges) == 0 {
		return r.Upstream
	}
	return fmt.Sprintf("%s (%s)", r.Upstream, changes(r.UpstreamChanges, 2))
}

// changes lists at most max changes, then how many more.
func changes(cs []Change, max int) string {
	parts := make([]string, 0, max+1)
	for i, c := range cs {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(cs)-max))
			break
		}
		parts = append(parts, c.String())
	}
	return strings.Join(parts, ", ")
}

func roundSeconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// Host returns the host part of a worker id (HOST-PID-RANDOM.N), or "" if
// the id does not have that shape.
func Host(worker string) string {
	base, _, _ := strings.Cut(worker, ".")
	parts := strings.Split(base, "-")
	if len(parts) < 3 {
		return ""
	}
	return strings.Join(parts[:len(parts)-2], "-")
}

// Opener opens the storage rooted at a location.
type Opener interface {
	OpenBucket(ctx context.Context, location string) (*store.Bucket, error)
}

// Explainer finds reasons. It caches what it reads: use one per question.
type Explainer struct {
	Storage Opener
	// Now is the current time; nil means time.Now.
	Now func() time.Time

	siblings map[string][]string // parent location -> child directory names with a record
	records  map[string]*Record  // output path -> record (nil: none)
}

// Record is what an output's `.executor_info` says.
type Record struct {
	Path         string
	Name         string
	Config       any // "config"
	Versioned    any // "version"."config", nil if absent
	HasVersioned bool
	Dependencies []string
	Modified     time.Time // the record's modification time, if known
}

// config returns the record's config comparable with s's.
func (r *Record) config(versioned bool) any {
	if versioned {
		return r.Versioned
	}
	return r.Config
}

// Order returns steps in a stable topological order: dependencies first,
// ties broken by ID. Dependencies not in steps are ignored.
func Order(steps []*Step) []*Step {
	in := make(map[*Step]bool, len(steps))
	for _, s := range steps {
		in[s] = true
	}
	pending := make(map[*Step]int, len(steps))
	dependents := make(map[*Step][]*Step)
	for _, s := range steps {
		for _, d := range uniq(s.Deps) {
			if in[d] {
				pending[s]++
				dependents[d] = append(dependents[d], s)
			}
		}
	}
	var ready, out []*Step
	for _, s := range steps {
		if pending[s] == 0 {
			ready = append(ready, s)
		}
	}
	byID := func(a, b *Step) int { return cmp.Compare(a.ID, b.ID) }
	for len(ready) > 0 {
		slices.SortFunc(ready, byID)
		s := ready[0]
		ready = ready[1:]
		out = append(out, s)
		for _, d := range dependents[s] {
			if pending[d]--; pending[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	return out
}

func uniq(ss []*Step) []*Step {
	var out []*Step
	for _, s := range ss {
		if s != nil && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Explain returns the reason of every step, keyed by step.
func (x *Explainer) Explain(ctx context.Context, steps []*Step) map[*Step]Reason {
	out := make(map[*Step]Reason, len(steps))
	for _, s := range Order(steps) {
		out[s] = x.Reason(ctx, s)
	}
	return out
}

func (x *Explainer) now() time.Time {
	if x.Now != nil {
		return x.Now()
	}
	return time.Now()
}

// Reason returns the reason of one step.
func (x *Explainer) Reason(ctx context.Context, s *Step) Reason {
	if s.Plan.Forced && s.Plan.Outcome == PlanWouldRun {
		// A dry run plans a forced step to run: say what it would be
		// without --force.
		if p, err := PlanFromFiles(ctx, x.Storage, s.Path); err == nil && p.Outcome == PlanCached {
			c := *s
			c.Plan.Outcome = PlanCached
			s = &c
		}
	}
	r := x.reason(ctx, s)
	if s.Plan.Forced && r.Kind != KindRunningElsewhere && r.Kind != KindError {
		r = Reason{Kind: KindForced, Also: "without it: " + r.String(), Since: r.Since, By: r.By}
	}
	if s.Remote != "" {
		r.Remote = s.Remote
	}
	return r
}

func (x *Explainer) reason(ctx context.Context, s *Step) Reason {
	if s.Plan.Err != "" {
		return Reason{Kind: KindError, Error: s.Plan.Err}
	}
	b, err := x.Storage.OpenBucket(ctx, s.Path)
	if err != nil {
		return Reason{Kind: KindError, Error: err.Error()}
	}
	switch s.Plan.Outcome {
	case PlanCached:
		r := Reason{Kind: KindCached}
		if a, err := b.Stat(ctx, statusfile.StatusKey); err == nil && a.ModTime != 0 {
			t := time.Unix(0, a.ModTime)
			r.Since = &t
		}
		return r
	case PlanRunningElsewhere:
		r := Reason{Kind: KindRunningElsewhere, Holder: s.Plan.Holder, LeaseAgeSeconds: s.Plan.LeaseAge.Seconds()}
		r.Host = Host(r.Holder)
		return r
	case PlanFailedBefore:
		r := Reason{Kind: KindFailedBefore}
		if f, ok, err := statusfile.ReadFailure(ctx, b); err == nil && ok {
			r.Error, r.By, r.Stack = f.Error, f.WorkerID, f.Stack != ""
			if !f.Time.IsZero() {
				t := f.Time
				r.Since = &t
			}
		}
		return r
	}
	// Would run. An attempt at this very output that never finished?
	if data, _, err := b.ReadLimit(ctx, statusfile.StatusKey, statusfile.MaxSize); err == nil {
		if st, err := statusfile.ParseStatus(data); err == nil && st == statusfile.Running {
			r := Reason{Kind: KindUnfinished}
			if w := runningWorker(data); w != "" {
				r.By = "last attempt by " + w
			}
			if rec, ok, err := lease.Inspect(ctx, b, statusfile.LockKey); err == nil && ok {
				r.Holder, r.Host = rec.WorkerID, Host(rec.WorkerID)
				r.LeaseAgeSeconds = rec.Age(x.now()).Seconds()
			}
			return r
		}
	}
	earlier, err := x.Earlier(ctx, s)
	if err != nil {
		return Reason{Kind: KindError, Error: err.Error()}
	}
	if earlier == nil {
		return Reason{Kind: KindNew}
	}
	r := Reason{Earlier: earlier.Path}
	if s.ConfigKnown {
		r.Changes = Diff(root(s.Versioned), earlier.config(s.Versioned), s.Config)
	}
	up, upChanges, found := x.upstream(ctx, s, earlier, 0)
	if found {
		r.Upstream, r.UpstreamChanges = up, upChanges
	}
	if len(r.Changes) > 0 || !found {
		r.Kind = KindChanged
	} else {
		r.Kind = KindChangedUpstream
	}
	return r
}

// root names the top of a step's config in changes: core attributes are
// "attrs.…", versioned fields go by their own names.
func root(versioned bool) string {
	if versioned {
		return ""
	}
	return "attrs"
}

var runningMessage = regexp.MustCompile(`"message":\s*"worker ([^"]+)"`)

// runningWorker returns the worker named by a RUNNING record.
func runningWorker(data []byte) string {
	if m := runningMessage.FindSubmatch(data); m != nil {
		return string(m[1])
	}
	return ""
}

// upstream finds the first dependency of s whose output differs from the
// one the earlier output of s used, and returns its ID and changed fields;
// when that dependency's own fields are the same, it follows its
// dependencies (the first changed ancestor). depth bounds the walk.
func (x *Explainer) upstream(ctx context.Context, s *Step, earlier *Record, depth int) (string, []Change, bool) {
	if depth > 64 {
		return "", nil, false
	}
	for _, d := range uniq(s.Deps) {
		if slices.ContainsFunc(earlier.Dependencies, func(p string) bool { return samePlace(p, d) }) {
			continue
		}
		old := x.earlierDep(ctx, d, earlier.Dependencies)
		if old == nil {
			return d.ID, nil, true
		}
		if d.ConfigKnown {
			if cs := Diff(root(d.Versioned), old.config(d.Versioned), d.Config); len(cs) > 0 {
				return d.ID, cs, true
			}
		}
		if id, cs, ok := x.upstream(ctx, d, old, depth+1); ok {
			return id, cs, true
		}
		return d.ID, nil, true
	}
	return "", nil, false
}

// earlierDep returns the record of the output, among paths (an earlier
// output's dependencies), that is an earlier version of d: same directory
// and name.
func (x *Explainer) earlierDep(ctx context.Context, d *Step, paths []string) *Record {
	for _, p := range paths {
		if !strings.HasSuffix(stem(p), "/"+stem(tail(d))) && stem(p) != stem(d.Path) {
			continue
		}
		if rec, err := x.record(ctx, p); err == nil && rec != nil && rec.Name == d.Name {
			return rec
		}
	}
	return nil
}

// tail is the part of d's output path that names it under any prefix:
// its ID when the path ends with it, else the last path element. Records
// written with the prefix spelled another way still match.
func tail(d *Step) string {
	if d.ID != "" && (d.Path == d.ID || strings.HasSuffix(d.Path, "/"+d.ID)) {
		return d.ID
	}
	_, base := split(d.Path)
	return base
}

// samePlace reports whether the recorded path p is the output of d.
func samePlace(p string, d *Step) bool {
	return p == d.Path || strings.HasSuffix(p, "/"+tail(d))
}

var hashSuffix = regexp.MustCompile(`[-_][0-9a-f]{6,8}$`)

// stem is a directory name without its version hash (NAME_HASH8 for
// cairn, NAME-HASH6 for Marin and package recipe).
func stem(base string) string { return hashSuffix.ReplaceAllString(base, "") }

// Earlier returns the record of the most recent other output of s's name
// beside s's output (nil if there is none): the sibling directories whose
// names are s's with another version hash and whose `.executor_info`
// names the same step, newest record first.
func (x *Explainer) Earlier(ctx context.Context, s *Step) (*Record, error) {
	parent, base := split(s.Path)
	names, err := x.children(ctx, parent)
	if err != nil {
		return nil, err
	}
	var best *Record
	for _, n := range names {
		if n == base || stem(n) != stem(base) || n == stem(n) {
			continue
		}
		rec, err := x.record(ctx, parent+"/"+n)
		if err != nil || rec == nil || rec.Name != s.Name {
			continue
		}
		if best == nil || rec.Modified.After(best.Modified) || rec.Modified.Equal(best.Modified) && rec.Path > best.Path {
			best = rec
		}
	}
	return best, nil
}

// split splits a location at its last slash (path.Dir would turn
// "gs://b/x" into "gs:/b").
func split(p string) (parent, base string) {
	p = strings.TrimSuffix(p, "/")
	i := strings.LastIndex(p, "/")
	if i < 0 {
		return ".", p
	}
	return p[:i], p[i+1:]
}

// children lists the directories under parent that hold a record.
func (x *Explainer) children(ctx context.Context, parent string) ([]string, error) {
	if names, ok := x.siblings[parent]; ok {
		return names, nil
	}
	b, err := x.Storage.OpenBucket(ctx, parent)
	if err != nil {
		return nil, err
	}
	var names []string
	for key, err := range b.List(ctx, "") {
		if errors.Is(err, store.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		if dir, file, ok := strings.Cut(key, "/"); ok && file == statusfile.InfoKey {
			names = append(names, dir)
		}
	}
	if x.siblings == nil {
		x.siblings = make(map[string][]string)
	}
	x.siblings[parent] = names
	return names, nil
}

// record reads the `.executor_info` of the output at p (nil if none).
func (x *Explainer) record(ctx context.Context, p string) (*Record, error) {
	if rec, ok := x.records[p]; ok {
		return rec, nil
	}
	rec, err := ReadRecord(ctx, x.Storage, p)
	if err != nil {
		return nil, err
	}
	if x.records == nil {
		x.records = make(map[string]*Record)
	}
	x.records[p] = rec
	return rec, nil
}

// ReadRecord reads the `.executor_info` of the output at p: nil, with no
// error, if there is none.
func ReadRecord(ctx context.Context, storage Opener, p string) (*Record, error) {
	b, err := storage.OpenBucket(ctx, p)
	if err != nil {
		return nil, err
	}
	data, _, err := b.ReadLimit(ctx, statusfile.InfoKey, statusfile.MaxSize)
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", b.URL(statusfile.InfoKey), statusfile.ErrCorrupt, err)
	}
	m, _ := v.(map[string]any)
	rec := &Record{Path: p, Config: m["config"]}
	rec.Name, _ = m["name"].(string)
	if ver, ok := m["version"].(map[string]any); ok {
		rec.Versioned, rec.HasVersioned = ver["config"], true
	}
	if deps, ok := m["dependencies"].([]any); ok {
		for _, d := range deps {
			if s, ok := d.(string); ok {
				rec.Dependencies = append(rec.Dependencies, strings.TrimSuffix(s, "/"))
			}
		}
	}
	if a, err := b.Stat(ctx, statusfile.InfoKey); err == nil && a.ModTime != 0 {
		rec.Modified = time.Unix(0, a.ModTime)
	}
	return rec, nil
}

// MarshalJSON is the JSON form of a Reason with its one-line text.
func (r Reason) MarshalJSON() ([]byte, error) {
	type plain Reason
	return json.Marshal(struct {
		plain
		Text string `json:"text"`
	}{plain(r), r.String()})
}

// PlanFromFiles finds, from the files of the output at p alone, what a run
// would do with it: cached, failed before, running elsewhere (a lease that
// is not ancient: one look cannot tell a live holder from a dead one) or
// would run. A status that cannot be read is the plan's Err.
func PlanFromFiles(ctx context.Context, storage Opener, p string) (Plan, error) {
	b, err := storage.OpenBucket(ctx, p)
	if err != nil {
		return Plan{}, err
	}
	status, err := statusfile.ReadStatus(ctx, b)
	if err != nil {
		return Plan{Err: err.Error()}, nil
	}
	if status == statusfile.Success {
		return Plan{Outcome: PlanCached}, nil
	}
	rec, ok, err := lease.Inspect(ctx, b, statusfile.LockKey)
	if err != nil {
		return Plan{Err: err.Error()}, nil
	}
	if now := time.Now(); ok && !rec.Ancient(now, lease.DefaultAncientAfter) {
		return Plan{Outcome: PlanRunningElsewhere, Holder: rec.WorkerID, LeaseAge: rec.Age(now)}, nil
	}
	if status == statusfile.Failed || status == statusfile.DepFailed {
		return Plan{Outcome: PlanFailedBefore}, nil
	}
	return Plan{Outcome: PlanWouldRun}, nil
}
