package cairn

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Decoding artifacts (issue 8). encoding/json fills what it finds and
// leaves the rest zero, so a `{}` — or another step's artifact — would load
// as a plausible-looking zero struct. Marin constructs a dataclass from the
// artifact's keys, which fails when a field without a default is missing.
// The Go counterpart of "a field without a default" is a field that
// encoding/json always writes: exported, not `json:"-"`, without omitempty
// or omitzero. An artifact saved from a T has every one of them, so an
// artifact that lacks one was not saved from a T. Keys T does not know are
// refused too (issue 10): loading another step's artifact, or an artifact
// of an older shape, must fail rather than half-fill a T; a reader that
// wants only some fields loads a map or json.RawMessage.

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkArtifactFields returns an error if T is a struct (or pointer to one)
// decoded by field and data, a JSON object, lacks a key for one of the
// fields encoding/json always writes. Nested structs are not checked.
func checkArtifactFields[T any](data []byte) error {
	t := reflect.TypeFor[T]()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || decodesItself(t) {
		return nil
	}
	want := alwaysWritten(t)
	if len(want) == 0 {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil // not an object: json.Unmarshal has reported it
	}
	var missing []string
	for _, name := range want {
		if !hasKey(obj, name) {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing field(s) %q, which an artifact saved from a %s always has", missing, reflect.TypeFor[T]())
	}
	return nil
}

func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || p.Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || p.Implements(textUnmarshaler)
}

// hasKey matches keys as json.Unmarshal does: exactly, else ignoring case.
func hasKey(obj map[string]json.RawMessage, name string) bool {
	if _, ok := obj[name]; ok {
		return true
	}
	for k := range obj {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// alwaysWritten lists the JSON names of the fields of struct type t that
// encoding/json writes whatever their values, flattening embedded structs
// as it does. Fields of embedded pointers (absent when nil) are optional;
// a name that occurs more than once is skipped rather than resolved by
// encoding/json's dominance rules.
func alwaysWritten(t reflect.Type) []string {
	count := map[string]int{}
	var names []string
	var walk func(t reflect.Type, optional bool, seen map[reflect.Type]bool)
	walk = func(t reflect.Type, optional bool, seen map[reflect.Type]bool) {
		if seen[t] {
			return
		}
		seen[t] = true
		defer delete(seen, t)
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft, ptr := f.Type, false
				if ft.Kind() == reflect.Pointer {
					ft, ptr = ft.Elem(), true
				}
				if ft.Kind() == reflect.Struct {
					walk(ft, optional || ptr, seen)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			count[name]++
			if !optional && !hasOpt(opts, "omitempty") && !hasOpt(opts, "omitzero") {
				names = append(names, name)
			}
		}
	}
	walk(t, false, map[reflect.Type]bool{})
	var out []string
	for _, n := range names {
		if count[n] == 1 {
			out = append(out, n)
		}
	}
	return out
}

func hasOpt(opts, opt string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}
