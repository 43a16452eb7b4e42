package recipe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"example.com/cairn"
	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
)

// Versioned marks a config value as part of the step's version: changing it
// changes the step's output path (and its dependents'). Build one with [V].
// The zero value is a versioned zero T, not "unset".
//
// A Versioned value must not contain another Versioned value, an [Input],
// an [Output], an [Artifact] or a step: its whole value is encoded into the
// version, and references to other steps are versioned through their
// dependency placeholders instead. Violations are reported by [Resolve].
type Versioned[T any] struct {
	v T
}

// V returns v marked as versioned.
func V[T any](v T) Versioned[T] { return Versioned[T]{v: v} }

// Value returns the value.
func (v Versioned[T]) Value() T { return v.v }

// String formats the value with fmt's %v verb.
func (v Versioned[T]) String() string { return fmt.Sprintf("%v", v.v) }

// MarshalJSON encodes the value, as the instantiated config shows it.
func (v Versioned[T]) MarshalJSON() ([]byte, error) { return json.Marshal(v.v) }

// UnmarshalJSON decodes the value, so that configs holding Versioned fields
// can be read from JSON.
func (v *Versioned[T]) UnmarshalJSON(data []byte) error { return json.Unmarshal(data, &v.v) }

func (v Versioned[T]) placeholder() ref { return ref{kind: versionedRef, value: v.v} }

func (v Versioned[T]) bind(*binding) any { return v }

// Input is a path a step reads: the output of another step, optionally a
// sub-path of it ([OutputOf]), or a hard-coded path relative to the prefix
// ([Path]). In a step's config it is a placeholder; the copy of the config
// the step's function receives has every Input resolved, so [Input.Path] and
// [Input.Open] work there.
//
// A reference to a step makes that step a dependency and puts
// "DEP[i]" or "DEP[i]/sub" into the version; a hard-coded path puts the path
// itself. The zero Input refers to nothing and is an error in a config; use
// a *Input (nil when absent) for optional inputs.
type Input struct {
	target      *node  // the referenced step; nil for a hard-coded path
	sub         string // sub-path of the step's output, or the hard-coded path
	nonblocking bool
	err         error    // a construction error, reported by Resolve
	res         *binding // set in resolved copies only
}

// OutputOf returns the output path of step s joined with sub ("" for the
// output directory itself): Marin's output_path_of(step, name). sub must be
// a relative path that does not leave the step's output (no leading "/" and
// no ".." element).
func OutputOf(s Node, sub string) Input {
	in := Input{sub: sub}
	if s == nil || s.node() == nil {
		in.err = errors.New("recipe.OutputOf: nil step")
		return in
	}
	in.target = s.node()
	in.err = checkSub(sub)
	return in
}

// Path returns a hard-coded input path: relative paths are taken relative
// to the prefix, absolute paths and URLs are used as they are (Marin's
// InputName.hardcoded). The path itself, as given, is part of the version.
func Path(p string) Input {
	in := Input{sub: p}
	if p == "" {
		in.err = errors.New("recipe.Path: empty path")
	}
	return in
}

// Join returns in with sub appended to its path (Marin's InputName.cd); on
// a resolved Input, the result is resolved too. sub follows the rules of
// [OutputOf]; an empty sub returns in unchanged.
func (in Input) Join(sub string) Input {
	if sub == "" || in.err != nil {
		return in
	}
	if err := checkSub(sub); err != nil {
		in.err = err
		return in
	}
	if in.sub == "" {
		in.sub = sub
	} else {
		in.sub = joinPath(in.sub, sub)
	}
	if in.res != nil {
		in.res = &binding{path: joinPath(in.res.path, sub), open: in.res.open}
	}
	return in
}

// Nonblocking returns in as a non-blocking reference (a pseudo-dependency):
// the referenced step is still part of the version, but this step neither
// runs it nor waits for it, unless another step depends on it normally or
// --run-only selects it. Use it to read, for example, checkpoints of a
// training run that is still going. It has no effect on a hard-coded path.
func (in Input) Nonblocking() Input {
	in.nonblocking = in.target != nil
	return in
}

// Path returns the concrete path (a local path or URL). It may only be
// called on a resolved Input, that is on the config a step function
// receives (or one returned by [Materialize]); on a placeholder it panics,
// because there is no path yet and any value would silently be wrong.
func (in Input) Path() string {
	if in.res == nil {
		panic("recipe: Input.Path called on an unresolved placeholder " + in.String() + "; only the config passed to a step function is resolved")
	}
	return in.res.path
}

