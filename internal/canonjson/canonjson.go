// Package canonjson encodes Go values as canonical JSON that is
// byte-for-byte identical to Python's
//
//	json.dumps(obj, sort_keys=True)
//
// with every other argument left at its default. It exists so that step
// identity hashes computed in Go (a SHA-256 over the encoding) match the
// hashes Marin computes in Python, so exactness matters more than speed.
//
// # Output format
//
//   - Separators are ", " between items and ": " between a key and its value.
//     No other whitespace is emitted.
//   - Object keys are sorted at every level. String keys are sorted by Unicode
//     code point, which for valid UTF-8 is the same as byte order.
//   - Literals are true, false and null.
//
// # Strings
//
// Strings are escaped as with ensure_ascii=True: '"' becomes \", '\' becomes
// \\, the control characters \b \f \n \r \t use their two-character escapes,
// and every other character outside 0x20..0x7e (including DEL, 0x7f) is
// written as \uXXXX with lowercase hex digits. Characters above U+FFFF are
// written as a UTF-16 surrogate pair, e.g. \ud83d\ude00. There is no HTML
// escaping ('<', '>' and '&' stay literal) and '/' is not escaped. A string
// that is not valid UTF-8 is an error.
//
// # Numbers
//
// Integers of every Go kind, big.Int and *big.Int are written exactly in
// decimal, at any size; they never pass through float64.
//
// Floats are written like Python's float.__repr__: the shortest decimal
// digits that round-trip, in fixed notation when the decimal point position
// decpt (value = 0.DIGITS × 10^decpt) satisfies -4 < decpt <= 16, always with
// at least one digit after the point ("1.0", "0.0001",
// "1000000000000000.0"), and in scientific notation otherwise, with a '.'
// only when there is more than one digit, an explicit exponent sign and at
// least two exponent digits ("1e-05", "1e+16", "1.5e+16", "5e-324",
// "1.7976931348623157e+308"). Negative zero is "-0.0". Python has only
// double-precision floats, so a float32 is converted with float64(f) and
// formatted as that double: float32(0.1) is written 0.10000000149011612.
//
// NaN and ±Inf are rejected with a *PathError. Python would emit the
// non-standard tokens NaN, Infinity and -Infinity; this is the one place
// where canonjson deliberately differs from json.dumps, because JSON cannot
// carry those values and they almost always indicate a bug.
//
// A json.Number that is an integer literal (an optional '-' followed only by
// digits) is written exactly as an integer, normalised the way Python's int()
// would: leading zeros are dropped and "-0" becomes "0". Any other json.Number
// must be a decimal number (an optional '-', digits, an optional fraction and
// an optional exponent) and is parsed as float64 and written with the float
// rules, as Python's json.loads followed by json.dumps would. An empty
// json.Number is written as 0, like encoding/json. Anything else, and
// numbers that overflow float64, are errors.
//
// # Maps
//
// A nil map is null and an empty map is {}. Keys whose kind is string are
// used as they are. Otherwise a key implementing encoding.TextMarshaler is
// converted with MarshalText (like encoding/json), and keys of integer, bool
// and float kinds are converted the way Python converts non-string dict keys:
// integers to decimal, booleans to "true"/"false", floats to their repr.
// Python sorts the original keys before converting them, so integer and float
// keys are sorted numerically ({"9": 2, "10": 1}) and false sorts before true;
// big.Int keys are also sorted numerically. Keys of any other type, NaN or
// infinite float keys, and TextMarshaler keys that produce duplicate strings
// are errors.
//
// # Structs
//
// Structs become objects following encoding/json's rules: only exported
// fields are encoded; the `json:"name"` tag renames a field and `json:"-"`
// skips it; the omitempty and omitzero options are honoured; fields of
// untagged anonymous struct fields (or pointers to structs) are promoted, and
// name conflicts are resolved with encoding/json's dominance rule (shallowest
// depth wins, then a tagged field, otherwise all conflicting fields are
// dropped). The ",string" option is honoured for bool, integer, float and
// string fields by writing the canonical encoding of the value inside a JSON
// string; note that floats therefore use the Python repr rather than Go's
// formatting. Fields are written in sorted key order regardless of their
// declaration order.
//
// # Other values
//
// Slices and arrays become lists; a nil slice is null. A []byte (whose
// element type does not marshal itself) becomes a base64 string using
// encoding/base64.StdEncoding, as in encoding/json. Pointers and interfaces
// are dereferenced, and nil is null.
//
// A value implementing json.Marshaler is encoded by calling MarshalJSON,
// decoding the result with json.Decoder.UseNumber into an any, and encoding
// that canonically; this is how time.Time is handled. As in encoding/json, a
// pointer-receiver MarshalJSON is used only when the value is addressable
// (reached through a pointer, a slice element or an addressable struct
// field). A value implementing encoding.TextMarshaler is written as the
// string MarshalText returns. Because the Go JSON decoder replaces lone
// UTF-16 surrogate escapes (such as "\ud800") in MarshalJSON output with
// U+FFFD, such output cannot be reproduced exactly; MarshalJSON output that
// is not valid UTF-8 is rejected.
//
// Channels, functions, complex numbers and unsafe pointers are rejected, as
// are cyclic values (a pointer, map or slice that contains itself) and values
// nested more than 10000 objects or lists deep.
//
// # Errors
//
// Every encoding error is a *PathError whose Path names the offending value:
// map keys and struct field JSON names are joined by '.', and list indices are
// written as [i], for example "model.layers[2].lr". The root value has the
// empty path.
package canonjson

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the maximum number of objects and lists that may be nested
// inside one another.
const MaxDepth = 10000

