// Package config sets the fields of a program's configuration, a Go
// struct holding its defaults, from a YAML or JSON document and from
// command-line overrides such as `--set train.order=4`: the way Marin's
// programs are configured with draccus (a YAML file, then dotted
// overrides).
//
// Fields are named as encoding/json names them: by the name in their json
// tag, else by the Go field name; fields tagged "-" and unexported fields
// cannot be set, and the fields of an embedded struct without a tag are
// promoted. A document sets only the fields it names; the others keep
// their values, so a file holds what differs from the program's defaults.
// Nested structs and maps merge the same way; a list is replaced as a
// whole. Maps, lists and pointed-to structs are copied before they are
// changed, never changed in place, so decoding into a shallow copy of a
// program's defaults leaves the defaults as they were.
//
// Decoding is strict, and every error says where and what: an unknown
// field is an error naming it, the fields it could have been (with the
// closest as a suggestion), and its line; a value of the wrong type (a
// string for an int, a number out of range, null for a value that cannot
// be nil) names the field, the value and the type it needed. Errors are
// of type *Error.
//
// Supported field types: bool, integers (in range), floats, strings,
// time.Duration (a string such as "90s"), structs, pointers (allocated as
// needed; null sets nil), slices and arrays (a YAML sequence), maps with
// string keys, any (the document's value as yaml.v3 decodes it), and
// types implementing encoding.TextUnmarshaler (from a scalar) or
// json.Unmarshaler (from the value converted to JSON).
package config

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"example.com/cairn/internal/typo"
)

// Error is a configuration error: a document that does not parse or does
// not fit the configuration's type, or an override that does not.
type Error struct {
	// Source is the document's name (a file name), or the override as
	// given ("--set train.order=4").
	Source string
	// Line and Column locate the error in the document; 0 if unknown (and
	// for overrides).
	Line, Column int
	// Field is the dotted path of the field in error ("train.order"), ""
	// for the document as a whole.
	Field string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Decode sets the fields of *dst that the YAML or JSON document data
// names; name identifies the document in errors (a file name). dst must
// be a non-nil pointer to a struct. An empty document changes nothing; a
// stream of several documents is an error. On error *dst may be partly
// changed: callers decode into a copy of their defaults.
func Decode(name string, data []byte, dst any) error {
	v, err := target(dst)
	if err != nil {
		return err
	}
	if strings.EqualFold(filepath.Ext(name), ".json") {
		if err := checkJSON(name, data); err != nil {
			return err
		}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) { // yaml.v3's empty stream
			return nil
		}
		return syntaxError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return &Error{Source: name, Line: extra.Line, Column: extra.Column, Msg: "a second document: a configuration is one document"}
	} else if !errors.Is(err, io.EOF) {
		return syntaxError(name, err)
	}
	d := &decoder{source: name}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil // a document of comments only
	}
	return d.decode(v, root, "")
}

// Set sets the field at path — dotted field names as in a document
// ("train.order"; a list element by its index, "layers.0") — of *dst to
// value. For a field of a string type (a string, time.Duration, or a
// encoding.TextUnmarshaler) value is the text itself, unquoted; for any
// other field it is parsed as YAML: "4", "0.5", "true", "[1, 2]",
// "{order: 4, smoothing: kn}", "null". dst must be a non-nil pointer to a
// struct.
func Set(dst any, path, value string) error {
	v, err := target(dst)
	if err != nil {
		return err
	}
	d := &decoder{source: "--set " + path + "=" + value}
	if path == "" {
		return &Error{Source: d.source, Msg: "empty field path: want --set FIELD=VALUE, for example --set train.order=4"}
	}
	return d.set(v, strings.Split(path, "."), "", value)
}

// SetArg applies an override written "PATH=VALUE", as in `--set
// PATH=VALUE` (see Set).
func SetArg(dst any, arg string) error {
	path, value, ok := strings.Cut(arg, "=")
	if !ok {
		return &Error{Source: "--set " + arg, Msg: "want FIELD=VALUE, for example --set train.order=4"}
	}
	return Set(dst, path, value)
}