// Open opens the storage rooted at the input's path with the run's storage.
// It fails on an unresolved placeholder.
func (in Input) Open(ctx context.Context) (*store.Bucket, error) {
	if in.res == nil {
		return nil, fmt.Errorf("recipe: open %s: unresolved placeholder", in)
	}
	return in.res.openBucket(ctx)
}

// String returns the resolved path, or a description of the placeholder.
func (in Input) String() string {
	switch {
	case in.res != nil:
		return in.res.path
	case in.target == nil && in.sub == "":
		return "recipe.Input{}"
	case in.target == nil:
		return fmt.Sprintf("recipe.Path(%q)", in.sub)
	}
	s := fmt.Sprintf("recipe.OutputOf(%s, %q)", in.target.name, in.sub)
	if in.nonblocking {
		s += ".Nonblocking()"
	}
	return s
}

// MarshalJSON encodes the resolved path as a JSON string; it fails on an
// unresolved placeholder.
func (in Input) MarshalJSON() ([]byte, error) {
	if in.res == nil {
		return nil, fmt.Errorf("recipe: %s is unresolved", in)
	}
	return json.Marshal(in.res.path)
}

func (in Input) placeholder() ref {
	r := ref{kind: inputRef, target: in.target, sub: in.sub, nonblocking: in.nonblocking, err: in.err}
	if in.target == nil && in.sub == "" && in.err == nil {
		r.err = errors.New("recipe.Input is not set: build it with recipe.OutputOf or recipe.Path (use a *recipe.Input for an optional input)")
	}
	return r
}

func (in Input) bind(b *binding) any {
	in.res = b
	return in
}

// Output is the output path of the step whose config holds it, optionally
// joined with a sub-path: Marin's this_output_path(name). The zero Output
// is the output directory itself, so a config field of type Output needs
// no initialisation; use [ThisOutput] for a sub-path. Output is not part of
// the version.
type Output struct {
	sub string
	err error
	res *binding
}

// ThisOutput returns the step's own output path joined with sub, which
// follows the rules of [OutputOf].
func ThisOutput(sub string) Output { return Output{sub: sub, err: checkSub(sub)} }

// Path returns the concrete path. Like [Input.Path], it panics on an
// unresolved placeholder.
func (o Output) Path() string {
	if o.res == nil {
		panic("recipe: Output.Path called on an unresolved placeholder " + o.String() + "; only the config passed to a step function is resolved")
	}
	return o.res.path
}

// Open returns the storage rooted at the output path. It fails on an
// unresolved placeholder. Opened on the step's own directory (no sub-path),
// the bucket refuses to write the step's control files and does not list
// them, as the runner's Output.Bucket does.
func (o Output) Open(ctx context.Context) (*store.Bucket, error) {
	if o.res == nil {
		return nil, fmt.Errorf("recipe: open %s: unresolved placeholder", o)
	}
	b, err := o.res.openBucket(ctx)
	if err != nil || o.sub != "" {
		return b, err
	}
	return b.WithReserved(statusfile.Owner, statusfile.IsControl), nil
}

// String returns the resolved path, or a description of the placeholder.
func (o Output) String() string {
	if o.res != nil {
		return o.res.path
	}
	return fmt.Sprintf("recipe.ThisOutput(%q)", o.sub)
}

// MarshalJSON encodes the resolved path as a JSON string; it fails on an
// unresolved placeholder.
func (o Output) MarshalJSON() ([]byte, error) {
	if o.res == nil {
		return nil, fmt.Errorf("recipe: %s is unresolved", o)
	}
	return json.Marshal(o.res.path)
}

func (o Output) placeholder() ref { return ref{kind: outputRef, sub: o.sub, err: o.err} }

func (o Output) bind(b *binding) any {
	o.res = b
	return o
}

// Artifact is a typed reference to the artifact (the return value) of
// another step, built with [ArtifactOf]. For versioning and scheduling it
// is the same as OutputOf(step, ""): a blocking dependency, "DEP[i]" in the
// version. In the config a step function receives it is resolved, and
// [Artifact.Load] decodes the artifact as an A. The compiler checks that A
// is what the producing step returns.
type Artifact[A any] struct {
	in Input
}

// ArtifactOf returns a reference to the artifact of s.
func ArtifactOf[C, A any](s *Step[C, A]) Artifact[A] {
	if s == nil {
		return Artifact[A]{in: Input{err: errors.New("recipe.ArtifactOf: nil step")}}
	}
	return Artifact[A]{in: OutputOf(s, "")}
}