// PathError reports a value that cannot be encoded.
type PathError struct {
	// Path locates the value, e.g. "model.layers[2].lr"; it is empty for
	// the root value.
	Path string
	// Reason says why the value cannot be encoded.
	Reason string
}

// Error returns "canonjson: <path>: <reason>", or "canonjson: <reason>" when
// the path is empty.
func (e *PathError) Error() string {
	if e.Path == "" {
		return "canonjson: " + e.Reason
	}
	return "canonjson: " + e.Path + ": " + e.Reason
}

// AppendString appends the canonical encoding of the string s to dst. It is
// Marshal for a string without reflection, for callers that encode many
// strings (step names and dependency IDs) on a hot path. It fails only for
// invalid UTF-8.
func AppendString(dst []byte, s string) ([]byte, error) {
	e := &encoder{buf: dst}
	if err := e.string(s); err != nil {
		return dst, err
	}
	return e.buf, nil
}

// Marshal returns the canonical encoding of v.
func Marshal(v any) ([]byte, error) {
	e := &encoder{}
	if err := e.value(reflect.ValueOf(v), false); err != nil {
		return nil, err
	}
	return e.buf, nil
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
	isZeroerType      = reflect.TypeFor[interface{ IsZero() bool }]()
	numberType        = reflect.TypeFor[json.Number]()
	bigIntType        = reflect.TypeFor[big.Int]()
	bigIntPtrType     = reflect.TypeFor[*big.Int]()
)

// pathElem is one step of the path from the root to the value being encoded.
type pathElem struct {
	key   string
	index int // used when isIndex
	isIdx bool
}

// seenKey identifies a pointer, map or slice on the current recursion path.
type seenKey struct {
	ptr uintptr
	len int
	typ reflect.Type
}

// encoder holds the state of a single Marshal call.
type encoder struct {
	buf    []byte
	path   []pathElem
	depth  int
	seen   map[seenKey]struct{}
	fields map[reflect.Type][]field
}

func (e *encoder) errorf(format string, args ...any) error {
	return &PathError{Path: e.pathString(), Reason: fmt.Sprintf(format, args...)}
}

func (e *encoder) pathString() string {
	var b strings.Builder
	for i, p := range e.path {
		if p.isIdx {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p.index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p.key)
	}
	return b.String()
}

func (e *encoder) pushKey(k string) { e.path = append(e.path, pathElem{key: k}) }
func (e *encoder) pushIndex(i int)  { e.path = append(e.path, pathElem{index: i, isIdx: true}) }
func (e *encoder) pop()             { e.path = e.path[:len(e.path)-1] }

// enter marks k as being on the recursion path; it reports false if k is
// already there, meaning the value is cyclic.
func (e *encoder) enter(k seenKey) bool {
	if e.seen == nil {
		e.seen = make(map[seenKey]struct{})
	}
	if _, ok := e.seen[k]; ok {
		return false
	}
	e.seen[k] = struct{}{}
	return true
}

func (e *encoder) leave(k seenKey) { delete(e.seen, k) }

// open starts a nested object or list, enforcing MaxDepth.
func (e *encoder) open(c byte) error {
	if e.depth >= MaxDepth {
		return e.errorf("nesting depth exceeds %d", MaxDepth)
	}
	e.depth++
	e.buf = append(e.buf, c)
	return nil
}

