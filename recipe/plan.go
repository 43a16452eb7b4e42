package recipe

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"example.com/cairn"
	"example.com/cairn/internal/canonjson"
	"example.com/cairn/store"
)

// Plan is a set of typed steps resolved against a prefix: every step
// reachable from the given ones has its version, its output path, its
// resolved config and its plain [cairn.Step]. Build it with [Resolve]. A
// Plan is immutable and safe for concurrent use.
type Plan struct {
	prefix string
	// steps are the distinct steps (one per version) in Marin's order:
	// every step after its blocking dependencies, then its pseudo ones.
	steps  []*planned
	byNode map[*node]*planned
	// dups counts steps merged into another with the same version.
	dups []string
	// expHash is the hash6 of the canonical list of step infos.
	expHash string
	// runnable are the cairn steps of the runnable set (see Steps).
	runnable []*cairn.Step
}

// planned is one distinct step of a plan.
type planned struct {
	n       *node  // the first node with this version
	version []byte // canonical JSON of the version object
	hash    string // hash6
	path    string // output path
	deps    []*planned
	pseudo  []*planned
	// depth is the step's chain depth: 0 without blocking dependencies,
	// else 1 + the largest depth among them.
	depth int
	// runnable: reachable from the plan's roots through blocking
	// references. Steps reached only through non-blocking references are
	// versioned and recorded but not run (unless --run-only selects them).
	runnable bool
	info     StepInfo
}

// Resolve versions steps and every step they reference, and resolves their
// configs against prefix (a local directory, made absolute, or a URL).
//
// It returns an error satisfying errors.Is(err, cairn.ErrInvalidPipeline)
// — a *ConfigError for problems in one step — if a step has an invalid
// name, a nil function or a misused placeholder (see the package
// documentation), if a versioned value cannot be encoded canonically (NaN,
// channels, ...), if a resolved config cannot be encoded as JSON for the
// records, if prefix is empty, or if two steps with different versions
// share an output path.
func Resolve(prefix string, steps ...Node) (*Plan, error) {
	return ResolveWith(prefix, nil, steps...)
}

// Versioning selects how a step's version refers to its dependencies, and
// so the output paths of every step below a certain depth. The zero value
// is current Marin's rule.
type Versioning int

const (
	// InlineShallow is current Marin's rule: a dependency's version object
	// is inlined only if its chain depth is at most 4; a deeper dependency
	// is referred to by its "name-hash6" (reference §8.3), which keeps
	// version strings from growing with the length of a pipeline. A step
	// without blocking dependencies has depth 0, any other 1 + the largest
	// depth of its blocking dependencies.
	InlineShallow Versioning = iota
	// InlineAll is older Marin's rule: every dependency's version object is
	// inlined. Use it for prefixes that older Marin wrote: from the 7th
	// step of a chain on, the two rules give different output paths.
	InlineAll
)

// inlineDepth is the largest chain depth whose version InlineShallow
// inlines.
const inlineDepth = 4

// ResolveOptions configure ResolveWith. A nil *ResolveOptions means the
// defaults.
type ResolveOptions struct {
	// Versioning is the rule for dependencies in versions; the zero value
	// is current Marin's.
	Versioning Versioning
}

// ResolveWith is Resolve with options.
func ResolveWith(prefix string, opts *ResolveOptions, steps ...Node) (*Plan, error) {
	roots := make([]*node, 0, len(steps))
	for i, s := range steps {
		if s == nil || s.node() == nil {
			return nil, fmt.Errorf("%w: recipe: step %d of %d is nil", cairn.ErrInvalidPipeline, i+1, len(steps))
		}
		roots = append(roots, s.node())
	}
	var v Versioning
	if opts != nil {
		v = opts.Versioning
	}
	return resolve(prefix, roots, nil, v)
}

// resolve builds the plan of roots (runnable) and pseudo (versioned only).
func resolve(prefix string, roots, pseudo []*node, versioning Versioning) (*Plan, error) {
	prefix, err := absPrefix(prefix)
	if err != nil {
		return nil, err
	}
	r := &resolver{
		pl:        &Plan{prefix: prefix, byNode: make(map[*node]*planned)},
		byVersion: make(map[string]*planned),
		byPath:    make(map[string]*planned),
		visiting:  make(map[*node]bool),
		inlineAll: versioning == InlineAll,
	}
	for _, n := range slices.Concat(roots, pseudo) {
		if _, err := r.visit(n); err != nil {
			return nil, err
		}
	}
	pl := r.pl
	// Runnable: reachable from the roots through blocking edges.
	todo := make([]*planned, 0, len(roots))
	for _, n := range roots {
		todo = append(todo, pl.byNode[n])
	}
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if !p.runnable {
			p.runnable = true
			todo = append(todo, p.deps...)
		}
	}
	infos := make([]StepInfo, len(pl.steps))
	for i, p := range pl.steps {
		if p.info, err = pl.stepInfo(p); err != nil {
			return nil, err
		}
		infos[i] = p.info
	}
	enc, err := canonjson.Marshal(infos)
	if err != nil {
		return nil, fmt.Errorf("%w: recipe: encode the step records: %v", cairn.ErrInvalidPipeline, err)
	}
	pl.expHash = hash6(enc)
	pl.runnable = pl.build(pl.selected(func(p *planned) bool { return p.runnable }))
	return pl, nil
}

