package recipe_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"example.com/cairn"
	"example.com/cairn/recipe"
)

type cyclic struct {
	Next *cyclic
	In   recipe.Input
}

// Every misuse is an error from Resolve naming the step and the field, and
// satisfying errors.Is(err, cairn.ErrInvalidPipeline).
func TestMisuse(t *testing.T) {
	a := recipe.New("a", nop[empty], empty{}, nil)
	loop := &cyclic{In: recipe.OutputOf(a, "")}
	loop.Next = loop
	type flat struct {
		M map[string]recipe.Versioned[int] `json:"a"`
		B struct {
			X recipe.Versioned[int] `json:"b"`
		} `json:"-"`
	}
	for _, tc := range []struct {
		name  string
		steps func() []recipe.Node
		want  string // the whole message
	}{
		{"versioned reference", one(recipe.V(recipe.OutputOf(a, "x"))),
			`recipe: step "s": recipe.Input inside a versioned value (a versioned value must be plain data: version the values a reference is built from, not the reference)`},
		{"versioned in versioned", one(struct {
			X recipe.Versioned[recipe.Versioned[int]]
		}{recipe.V(recipe.V(1))}),
			`recipe: step "s": config field X: recipe.Versioned[int] inside a versioned value`},
		{"reference deep in a versioned value", one(struct{ X recipe.Versioned[[]any] }{recipe.V([]any{1, recipe.ThisOutput("")})}),
			`recipe: step "s": config field X[1]: recipe.Output inside a versioned value`},
		{"step in a versioned value", one(struct{ X recipe.Versioned[any] }{recipe.V[any](a)}),
			`config field X: *recipe.Step[example.com/cairn/recipe_test.empty,recipe.None] inside a versioned value`},
		{"unset input", one(struct{ In recipe.Input }{}),
			`recipe: step "s": config field In: recipe.Input is not set: build it with recipe.OutputOf or recipe.Path (use a *recipe.Input for an optional input)`},
		{"unset artifact", one(struct{ A recipe.Artifact[int] }{}),
			`config field A: recipe.Artifact is not set: build it with recipe.ArtifactOf`},
		{"nil step", one(struct{ In recipe.Input }{recipe.OutputOf(nil, "x")}),
			`config field In: recipe.OutputOf: nil step`},
		{"nil typed step", one(struct{ A recipe.Artifact[recipe.None] }{recipe.ArtifactOf[empty, recipe.None](nil)}),
			`config field A: recipe.ArtifactOf: nil step`},
		{"empty path", one(struct{ In recipe.Input }{recipe.Path("")}),
			`config field In: recipe.Path: empty path`},
		{"absolute sub-path", one(struct{ In recipe.Input }{recipe.OutputOf(a, "/etc")}),
			`config field In: sub-path "/etc" must be relative`},
		{"escaping sub-path", one(struct{ In recipe.Input }{recipe.OutputOf(a, "x").Join("../../y")}),
			`config field In: sub-path "../../y" must not contain ".."`},
		{"escaping output", one(struct{ Out recipe.Output }{recipe.ThisOutput("a/../..")}),
			`config field Out: sub-path "a/../.." must not contain ".."`},
		{"unexported field", one(struct{ in recipe.Input }{recipe.OutputOf(a, "")}),
			`config field in: recipe.Input inside an unexported field (make it exported: the layer can neither read nor resolve it)`},
		{"unexported deep", one(struct{ X struct{ y []any } }{struct{ y []any }{[]any{recipe.V(1)}}}),
			`config field X.y[0]: recipe.Versioned[int] inside an unexported field`},
		{"json:\"-\" field", one(flat{M: map[string]recipe.Versioned[int]{}, B: struct {
			X recipe.Versioned[int] `json:"b"`
		}{recipe.V(1)}}),
			`config field B.X: recipe.Versioned[int] inside a field tagged json:"-" (it would be missing from the recorded config)`},
		{"embedded placeholder", one(struct{ recipe.Input }{recipe.OutputOf(a, "")}),
			`config field Input: embedded recipe.Input: give the field a name`},
		{"non-string map keys", one(struct{ M map[int]recipe.Input }{map[int]recipe.Input{7: recipe.OutputOf(a, "")}}),
			`config field M[7]: recipe.Input inside a map with int keys (only string keys have a deterministic order)`},
		{"step as a value", one(struct{ S recipe.Node }{a}),
			`config field S: a step (*recipe.Step[example.com/cairn/recipe_test.empty,recipe.None]) cannot be used as a config value; refer to its output with recipe.OutputOf or recipe.ArtifactOf`},
		{"cyclic value", one(loop), `recipe: step "s": config field Next: cyclic value: it contains itself`},
		{"NaN", one(struct{ X recipe.Versioned[float64] }{recipe.V(math.NaN())}),
			`recipe: step "s": config field X: versioned value cannot be encoded: JSON cannot carry NaN`},
		{"bad value deep in a versioned value", one(struct {
			X recipe.Versioned[map[string]any] `json:"x"`
		}{recipe.V(map[string]any{"f": func() {}})}),
			`config field X: versioned value cannot be encoded: at f: unsupported type func()`},
		{"colliding version keys", one(map[string]any{"a.b": recipe.V(1), "a": map[string]any{"b": recipe.V(2)}}),
			`recipe: step "s": config field ["a.b"]: version key "a.b" is used by two config values (a map key containing "." can collide with a nested field); rename one`},
		{"unencodable config", one(struct{ F func() }{func() {}}),
			`recipe: step "s": resolved config cannot be encoded as JSON for the step records: json: unsupported type: func()`},
		{"empty name", func() []recipe.Node { return []recipe.Node{recipe.New("", nop[empty], empty{}, nil)} },
			`recipe: step "": invalid step name "": empty`},
		{"bad name", func() []recipe.Node { return []recipe.Node{recipe.New("a//b", nop[empty], empty{}, nil)} },
			`recipe: step "a//b": invalid step name "a//b": empty, "." or ".." path segment`},
		{"nil function", func() []recipe.Node { return []recipe.Node{recipe.New[empty]("f", nil, empty{}, nil)} },
			`recipe: step "f": nil function`},
		{"nil function with artifact", func() []recipe.Node {
			return []recipe.Node{recipe.NewWithArtifact[empty, int]("f", nil, empty{}, nil)}
		}, `recipe: step "f": nil function`},
		{"a dependency's error", func() []recipe.Node {
			bad := recipe.New("bad", nop[recipe.Versioned[float64]], recipe.V(math.Inf(1)), nil)
			return []recipe.Node{recipe.New("s", nop[recipe.Input], recipe.OutputOf(bad, ""), nil)}
		}, `recipe: step "bad": versioned value cannot be encoded: JSON cannot carry Infinity (+Inf)`},
		{"one path, two versions", func() []recipe.Node {
			return []recipe.Node{
				recipe.New("x", nop[recipe.Versioned[int]], recipe.V(1), &recipe.StepOptions{OverridePath: "shared"}),
				recipe.New("y", nop[recipe.Versioned[int]], recipe.V(2), &recipe.StepOptions{OverridePath: "shared"}),
			}
		}, `recipe: step "y": its output path mem://p/shared is also the output path of step "x", whose version differs; change one step's name or OverridePath`},
		{"one version, two paths", func() []recipe.Node {
			return []recipe.Node{
				recipe.New("x", nop[recipe.Versioned[int]], recipe.V(1), &recipe.StepOptions{OverridePath: "one"}),
				recipe.New("x", nop[recipe.Versioned[int]], recipe.V(1), &recipe.StepOptions{OverridePath: "/two"}),
			}
		}, `recipe: step "x": it has the same version as another step named "x" but a different OverridePath (/two, not mem://p/one)`},
		{"nil node", func() []recipe.Node { return []recipe.Node{a, nil} }, `invalid pipeline: recipe: step 2 of 2 is nil`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := recipe.Resolve("mem://p", tc.steps()...)
			if err == nil {
				t.Fatalf("Resolve succeeded, want %q", tc.want)
			}
			if !errors.Is(err, cairn.ErrInvalidPipeline) {
				t.Errorf("error %v does not satisfy ErrInvalidPipeline", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

// one returns a builder of a single step named "s" with config cfg.
func one[C any](cfg C) func() []recipe.Node {
	return func() []recipe.Node { return []recipe.Node{recipe.New("s", nop[C], cfg, nil)} }
}

func TestResolvePrefix(t *testing.T) {
	if _, err := recipe.Resolve(""); !errors.Is(err, cairn.ErrInvalidPipeline) {
		t.Errorf("empty prefix: %v", err)
	}
	pl, err := recipe.Resolve("rel/dir/")
	if err != nil {
		t.Fatal(err)
	}
	if p := pl.Prefix(); !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/rel/dir") {
		t.Errorf("prefix %q, want an absolute path ending in /rel/dir", p)
	}
}

// Placeholders outside a step's function are unresolved: their paths
// panic, their JSON and Open fail, String describes them.
func TestUnresolvedPlaceholders(t *testing.T) {
	a := recipe.New("a", nop[empty], empty{}, nil)
	ctx := context.Background()
	in := recipe.OutputOf(a, "x").Nonblocking()
	if got, want := in.String(), `recipe.OutputOf(a, "x").Nonblocking()`; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := recipe.ArtifactOf(a).String(), "recipe.ArtifactOf(a)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := recipe.Path("raw").String(), `recipe.Path("raw")`; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := recipe.ThisOutput("o").String(), `recipe.ThisOutput("o")`; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if !panics(func() { _ = in.Path() }) || !panics(func() { _ = recipe.Output{}.Path() }) || !panics(func() { _ = recipe.ArtifactOf(a).Path() }) {
		t.Error("Path on an unresolved placeholder does not panic")
	}
	if _, err := in.MarshalJSON(); err == nil {
		t.Error("MarshalJSON of an unresolved Input succeeded")
	}
	if _, err := in.Open(ctx); err == nil {
		t.Error("Open of an unresolved Input succeeded")
	}
	if _, err := (recipe.Output{}).Open(ctx); err == nil {
		t.Error("Open of an unresolved Output succeeded")
	}
	if _, err := recipe.ArtifactOf(a).Load(ctx); err == nil {
		t.Error("Load of an unresolved Artifact succeeded")
	}
	var v recipe.Versioned[[]int]
	if err := v.UnmarshalJSON([]byte("[1,2]")); err != nil || len(v.Value()) != 2 || v.String() != "[1 2]" {
		t.Errorf("Versioned round trip: %v, %v", v, err)
	}
}