func (e *encoder) close(c byte) {
	e.depth--
	e.buf = append(e.buf, c)
}

// value encodes v. quoted requests the ",string" struct tag behaviour for
// scalar kinds.
//
// Pointer and interface indirections are followed in a loop rather than by
// recursion, so long pointer chains cannot exhaust the stack.
func (e *encoder) value(v reflect.Value, quoted bool) error {
	var entered []seenKey
	defer func() {
		for _, k := range entered {
			e.leave(k)
		}
	}()
	for {
		if !v.IsValid() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if done, err := e.special(v); done {
			return err
		}
		switch v.Kind() {
		case reflect.Interface:
			if v.IsNil() {
				e.buf = append(e.buf, "null"...)
				return nil
			}
			v = v.Elem()
		case reflect.Pointer:
			if v.IsNil() {
				e.buf = append(e.buf, "null"...)
				return nil
			}
			k := seenKey{ptr: v.Pointer(), typ: v.Type()}
			if !e.enter(k) {
				return e.errorf("cyclic value: pointer %s refers to itself", v.Type())
			}
			entered = append(entered, k)
			v = v.Elem()
		default:
			return e.concrete(v, quoted)
		}
	}
}

// special handles types with custom encodings: big integers, json.Number,
// json.Marshaler and encoding.TextMarshaler. It reports whether v was
// handled.
func (e *encoder) special(v reflect.Value) (bool, error) {
	t := v.Type()
	switch t {
	case bigIntPtrType:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return true, nil
		}
		e.buf = v.Interface().(*big.Int).Append(e.buf, 10)
		return true, nil
	case bigIntType:
		var n *big.Int
		if v.CanAddr() {
			n = v.Addr().Interface().(*big.Int)
		} else {
			n = new(big.Int)
			reflect.ValueOf(n).Elem().Set(v)
		}
		e.buf = n.Append(e.buf, 10)
		return true, nil
	case numberType:
		return true, e.number(json.Number(v.String()))
	}
	if t.Implements(marshalerType) {
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return true, nil
		}
		return true, e.marshaler(v.Interface().(json.Marshaler))
	}
	if t.Kind() != reflect.Pointer && v.CanAddr() && reflect.PointerTo(t).Implements(marshalerType) {
		return true, e.marshaler(v.Addr().Interface().(json.Marshaler))
	}
	if t.Implements(textMarshalerType) {
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return true, nil
		}
		return true, e.textMarshaler(v.Interface().(encoding.TextMarshaler))
	}
	if t.Kind() != reflect.Pointer && v.CanAddr() && reflect.PointerTo(t).Implements(textMarshalerType) {
		return true, e.textMarshaler(v.Addr().Interface().(encoding.TextMarshaler))
	}
	return false, nil
}

