package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"example.com/cairn/config"
	"github.com/google/go-cmp/cmp"
)

type train struct {
	Order     int     `json:"order"`
	Smoothing string  `json:"smoothing"`
	Dropout   float64 `json:"dropout"`
}

type Common struct {
	Seed uint64 `json:"seed"`
}

type cfg struct {
	Common
	Train   train             `json:"train"`
	Shards  int8              `json:"shards"`
	Fold    bool              `json:"lowercase"`
	Layers  []int             `json:"layers"`
	Tags    map[string]string `json:"tags"`
	Timeout time.Duration     `json:"timeout"`
	Eval    *train            `json:"eval"`
	Extra   any               `json:"extra"`
	Skipped int               `json:"-"`
	hidden  int               //lint:ignore U1000 an unexported field the decoder must not set
}

func defaults() cfg {
	return cfg{
		Common: Common{Seed: 1},
		Train:  train{Order: 3, Smoothing: "kn", Dropout: 0.1},
		Shards: 4,
		Layers: []int{1, 2},
		Tags:   map[string]string{"team": "lm"},
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc string
		want      func(*cfg)
	}{
		{"empty document", "", func(*cfg) {}},
		{"comments only", "# nothing\n", func(*cfg) {}},
		{"nested field merges", "train:\n  order: 4\n", func(c *cfg) { c.Train.Order = 4 }},
		{"json", `{"train": {"order": 5, "dropout": 0}, "lowercase": true}`, func(c *cfg) { c.Train.Order, c.Train.Dropout, c.Fold = 5, 0, true }},
		{"promoted field of an embedded struct", "seed: 7", func(c *cfg) { c.Seed = 7 }},
		{"list replaced", "layers: [3]", func(c *cfg) { c.Layers = []int{3} }},
		{"map merged", "tags: {owner: ada}", func(c *cfg) { c.Tags = map[string]string{"team": "lm", "owner": "ada"} }},
		{"duration", "timeout: 1m30s", func(c *cfg) { c.Timeout = 90 * time.Second }},
		{"pointer allocated", "eval: {order: 2}", func(c *cfg) { c.Eval = &train{Order: 2} }},
		{"any", "extra: {a: [1, x]}", func(c *cfg) { c.Extra = map[string]any{"a": []any{1, "x"}} }},
		{"string takes any scalar", "train: {smoothing: 12}", func(c *cfg) { c.Train.Smoothing = "12" }},
		{"int as float", "train: {dropout: 1}", func(c *cfg) { c.Train.Dropout = 1 }},
		{"merge key", "base: &b {order: 9}\ntrain:\n  <<: *b\n  smoothing: wb\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want := defaults(), defaults()
			err := config.Decode("c.yaml", []byte(tc.doc), &got)
			if tc.want == nil { // "base" is no field: the error, not the merge, is what is checked
				if err == nil || !strings.Contains(err.Error(), `unknown field "base"`) {
					t.Fatalf("Decode = %v, want an unknown field error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want(&want)
			if d := cmp.Diff(want, got, cmp.AllowUnexported(cfg{})); d != "" {
				t.Errorf("Decode(%q) (-want +got):\n%s", tc.doc, d)
			}
		})
	}
}

func TestDecodeMergeKey(t *testing.T) {
	t.Parallel()
	type doc struct {
		Base  map[string]any `json:"base"`
		Train train          `json:"train"`
	}
	var got doc
	if err := config.Decode("c.yaml", []byte("base: &b {order: 9, smoothing: kn}\ntrain:\n  <<: *b\n  smoothing: wb\n"), &got); err != nil {
		t.Fatal(err)
	}
	if got.Train.Order != 9 || got.Train.Smoothing != "wb" {
		t.Errorf("train = %+v, want order 9 from the merge and smoothing wb of its own", got.Train)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown field with a close match", "train:\n  order: 4\n  ordr: 5\n", `c.yaml:3:3: train.ordr: unknown field "ordr" in train; did you mean "order"? (fields: order, smoothing, dropout)`},
		{"unknown top-level field", "trian: {}", `c.yaml:1:1: trian: unknown field "trian" in the configuration; did you mean "train"? (fields: seed, train, shards, lowercase, layers, tags, timeout, eval, extra)`},
		{"case", "Train: {}", `did you mean "train"?`},
		{"no close match", "zzz: 1", `unknown field "zzz" in the configuration (fields: seed,`},
		{"tagged out", "Skipped: 1", `unknown field "Skipped"`},
		{"unexported", "hidden: 1", `unknown field "hidden"`},
		{"string for int", "train:\n  order: four\n", `c.yaml:2:10: train.order: cannot use the string "four" as int`},
		{"float for int", "train: {order: 2.5}", `train.order: cannot use the number 2.5 as int`},
		{"int out of range", "shards: 300", `c.yaml:1:9: shards: 300 is out of range for int8`},
		{"negative uint", "seed: -1", `seed: -1 is out of range for uint64 (negative)`},
		{"bool", "lowercase: yes", `lowercase: cannot use the string "yes" as bool`},
		{"null for int", "train:\n  order:\n", `c.yaml:2:9: train.order: null (an empty value) for a field of type int: give a value`},
		{"scalar for struct", "train: 4", `c.yaml:1:8: train: the integer 4 for train: want a mapping of its fields (order, smoothing, dropout)`},
		{"mapping for list", "layers: {a: 1}", `layers: a mapping for a list ([]int)`},
		{"list element", "layers: [1, x]", `c.yaml:1:13: layers.1: cannot use the string "x" as int`},
		{"bad duration", "timeout: 90", `timeout: the integer 90 for a duration`},
		{"syntax", "train:\n  order: 4\n bad: [\n", `c.yaml:2: not valid YAML or JSON: did not find expected key`},
		{"duplicate key", "shards: 1\ntrain:\n  order: 1\n  order: 2\n", `c.yaml:4:3: train.order: set twice (first at line 3)`},
		{"two documents", "shards: 1\n---\nshards: 2\n", `c.yaml:2:1: a second document`},
		{"not a mapping", "- 1\n", `c.yaml:1:1: a list for the configuration: want a mapping`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaults()
			err := config.Decode("c.yaml", []byte(tc.doc), &c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Decode(%q) = %v, want an error containing %q", tc.doc, err, tc.want)
			}
			if _, ok := errors.AsType[*config.Error](err); !ok {
				t.Errorf("error %v is a %T, want *config.Error", err, err)
			}
		})
	}
}

// A .json document is JSON: what YAML alone accepts is an error there.
func TestDecodeJSONStrict(t *testing.T) {
	t.Parallel()
	c := defaults()
	err := config.Decode("c.json", []byte("{\n  \"train\": {\"order\": 4,}\n}"), &c)
	if err == nil || !strings.Contains(err.Error(), "c.json:2:") || !strings.Contains(err.Error(), "not valid JSON") {
		t.Fatalf("Decode = %v, want a JSON syntax error on line 2", err)
	}
	if err := config.Decode("c.yaml", []byte(`{"train": {"order": 4,}}`), &c); err != nil || c.Train.Order != 4 {
		t.Fatalf("the same flow mapping as YAML: %v, order %d", err, c.Train.Order)
	}
}

func TestSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		arg  string
		want func(*cfg)
	}{
		{"train.order=4", func(c *cfg) { c.Train.Order = 4 }},
		{"train.smoothing=a: b", func(c *cfg) { c.Train.Smoothing = "a: b" }}, // text, not YAML
		{"train.smoothing=", func(c *cfg) { c.Train.Smoothing = "" }},
		{"train={order: 7}", func(c *cfg) { c.Train.Order = 7 }},
		{"layers=[5, 6, 7]", func(c *cfg) { c.Layers = []int{5, 6, 7} }},
		{"layers.1=9", func(c *cfg) { c.Layers[1] = 9 }},
		{"tags.owner=ada", func(c *cfg) { c.Tags["owner"] = "ada" }},
		{"timeout=2h", func(c *cfg) { c.Timeout = 2 * time.Hour }},
		{"eval.order=2", func(c *cfg) { c.Eval = &train{Order: 2} }},
		{"eval=null", func(c *cfg) { c.Eval = nil }},
		{"seed=0x10", func(c *cfg) { c.Seed = 16 }},
		{"lowercase=true", func(c *cfg) { c.Fold = true }},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			got, want := defaults(), defaults()
			want.Tags = map[string]string{"team": "lm"}
			want.Layers = []int{1, 2}
			if err := config.SetArg(&got, tc.arg); err != nil {
				t.Fatal(err)
			}
			tc.want(&want)
			if d := cmp.Diff(want, got, cmp.AllowUnexported(cfg{})); d != "" {
				t.Errorf("SetArg(%q) (-want +got):\n%s", tc.arg, d)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		arg, want string
	}{
		{"train.ordr=4", `--set train.ordr=4: train.ordr: unknown field "ordr" in train; did you mean "order"? (fields: order, smoothing, dropout)`},
		{"train.order=four", `--set train.order=four: train.order: cannot use the string "four" as int`},
		{"train.order=", `--set train.order=: train.order: empty value for a field of type int`},
		{"train.order.x=1", `train.order: a value of type int has no field "x"`},
		{"timeout.x=1", `timeout: a value of type time.Duration has no fields`},
		{"layers.5=1", `layers: index 5 is out of range: the list has 2 elements`},
		{"layers.x=1", `layers: "x" is not an index of the list`},
		{"train.order", `--set train.order: want FIELD=VALUE`},
		{"=4", `empty field path`},
		{"train.order=[1", `train.order: "[1" is not a valid value`},
		{"shards=1000", `shards: 1000 is out of range for int8`},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			c := defaults()
			err := config.SetArg(&c, tc.arg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SetArg(%q) = %v, want an error containing %q", tc.arg, err, tc.want)
			}
		})
	}
}