// Load reads and decodes the artifact, as strictly as cairn.Load (the JSON
// must fit A). It fails with an error satisfying
// errors.Is(err, cairn.ErrNoArtifact) if the step saved none, or saved null
// (returned nothing) and A cannot be nil, and on an unresolved placeholder.
func (a Artifact[A]) Load(ctx context.Context) (A, error) {
	var v A
	b, err := a.Open(ctx)
	if err != nil {
		return v, err
	}
	data, err := statusfile.ReadArtifact(ctx, b)
	if errors.Is(err, store.ErrNotExist) {
		return v, fmt.Errorf("recipe: load artifact of %s: %w", a.in.res.path, cairn.ErrNoArtifact)
	}
	if err != nil {
		return v, fmt.Errorf("recipe: load artifact: %w", err)
	}
	if v, err = cairn.DecodeArtifact[A](data, a.in.res.path); err != nil {
		return v, fmt.Errorf("recipe: load artifact: %w", err)
	}
	return v, nil
}

// Path returns the producing step's output path. Like [Input.Path], it
// panics on an unresolved placeholder.
func (a Artifact[A]) Path() string { return a.in.Path() }

// Open opens the producing step's output.
func (a Artifact[A]) Open(ctx context.Context) (*store.Bucket, error) { return a.in.Open(ctx) }

// String returns the resolved path, or a description of the placeholder.
func (a Artifact[A]) String() string {
	if a.in.res != nil || a.in.target == nil {
		return a.in.String()
	}
	return fmt.Sprintf("recipe.ArtifactOf(%s)", a.in.target.name)
}

// MarshalJSON encodes the producing step's output path as a JSON string.
func (a Artifact[A]) MarshalJSON() ([]byte, error) { return a.in.MarshalJSON() }

func (a Artifact[A]) placeholder() ref {
	r := a.in.placeholder()
	if a.in.target == nil && a.in.err == nil {
		r.err = errors.New("recipe.Artifact is not set: build it with recipe.ArtifactOf")
	}
	return r
}

func (a Artifact[A]) bind(b *binding) any {
	a.in.res = b
	return a
}

// placeholder is implemented by the config values the layer interprets.
type placeholder interface {
	// placeholder describes the value.
	placeholder() ref
	// bind returns a copy of the value resolved by b (a value of the same
	// type as the receiver).
	bind(b *binding) any
}

type refKind int

const (
	versionedRef refKind = iota
	inputRef
	outputRef
)

// ref describes one placeholder.
type ref struct {
	kind        refKind
	target      *node  // inputRef: the step, nil for a hard-coded path
	sub         string // inputRef/outputRef: the sub-path or hard-coded path
	nonblocking bool
	value       any   // versionedRef: the value
	err         error // a construction error
}

// binding is what a placeholder resolves to.
type binding struct {
	path string
	// open opens the storage at a location (the run's storage); nil when
	// the config was resolved only to be recorded.
	open func(ctx context.Context, location string) (*store.Bucket, error)
}

func (b *binding) openBucket(ctx context.Context) (*store.Bucket, error) {
	if b.open == nil {
		return nil, fmt.Errorf("recipe: open %s: config resolved for recording only", b.path)
	}
	return b.open(ctx, b.path)
}

// checkSub validates a sub-path: relative, and not leaving the directory it
// is joined to.
func checkSub(sub string) error {
	if sub == "" {
		return nil
	}
	if strings.HasPrefix(sub, "/") || strings.Contains(sub, "://") {
		return fmt.Errorf("sub-path %q must be relative", sub)
	}
	for seg := range strings.SplitSeq(sub, "/") {
		if seg == ".." {
			return fmt.Errorf("sub-path %q must not contain \"..\"", sub)
		}
	}
	return nil
}

// joinPath joins a base path or URL and a relative path with one "/", as
// Python's os.path.join does for these arguments.
func joinPath(base, rel string) string {
	if rel == "" {
		return base
	}
	if base == "" {
		return rel
	}
	if strings.HasSuffix(base, "/") {
		return base + rel
	}
	return base + "/" + rel
}

// isAbsPath reports whether p is used as is rather than joined to the
// prefix: it starts with "/" or has a URL scheme (Marin's rule).
func isAbsPath(p string) bool {
	return strings.HasPrefix(p, "/") || strings.Contains(p, "://")
}
