package recipe

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// This file holds the only reflection of the package: walking configs to
// find placeholders (collect) and building resolved copies (instantiate).
//
// Walk order and keys follow Marin's collect_dependencies_and_version:
// struct fields in declaration order, slice and array elements by index,
// map entries by key. Go maps have no order, so map entries are walked in
// sorted key order where Python uses insertion order; a map literal written
// with sorted keys versions exactly as the equivalent Python dict. Keys are
// dotted paths: a struct field contributes its JSON name (the json tag's
// name if there is one, else the Go field name, as encoding/json names it,
// so that keys match the attribute names of an equivalent Python dataclass
// when tags are used), a map entry its key, an element "[i]"; Marin joins
// them with ".", so element 2 of field "paths" is "paths.[2]". Pointers and
// interfaces are transparent. Fields of untagged embedded structs are
// promoted, as encoding/json promotes them.

var (
	placeholderType = reflect.TypeFor[placeholder]()
	nodeType        = reflect.TypeFor[Node]()
	pkgPath         = reflect.TypeFor[Input]().PkgPath()
)

// entry is one placeholder found in a config.
type entry struct {
	key   string // version key (dotted JSON path)
	field string // Go path, for messages
	ref   ref
}

// walker walks one config value.
type walker struct {
	step    string
	entries []entry
	// steps, if not nil, collects steps found directly in the value instead
	// of rejecting them (Upstream).
	steps *[]*node
	types typeCache
	// active holds the pointers, maps and slices on the current path, to
	// reject cyclic values.
	active map[activeKey]bool
}

type activeKey struct {
	ptr uintptr
	typ reflect.Type
}

// collect returns the placeholders of cfg, in walk order.
func collect(step string, cfg reflect.Value) ([]entry, error) {
	w := &walker{step: step}
	if err := w.walk(cfg, "", "", ""); err != nil {
		return nil, err
	}
	return w.entries, nil
}