// absPrefix makes a local prefix absolute, so that output paths do not
// depend on the working directory of whoever reads the records.
func absPrefix(prefix string) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("%w: recipe: empty prefix", cairn.ErrInvalidPipeline)
	}
	if store.IsLocal(prefix) && !strings.HasPrefix(prefix, "file://") {
		abs, err := filepath.Abs(prefix)
		if err != nil {
			return "", fmt.Errorf("%w: recipe: prefix %q: %v", cairn.ErrInvalidPipeline, prefix, err)
		}
		prefix = filepath.ToSlash(abs)
	}
	if len(prefix) > 1 {
		prefix = strings.TrimSuffix(prefix, "/")
	}
	return prefix, nil
}

type resolver struct {
	pl        *Plan
	byVersion map[string]*planned
	byPath    map[string]*planned
	visiting  map[*node]bool
	inlineAll bool // Versioning InlineAll
}

// visit computes the version of n after those of the steps it references
// (Marin's compute_version), deduplicating by version.
func (r *resolver) visit(n *node) (*planned, error) {
	if p, ok := r.pl.byNode[n]; ok {
		return p, nil
	}
	if n.err != nil {
		return nil, n.err
	}
	if r.visiting[n] {
		// Steps are immutable and can only refer to steps built before
		// them, so this cannot happen; guard against it anyway.
		return nil, &ConfigError{Step: n.name, Reason: "dependency cycle"}
	}
	r.visiting[n] = true
	defer delete(r.visiting, n)

	// The config part of the version: key → canonical JSON of the value.
	// DEP[i] numbers blocking and non-blocking references together, in walk
	// order.
	config := make(map[string][]byte, len(n.refs))
	var depNodes, pseudoNodes []*node
	for _, e := range n.refs {
		var val any
		switch e.ref.kind {
		case outputRef:
			continue // not part of the version
		case versionedRef:
			val = e.ref.value
		case inputRef:
			if e.ref.target == nil {
				val = e.ref.sub // a hard-coded path versions as itself
				break
			}
			s := "DEP[" + strconv.Itoa(len(depNodes)+len(pseudoNodes)) + "]"
			if e.ref.sub != "" {
				s += "/" + e.ref.sub
			}
			val = s
			if e.ref.nonblocking {
				pseudoNodes = append(pseudoNodes, e.ref.target)
			} else {
				depNodes = append(depNodes, e.ref.target)
			}
		}
		if _, dup := config[e.key]; dup {
			return nil, &ConfigError{Step: n.name, Field: e.field, Reason: fmt.Sprintf("version key %q is used by two config values (a map key containing \".\" can collide with a nested field); rename one", e.key)}
		}
		enc, err := canonjson.Marshal(val)
		if err != nil {
			reason := err.Error()
			if pe, ok := errors.AsType[*canonjson.PathError](err); ok {
				reason = "versioned value cannot be encoded: " + pe.Reason
				if pe.Path != "" {
					reason = fmt.Sprintf("versioned value cannot be encoded: at %s: %s", pe.Path, pe.Reason)
				}
			}
			return nil, &ConfigError{Step: n.name, Field: e.field, Reason: reason}
		}
		config[e.key] = enc
	}
	// Blocking dependencies first, then pseudo ones, as Marin orders them.
	deps := make([]*planned, len(depNodes))
	for i, d := range depNodes {
		p, err := r.visit(d)
		if err != nil {
			return nil, err
		}
		deps[i] = p
	}
	pseudo := make([]*planned, len(pseudoNodes))
	for i, d := range pseudoNodes {
		p, err := r.visit(d)
		if err != nil {
			return nil, err
		}
		pseudo[i] = p
	}

	version, err := encodeVersion(n.name, config, deps, pseudo, r.inlineAll)
	if err != nil {
		return nil, &ConfigError{Step: n.name, Reason: err.Error()}
	}
	h := hash6(version)
	path := joinPath(r.pl.prefix, n.name+"-"+h)
	if o := n.opts.OverridePath; o != "" {
		path = o
		if !isAbsPath(o) {
			path = joinPath(r.pl.prefix, o)
		}
	}
	if p, ok := r.byVersion[string(version)]; ok {
		if p.path != path {
			return nil, &ConfigError{Step: n.name, Reason: fmt.Sprintf("it has the same version as another step named %q but a different OverridePath (%s, not %s)", p.n.name, path, p.path)}
		}
		r.pl.byNode[n] = p
		r.pl.dups = append(r.pl.dups, n.name)
		return p, nil
	}
	if p, ok := r.byPath[path]; ok {
		return nil, &ConfigError{Step: n.name, Reason: fmt.Sprintf("its output path %s is also the output path of step %q, whose version differs; change one step's name or OverridePath", path, p.n.name)}
	}
	p := &planned{n: n, version: version, hash: h, path: path, deps: deps, pseudo: pseudo}
	for _, d := range deps {
		p.depth = max(p.depth, d.depth+1)
	}
	r.byVersion[string(version)] = p
	r.byPath[path] = p
	r.pl.byNode[n] = p
	r.pl.steps = append(r.pl.steps, p)
	return p, nil
}