func TestFields(t *testing.T) {
	t.Parallel()
	c := defaults()
	want := []string{"seed", "train.order", "train.smoothing", "train.dropout", "shards", "lowercase", "layers", "tags", "timeout", "eval.order", "eval.smoothing", "eval.dropout", "extra"}
	if d := cmp.Diff(want, config.Fields(&c)); d != "" {
		t.Errorf("Fields (-want +got):\n%s", d)
	}
}

func TestNotAStruct(t *testing.T) {
	t.Parallel()
	var n int
	if err := config.Decode("x", []byte("a: 1"), &n); err == nil {
		t.Error("Decode into *int succeeded")
	}
	if err := config.Set(nil, "a", "1"); err == nil {
		t.Error("Set into nil succeeded")
	}
}

// Decoding into a shallow copy of the defaults leaves the defaults' maps,
// lists and pointed-to structs alone.
func TestDefaultsUntouched(t *testing.T) {
	t.Parallel()
	def := defaults()
	def.Eval = &train{Order: 1}
	c := def
	if err := config.Decode("c.yaml", []byte("tags: {owner: ada}\neval: {order: 5}\n"), &c); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"layers.0=9", "tags.team=x", "eval.smoothing=wb"} {
		if err := config.SetArg(&c, arg); err != nil {
			t.Fatal(err)
		}
	}
	if len(def.Tags) != 1 || def.Tags["team"] != "lm" || def.Layers[0] != 1 || *def.Eval != (train{Order: 1}) {
		t.Errorf("defaults changed: tags %v, layers %v, eval %+v", def.Tags, def.Layers, *def.Eval)
	}
	if c.Tags["owner"] != "ada" || c.Tags["team"] != "x" || c.Layers[0] != 9 || *c.Eval != (train{Order: 5, Smoothing: "wb"}) {
		t.Errorf("decoded: tags %v, layers %v, eval %+v", c.Tags, c.Layers, *c.Eval)
	}
}
