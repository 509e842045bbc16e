package durable

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
)

// A journaled success returns the value decoded from what was stored. When
// this process's write is the one stored, that is decode(encode(v)), and for
// values made only of booleans, numbers and valid UTF-8 strings, in arrays and
// in structs whose exported fields encoding/json maps one to one, that is v
// itself: checkpoint then skips the decode, which for a struct is most of a
// checkpoint's CPU in the engine.

// encodeFresh appends v's encoding by c (nil: encoding/json) to b and returns
// it with the value the caller gets, or the branch's failure.
func encodeFresh[T any](key string, b []byte, v T, c Codec) ([]byte, T, error) {
	head := len(b)
	var err error
	if c == nil {
		b, err = appendValue(b, v)
	} else {
		b, err = appendCustom(b, v, c)
	}
	if err != nil {
		return b, v, encodeError(key, err)
	}
	v, err = freshValue(key, b[head:], v, c)
	return b, v, err
}

// freshValue is the value the caller gets for v, which c just encoded as data,
// or the branch's failure when the codec would not give it back: v itself when
// decoding is known to give it back, else the decoded value; with
// encoding/json, an error when the round trip would change v.
func freshValue[T any](key string, data []byte, v T, c Codec) (T, error) {
	if c == nil {
		if s, ok := decodeScalar[T](data); ok {
			return s, nil
		}
		if roundTrips(v) {
			return v, nil
		}
		if err := checkJSONValue(v); err != nil {
			return v, valueError(key, err)
		}
	}
	d, err := decodeWith[T](data, c)
	if err != nil {
		return d, undecodableError[T](key, err)
	}
	return d, nil
}

// roundTrips reports whether decoding v's encoding/json form into a new T
// gives v back exactly.
func roundTrips[T any](v T) bool {
	f := flatOf(reflect.TypeFor[T]())
	if !f.ok {
		return false
	}
	if !f.strings {
		return true
	}
	return validStrings(reflect.ValueOf(&v).Elem())
}

// flat is what roundTrips knows of a type.
type flat struct {
	ok      bool // the type's values round-trip, given valid UTF-8 strings
	strings bool // it holds strings, to check at run time
}

var flats sync.Map // reflect.Type -> flat

func flatOf(t reflect.Type) flat {
	if f, ok := flats.Load(t); ok {
		return f.(flat)
	}
	var f flat
	f.ok = flatType(t, &f.strings, 0)
	flats.Store(t, f)
	return f
}

var (
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	textAppender    = reflect.TypeFor[encoding.TextAppender]()
)

// maxDepth is the deepest nesting of arrays and objects that encoding/json
// reads (its scanner's limit); it writes deeper ones.
const maxDepth = 10000

// flatType reports whether encoding/json writes and reads values of t without
// losing or changing anything, strings aside, and sets *hasStrings if t holds
// any. It says no to whatever it is not sure of: pointers, slices, maps and
// interfaces (nil and empty, sharing), methods of the encoding interfaces,
// unexported, embedded or skipped fields, tag options other than omitempty,
// floats under omitempty (-0 is empty: omitted, it reads back as 0), field
// names that the decoder's case-insensitive matching could mix up, and
// nesting deeper than the decoder reads. depth is the number of arrays and
// structs that enclose t.
func flatType(t reflect.Type, hasStrings *bool, depth int) bool {
	if t == reflect.TypeFor[json.Number]() {
		return false // written as a number literal: "" becomes 0
	}
	pt := reflect.PointerTo(t)
	for _, m := range []reflect.Type{jsonMarshaler, jsonUnmarshaler, textMarshaler, textAppender, textUnmarshaler} {
		if t.Implements(m) || pt.Implements(m) {
			return false
		}
	}
	// Built with GOEXPERIMENT=jsonv2, encoding/json also calls json/v2's
	// MarshalJSONTo and UnmarshalJSONFrom, whose argument types exist only
	// then: they are found by name.
	if _, ok := pt.MethodByName("MarshalJSONTo"); ok {
		return false
	}
	if _, ok := pt.MethodByName("UnmarshalJSONFrom"); ok {
		return false
	}
	switch t.Kind() {
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.String:
		*hasStrings = true
		return true
	case reflect.Array:
		return depth < maxDepth && flatType(t.Elem(), hasStrings, depth+1)
	case reflect.Struct:
		if depth >= maxDepth {
			return false
		}
		names := make([]string, 0, t.NumField())
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Anonymous {
				return false
			}
			name, opts := fieldName(f)
			if opts != "" && opts != "omitempty" || !plainName(name) {
				return false
			}
			if opts == "omitempty" && (f.Type.Kind() == reflect.Float32 || f.Type.Kind() == reflect.Float64) {
				return false // -0 is empty: omitted, it reads back as 0
			}
			for _, other := range names {
				if strings.EqualFold(name, other) {
					return false
				}
			}
			names = append(names, name)
			if !flatType(f.Type, hasStrings, depth+1) {
				return false
			}
		}
		return true
	}
	return false
}

// fieldName is the name of struct field f in its json tag, or its Go name when
// the tag gives none, and the tag's options. For a field whose tag name is a
// plainName, or that has none, that is the name encoding/json writes and reads.
func fieldName(f reflect.StructField) (name, opts string) {
	name, opts, _ = strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		name = f.Name
	}
	return name, opts
}

// plainName reports whether a field's JSON name is made of ASCII letters,
// digits and '_' only: a name encoding/json takes as it is, and folds as
// strings.EqualFold does.
func plainName(name string) bool {
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validStrings reports whether every string in v is valid UTF-8: encoding/json
// writes an invalid byte as U+FFFD, which reads back as another string.
func validStrings(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		return utf8.ValidString(v.String())
	case reflect.Array:
		for i := range v.Len() {
			if !validStrings(v.Index(i)) {
				return false
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if !validStrings(v.Field(i)) {
				return false
			}
		}
	}
	return true
}
