package recipe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"example.com/cairn/recipe"
)

// The golden vectors in testdata/versions were written by
// testdata/versions/gen.py: Python's json.dumps(version, sort_keys=True) and
// hashlib.md5 over pipelines built with a re-implementation of Marin's
// executor versioning. The builders below build the same pipelines in Go.
// The vectors are persistent formats (they name every output directory):
// regenerate them only with gen.py, and review the change.

func nop[C any](context.Context, C) error { return nil }

type empty struct{}

// basic is reference scenario 60.
type bConfig struct {
	InputPath  recipe.Input          `json:"input_path"`
	OutputPath recipe.Output         `json:"output_path"`
	N          recipe.Versioned[int] `json:"n"`
	M          int                   `json:"m"`
}

func basicCase() []recipe.Node {
	a := recipe.New("a", nop[empty], empty{}, nil)
	b := recipe.New("b", nop[bConfig], bConfig{InputPath: recipe.OutputOf(a, "sub"), N: recipe.V(3), M: 4}, nil)
	return []recipe.Node{b}
}

type optim struct {
	LR       recipe.Versioned[float64]        `json:"lr"`
	Betas    recipe.Versioned[[]float64]      `json:"betas"`
	Schedule recipe.Versioned[map[string]any] `json:"schedule"`
}

type model struct {
	Layers  []recipe.Versioned[int]  `json:"layers"`
	Act     recipe.Versioned[string] `json:"act"`
	Dropout float64                  `json:"dropout"`
}

type trainConfig struct {
	Data    recipe.Input                           `json:"data"`
	Model   model                                  `json:"model"`
	Optim   *optim                                 `json:"optim"`
	Tags    map[string]any                         `json:"tags"`
	Extra   []map[string]recipe.Versioned[float64] `json:"extra"`
	Seed    recipe.Versioned[uint64]               `json:"seed"`
	Note    recipe.Versioned[string]               `json:"note"`
	Big     recipe.Versioned[float64]              `json:"big"`
	Nothing recipe.Versioned[any]                  `json:"nothing"`
	Flag    recipe.Versioned[bool]                 `json:"flag"`
}

func valuesCase() []recipe.Node {
	data := recipe.New("data/raw", nop[recipe.Versioned[string]], recipe.V("https://example.com/corpus.tar <v2> & more"), nil)
	negZero := 0.0
	negZero = -negZero
	train := recipe.New("train/lm", nop[trainConfig], trainConfig{
		Data:  recipe.OutputOf(data, "tokens").Join("train"),
		Model: model{Layers: []recipe.Versioned[int]{recipe.V(12), recipe.V(24)}, Act: recipe.V("gelu"), Dropout: 0.1},
		Optim: &optim{
			LR:       recipe.V(3e-4),
			Betas:    recipe.V([]float64{0.9, 0.95}),
			Schedule: recipe.V(map[string]any{"warmup": 1000, "decay": "cosine", "min": 1e-05}),
		},
		Tags:    map[string]any{"a_first": recipe.V("x"), "b_second": recipe.V(true), "c_plain": "ignored"},
		Extra:   []map[string]recipe.Versioned[float64]{{"k": recipe.V(1.0)}, {"k": recipe.V(negZero)}},
		Seed:    recipe.V(uint64(12345678901234567890)),
		Note:    recipe.V("café 😀 \"q\" \\ \n"),
		Big:     recipe.V(1e20),
		Nothing: recipe.V[any](nil),
		Flag:    recipe.V(false),
	}, nil)
	return []recipe.Node{train}
}

type pathsConfig struct {
	Raw    recipe.Input  `json:"raw"`
	Abs    recipe.Input  `json:"abs"`
	URL    recipe.Input  `json:"url"`
	Joined recipe.Input  `json:"joined"`
	Out    recipe.Output `json:"out"`
}

func pathsCase() []recipe.Node {
	return []recipe.Node{recipe.New("paths", nop[pathsConfig], pathsConfig{
		Raw:    recipe.Path("raw/data"),
		Abs:    recipe.Path("/abs/data"),
		URL:    recipe.Path("gs://other/data").Join("x"),
		Joined: recipe.Path("raw").Join("a/b"),
		Out:    recipe.ThisOutput("ckpt"),
	}, nil)}
}

type mixedConfig struct {
	First recipe.Input `json:"first"`
	Ckpt  recipe.Input `json:"ckpt"`
	Again recipe.Input `json:"again"`
}

func pseudoCase() []recipe.Node {
	parent := recipe.New("parent", nop[recipe.Versioned[string]], recipe.V("p"), nil)
	child := recipe.New("child", nop[recipe.Input], recipe.OutputOf(parent, "ckpt.pt").Nonblocking(), nil)
	other := recipe.New("other", nop[empty], empty{}, nil)
	mixed := recipe.New("mixed", nop[mixedConfig], mixedConfig{
		First: recipe.OutputOf(other, ""),
		Ckpt:  recipe.OutputOf(parent, "").Nonblocking(),
		Again: recipe.OutputOf(other, "x"),
	}, nil)
	return []recipe.Node{child, mixed}
}