// Fields returns the dotted paths of the settable leaf fields of the
// struct *dst points to (nested structs are descended; maps, lists and
// values of other kinds are leaves), in declaration order: what --help
// can list as the names --set accepts.
func Fields(dst any) []string {
	v, err := target(dst)
	if err != nil {
		return nil
	}
	var out []string
	var walk func(t reflect.Type, prefix string, depth int)
	walk = func(t reflect.Type, prefix string, depth int) {
		for _, f := range fieldsOf(t) {
			ft := f.typ
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			p := join(prefix, f.name)
			if ft.Kind() == reflect.Struct && depth < 8 && !special(ft) {
				walk(ft, p, depth+1)
				continue
			}
			out = append(out, p)
		}
	}
	walk(v.Type(), "", 0)
	return out
}

func target(dst any) (reflect.Value, error) {
	v := reflect.ValueOf(dst)
	if !v.IsValid() || v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, fmt.Errorf("config: want a non-nil pointer to a struct, got %T", dst)
	}
	return v.Elem(), nil
}

// checkJSON refuses a .json document that YAML would accept but JSON does
// not (a trailing comma, a comment), with its line and column.
func checkJSON(name string, data []byte) error {
	var x any
	err := json.Unmarshal(data, &x)
	se, ok := errors.AsType[*json.SyntaxError](err)
	if !ok {
		return nil // valid JSON; type errors are found by the walk
	}
	line, col := 1, 1
	for _, c := range data[:min(max(int(se.Offset)-1, 0), len(data))] { // Offset is past the bad byte
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &Error{Source: name, Line: line, Column: col, Msg: "not valid JSON: " + se.Error()}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into an *Error with its line.
func syntaxError(name string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{Source: name, Line: line, Msg: "not valid YAML or JSON: " + m[2]}
	}
	return &Error{Source: name, Msg: "not valid YAML or JSON: " + strings.TrimPrefix(msg, "yaml: ")}
}

// decoder decodes yaml.v3 nodes onto reflect values, for one source.
type decoder struct {
	source string
}

func (d *decoder) errAt(n *yaml.Node, field, format string, args ...any) error {
	e := &Error{Source: d.source, Field: field, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	return e
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// special reports whether values of t decode through their own methods or
// rules rather than by kind.
func special(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t == durationType || pt.Implements(textUnmarshalerType) || pt.Implements(jsonUnmarshalerType)
}

// textual reports whether a --set value for t is its text, not YAML.
func textual(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.String || t == durationType || reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// decode sets v from n; path names v in errors.
func (d *decoder) decode(v reflect.Value, n *yaml.Node, path string) error {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	isNull := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	t := v.Type()
	switch {
	case isNull:
		switch t.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			v.SetZero()
			return nil
		}
		return d.errAt(n, path, "null (an empty value) for a field of type %s: give a value", t)
	case t.Kind() == reflect.Pointer:
		own(v)
		return d.decode(v.Elem(), n, path)
	case t == durationType:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			return d.errAt(n, path, "%s for a duration: want a string such as \"90s\" or \"1h30m\"", describe(n))
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			return d.errAt(n, path, "%q is not a duration: want a number with a unit, such as \"90s\" or \"1h30m\"", n.Value)
		}
		v.SetInt(int64(dur))
		return nil
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		if n.Kind != yaml.ScalarNode {
			return d.errAt(n, path, "%s for a field of type %s: want a scalar", describe(n), t)
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			return d.errAt(n, path, "%q for a field of type %s: %v", n.Value, t, err)
		}
		return nil
	case reflect.PointerTo(t).Implements(jsonUnmarshalerType):
		var x any
		if err := n.Decode(&x); err != nil {
			return d.errAt(n, path, "%v", err)
		}
		data, err := json.Marshal(x)
		if err != nil {
			return d.errAt(n, path, "%s cannot be converted to JSON for a field of type %s: %v", describe(n), t, err)
		}
		if err := v.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(data); err != nil {
			return d.errAt(n, path, "%s for a field of type %s: %v", describe(n), t, err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return d.decodeStruct(v, n, path)
	case reflect.Map:
		return d.decodeMap(v, n, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return d.errAt(n, path, "%s for a list (%s): want a sequence, such as [a, b] or lines starting with \"- \"", describe(n), t)
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			if err := d.decode(s.Index(i), c, join(path, strconv.Itoa(i))); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return d.errAt(n, path, "%s for a list of %d (%s): want a sequence", describe(n), t.Len(), t)
		}
		if len(n.Content) != t.Len() {
			return d.errAt(n, path, "a list of %d for a list of exactly %d (%s)", len(n.Content), t.Len(), t)
		}
		for i, c := range n.Content {
			if err := d.decode(v.Index(i), c, join(path, strconv.Itoa(i))); err != nil {
				return err
			}
		}
		return nil
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			return d.errAt(n, path, "%v", err)
		}
		if x == nil {
			v.SetZero()
			return nil
		}
		xv := reflect.ValueOf(x)
		if !xv.Type().AssignableTo(t) {
			return d.errAt(n, path, "%s for a field of type %s", describe(n), t)
		}
		v.Set(xv)
		return nil
	}
	return d.decodeScalar(v, n, path)
}

func (d *decoder) decodeScalar(v reflect.Value, n *yaml.Node, path string) error {
	t := v.Type()
	if n.Kind != yaml.ScalarNode {
		return d.errAt(n, path, "%s for a field of type %s: want a single value", describe(n), t)
	}
	bad := func() error {
		return d.errAt(n, path, "cannot use %s as %s", describe(n), t)
	}
	switch t.Kind() {
	case reflect.String:
		v.SetString(n.Value) // any scalar is text
		return nil
	case reflect.Bool:
		if n.Tag != "!!bool" {
			return bad()
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			return bad()
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, ok := intValue(n)
		if !ok {
			return bad()
		}
		if v.OverflowInt(i) {
			return d.errAt(n, path, "%s is out of range for %s", n.Value, t)
		}
		v.SetInt(i)
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if n.Tag != "!!int" {
			return bad()
		}
		var u uint64
		if err := n.Decode(&u); err != nil {
			if i, ok := intValue(n); ok && i < 0 {
				return d.errAt(n, path, "%s is out of range for %s (negative)", n.Value, t)
			}
			return d.errAt(n, path, "%s is out of range for %s", n.Value, t)
		}
		if v.OverflowUint(u) {
			return d.errAt(n, path, "%s is out of range for %s", n.Value, t)
		}
		v.SetUint(u)
		return nil
	case reflect.Float32, reflect.Float64:
		if n.Tag != "!!float" && n.Tag != "!!int" {
			return bad()
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return bad()
		}
		if v.OverflowFloat(f) && !math.IsInf(f, 0) {
			return d.errAt(n, path, "%s is out of range for %s", n.Value, t)
		}
		v.SetFloat(f)
		return nil
	}
	return d.errAt(n, path, "fields of type %s cannot be configured", t)
}

// intValue decodes an integer scalar (also a float with no fraction, as
// 1e3, which JSON writers produce).
func intValue(n *yaml.Node) (int64, bool) {
	switch n.Tag {
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			return 0, false
		}
		return i, true
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

func (d *decoder) decodeStruct(v reflect.Value, n *yaml.Node, path string) error {
	fields := fieldsOf(v.Type())
	if n.Kind != yaml.MappingNode {
		return d.errAt(n, path, "%s for %s: want a mapping of its fields (%s)", describe(n), what(path), names(fields))
	}
	return d.eachKey(n, path, func(key, val *yaml.Node) error {
		f, err := d.field(fields, key.Value, path, key)
		if err != nil {
			return err
		}
		return d.decode(f.in(v), val, join(path, f.name))
	})
}

func (d *decoder) decodeMap(v reflect.Value, n *yaml.Node, path string) error {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		return d.errAt(n, path, "maps with keys of type %s cannot be configured", t.Key())
	}
	if n.Kind != yaml.MappingNode {
		return d.errAt(n, path, "%s for a map (%s): want a mapping", describe(n), t)
	}
	own(v)
	return d.eachKey(n, path, func(key, val *yaml.Node) error {
		k := reflect.ValueOf(key.Value).Convert(t.Key())
		elem := reflect.New(t.Elem()).Elem()
		if old := v.MapIndex(k); old.IsValid() {
			elem.Set(old)
		}
		if err := d.decode(elem, val, join(path, key.Value)); err != nil {
			return err
		}
		v.SetMapIndex(k, elem)
		return nil
	})
}

// eachKey calls f for each key of the mapping n, merge keys ("<<: *base")
// first, so that the mapping's own keys win.
func (d *decoder) eachKey(n *yaml.Node, path string, f func(key, val *yaml.Node) error) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Tag != "!!merge" {
			continue
		}
		for val.Kind == yaml.AliasNode {
			val = val.Alias
		}
		merged := []*yaml.Node{val}
		if val.Kind == yaml.SequenceNode {
			merged = val.Content
		}
		for _, m := range merged {
			for m.Kind == yaml.AliasNode {
				m = m.Alias
			}
			if m.Kind != yaml.MappingNode {
				return d.errAt(m, path, "a merge key (<<) takes a mapping or a list of mappings")
			}
			if err := d.eachKey(m, path, f); err != nil {
				return err
			}
		}
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Tag == "!!merge" {
			continue
		}
		if key.Kind != yaml.ScalarNode {
			return d.errAt(key, path, "%s as a key: keys are names", describe(key))
		}
		// yaml.v3 leaves duplicate keys in a node tree; the second would
		// silently win.
		if first, dup := seen[key.Value]; dup {
			return d.errAt(key, join(path, key.Value), "set twice (first at line %d)", first.Line)
		}
		seen[key.Value] = key
		if err := f(key, val); err != nil {
			return err
		}
	}
	return nil
}

// set sets the field at segs below v (named path so far) to value.
func (d *decoder) set(v reflect.Value, segs []string, path, value string) error {
	t := v.Type()
	if len(segs) == 0 {
		if textual(t) {
			n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
			return d.decode(v, n, path)
		}
		if value == "" {
			return d.errAt(nil, path, "empty value for a field of type %s (write null to clear it)", t)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(value), &doc); err != nil {
			return d.errAt(nil, path, "%q is not a valid value: %s", value, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		n := &doc
		if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
			n = n.Content[0]
		}
		if err := d.decode(v, n, path); err != nil {
			var e *Error
			if errors.As(err, &e) { // positions in a one-line value mean nothing
				e.Line, e.Column = 0, 0
			}
			return err
		}
		return nil
	}
	seg := segs[0]
	switch {
	case t.Kind() == reflect.Pointer:
		own(v)
		return d.set(v.Elem(), segs, path, value)
	case special(t):
		return d.errAt(nil, path, "a value of type %s has no fields; set it as a whole: --set %s=VALUE", t, path)
	case t.Kind() == reflect.Struct:
		f, err := d.field(fieldsOf(t), seg, path, nil)
		if err != nil {
			return err
		}
		return d.set(f.in(v), segs[1:], join(path, f.name), value)
	case t.Kind() == reflect.Map:
		if t.Key().Kind() != reflect.String {
			return d.errAt(nil, path, "maps with keys of type %s cannot be configured", t.Key())
		}
		own(v)
		k := reflect.ValueOf(seg).Convert(t.Key())
		elem := reflect.New(t.Elem()).Elem()
		if old := v.MapIndex(k); old.IsValid() {
			elem.Set(old)
		}
		if err := d.set(elem, segs[1:], join(path, seg), value); err != nil {
			return err
		}
		v.SetMapIndex(k, elem)
		return nil
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array:
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 {
			return d.errAt(nil, path, "%q is not an index of the list", seg)
		}
		if i >= v.Len() {
			return d.errAt(nil, path, "index %d is out of range: the list has %d elements (set the whole list with --set %s=[...])", i, v.Len(), path)
		}
		own(v)
		return d.set(v.Index(i), segs[1:], join(path, seg), value)
	}
	return d.errAt(nil, path, "a value of type %s has no field %q", t, seg)
}

// own makes v, a pointer, map or slice, refer to a copy of what it refers
// to (allocating a nil pointer or map), so that changing it through v
// changes nothing v shares with other values: a configuration decoded
// into a copy of a program's defaults leaves the defaults as they were.
func own(v reflect.Value) {
	t := v.Type()
	switch t.Kind() {
	case reflect.Pointer:
		c := reflect.New(t.Elem())
		if !v.IsNil() {
			c.Elem().Set(v.Elem())
		}
		v.Set(c)
	case reflect.Map:
		c := reflect.MakeMapWithSize(t, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			c.SetMapIndex(iter.Key(), iter.Value())
		}
		v.Set(c)
	case reflect.Slice:
		if v.IsNil() {
			return
		}
		c := reflect.MakeSlice(t, v.Len(), v.Len())
		reflect.Copy(c, v)
		v.Set(c)
	}
}

// field is a settable struct field, by its configuration name.
type field struct {
	name  string
	index []int
	typ   reflect.Type
}

// in returns the field in v, allocating embedded pointers on the way.
func (f field) in(v reflect.Value) reflect.Value {
	for i, x := range f.index {
		if i > 0 && v.Kind() == reflect.Pointer {
			own(v)
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// fieldsOf lists the configurable fields of struct type t, as
// encoding/json names them (embedded structs without a tag promoted).
func fieldsOf(t reflect.Type) []field {
	var out []field
	seen := map[string]bool{}
	var walk func(t reflect.Type, index []int, depth int)
	walk = func(t reflect.Type, index []int, depth int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" && tag == "-" {
				continue
			}
			idx := append(slices.Clone(index), i)
			if sf.Anonymous && name == "" {
				et := sf.Type
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct && depth < 8 {
					walk(et, idx, depth+1)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if seen[name] { // the shallower field wins, as in encoding/json
				continue
			}
			seen[name] = true
			out = append(out, field{name: name, index: idx, typ: sf.Type})
		}
	}
	walk(t, nil, 0)
	return out
}

// field finds the field named name, or says which exist.
func (d *decoder) field(fields []field, name, path string, at *yaml.Node) (field, error) {
	for _, f := range fields {
		if f.name == name {
			return f, nil
		}
	}
	msg := fmt.Sprintf("unknown field %q in %s", name, what(path))
	if s := typo.Closest(name, fieldNames(fields)); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	if len(fields) == 0 {
		msg += " (it has no fields)"
	} else {
		msg += " (fields: " + names(fields) + ")"
	}
	return field{}, d.errAt(at, join(path, name), "%s", msg)
}

func what(path string) string {
	if path == "" {
		return "the configuration"
	}
	return path
}

func names(fields []field) string { return strings.Join(fieldNames(fields), ", ") }

func fieldNames(fields []field) []string {
	s := make([]string, len(fields))
	for i, f := range fields {
		s[i] = f.name
	}
	return s
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// describe names a node's value for an error: `the string "four"`, `a
// mapping`, `a list`.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return fmt.Sprintf("the string %q", n.Value)
		case "!!int":
			return "the integer " + n.Value
		case "!!float":
			return "the number " + n.Value
		case "!!bool":
			return "the boolean " + n.Value
		case "!!null":
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "a value"
}