func (w *walker) errorf(field, format string, args ...any) error {
	return &ConfigError{Step: w.step, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// walk visits v, whose version key is key and Go path field. forbid, if not
// empty, says why placeholders are not allowed at v ("an unexported
// field", ...).
func (w *walker) walk(v reflect.Value, key, field, forbid string) error {
	if !v.IsValid() {
		return nil
	}
	t := v.Type()
	if !w.types.mayHold(t) {
		return nil
	}
	if isPlaceholder(t) {
		if forbid != "" {
			return w.errorf(field, "%s inside %s", typeName(t), forbid)
		}
		r := v.Interface().(placeholder).placeholder()
		if r.err != nil {
			return w.errorf(field, "%v", r.err)
		}
		if r.kind == versionedRef {
			if err := w.walk(reflect.ValueOf(r.value), key, field, "a versioned value (a versioned value must be plain data: version the values a reference is built from, not the reference)"); err != nil {
				return err
			}
		}
		w.entries = append(w.entries, entry{key: key, field: field, ref: r})
		if w.steps != nil && r.target != nil && !slices.Contains(*w.steps, r.target) {
			*w.steps = append(*w.steps, r.target)
		}
		return nil
	}
	if isNode(t) {
		if v.IsNil() {
			return nil
		}
		if forbid != "" {
			return w.errorf(field, "%s inside %s", typeName(t), forbid)
		}
		if w.steps != nil {
			if n := v.Interface().(Node).node(); n != nil && !slices.Contains(*w.steps, n) {
				*w.steps = append(*w.steps, n)
			}
			return nil
		}
		return w.errorf(field, "a step (%s) cannot be used as a config value; refer to its output with recipe.OutputOf or recipe.ArtifactOf", typeName(t))
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		// References: nil holds nothing; a cycle through one is an error.
		if v.IsNil() {
			return nil
		}
		done, err := w.enter(v, field)
		if err != nil {
			return err
		}
		defer done()
	}
	switch v.Kind() {
	case reflect.Pointer:
		return w.walk(v.Elem(), key, field, forbid)
	case reflect.Interface:
		return w.walk(v.Elem(), key, field, forbid)
	case reflect.Struct:
		return w.walkStruct(v, key, field, forbid)
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := w.walk(v.Index(i), indexKey(key, i), field+"["+strconv.Itoa(i)+"]", forbid); err != nil {
				return err
			}
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			if forbid == "" {
				forbid = fmt.Sprintf("a map with %s keys (only string keys have a deterministic order)", t.Key())
			}
			for it := v.MapRange(); it.Next(); {
				if err := w.walk(it.Value(), key, fmt.Sprintf("%s[%v]", field, it.Key()), forbid); err != nil {
					return err
				}
			}
			return nil
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			if err := w.walk(v.MapIndex(k), joinKey(key, k.String()), fmt.Sprintf("%s[%q]", field, k.String()), forbid); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *walker) walkStruct(v reflect.Value, key, field, forbid string) error {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if !w.types.mayHold(sf.Type) {
			continue
		}
		fpath := sf.Name
		if field != "" {
			fpath = field + "." + sf.Name
		}
		name, tagged, skip := jsonName(sf)
		ff := forbid
		switch {
		case ff != "":
		case !sf.IsExported():
			ff = "an unexported field (make it exported: the layer can neither read nor resolve it)"
		case skip:
			ff = `a field tagged json:"-" (it would be missing from the recorded config)`
		case sf.Anonymous && (isPlaceholder(sf.Type) || sf.Type.Kind() == reflect.Pointer && isPlaceholder(sf.Type.Elem())):
			return w.errorf(fpath, "embedded %s: give the field a name", typeName(sf.Type))
		}
		fkey := joinKey(key, name)
		if sf.Anonymous && !tagged && isStructOrPtr(sf.Type) {
			fkey = key // promoted, as encoding/json does
		}
		if err := w.walk(v.Field(i), fkey, fpath, ff); err != nil {
			return err
		}
	}
	return nil
}

// enter records that the pointer, map or slice v is on the current path; it
// fails if it already is (a cyclic value).
func (w *walker) enter(v reflect.Value, field string) (done func(), err error) {
	k := activeKey{ptr: v.Pointer(), typ: v.Type()}
	if w.active == nil {
		w.active = make(map[activeKey]bool)
	}
	if w.active[k] {
		return nil, w.errorf(field, "cyclic value: it contains itself")
	}
	w.active[k] = true
	return func() { delete(w.active, k) }, nil
}

// jsonName returns the name encoding/json gives field sf, whether it comes
// from a tag, and whether the field is skipped (json:"-").
func jsonName(sf reflect.StructField) (name string, tagged, skip bool) {
	tag := sf.Tag.Get("json")
	if tag == "-" {
		return sf.Name, false, true
	}
	name, _, _ = strings.Cut(tag, ",")
	if name != "" {
		return name, true, false
	}
	return sf.Name, false, false
}

// isPlaceholder reports whether t is one of the placeholder types: Input,
// Output, Artifact[A] or Versioned[T]. Pointers to them are ordinary
// pointers, and structs embedding them (which implement the interface
// through promoted methods) are ordinary structs.
func isPlaceholder(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t.PkgPath() == pkgPath && t.Implements(placeholderType)
}

// isNode reports whether t is a step type (*Step[C, A]).
func isNode(t reflect.Type) bool {
	return t.Kind() == reflect.Pointer && t.Elem().PkgPath() == pkgPath && t.Implements(nodeType)
}

func isStructOrPtr(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func indexKey(prefix string, i int) string { return joinKey(prefix, "["+strconv.Itoa(i)+"]") }

// typeName names t for messages, without the package path.
func typeName(t reflect.Type) string {
	return strings.ReplaceAll(t.String(), "example.com/cairn/recipe.", "recipe.")
}

// typeCache memoises whether values of a type may hold placeholders or
// steps, so that walks skip plain data (numbers, strings, []float64, ...)
// without visiting it.
type typeCache map[reflect.Type]bool

func (c *typeCache) mayHold(t reflect.Type) bool {
	if *c == nil {
		*c = make(typeCache)
	}
	if m, ok := (*c)[t]; ok {
		return m
	}
	seen := make(map[reflect.Type]bool)
	if c.reach(t, seen) {
		return true
	}
	// Nothing reachable from t holds a placeholder, so nothing reachable
	// from any type seen does either.
	for s := range seen {
		(*c)[s] = false
	}
	return false
}

// reach reports whether a placeholder, a step or an interface (which may
// hold anything) is reachable from t. Positive answers are cached for every
// type on the path; negative ones only by mayHold, once the whole graph
// reachable from its argument is known.
func (c typeCache) reach(t reflect.Type, seen map[reflect.Type]bool) bool {
	if m, ok := c[t]; ok {
		return m
	}
	if seen[t] {
		return false
	}
	seen[t] = true
	found := false
	switch {
	case isPlaceholder(t), isNode(t), t.Kind() == reflect.Interface:
		found = true
	case t.Kind() == reflect.Pointer, t.Kind() == reflect.Slice, t.Kind() == reflect.Array:
		found = c.reach(t.Elem(), seen)
	case t.Kind() == reflect.Map:
		found = c.reach(t.Key(), seen) || c.reach(t.Elem(), seen)
	case t.Kind() == reflect.Struct:
		for i := range t.NumField() {
			if c.reach(t.Field(i).Type, seen) {
				found = true
				break
			}
		}
	}
	if found {
		c[t] = true
	}
	return found
}

// instantiate returns a copy of cfg in which every Input, Output and
// Artifact is replaced by its resolved value, bound by bind. Containers
// holding no placeholder are shared with cfg, not copied. cfg has been
// checked by collect.
func instantiate(cfg reflect.Value, bind func(ref) (*binding, error)) (reflect.Value, error) {
	in := &instantiator{bind: bind}
	nv, changed, err := in.copy(cfg)
	if err != nil || !changed {
		return cfg, err
	}
	return nv, nil
}

type instantiator struct {
	bind  func(ref) (*binding, error)
	types typeCache
}

// copy returns the resolved copy of v and whether it differs from v.
func (in *instantiator) copy(v reflect.Value) (reflect.Value, bool, error) {
	if !v.IsValid() {
		return v, false, nil
	}
	t := v.Type()
	if !in.types.mayHold(t) {
		return v, false, nil
	}
	if isPlaceholder(t) {
		p := v.Interface().(placeholder)
		r := p.placeholder()
		if r.kind == versionedRef {
			return v, false, nil
		}
		b, err := in.bind(r)
		if err != nil {
			return v, false, err
		}
		return reflect.ValueOf(p.bind(b)), true, nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v, false, nil
		}
		e, changed, err := in.copy(v.Elem())
		if err != nil || !changed {
			return v, false, err
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(e)
		return p, true, nil
	case reflect.Interface:
		if v.IsNil() {
			return v, false, nil
		}
		e, changed, err := in.copy(v.Elem())
		if err != nil || !changed {
			return v, false, err
		}
		i := reflect.New(t).Elem()
		i.Set(e)
		return i, true, nil
	case reflect.Struct:
		var out reflect.Value
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() || !in.types.mayHold(sf.Type) {
				continue
			}
			f, changed, err := in.copy(v.Field(i))
			if err != nil {
				return v, false, err
			}
			if changed {
				if !out.IsValid() {
					out = reflect.New(t).Elem()
					out.Set(v)
				}
				out.Field(i).Set(f)
			}
		}
		return out, out.IsValid(), nil
	case reflect.Slice, reflect.Array:
		var out reflect.Value
		for i := range v.Len() {
			e, changed, err := in.copy(v.Index(i))
			if err != nil {
				return v, false, err
			}
			if changed {
				if !out.IsValid() {
					if v.Kind() == reflect.Slice {
						out = reflect.MakeSlice(t, v.Len(), v.Len())
						reflect.Copy(out, v)
					} else {
						out = reflect.New(t).Elem()
						out.Set(v)
					}
				}
				out.Index(i).Set(e)
			}
		}
		return out, out.IsValid(), nil
	case reflect.Map:
		if v.IsNil() || t.Key().Kind() != reflect.String {
			return v, false, nil
		}
		var out reflect.Value
		for it := v.MapRange(); it.Next(); {
			e, changed, err := in.copy(it.Value())
			if err != nil {
				return v, false, err
			}
			if changed {
				if !out.IsValid() {
					out = reflect.MakeMapWithSize(t, v.Len())
					for it2 := v.MapRange(); it2.Next(); {
						out.SetMapIndex(it2.Key(), it2.Value())
					}
				}
				out.SetMapIndex(it.Key(), e)
			}
		}
		return out, out.IsValid(), nil
	}
	return v, false, nil
}