func (e *encoder) marshaler(m json.Marshaler) error {
	b, err := m.MarshalJSON()
	if err != nil {
		return e.errorf("MarshalJSON: %v", err)
	}
	if !utf8.Valid(b) {
		return e.errorf("MarshalJSON returned invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return e.errorf("MarshalJSON returned invalid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return e.errorf("MarshalJSON returned invalid JSON: trailing data")
	}
	return e.value(reflect.ValueOf(x), false)
}

func (e *encoder) textMarshaler(m encoding.TextMarshaler) error {
	b, err := m.MarshalText()
	if err != nil {
		return e.errorf("MarshalText: %v", err)
	}
	return e.string(string(b))
}

// concrete encodes a value that is neither a pointer nor an interface and has
// no custom encoding.
func (e *encoder) concrete(v reflect.Value, quoted bool) error {
	if quoted {
		switch v.Kind() {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
			reflect.Float32, reflect.Float64, reflect.String:
			inner := &encoder{path: e.path}
			if err := inner.concrete(v, false); err != nil {
				return err
			}
			return e.string(string(inner.buf))
		}
	}
	switch v.Kind() {
	case reflect.Bool:
		e.buf = strconv.AppendBool(e.buf, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf = strconv.AppendInt(e.buf, v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf = strconv.AppendUint(e.buf, v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return e.float(v.Float())
	case reflect.String:
		return e.string(v.String())
	case reflect.Map:
		return e.mapValue(v)
	case reflect.Struct:
		return e.structValue(v)
	case reflect.Slice:
		if v.IsNil() {
			e.buf = append(e.buf, "null"...)
			return nil
		}
		if isByteSlice(v.Type()) {
			b := v.Bytes()
			e.buf = append(e.buf, '"')
			e.buf = base64.StdEncoding.AppendEncode(e.buf, b)
			e.buf = append(e.buf, '"')
			return nil
		}
		if v.Len() > 0 {
			k := seenKey{ptr: v.Pointer(), len: v.Len(), typ: v.Type()}
			if !e.enter(k) {
				return e.errorf("cyclic value: slice %s contains itself", v.Type())
			}
			defer e.leave(k)
		}
		return e.list(v)
	case reflect.Array:
		return e.list(v)
	default:
		return e.errorf("unsupported type %s", v.Type())
	}
	return nil
}

// isByteSlice reports whether t is a slice encoded as base64: its elements
// are of kind uint8 and do not marshal themselves.
func isByteSlice(t reflect.Type) bool {
	if t.Elem().Kind() != reflect.Uint8 {
		return false
	}
	p := reflect.PointerTo(t.Elem())
	return !p.Implements(marshalerType) && !p.Implements(textMarshalerType)
}

func (e *encoder) list(v reflect.Value) error {
	if err := e.open('['); err != nil {
		return err
	}
	for i, n := 0, v.Len(); i < n; i++ {
		if i > 0 {
			e.buf = append(e.buf, ", "...)
		}
		e.pushIndex(i)
		if err := e.value(v.Index(i), false); err != nil {
			return err
		}
		e.pop()
	}
	e.close(']')
	return nil
}

// float appends the Python repr of f, rejecting NaN and infinities.
func (e *encoder) float(f float64) error {
	if math.IsNaN(f) {
		return e.errorf("JSON cannot carry NaN")
	}
	if math.IsInf(f, 0) {
		return e.errorf("JSON cannot carry Infinity (%v)", f)
	}
	e.buf = appendFloat(e.buf, f)
	return nil
}

// appendFloat appends the Python repr of the finite float f to dst.
func appendFloat(dst []byte, f float64) []byte {
	// Shortest round-trip digits in the form [-]d[.ddd]e±XX.
	var scratch [32]byte
	s := strconv.AppendFloat(scratch[:0], f, 'e', -1, 64)
	if s[0] == '-' {
		dst = append(dst, '-')
		s = s[1:]
	}
	ePos := bytes.IndexByte(s, 'e')
	exp, _ := strconv.Atoi(string(s[ePos+1:]))
	var digitBuf [24]byte
	digits := append(digitBuf[:0], s[0])
	if ePos > 1 {
		digits = append(digits, s[2:ePos]...) // skip the '.'
	}
	decpt := exp + 1 // value = 0.DIGITS × 10^decpt

	if decpt <= -4 || decpt > 16 {
		dst = append(dst, digits[0])
		if len(digits) > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		x := decpt - 1
		if x < 0 {
			dst = append(dst, '-')
			x = -x
		} else {
			dst = append(dst, '+')
		}
		if x < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(x), 10)
	}
	switch {
	case decpt <= 0:
		dst = append(dst, "0."...)
		for range -decpt {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	case decpt >= len(digits):
		dst = append(dst, digits...)
		for range decpt - len(digits) {
			dst = append(dst, '0')
		}
		dst = append(dst, ".0"...)
	default:
		dst = append(dst, digits[:decpt]...)
		dst = append(dst, '.')
		dst = append(dst, digits[decpt:]...)
	}
	return dst
}

// number encodes a json.Number.
func (e *encoder) number(n json.Number) error {
	s := string(n)
	if s == "" {
		e.buf = append(e.buf, '0')
		return nil
	}
	if isIntLiteral(s) {
		neg := s[0] == '-'
		d := strings.TrimLeft(strings.TrimPrefix(s, "-"), "0")
		if d == "" {
			e.buf = append(e.buf, '0')
			return nil
		}
		if neg {
			e.buf = append(e.buf, '-')
		}
		e.buf = append(e.buf, d...)
		return nil
	}
	if !isDecimalLiteral(s) {
		return e.errorf("invalid json.Number %q", s)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return e.errorf("invalid json.Number %q", s)
	}
	return e.float(f)
}

// isIntLiteral reports whether s is an optional '-' followed by one or more
// ASCII digits.
func isIntLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	return s != "" && skipDigits(s) == len(s)
}

// isDecimalLiteral reports whether s is a JSON number, except that leading
// zeros are tolerated: -?D+(.D+)?([eE][+-]?D+)?
func isDecimalLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	n := skipDigits(s)
	if n == 0 {
		return false
	}
	s = s[n:]
	if s != "" && s[0] == '.' {
		n = skipDigits(s[1:])
		if n == 0 {
			return false
		}
		s = s[1+n:]
	}
	if s != "" && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s != "" && (s[0] == '+' || s[0] == '-') {
			s = s[1:]
		}
		n = skipDigits(s)
		if n == 0 {
			return false
		}
		s = s[n:]
	}
	return s == ""
}

func skipDigits(s string) int {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

const hexDigits = "0123456789abcdef"

// string appends s as a JSON string with ensure_ascii escaping.
func (e *encoder) string(s string) error {
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			i++
			continue
		}
		e.buf = append(e.buf, s[start:i]...)
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				e.buf = append(e.buf, '\\', '"')
			case '\\':
				e.buf = append(e.buf, '\\', '\\')
			case '\n':
				e.buf = append(e.buf, '\\', 'n')
			case '\r':
				e.buf = append(e.buf, '\\', 'r')
			case '\t':
				e.buf = append(e.buf, '\\', 't')
			case '\b':
				e.buf = append(e.buf, '\\', 'b')
			case '\f':
				e.buf = append(e.buf, '\\', 'f')
			default:
				e.buf = appendU(e.buf, rune(c))
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return e.errorf("invalid UTF-8 in string at byte offset %d", i)
		}
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			e.buf = appendU(e.buf, r1)
			e.buf = appendU(e.buf, r2)
		} else {
			e.buf = appendU(e.buf, r)
		}
		i += size
		start = i
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
	return nil
}

