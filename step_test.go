package cairn_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"os"
	"strings"
	"testing"

	"example.com/cairn"
)

// vector is one golden identity, computed with Python's json.dumps and
// hashlib (testdata/keys/vectors.json). A change here invalidates every
// user's cache: update the file only deliberately.
type vector struct {
	Label     string   `json:"label"`
	Name      string   `json:"name"`
	Attrs     string   `json:"attrs"`
	Deps      []string `json:"deps"`
	ID        string   `json:"id"`
	Canonical string   `json:"canonical"`
}

func TestHashIDGoldenVectors(t *testing.T) {
	data, err := os.ReadFile("testdata/keys/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []vector
	if err := json.Unmarshal(data, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) < 10 {
		t.Fatalf("only %d vectors in testdata/keys/vectors.json", len(vectors))
	}
	for _, v := range vectors {
		t.Run(v.Label, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(v.Attrs))
			dec.UseNumber()
			var attrs any
			if err := dec.Decode(&attrs); err != nil {
				t.Fatal(err)
			}
			h, err := cairn.HashID(v.Name, attrs, v.Deps)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Name + "_" + h; got != v.ID {
				t.Errorf("HashID(%q, %s, %q) = %q, want %q (Python encodes %s)", v.Name, v.Attrs, v.Deps, got, v.ID, v.Canonical)
			}
		})
	}
}

