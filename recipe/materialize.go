package recipe

import (
	"context"
	"fmt"
	"reflect"

	"example.com/cairn"
)

// Upstream returns the steps v refers to: the targets of the Inputs
// (blocking or not) and Artifacts it holds, and steps it holds directly
// (for example a []recipe.Node), each once, in walk order. It does not look
// into the configs of the steps it finds, and hard-coded paths refer to no
// step. It fails on the misuses New rejects (a placeholder in an unexported
// field, a reference inside a versioned value, ...).
func Upstream(v any) ([]Node, error) {
	var found []*node
	w := &walker{steps: &found}
	if err := w.walk(reflect.ValueOf(v), "", "", ""); err != nil {
		return nil, err
	}
	nodes := make([]Node, len(found))
	for i, n := range found {
		nodes[i] = n.self
	}
	return nodes, nil
}

// Materialize returns a copy of cfg with its placeholders resolved, after
// running the steps it refers to (Marin's materialize): use it to hand a
// config to code that is not a step, such as a job launched by other
// means.
//
// A cfg without placeholders is returned unchanged and nothing is run or
// written. Otherwise the steps cfg refers to through blocking references
// (and their dependencies) are run as by [Run] with opts and rec, which
// writes their records; steps referred to only through non-blocking
// references are versioned but not run. Hard-coded paths are resolved
// against opts.Prefix; [Output] placeholders resolve to output joined with
// their sub-path (output is joined to the prefix if relative), and are an
// error if output is empty. Resolved placeholders open storage with
// opts.Storage.
//
// It returns cfg unchanged and an error if cfg misuses placeholders (a
// *ConfigError), if the run fails (the run's error), or if opts is nil.
func Materialize[C any](ctx context.Context, cfg C, output string, opts *cairn.RunOptions, rec *RecordOptions) (C, error) {
	const name = "(materialized config)"
	v := reflect.ValueOf(&cfg).Elem()
	entries, err := collect(name, v)
	if err != nil || len(entries) == 0 {
		return cfg, err
	}
	if opts == nil || opts.Storage == nil {
		return cfg, fmt.Errorf("%w: recipe: RunOptions.Storage is nil", cairn.ErrInvalidPipeline)
	}
	var roots, pseudo []*node
	for _, e := range entries {
		switch {
		case e.ref.kind == outputRef && output == "":
			return cfg, &ConfigError{Step: name, Field: e.field, Reason: "recipe.Output has no step output to resolve to: pass Materialize an output path"}
		case e.ref.kind != inputRef || e.ref.target == nil:
		case e.ref.nonblocking:
			pseudo = append(pseudo, e.ref.target)
		default:
			roots = append(roots, e.ref.target)
		}
	}
	pl, err := resolve(opts.Prefix, roots, pseudo, InlineShallow)
	if err != nil {
		return cfg, err
	}
	if len(roots) > 0 {
		if _, err := pl.Run(ctx, opts, rec); err != nil {
			return cfg, err
		}
	}
	if output != "" && !isAbsPath(output) {
		output = joinPath(pl.prefix, output)
	}
	self := &planned{path: output}
	res, err := instantiate(v, func(r ref) (*binding, error) {
		return &binding{path: pl.placeholderPath(self, r), open: opts.Storage.OpenBucket}, nil
	})
	if err != nil {
		return cfg, err
	}
	return res.Interface().(C), nil
}