// encodeVersion returns the canonical JSON of the version object
//
//	{"name": name, "config": {...}, "dependencies": [...], "pseudo_dependencies": [...]}
//
// as Python's json.dumps(version, sort_keys=True) writes it. A dependency
// (blocking or not) is its version object inlined whole if inlineAll is set
// or its chain depth is at most inlineDepth, else the string
// "name-hash6" (Versioning). "pseudo_dependencies" is present only when
// there are some, as in Marin (so that adding the field did not change
// older hashes).
func encodeVersion(name string, config map[string][]byte, deps, pseudo []*planned, inlineAll bool) ([]byte, error) {
	size := 64 + len(name)
	for k, v := range config {
		size += len(k) + len(v) + 6
	}
	for _, d := range slices.Concat(deps, pseudo) {
		size += len(d.version) + 2
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"config": {`...)
	keys := make([]string, 0, len(config))
	for k := range config {
		keys = append(keys, k)
	}
	slices.Sort(keys) // code point order, as Python sorts str keys
	var err error
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ", "...)
		}
		if buf, err = canonjson.AppendString(buf, k); err != nil {
			return nil, fmt.Errorf("version key %q: %v", k, err)
		}
		buf = append(buf, ": "...)
		buf = append(buf, config[k]...)
	}
	buf = append(buf, `}, "dependencies": `...)
	if buf, err = appendVersions(buf, deps, inlineAll); err != nil {
		return nil, err
	}
	buf = append(buf, `, "name": `...)
	if buf, err = canonjson.AppendString(buf, name); err != nil {
		return nil, fmt.Errorf("name: %v", err)
	}
	if len(pseudo) > 0 {
		buf = append(buf, `, "pseudo_dependencies": `...)
		if buf, err = appendVersions(buf, pseudo, inlineAll); err != nil {
			return nil, err
		}
	}
	return append(buf, '}'), nil
}

// appendVersions appends the JSON list of the dependencies ps as a
// version refers to them (encodeVersion).
func appendVersions(buf []byte, ps []*planned, inlineAll bool) ([]byte, error) {
	buf = append(buf, '[')
	for i, p := range ps {
		if i > 0 {
			buf = append(buf, ", "...)
		}
		if inlineAll || p.depth <= inlineDepth {
			buf = append(buf, p.version...)
			continue
		}
		var err error
		if buf, err = canonjson.AppendString(buf, p.n.name+"-"+p.hash); err != nil {
			return nil, fmt.Errorf("dependency %q: %v", p.n.name, err)
		}
	}
	return append(buf, ']'), nil
}

// hash6 is Marin's version hash: the first 6 hex digits of the MD5.
func hash6(data []byte) string {
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:3])
}

// placeholderPath returns the concrete path of placeholder r in the config
// of p.
func (pl *Plan) placeholderPath(p *planned, r ref) string {
	switch {
	case r.kind == outputRef:
		return joinPath(p.path, r.sub)
	case r.target == nil && isAbsPath(r.sub):
		return r.sub
	case r.target == nil:
		return joinPath(pl.prefix, r.sub)
	}
	return joinPath(pl.byNode[r.target].path, r.sub)
}

// stepInfo builds the record of p, with its config resolved for recording.
func (pl *Plan) stepInfo(p *planned) (StepInfo, error) {
	cfg, err := instantiate(p.n.cfg, func(r ref) (*binding, error) {
		return &binding{path: pl.placeholderPath(p, r)}, nil
	})
	if err != nil {
		return StepInfo{}, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cfg.Interface()); err != nil {
		return StepInfo{}, &ConfigError{Step: p.n.name, Reason: fmt.Sprintf("resolved config cannot be encoded as JSON for the step records: %v", err)}
	}
	info := StepInfo{
		Name:         p.n.name,
		FnName:       p.n.fnName,
		Config:       json.RawMessage(bytes.TrimSpace(buf.Bytes())),
		Version:      json.RawMessage(p.version),
		Dependencies: make([]string, len(p.deps)),
		OutputPath:   p.path,
	}
	if o := p.n.opts.OverridePath; o != "" {
		info.OverrideOutputPath = &o
	}
	for i, d := range p.deps {
		info.Dependencies[i] = d.path
	}
	return info, nil
}

// selected returns the planned steps for which keep is true, in plan order.
func (pl *Plan) selected(keep func(*planned) bool) []*planned {
	var sel []*planned
	for _, p := range pl.steps {
		if keep(p) {
			sel = append(sel, p)
		}
	}
	return sel
}

// build returns fresh cairn steps for sel (in plan order), each depending on
// the steps of sel among its blocking dependencies.
func (pl *Plan) build(sel []*planned) []*cairn.Step {
	byPlanned := make(map[*planned]*cairn.Step, len(sel))
	out := make([]*cairn.Step, 0, len(sel))
	for _, p := range sel {
		s := &cairn.Step{
			Name: p.n.name,
			// The core identity (name_hash8) only names the step in logs
			// and reports; the version hash keeps it distinct per version.
			Attrs:        map[string]string{"version": p.hash},
			OverridePath: p.path,
			Func:         pl.stepFunc(p),
			Remote:       p.n.opts.Remote,
		}
		for _, d := range p.deps {
			if ds, ok := byPlanned[d]; ok && !slices.Contains(s.Deps, ds) {
				s.Deps = append(s.Deps, ds)
			}
		}
		byPlanned[p] = s
		out = append(out, s)
	}
	return out
}

// stepFunc returns the core function of p: it resolves a fresh copy of the
// config, binding placeholders to the run's storage, and calls the typed
// function with it (Marin's resolve_executor_step: the runner's output path
// argument is not needed, the config carries it).
func (pl *Plan) stepFunc(p *planned) cairn.Func {
	return func(ctx context.Context, out *cairn.Output) (any, error) {
		cfg, err := instantiate(p.n.cfg, func(r ref) (*binding, error) {
			return &binding{path: pl.placeholderPath(p, r), open: out.Open}, nil
		})
		if err != nil {
			return nil, err
		}
		if out.Logger != nil {
			ctx = context.WithValue(ctx, loggerKey{}, out.Logger)
		}
		return p.n.call(ctx, cfg.Interface())
	}
}

// Prefix returns the plan's prefix (absolute if local).
func (pl *Plan) Prefix() string { return pl.prefix }

// Steps returns the plain core steps of the plan that a run executes by
// default — every step except those reached only through non-blocking
// references — in dependency order, each with its output path as an
// absolute OverridePath and blocking dependencies as Deps. They can be run
// with cairn.Run (with any prefix, as their paths are absolute); [Plan.Run]
// additionally writes the records and implements --run-only. The slice is
// shared: do not modify it or its steps.
func (pl *Plan) Steps() []*cairn.Step { return pl.runnable }

// lookup returns the planned step of s.
func (pl *Plan) lookup(s Node) (*planned, error) {
	if s == nil || s.node() == nil {
		return nil, errors.New("recipe: nil step")
	}
	p, ok := pl.byNode[s.node()]
	if !ok {
		return nil, fmt.Errorf("recipe: step %q is not part of the plan", s.Name())
	}
	return p, nil
}

// OutputPath returns the output path of s, which must be part of the plan
// (given to Resolve or referenced by a step that was): Marin's
// compute_output_path.
func (pl *Plan) OutputPath(s Node) (string, error) {
	p, err := pl.lookup(s)
	if err != nil {
		return "", err
	}
	return p.path, nil
}

// Info returns the record of s — name, function, resolved config, version,
// dependencies and output path — as written to its .executor_info.
func (pl *Plan) Info(s Node) (StepInfo, error) {
	p, err := pl.lookup(s)
	if err != nil {
		return StepInfo{}, err
	}
	return p.info, nil
}

// Infos returns the records of every step of the plan, in plan order.
func (pl *Plan) Infos() []StepInfo {
	infos := make([]StepInfo, len(pl.steps))
	for i, p := range pl.steps {
		infos[i] = p.info
	}
	return infos
}
