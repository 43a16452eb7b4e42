package canonjson

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// field is a struct field to encode, possibly promoted from an embedded
// struct.
type field struct {
	name      string
	tagged    bool  // name came from a json tag
	index     []int // path of field indices from the outer struct
	typ       reflect.Type
	omitEmpty bool
	omitZero  bool
	quoted    bool // ",string" option on a scalar field
}

// typeFields returns the fields of struct type t to encode, sorted by name,
// caching the result for the duration of one Marshal call.
func (e *encoder) typeFields(t reflect.Type) []field {
	if fs, ok := e.fields[t]; ok {
		return fs
	}
	fs := typeFields(t)
	if e.fields == nil {
		e.fields = make(map[reflect.Type][]field)
	}
	e.fields[t] = fs
	return fs
}

// typeFields returns the fields that encoding/json would encode for struct
// type t, sorted by name (byte order). It follows encoding/json's algorithm:
// a breadth-first walk over embedded structs, after which fields hidden by
// Go's embedding rules (as amended by json tags) are dropped.
func typeFields(t reflect.Type) []field {
	var current []field
	next := []field{{typ: t}}

	// Count of queued names for current level and the next.
	var count, nextCount map[reflect.Type]int

	// Types already visited at an earlier level.
	visited := map[reflect.Type]bool{}

	var fields []field
	for len(next) > 0 {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}

		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true

			for i := range f.typ.NumField() {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						// Ignore embedded fields of unexported non-struct types.
						continue
					}
					// Embedded unexported struct types may still have
					// exported fields, which are promoted.
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !isValidTag(name) {
					name = ""
				}
				index := make([]int, len(f.index)+1)
				copy(index, f.index)
				index[len(f.index)] = i

				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}

				quoted := false
				if hasOption(opts, "string") {
					switch ft.Kind() {
					case reflect.Bool,
						reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
						reflect.Float32, reflect.Float64,
						reflect.String:
						quoted = true
					}
				}

				// Record a field unless it is an untagged embedded struct,
				// whose fields are promoted instead.
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					tagged := name != ""
					if name == "" {
						name = sf.Name
					}
					fields = append(fields, field{
						name:      name,
						tagged:    tagged,
						index:     index,
						typ:       ft,
						omitEmpty: hasOption(opts, "omitempty"),
						omitZero:  hasOption(opts, "omitzero"),
						quoted:    quoted,
					})
					if count[f.typ] > 1 {
						// The same embedded type appeared more than once at
						// this level: add a duplicate so that the conflict
						// resolution below annihilates the field.
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}

				// Queue the embedded struct for the next level.
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, field{name: ft.Name(), index: index, typ: ft})
				}
			}
		}
	}

	// Sort by name, breaking ties by depth, then tagged before untagged,
	// then index sequence, so that the dominant field comes first.
	slices.SortFunc(fields, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})

	// Drop fields hidden by Go's embedding rules: for each name keep the
	// dominant field if there is exactly one, and drop the name otherwise.
	out := fields[:0]
	for advance, i := 0, 0; i < len(fields); i += advance {
		fi := fields[i]
		for advance = 1; i+advance < len(fields); advance++ {
			if fields[i+advance].name != fi.name {
				break
			}
		}
		if advance == 1 {
			out = append(out, fi)
			continue
		}
		if dominant, ok := dominantField(fields[i : i+advance]); ok {
			out = append(out, dominant)
		}
	}
	return out
}

// dominantField returns the field that wins among fields with the same name,
// which are sorted as in typeFields. If the two shallowest fields are at the
// same depth and equally tagged there is no dominant field.
func dominantField(fields []field) (field, bool) {
	if len(fields) > 1 && len(fields[0].index) == len(fields[1].index) && fields[0].tagged == fields[1].tagged {
		return field{}, false
	}
	return fields[0], true
}

// hasOption reports whether the comma-separated tag options opts contain
// name.
func hasOption(opts, name string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == name {
			return true
		}
	}
	return false
}

// isValidTag reports whether s may be used as a JSON object key from a
// struct tag, using encoding/json's rule.
func isValidTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
			// Backslash and quote chars are reserved, but otherwise any
			// punctuation chars are allowed in a tag name.
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
