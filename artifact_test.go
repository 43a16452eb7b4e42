package cairn_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/internal/statusfile"
)

type pathArtifact struct {
	Path string `json:"path"`
}

type optionalArtifact struct {
	Path  string   `json:"path,omitempty"`
	Notes []string `json:"notes,omitzero"`
	Skip  int      `json:"-"`
}

type Base struct{ ID string }

type embedded struct {
	Base
	*Extra
	Count int `json:"count"`
}

type Extra struct{ More string }

type custom struct{ Raw string }

func (c *custom) UnmarshalJSON(b []byte) error { c.Raw = string(b); return nil }

// loadRaw stores data as the artifact of a fresh step and loads it as a T.
func loadRaw[T any](t *testing.T, data string) (T, error) {
	t.Helper()
	st := cairntest.NewStorage(t)
	s := &cairn.Step{Name: "art"}
	if _, err := st.StepBucket(t, s).Write(t.Context(), statusfile.ArtifactKey, []byte(data)); err != nil {
		t.Fatal(err)
	}
	return cairn.LoadArtifact[T](t.Context(), st.Mux, st.Prefix, s)
}

// Issues 8 and 10: a null artifact (a step that returned nothing) loads as
// nil into a type that can be nil and is an error satisfying ErrNoArtifact
// for one that cannot; a struct does not load from an object that lacks
// the fields an artifact saved from it always has, nor from one with keys
// it has no field for; a value of the wrong kind is an error naming the
// artifact.
func TestLoadArtifactStrictly(t *testing.T) {
	for _, data := range []string{"null", " null\n"} {
		if v, err := loadRaw[pathArtifact](t, data); !errors.Is(err, cairn.ErrNoArtifact) || !strings.Contains(err.Error(), "null") {
			t.Errorf("%q as struct = %+v, %v; want ErrNoArtifact saying it is null", data, v, err)
		}
		if v, err := loadRaw[int](t, data); !errors.Is(err, cairn.ErrNoArtifact) {
			t.Errorf("%q as int = %+v, %v; want ErrNoArtifact", data, v, err)
		}
		if v, err := loadRaw[*pathArtifact](t, data); err != nil || v != nil {
			t.Errorf("%q as pointer = %+v, %v; want nil, nil", data, v, err)
		}
		if v, err := loadRaw[any](t, data); err != nil || v != nil {
			t.Errorf("%q as any = %+v, %v; want nil, nil", data, v, err)
		}
	}
	// Unknown keys and wrong kinds, with the artifact named.
	for _, data := range []string{`{"path": "x", "extra": 1}`, `{"path": 3}`, `["x"]`, `{"path": "x"} {}`} {
		if v, err := loadRaw[pathArtifact](t, data); err == nil || !strings.Contains(err.Error(), "/.artifact does not fit") {
			t.Errorf("%s as pathArtifact = %+v, %v; want an error naming the artifact", data, v, err)
		}
	}
	// Missing always-written fields.
	for _, data := range []string{`{}`} {
		v, err := loadRaw[pathArtifact](t, data)
		if err == nil || errors.Is(err, cairn.ErrNoArtifact) || !strings.Contains(err.Error(), `"path"`) {
			t.Errorf("%s as pathArtifact = %+v, %v; want an error naming the missing field", data, v, err)
		}
		if _, err := loadRaw[*pathArtifact](t, data); err == nil {
			t.Errorf("%s as *pathArtifact: no error", data)
		}
	}
	if v, err := loadRaw[embedded](t, `{"count": 1}`); err == nil || !strings.Contains(err.Error(), `"ID"`) || strings.Contains(err.Error(), "More") {
		t.Errorf("embedded without ID = %+v, %v; want an error naming ID only", v, err)
	}
	// What encoding/json would accept and an artifact saved from the type
	// could hold, loads.
	for _, tc := range []struct {
		name string
		load func() (any, error)
		want any
	}{
		{"exact", func() (any, error) { return loadRaw[pathArtifact](t, `{"path": "x"}`) }, pathArtifact{"x"}},
		{"some fields, as a map", func() (any, error) { return loadRaw[map[string]any](t, `{"path": "x", "extra": 1}`) }, map[string]any{"path": "x", "extra": 1.0}},
		{"case-insensitive", func() (any, error) { return loadRaw[pathArtifact](t, `{"PATH": "x"}`) }, pathArtifact{"x"}},
		{"pointer", func() (any, error) { v, err := loadRaw[*pathArtifact](t, `{"path": "x"}`); return *v, err }, pathArtifact{"x"}},
		{"optional fields", func() (any, error) { return loadRaw[optionalArtifact](t, `{}`) }, optionalArtifact{}},
		{"embedded", func() (any, error) { return loadRaw[embedded](t, `{"ID": "i", "count": 2}`) }, embedded{Base: Base{"i"}, Count: 2}},
		{"map", func() (any, error) { return loadRaw[map[string]int](t, `{}`) }, map[string]int{}},
		{"custom decoder", func() (any, error) { return loadRaw[custom](t, `{}`) }, custom{"{}"}},
	} {
		got, err := tc.load()
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

// A struct artifact cairn saved always loads back, including zero values.
func TestArtifactRoundTripZeroStruct(t *testing.T) {
	st := cairntest.NewStorage(t)
	s := &cairn.Step{Name: "zero", Func: func(context.Context, *cairn.Output) (any, error) { return embedded{}, nil }}
	mustRun(t, st, nil, s)
	if v, err := cairn.LoadArtifact[embedded](t.Context(), st.Mux, st.Prefix, s); err != nil || v != (embedded{}) {
		t.Errorf("LoadArtifact = %+v, %v; want the zero value", v, err)
	}
}

// A step that returns nil saves null, as Marin saves None; loading it as a
// pointer gives nil.
func TestNilResultSavesNull(t *testing.T) {
	st := cairntest.NewStorage(t)
	s := &cairn.Step{Name: "nothing", Func: func(context.Context, *cairn.Output) (any, error) { return nil, nil }}
	mustRun(t, st, nil, s)
	data, _, err := st.StepBucket(t, s).Read(t.Context(), statusfile.ArtifactKey)
	if err != nil || string(data) != "null" {
		t.Fatalf("artifact %q, %v; want null", data, err)
	}
	if v, err := cairn.LoadArtifact[*pathArtifact](t.Context(), st.Mux, st.Prefix, s); err != nil || v != nil {
		t.Errorf("LoadArtifact as pointer = %v, %v; want nil, nil", v, err)
	}
}
