package recipe

import (
	"context"
	"log/slog"
	"reflect"
	"runtime"

	"example.com/cairn"
)

// Node is a typed step of any config and artifact type: the element type of
// heterogeneous step lists. It is implemented only by [*Step].
type Node interface {
	// Name returns the step's name.
	Name() string
	node() *node
}

// None is the artifact type of steps built with [New], whose functions
// return only an error.
type None struct{}

// StepOptions configure a step. A nil *StepOptions means all defaults.
type StepOptions struct {
	// OverridePath, if set, is the step's output path instead of
	// PREFIX/NAME-HASH6: a relative path is joined to the prefix, an
	// absolute path or URL is used as is (Marin's override_output_path). It
	// does not change the version.
	OverridePath string

	// Remote, if set, runs the step's function as a cluster job with these
	// resources (cairn.Step.Remote); the resolved step keeps it, so a recipe
	// step marked remote stays remote. Like Marin's resources, it is not part
	// of the version: where a step runs does not change what it computes.
	Remote *cairn.RemoteSpec
}

// Step is a typed step: a function of a config of type C that may return an
// artifact of type A. Build it with [New] or [NewWithArtifact]; a Step is
// immutable, and safe to share between goroutines and runs.
//
// Its version is computed from its name, the versioned values and input
// references in its config, and the versions of the steps those inputs
// refer to (see the package documentation). Two Steps with the same version
// are the same step: they share an output path and run once.
type Step[C, A any] struct {
	n *node
}

// node is the untyped part of a step.
type node struct {
	self   Node // the *Step holding this node
	name   string
	fnName string
	cfg    reflect.Value // the config as given (a copy of the caller's value)
	opts   StepOptions
	// refs are the versioned values and input references of the config, in
	// walk order.
	refs []entry
	err  error // construction error, reported by Resolve
	// call runs the step's function on a resolved config (a C).
	call func(ctx context.Context, cfg any) (any, error)
}

// New returns a step named name that runs fn with a resolved copy of cfg
// and saves no artifact.
//
// The name goes into the output path (PREFIX/NAME-HASH6) and may contain
// "/" to group steps. cfg is walked once, here; it must not be modified
// afterwards (it may share slices and maps with the caller). Problems with
// the name or the config (see the package documentation) are recorded and
// returned by [Resolve], naming the step and the offending field.
func New[C any](name string, fn func(context.Context, C) error, cfg C, opts *StepOptions) *Step[C, None] {
	var call func(context.Context, any) (any, error)
	if fn != nil {
		call = func(ctx context.Context, c any) (any, error) { return nil, fn(ctx, c.(C)) }
	}
	return newStep[C, None](name, funcName(fn), call, cfg, opts)
}

// NewWithArtifact is like [New] for a function that returns a value: the
// value is saved as the step's artifact (JSON) and is available, typed, to
// other steps through [ArtifactOf].
func NewWithArtifact[C, A any](name string, fn func(context.Context, C) (A, error), cfg C, opts *StepOptions) *Step[C, A] {
	var call func(context.Context, any) (any, error)
	if fn != nil {
		call = func(ctx context.Context, c any) (any, error) {
			a, err := fn(ctx, c.(C))
			if err != nil {
				return nil, err
			}
			return a, nil
		}
	}
	return newStep[C, A](name, funcName(fn), call, cfg, opts)
}

func newStep[C, A any](name, fnName string, call func(context.Context, any) (any, error), cfg C, opts *StepOptions) *Step[C, A] {
	n := &node{name: name, fnName: fnName, call: call}
	s := &Step[C, A]{n: n}
	n.self = s
	if opts != nil {
		n.opts = *opts
	}
	// A pointer to a fresh copy: the config value then lives in addressable
	// memory, like a field reached through a pointer, which matters for
	// pointer-receiver JSON methods.
	n.cfg = reflect.ValueOf(&cfg).Elem()
	if err := cairn.ValidateName(name); err != nil {
		n.err = &ConfigError{Step: name, Reason: err.Error()}
	} else if fnName == "" {
		n.err = &ConfigError{Step: name, Reason: "nil function"}
	} else {
		n.refs, n.err = collect(name, n.cfg)
	}
	return s
}

// funcName names fn for the records (Marin's fn_name). It is the only use
// of reflection on a function, and only for its symbol name.
func funcName[F any](fn F) string {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return ""
	}
	if f := runtime.FuncForPC(v.Pointer()); f != nil {
		return f.Name()
	}
	return "unknown"
}

// Name returns the step's name.
func (s *Step[C, A]) Name() string { return s.n.name }

// Config returns the step's config as given to New, placeholders
// unresolved.
func (s *Step[C, A]) Config() C { return s.n.cfg.Interface().(C) }

// String returns the step's name.
func (s *Step[C, A]) String() string { return s.n.name }

func (s *Step[C, A]) node() *node {
	if s == nil {
		return nil
	}
	return s.n
}

type loggerKey struct{}

// Logger returns the logger of the running step, which names the step, from
// the context a step function receives; elsewhere it returns
// slog.Default().
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	return slog.Default()
}
