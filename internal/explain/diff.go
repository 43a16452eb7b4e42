package explain

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
)

// A Change is one field that differs between two configs.
type Change struct {
	// Field is the dotted path of the field ("attrs.lr", "model.layers[2]").
	Field string `json:"field"`
	// Old and New are the field's JSON values; Absent when the field is
	// missing on that side.
	Old string `json:"old"`
	New string `json:"new"`
}

// Absent stands for a field missing on one side of a Change.
const Absent = "(absent)"

func (c Change) String() string { return c.Field + " " + c.Old + " → " + c.New }

// Diff returns the fields that differ between old and new, two decoded JSON
// values (maps, slices, strings, float64 or json.Number, bools, nil), each
// named root followed by its path: object keys joined by dots, in sorted
// order, and array elements by index. Arrays of different lengths and
// values of different kinds differ as a whole.
func Diff(root string, old, new any) []Change {
	var out []Change
	diff(root, old, new, true, true, &out)
	return out
}

func diff(path string, old, new any, hasOld, hasNew bool, out *[]Change) {
	switch {
	case !hasOld && !hasNew:
		return
	case !hasOld:
		*out = append(*out, Change{Field: path, Old: Absent, New: text(new)})
		return
	case !hasNew:
		*out = append(*out, Change{Field: path, Old: text(old), New: Absent})
		return
	}
	om, ok1 := old.(map[string]any)
	nm, ok2 := new.(map[string]any)
	if ok1 && ok2 {
		keys := make([]string, 0, len(om)+len(nm))
		for k := range om {
			keys = append(keys, k)
		}
		for k := range nm {
			if _, ok := om[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			ov, ho := om[k]
			nv, hn := nm[k]
			diff(join(path, k), ov, nv, ho, hn, out)
		}
		return
	}
	oa, ok1 := old.([]any)
	na, ok2 := new.([]any)
	if ok1 && ok2 && len(oa) == len(na) {
		for i := range oa {
			diff(path+"["+strconv.Itoa(i)+"]", oa[i], na[i], true, true, out)
		}
		return
	}
	if on, ok := old.(json.Number); ok {
		if nn, ok := new.(json.Number); ok && sameNumber(on, nn) {
			return
		}
	}
	if to, tn := text(old), text(new); to != tn {
		*out = append(*out, Change{Field: path, Old: to, New: tn})
	}
}

// sameNumber reports whether two numbers are equal, whatever their
// spelling: Python writes 1e-05 where Go writes 0.00001.
func sameNumber(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, err1 := a.Float64()
	y, err2 := b.Float64()
	return err1 == nil && err2 == nil && x == y
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// text is the compact JSON of v, numbers as written.
func text(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "?"
	}
	return string(bytes.TrimSpace(buf.Bytes()))
}

// Decode decodes JSON data for Diff, keeping numbers as written.
func Decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// Normalize turns any JSON-encodable value into the decoded form Diff
// compares (numbers as json.Number), so that a value from the program and
// one read back from a record compare equal when their JSON is equal.
func Normalize(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}