func TestStepIDReferenceVectors(t *testing.T) {
	raw := &cairn.Step{Name: "raw"}
	clean := &cairn.Step{Name: "clean", Attrs: map[string]any{"min_len": 20, "lang": "en"}, Deps: []*cairn.Step{raw}}
	train := &cairn.Step{Name: "train", Attrs: map[string]any{"lr": 0.001, "layers": 2, "note": "naïve"}, Deps: []*cairn.Step{clean, raw}}
	for _, tc := range []struct {
		step *cairn.Step
		want string
	}{
		{raw, "raw_547180fc"},
		{clean, "clean_3ccae47e"},
		{train, "train_9ec17fd6"},
	} {
		got, err := tc.step.ID()
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("ID(%s) = %q, want %q", tc.step.Name, got, tc.want)
		}
	}
	// The issue's own vectors use dependency IDs directly.
	for _, tc := range []struct {
		name  string
		attrs any
		deps  []string
		want  string
	}{
		{"raw", nil, nil, "547180fc"},
		{"clean", map[string]any{"min_len": 20, "lang": "en"}, []string{"raw_5f2b8e0c"}, "0d79ba85"},
		{"train", map[string]any{"lr": 0.001, "layers": 2, "note": "naïve"}, []string{"raw_5f2b8e0c", "clean_0a1b2c3d"}, "967adb8d"},
	} {
		got, err := cairn.HashID(tc.name, tc.attrs, tc.deps)
		if err != nil || got != tc.want {
			t.Errorf("HashID(%q) = %q, %v, want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestStepIDTypedAttrs(t *testing.T) {
	type cfg struct {
		LR    float64  `json:"lr"`
		Steps int      `json:"steps"`
		Name  string   `json:"name"`
		Tags  []string `json:"tags"`
		Ratio float64  `json:"ratio"`
	}
	s := &cairn.Step{Name: "typed", Attrs: cfg{LR: 0.001, Steps: 100, Name: "x", Tags: []string{"a", "b"}, Ratio: 1.0}}
	if got, _ := s.ID(); got != "typed_bd500026" {
		t.Errorf("ID(struct attrs) = %q, want typed_bd500026", got)
	}
	n := new(big.Int).Lsh(big.NewInt(1), 70)
	s = &cairn.Step{Name: "typed", Attrs: map[string]any{"n": n}}
	if got, _ := s.ID(); got != "typed_56c18bdb" {
		t.Errorf("ID(2**70) = %q, want typed_56c18bdb", got)
	}
}

func TestStepIDIndependentOfDepOrderAndPrefix(t *testing.T) {
	a, b := &cairn.Step{Name: "a"}, &cairn.Step{Name: "b"}
	x := &cairn.Step{Name: "x", Deps: []*cairn.Step{a, b}}
	y := &cairn.Step{Name: "x", Deps: []*cairn.Step{b, a}}
	idx, _ := x.ID()
	idy, _ := y.ID()
	if idx != idy {
		t.Errorf("dep order changed the ID: %q vs %q", idx, idy)
	}
	p1, _ := x.OutputPath("gs://marin-us-central1")
	p2, _ := x.OutputPath("gs://marin-us-east5/")
	if p1 != "gs://marin-us-central1/"+idx || p2 != "gs://marin-us-east5/"+idx {
		t.Errorf("OutputPath = %q, %q; want the ID under each prefix", p1, p2)
	}
}

func TestOutputPathOverrides(t *testing.T) {
	for _, tc := range []struct {
		step   *cairn.Step
		prefix string
		want   string
	}{
		{&cairn.Step{Name: "raw"}, "/data", "/data/raw_547180fc"},
		{&cairn.Step{Name: "raw", OverridePath: "fixed/place"}, "/data", "/data/fixed/place"},
		{&cairn.Step{Name: "raw", OverridePath: "/abs/place"}, "/data", "/abs/place"},
		{&cairn.Step{Name: "raw", OverridePath: "s3://b/k"}, "/data", "s3://b/k"},
		{&cairn.Step{Name: "raw", Prefix: "gs://own"}, "/data", "gs://own/raw_547180fc"},
	} {
		got, err := tc.step.OutputPath(tc.prefix)
		if err != nil || got != tc.want {
			t.Errorf("OutputPath(%+v, %q) = %q, %v; want %q", tc.step, tc.prefix, got, err, tc.want)
		}
	}
	if _, err := (&cairn.Step{Name: "raw"}).OutputPath(""); !errors.Is(err, cairn.ErrInvalidPipeline) {
		t.Errorf("OutputPath with no prefix: err = %v, want ErrInvalidPipeline", err)
	}
}

// Issue 8: an output path that is the prefix itself, or outside it, is a
// definition error: the step's control files would sit where status never
// looks (or beside other steps' directories).
func TestOutputPathRejectsPrefixRoot(t *testing.T) {
	for _, tc := range []struct {
		override, prefix string
	}{
		{".", "/data"},
		{"./", "/data"},
		{"./x", "/data"},
		{"a/..", "/data"},
		{"..", "/data"},
		{"../x", "/data"},
		{"a//b", "/data"},
		{".cairn-tmp-1", "/data"},
		{"a/.cairn-tmp-1", "gs://b/p"},
		{"/data", "/data"},
		{"/data/", "/data"},
		{"/data/x/..", "/data/"},
		{"gs://b/p/", "gs://b/p"},
	} {
		s := &cairn.Step{Name: "raw", OverridePath: tc.override}
		if got, err := s.OutputPath(tc.prefix); !errors.Is(err, cairn.ErrInvalidPipeline) || !strings.Contains(err.Error(), "OverridePath") {
			t.Errorf("OutputPath(OverridePath %q, prefix %q) = %q, %v; want ErrInvalidPipeline", tc.override, tc.prefix, got, err)
		}
	}
	// Names and paths Marin pipelines may use are still fine.
	for _, tc := range []struct {
		step         *cairn.Step
		prefix, want string
	}{
		{&cairn.Step{Name: ".hidden"}, "/data", "/data/.hidden_" + mustHash(t, ".hidden")},
		{&cairn.Step{Name: "raw", OverridePath: ".cache/raw"}, "/data", "/data/.cache/raw"},
		{&cairn.Step{Name: "raw", OverridePath: "/data/raw"}, "/data", "/data/raw"},
		{&cairn.Step{Name: "raw", OverridePath: "/elsewhere"}, "/data", "/elsewhere"},
	} {
		if got, err := tc.step.OutputPath(tc.prefix); err != nil || got != tc.want {
			t.Errorf("OutputPath(%+v, %q) = %q, %v; want %q", tc.step, tc.prefix, got, err, tc.want)
		}
	}
}

func mustHash(t *testing.T, name string) string {
	t.Helper()
	h, err := cairn.HashID(name, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestStepIDErrors(t *testing.T) {
	cyc1 := &cairn.Step{Name: "c1"}
	cyc2 := &cairn.Step{Name: "c2", Deps: []*cairn.Step{cyc1}}
	cyc1.Deps = []*cairn.Step{cyc2}
	top := &cairn.Step{Name: "top", Deps: []*cairn.Step{cyc2}}
	ch := make(chan int)
	type selfRef struct {
		Next *selfRef `json:"next"`
	}
	loop := &selfRef{}
	loop.Next = loop
	for _, tc := range []struct {
		name string
		step *cairn.Step
		want []string // substrings of the error
	}{
		{"empty name", &cairn.Step{}, []string{"invalid step name", "empty"}},
		{"dotdot", &cairn.Step{Name: "a/../b"}, []string{`"a/../b"`}},
		{"leading slash", &cairn.Step{Name: "/a"}, []string{"leading"}},
		{"control char", &cairn.Step{Name: "a\nb"}, []string{"control"}},
		// Issue 8: directories status would never list.
		{"cairn temp name", &cairn.Step{Name: ".cairn-tmp-x"}, []string{".cairn-tmp-", "reserved"}},
		{"cairn temp segment", &cairn.Step{Name: "group/.cairn-tmp-x/y"}, []string{".cairn-tmp-", "reserved"}},
		{"nfs temp segment", &cairn.Step{Name: ".nfs0123456789abcdef01234567/y"}, []string{".nfs", "reserved"}},
		{"NaN", &cairn.Step{Name: "nan", Attrs: map[string]any{"lr": math.NaN()}}, []string{`step "nan"`, "attribute lr"}},
		{"Inf nested", &cairn.Step{Name: "inf", Attrs: map[string]any{"opt": map[string]any{"eps": math.Inf(1)}}}, []string{"attribute opt.eps"}},
		{"chan", &cairn.Step{Name: "ch", Attrs: map[string]any{"c": ch}}, []string{"attribute c"}},
		{"func", &cairn.Step{Name: "fn", Attrs: map[string]any{"f": func() {}}}, []string{"attribute f"}},
		{"cyclic value", &cairn.Step{Name: "cv", Attrs: map[string]any{"l": loop}}, []string{`step "cv"`, "attribute l"}},
		{"not an object", &cairn.Step{Name: "arr", Attrs: []int{1}}, []string{"JSON object"}},
		{"nil dep", &cairn.Step{Name: "nd", Deps: []*cairn.Step{nil}}, []string{"Deps[0] is nil"}},
		{"bad dep", &cairn.Step{Name: "parent", Deps: []*cairn.Step{{Name: ""}}}, []string{`step "parent"`, "dependency"}},
		{"cycle", top, []string{"cycle", "c2 -> c1 -> c2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.step.ID()
			if !errors.Is(err, cairn.ErrInvalidPipeline) {
				t.Fatalf("ID() error = %v, want ErrInvalidPipeline", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ID() error = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestDeepChainIdentity(t *testing.T) {
	// 100,000 levels must not exhaust the stack.
	var prev *cairn.Step
	for i := range 100000 {
		s := &cairn.Step{Name: "s", Attrs: map[string]int{"i": i}}
		if prev != nil {
			s.Deps = []*cairn.Step{prev}
		}
		prev = s
	}
	if _, err := prev.ID(); err != nil {
		t.Fatal(err)
	}
}