// appendU appends the escape \uXXXX for the UTF-16 code unit r.
func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u',
		hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// mapEntry is a map entry with its key converted to a string.
type mapEntry struct {
	key string
	val reflect.Value
}

func (e *encoder) mapValue(v reflect.Value) error {
	if v.IsNil() {
		e.buf = append(e.buf, "null"...)
		return nil
	}
	k := seenKey{ptr: v.Pointer(), typ: v.Type()}
	if !e.enter(k) {
		return e.errorf("cyclic value: map %s contains itself", v.Type())
	}
	defer e.leave(k)

	entries, err := e.mapEntries(v)
	if err != nil {
		return err
	}
	if err := e.open('{'); err != nil {
		return err
	}
	for i, ent := range entries {
		if i > 0 {
			e.buf = append(e.buf, ", "...)
		}
		e.pushKey(ent.key)
		if err := e.string(ent.key); err != nil {
			return err
		}
		e.buf = append(e.buf, ": "...)
		if err := e.value(ent.val, false); err != nil {
			return err
		}
		e.pop()
	}
	e.close('}')
	return nil
}

// mapEntries returns the entries of the non-nil map v in Python's sort_keys
// order with their keys converted to strings.
func (e *encoder) mapEntries(v reflect.Value) ([]mapEntry, error) {
	kt := v.Type().Key()
	entries := make([]mapEntry, 0, v.Len())
	iter := v.MapRange()

	switch {
	case kt.Kind() == reflect.String:
		for iter.Next() {
			entries = append(entries, mapEntry{key: iter.Key().String(), val: iter.Value()})
		}
		slices.SortFunc(entries, func(a, b mapEntry) int { return strings.Compare(a.key, b.key) })
		return entries, nil

	case kt == bigIntPtrType || kt == bigIntType:
		type bigEntry struct {
			n   *big.Int
			val reflect.Value
		}
		var ents []bigEntry
		for iter.Next() {
			k := iter.Key()
			var n *big.Int
			if kt == bigIntType {
				n = new(big.Int)
				reflect.ValueOf(n).Elem().Set(k)
			} else {
				n = k.Interface().(*big.Int)
				if n == nil {
					return nil, e.errorf("nil *big.Int map key")
				}
			}
			ents = append(ents, bigEntry{n, iter.Value()})
		}
		slices.SortFunc(ents, func(a, b bigEntry) int { return a.n.Cmp(b.n) })
		for i, ent := range ents {
			if i > 0 && ents[i-1].n.Cmp(ent.n) == 0 {
				return nil, e.errorf("duplicate map key %q", ent.n.String())
			}
			entries = append(entries, mapEntry{key: ent.n.String(), val: ent.val})
		}
		return entries, nil

	case kt.Implements(textMarshalerType):
		for iter.Next() {
			k := iter.Key()
			var s string
			if !(k.Kind() == reflect.Pointer && k.IsNil()) {
				b, err := k.Interface().(encoding.TextMarshaler).MarshalText()
				if err != nil {
					return nil, e.errorf("map key MarshalText: %v", err)
				}
				s = string(b)
			}
			entries = append(entries, mapEntry{key: s, val: iter.Value()})
		}
		slices.SortFunc(entries, func(a, b mapEntry) int { return strings.Compare(a.key, b.key) })
		for i := 1; i < len(entries); i++ {
			if entries[i-1].key == entries[i].key {
				return nil, e.errorf("duplicate map key %q", entries[i].key)
			}
		}
		return entries, nil
	}

	switch kt.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		type intEntry struct {
			k   int64
			val reflect.Value
		}
		ents := make([]intEntry, 0, v.Len())
		for iter.Next() {
			ents = append(ents, intEntry{iter.Key().Int(), iter.Value()})
		}
		slices.SortFunc(ents, func(a, b intEntry) int { return compare(a.k, b.k) })
		for _, ent := range ents {
			entries = append(entries, mapEntry{key: strconv.FormatInt(ent.k, 10), val: ent.val})
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		type uintEntry struct {
			k   uint64
			val reflect.Value
		}
		ents := make([]uintEntry, 0, v.Len())
		for iter.Next() {
			ents = append(ents, uintEntry{iter.Key().Uint(), iter.Value()})
		}
		slices.SortFunc(ents, func(a, b uintEntry) int { return compare(a.k, b.k) })
		for _, ent := range ents {
			entries = append(entries, mapEntry{key: strconv.FormatUint(ent.k, 10), val: ent.val})
		}
	case reflect.Float32, reflect.Float64:
		type floatEntry struct {
			k   float64
			val reflect.Value
		}
		ents := make([]floatEntry, 0, v.Len())
		for iter.Next() {
			f := iter.Key().Float()
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, e.errorf("map key: JSON cannot carry NaN or Infinity (%v)", f)
			}
			ents = append(ents, floatEntry{f, iter.Value()})
		}
		slices.SortFunc(ents, func(a, b floatEntry) int { return compare(a.k, b.k) })
		for _, ent := range ents {
			entries = append(entries, mapEntry{key: string(appendFloat(nil, ent.k)), val: ent.val})
		}
	case reflect.Bool:
		for iter.Next() {
			entries = append(entries, mapEntry{key: strconv.FormatBool(iter.Key().Bool()), val: iter.Value()})
		}
		// "false" < "true" matches Python's False < True.
		slices.SortFunc(entries, func(a, b mapEntry) int { return strings.Compare(a.key, b.key) })
	default:
		return nil, e.errorf("unsupported map key type %s", kt)
	}
	return entries, nil
}