type tokConfig struct {
	Input     recipe.Input             `json:"input"`
	Tokenizer recipe.Versioned[string] `json:"tokenizer"`
	Workers   int                      `json:"workers"`
}

func chainCase() []recipe.Node {
	src := recipe.New("chain/src", nop[map[string]any], map[string]any{"url": recipe.V("s3://bucket/src")}, nil)
	tok := recipe.New("chain/tok", nop[tokConfig], tokConfig{Input: recipe.OutputOf(src, "docs"), Tokenizer: recipe.V("gpt2"), Workers: 8}, nil)
	merge := recipe.New("chain/merge", nop[[]any], []any{recipe.OutputOf(tok, "train"), recipe.OutputOf(tok, "valid"), recipe.V(2)}, nil)
	return []recipe.Node{merge}
}

type deepConfig struct {
	In recipe.Input          `json:"in"`
	K  recipe.Versioned[int] `json:"k"`
}

// chain returns the chain deep/c0 ... deep/c(n-1), each step reading the
// previous one's output.
func chain(n int) []recipe.Node {
	steps := []recipe.Node{recipe.New("deep/c0", nop[map[string]any], map[string]any{"k": recipe.V(0)}, nil)}
	for i := 1; i < n; i++ {
		steps = append(steps, recipe.New(fmt.Sprintf("deep/c%d", i), nop[deepConfig], deepConfig{In: recipe.OutputOf(steps[i-1], ""), K: recipe.V(i)}, nil))
	}
	return steps
}

// deepCase is the 7-step chain of issue 10: deep/c6 is the first step
// whose version refers to its dependency (c5, of depth 5) by name-hash6.
func deepCase() []recipe.Node { return chain(7)[6:] }

type fanConfig struct {
	A recipe.Input `json:"a"`
	B recipe.Input `json:"b"`
	C recipe.Input `json:"c"`
}

// deepfanCase joins a shallow dependency, a deep one and a deep
// non-blocking one.
func deepfanCase() []recipe.Node {
	deep := chain(8)
	shallow := recipe.New("fan/shallow", nop[map[string]any], map[string]any{"k": recipe.V("s")}, nil)
	return []recipe.Node{recipe.New("fan/join", nop[fanConfig], fanConfig{
		A: recipe.OutputOf(shallow, ""),
		B: recipe.OutputOf(deep[7], "x"),
		C: recipe.OutputOf(deep[5], "").Nonblocking(),
	}, nil)}
}

type golden struct {
	Case   string `json:"case"`
	Prefix string `json:"prefix"`
	Steps  []struct {
		Name       string `json:"name"`
		Version    string `json:"version"`
		Hash6      string `json:"hash6"`
		OutputPath string `json:"output_path"`
	} `json:"steps"`
}

func TestGoldenVersions(t *testing.T) {
	builders := map[string]func() []recipe.Node{
		"basic":  basicCase,
		"values": valuesCase,
		"paths":  pathsCase,
		"pseudo": pseudoCase,
		"chain":  chainCase,
		"deep":   deepCase,
		// Older Marin's rule, selected with recipe.InlineAll.
		"deep-legacy": deepCase,
		"deepfan":     deepfanCase,
	}
	files, err := filepath.Glob("testdata/versions/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(builders) {
		t.Errorf("%d golden files, %d builders: keep them in step", len(files), len(builders))
	}
	for _, f := range files {
		name := filepath.Base(f[:len(f)-len(".json")])
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var g golden
			if err := json.Unmarshal(data, &g); err != nil {
				t.Fatal(err)
			}
			build, ok := builders[name]
			if !ok {
				t.Fatalf("no builder for %s", f)
			}
			opts := &recipe.ResolveOptions{}
			if strings.HasSuffix(name, "-legacy") {
				opts.Versioning = recipe.InlineAll
			}
			pl, err := recipe.ResolveWith(g.Prefix, opts, build()...)
			if err != nil {
				t.Fatal(err)
			}
			infos := pl.Infos()
			if len(infos) != len(g.Steps) {
				t.Fatalf("plan has %d steps, golden %d", len(infos), len(g.Steps))
			}
			for i, want := range g.Steps {
				got := infos[i]
				if got.Name != want.Name {
					t.Errorf("step %d: name %q, want %q (plan order differs from Marin's)", i, got.Name, want.Name)
				}
				if string(got.Version) != want.Version {
					t.Errorf("step %s: version\n got %s\nwant %s", want.Name, got.Version, want.Version)
				}
				if got.OutputPath != want.OutputPath {
					t.Errorf("step %s: output path %s, want %s", want.Name, got.OutputPath, want.OutputPath)
				}
			}
		})
	}
}