func compare[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (e *encoder) structValue(v reflect.Value) error {
	fields := e.typeFields(v.Type())
	if err := e.open('{'); err != nil {
		return err
	}
	first := true
fieldLoop:
	for i := range fields {
		f := &fields[i]
		fv := v
		for _, idx := range f.index {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue fieldLoop
				}
				fv = fv.Elem()
			}
			fv = fv.Field(idx)
		}
		if f.omitEmpty && isEmptyValue(fv) {
			continue
		}
		if f.omitZero && isZeroValue(fv) {
			continue
		}
		if !first {
			e.buf = append(e.buf, ", "...)
		}
		first = false
		e.pushKey(f.name)
		if err := e.string(f.name); err != nil {
			return err
		}
		e.buf = append(e.buf, ": "...)
		if err := e.value(fv, f.quoted); err != nil {
			return err
		}
		e.pop()
	}
	e.close('}')
	return nil
}

// isEmptyValue implements encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64,
		reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// isZeroValue implements encoding/json's omitzero test: an IsZero() bool
// method is used when present, otherwise reflect.Value.IsZero.
func isZeroValue(v reflect.Value) bool {
	t := v.Type()
	if t.Implements(isZeroerType) {
		if (t.Kind() == reflect.Pointer || t.Kind() == reflect.Interface) && v.IsNil() {
			return true
		}
		return v.Interface().(interface{ IsZero() bool }).IsZero()
	}
	if t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(isZeroerType) {
		if !v.CanAddr() {
			c := reflect.New(t)
			c.Elem().Set(v)
			v = c.Elem()
		}
		return v.Addr().Interface().(interface{ IsZero() bool }).IsZero()
	}
	return v.IsZero()
}
