package durable

import (
	"cmp"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Values never change silently: with the default codec, a value is journaled
// only if encoding/json gives it back exactly, and this file decides that. A
// type gets one verdict, computed once and cached: either it can never round
// trip (never, checked before any branch runs), or its values need no look at
// all (check costs a map lookup), or check walks the parts of a value that
// may be lost. The rules mirror encoding/json (not built with
// GOEXPERIMENT=jsonv2) as json.Marshal(v) and json.Unmarshal(data, &v) see v:
//
// Trusted types. A type whose own methods encoding/json calls, to encode it
// (MarshalJSON, MarshalText) or to decode it (UnmarshalJSON, UnmarshalText),
// is trusted and never looked into: time.Time, big.Int and json.RawMessage
// pass whatever they hold. So does a type with json/v2's MarshalJSONTo or
// UnmarshalJSONFrom, found by name. Three pairings are refused, because one
// side calls a method that the other does not:
//   - a MarshalJSON or MarshalText with a pointer receiver, where the value is
//     not addressable (v itself, inside a struct or array held by value, a map
//     value): encoding/json writes the fields instead, and decoding calls the
//     type's UnmarshalJSON or UnmarshalText on them;
//   - an UnmarshalText without a MarshalText, on a type encoding/json writes
//     as something other than a string: it cannot read that back;
//   - an unnamed struct type that gets a marshaler from an embedded field:
//     decoding calls the promoted UnmarshalJSON only through a pointer.
//
// Refused before anything runs (never). Where encoding/json would encode and
// decode a value (v itself; exported fields not tagged json:"-", as the
// encoder resolves embedded fields; elements; map values; pointees): funcs,
// channels, complex numbers and unsafe.Pointers, which it cannot encode; non-
// empty interfaces such as error, which it cannot decode into; maps whose key
// type it cannot write or read back as an object key. An empty interface is
// allowed; what it holds is checked at run time.
//
// Refused at run time (check):
//   - a non-zero value that encoding/json drops: an unexported field, a field
//     tagged json:"-", an embedded field of an unexported non-struct type, a
//     field hidden by another of the same JSON name (encoding/json's
//     promotion rules). A skipped field holding its zero value is fine. An
//     embedded struct of an unexported type is not skipped: its exported
//     fields are written as the outer struct's, and checked as such;
//   - a non-nil embedded pointer to an unexported struct type (the decoder
//     cannot allocate it), or to a struct none of whose fields is written
//     (it reads back as nil);
//   - a string, map key included, that is not valid UTF-8: encoding/json
//     replaces the invalid bytes with U+FFFD;
//   - a non-nil pointer to a nil pointer, slice, map or interface: written as
//     null, it reads back as a nil pointer;
//   - in an interface, anything but what encoding/json decodes into one: nil,
//     bool, float64, string, []any and map[string]any (not nil), holding the
//     same. An int comes back as a float64 and a struct as a map[string]any;
//   - an empty json.Number, which encoding/json writes as 0;
//   - a field under omitzero whose IsZero method reports true for a value
//     that is not the zero value of its type (unless the type is trusted);
//   - nesting deeper than the 10000 levels of arrays and objects that
//     encoding/json decodes (it encodes deeper ones).
//
// Accepted: what encoding/json gives back equal, though not identical:
// under omitempty, an empty slice or map reads back as nil and -0 as +0;
// pointers shared by two parts of a value read back as two copies. Trusted
// types are taken at their word, even where encoding/json bends it: a nil
// json.RawMessage under a non-nil pointer (written as null, read back as a
// nil pointer), a string-kind map key type whose UnmarshalText changes the
// key (encoding/json writes such keys as they are, not with MarshalText), a
// marshaler promoted from an embedded field (time.Time embedded in a struct
// with other fields: they are not written).
//
// Cost. checkJSONValue allocates nothing unless it finds a loss, walks a
// map (MapKeys) or must ask IsZero methods (on a copy of the value, in a
// second pass): the first pass calls nothing that would make its argument
// escape.

// jsonCheckOf returns the cached verdict for values of type t encoded by
// encoding/json: as json.Marshal(v) sees v, not addressable, and as
// json.Unmarshal(data, &v) sees it, through a pointer.
func jsonCheckOf(t reflect.Type) *jsonCheck {
	if t == nil {
		return &vcNothing // the type of a nil interface: null, read back as nil
	}
	if c, ok := vcTop.Load(t); ok {
		return c.(*jsonCheck)
	}
	c := vcAnalyse(vcKey{t: t, addr: false, viaPtr: true})
	actual, _ := vcTop.LoadOrStore(t, c)
	return actual.(*jsonCheck)
}

// checkJSONValue reports whether v would be changed by encoding it with
// encoding/json and decoding it again (see [jsonCheck.check]). It does not
// allocate when the type needs no run-time walk, nor when its walk only
// looks at strings and numbers.
func checkJSONValue[T any](v T) error {
	switch any(&v).(type) { // T itself, not what an interface T holds
	case *int, *int8, *int16, *int32, *int64, *uint, *uint8, *uint16, *uint32, *uint64, *float32, *float64, *bool:
		return nil // the common results: no lookup
	}
	c := jsonCheckOf(reflect.TypeFor[T]())
	if !c.walk {
		return nil
	}
	if err := c.checkPlain(reflect.ValueOf(&v).Elem()); err != nil || !c.heavy {
		return err
	}
	cp := v // IsZero methods may keep what they are given: not v
	return c.checkMethods(reflect.ValueOf(&cp).Elem())
}

// A jsonCheck is the verdict for one type in one position: whether the
// encoder can address the value (and so call methods with pointer
// receivers), and whether the decoder reaches it through a pointer.
type jsonCheck struct {
	t      reflect.Type
	kind   vcKind
	walk   bool  // check must look at values: false for most types
	heavy  bool  // and ask IsZero methods, in a second pass
	err    error // what never returns
	height int   // the deepest nesting of arrays and objects in a value, up to vcUnbounded

	trusted   bool       // encoding/json calls the type's own methods
	elem      *jsonCheck // pointer, slice, array, map value
	nullElem  bool       // pointer: the pointee is written as null when nil
	keyString bool       // map: keys are strings, written as they are
	fields    *vcLayout  // struct

	// Analysis only.
	key   vcKey
	own   *vcProblem // what makes the type itself never round-trip
	prob  *vcProblem // own, or the first problem of a part, with its path
	needs bool       // values need a look at run time, parts aside
	asks  bool       // and IsZero methods must be asked
	edges []vcEdge
	state uint8 // heights: 0 not seen, 1 on the stack, 2 done
	final bool  // published: read only
}

type vcKind uint8

const (
	vcPlain     vcKind = iota // booleans, numbers, trusted types, []byte: nothing to look at
	vcString                  // valid UTF-8
	vcNumber                  // json.Number: not empty
	vcPointer                 //
	vcInterface               // an empty interface: its dynamic value
	vcSlice                   //
	vcArray                   //
	vcMap                     //
	vcStruct                  //
	vcNever                   // never round-trips
)

// vcMaxDepth is the deepest nesting of arrays and objects that encoding/json
// decodes (its scanner's limit); it encodes deeper ones. vcUnbounded is the
// height of types whose values nest without bound.
const (
	vcMaxDepth  = 10000
	vcUnbounded = vcMaxDepth + 1
)

// vcKey is a type in a position. addr: the encoder can address values there,
// so it calls a MarshalJSON with a pointer receiver. viaPtr: the decoder
// reaches them through a pointer, so it calls the methods of an unnamed type.
type vcKey struct {
	t      reflect.Type
	addr   bool
	viaPtr bool
}

var (
	vcTop     sync.Map // reflect.Type -> *jsonCheck: jsonCheckOf's verdicts
	vcNodes   sync.Map // vcKey -> *jsonCheck: every position's
	vcNothing = jsonCheck{final: true}

	vcMarshaler     = reflect.TypeFor[json.Marshaler]()
	vcUnmarshaler   = reflect.TypeFor[json.Unmarshaler]()
	vcTextMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	vcTextUnmarsh   = reflect.TypeFor[encoding.TextUnmarshaler]()
	vcZeroer        = reflect.TypeFor[interface{ IsZero() bool }]()
	vcNumberType    = reflect.TypeFor[json.Number]()
	vcBoolType      = reflect.TypeFor[bool]()
	vcFloatType     = reflect.TypeFor[float64]()
	vcStringType    = reflect.TypeFor[string]()
	vcSliceType     = reflect.TypeFor[[]any]()
	vcMapType       = reflect.TypeFor[map[string]any]()
)

// never returns an error when no value of the type can round-trip through
// encoding/json, naming the type and the field path; nil otherwise.
func (c *jsonCheck) never() error { return c.err }

// check reports whether v, a value of the checked type, would be changed by
// encoding it with encoding/json and decoding it again: nil when nothing is
// lost. It is meant for values json.Marshal has encoded, so without cycles.
// For a type that can never round-trip it returns never's error.
func (c *jsonCheck) check(v reflect.Value) error {
	if err := c.checkPlain(v); err != nil || !c.heavy {
		return err
	}
	return c.checkMethods(v)
}

// checkPlain is check but for what only IsZero methods can tell. It keeps
// v where it is: it calls no method on v or its parts, and none of the
// reflect methods (Interface, Set, MapRange) that would let them escape, so
// that checkJSONValue does not allocate.
func (c *jsonCheck) checkPlain(v reflect.Value) (err error) {
	if !c.walk {
		return nil
	}
	if c.err != nil {
		return c.err
	}
	if !v.IsValid() {
		return nil // a nil interface
	}
	dynamic := v.Type() != c.t
	if dynamic && (c.kind != vcInterface || !v.Type().Implements(c.t)) {
		return fmt.Errorf("durable: checking a %s value with the verdict for %s", v.Type(), c.t)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("durable: checking a %s value for encoding/json: panic: %v", c.t, p)
		}
	}()
	var loss *vcLoss
	if dynamic { // the dynamic value of an interface
		loss = vcDynamic(v, 0)
	} else {
		loss = c.value(v, 0)
	}
	if loss == nil {
		return nil
	}
	return loss.error(c.t)
}

// checkMethods is check's second pass, for types with fields under omitzero
// whose IsZero method decides whether they are written.
func (c *jsonCheck) checkMethods(v reflect.Value) (err error) {
	if !c.heavy || !v.IsValid() || v.Type() != c.t {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("durable: checking a %s value for encoding/json: panic: %v", c.t, p)
		}
	}()
	if loss := c.methods(v); loss != nil {
		return loss.error(c.t)
	}
	return nil
}

// value looks at v, a value of c.t inside depth arrays and objects.
func (c *jsonCheck) value(v reflect.Value, depth int) *vcLoss {
	switch c.kind {
	case vcString:
		if !utf8.ValidString(v.String()) {
			return vcInvalidUTF8()
		}
	case vcNumber:
		if v.String() == "" {
			return &vcLoss{reason: "is an empty json.Number, which encoding/json writes as 0", fix: "use \"0\", or a float64 or int"}
		}
	case vcPointer:
		for hops := 0; ; hops++ {
			if v.IsNil() {
				return nil
			}
			e := v.Elem()
			if c.nullElem && e.IsNil() {
				return &vcLoss{reason: "is a non-nil pointer to a nil " + e.Type().String() + ": encoding/json writes null, which reads back as a nil pointer", fix: "use a nil pointer or point to a non-nil value"}
			}
			if c.elem.kind != vcPointer {
				if c.elem.walk || depth+c.elem.height > vcMaxDepth {
					return c.elem.value(e, depth)
				}
				return nil
			}
			if hops > vcMaxDepth {
				return &vcLoss{reason: "is a chain of more than 10000 pointers", fix: "shorten it"}
			}
			c, v = c.elem, e
		}
	case vcInterface:
		if v.IsNil() {
			return nil
		}
		return vcDynamic(v.Elem(), depth)
	case vcSlice, vcArray:
		if c.kind == vcSlice && v.IsNil() {
			return nil
		}
		depth++
		if depth > vcMaxDepth {
			return vcTooDeep()
		}
		if !c.elem.walk && depth+c.elem.height <= vcMaxDepth {
			return nil
		}
		for i := range v.Len() {
			if loss := c.elem.value(v.Index(i), depth); loss != nil {
				return loss.under("[" + strconv.Itoa(i) + "]")
			}
		}
	case vcMap:
		if v.IsNil() {
			return nil
		}
		depth++
		if depth > vcMaxDepth {
			return vcTooDeep()
		}
		values := c.elem.walk || depth+c.elem.height > vcMaxDepth
		if !values && !c.keyString {
			return nil
		}
		// MapKeys and MapIndex, unlike a MapIter, let v stay where it is.
		for _, k := range v.MapKeys() {
			if c.keyString && !utf8.ValidString(k.String()) {
				return vcInvalidUTF8().under("[" + strconv.Quote(k.String()) + "] (key)")
			}
			if values {
				if loss := c.elem.value(v.MapIndex(k), depth); loss != nil {
					return loss.under(vcKeySegment(k))
				}
			}
		}
	case vcStruct:
		depth++
		if depth > vcMaxDepth {
			return vcTooDeep()
		}
		return c.fields.value(v, depth)
	case vcNever:
		if c.prob != nil {
			return c.prob.loss()
		}
	}
	return nil
}

// vcDynamic looks at e, the dynamic value of an empty interface inside depth
// arrays and objects. What comes back from encoding/json is one of the types
// it decodes into an interface.
func vcDynamic(e reflect.Value, depth int) *vcLoss {
	switch e.Type() {
	case vcBoolType, vcFloatType:
		return nil
	case vcStringType:
		if !utf8.ValidString(e.String()) {
			return vcInvalidUTF8()
		}
		return nil
	case vcSliceType, vcMapType:
		if e.IsNil() {
			return &vcLoss{
				reason: "holds a nil " + e.Type().String() + ", which encoding/json writes as null and reads back as a nil interface",
				fix:    "store nil itself, or an empty " + e.Type().String(),
			}
		}
		depth++
		if depth > vcMaxDepth {
			return vcTooDeep()
		}
		if e.Kind() == reflect.Slice {
			for i := range e.Len() {
				if x := e.Index(i); !x.IsNil() {
					if loss := vcDynamic(x.Elem(), depth); loss != nil {
						return loss.under("[" + strconv.Itoa(i) + "]")
					}
				}
			}
			return nil
		}
		for _, kv := range e.MapKeys() {
			k := kv.String()
			if !utf8.ValidString(k) {
				return vcInvalidUTF8().under("[" + strconv.Quote(k) + "] (key)")
			}
			if x := e.MapIndex(kv); !x.IsNil() {
				if loss := vcDynamic(x.Elem(), depth); loss != nil {
					return loss.under("[" + strconv.Quote(k) + "]")
				}
			}
		}
		return nil
	}
	// Another type: it comes back as another one. Say first what it would
	// lose on the way, if anything.
	t := e.Type()
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		if e.IsNil() {
			return &vcLoss{
				reason: "holds a nil " + t.String() + ", which encoding/json writes as null and reads back as a nil interface",
				fix:    "store nil itself",
			}
		}
	}
	seg := ".(" + t.String() + ")"
	d := vcNode(vcKey{t: t})
	if d.prob != nil {
		return d.prob.loss().under(seg)
	}
	if d.walk {
		if loss := d.value(e, depth); loss != nil {
			return loss.under(seg)
		}
	}
	return &vcLoss{
		reason: "holds a value of type " + t.String() + ", which encoding/json reads back into an interface as " + vcDecodedAs(d),
		fix:    "give it a concrete type instead of an interface",
	}
}

// vcDecodedAs is what encoding/json decodes into an interface from a value
// of c's type.
func vcDecodedAs(c *jsonCheck) string {
	if c.trusted {
		return "whatever its methods write: a map[string]interface {}, []interface {}, string, float64, bool or nil"
	}
	if c.kind == vcNumber {
		return "a float64"
	}
	switch c.t.Kind() {
	case reflect.Bool:
		return "a bool"
	case reflect.String:
		return "a string"
	case reflect.Pointer:
		return vcDecodedAs(c.elem)
	case reflect.Struct, reflect.Map:
		return "a map[string]interface {}"
	case reflect.Slice:
		if c.kind == vcPlain {
			return "a string (base64)"
		}
		return "a []interface {}"
	case reflect.Array:
		return "a []interface {}"
	}
	return "a float64"
}

func vcKeySegment(k reflect.Value) string {
	switch k.Kind() {
	case reflect.String:
		return "[" + strconv.Quote(k.String()) + "]"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "[" + strconv.FormatInt(k.Int(), 10) + "]"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "[" + strconv.FormatUint(k.Uint(), 10) + "]"
	}
	return "[" + k.Type().String() + " key]"
}

func vcInvalidUTF8() *vcLoss {
	return &vcLoss{
		reason: "is not valid UTF-8, and encoding/json replaces the invalid bytes with U+FFFD",
		fix:    "use []byte for binary data",
	}
}

func vcTooDeep() *vcLoss {
	return &vcLoss{
		reason: "is nested deeper than the 10000 levels of arrays and objects encoding/json decodes",
		fix:    "flatten it",
	}
}

// A vcLayout is how encoding/json sees the fields of one struct type, or of
// a struct embedded in it: its promotion rules depend on the outermost type.
type vcLayout struct {
	t       reflect.Type // the struct type
	owner   reflect.Type // the outermost one, which has the fields
	fields  []vcField
	active  []int // the fields check's first pass looks at
	zeroers bool  // some field under omitzero is decided by an IsZero method
}

type vcField struct {
	i    int
	seg  string // ".Name"
	how  vcHow
	node *jsonCheck   // vcVisible
	sub  *vcLayout    // vcEmbedded, vcEmbeddedPtr
	typ  reflect.Type // the field's type

	omitEmpty, omitZero bool
	isZeroer            bool // omitzero asks the type's IsZero method
	zeroCheck           bool // and check compares its answer with the zero value
	unexported          bool // vcEmbeddedPtr: to an unexported struct type
	alwaysWrites        bool // vcEmbeddedPtr: some field below is written whenever the pointer is not nil
}

type vcHow uint8

const (
	vcVisible     vcHow = iota // written and read under its JSON name
	vcSkipped                  // dropped
	vcEmbedded                 // an embedded struct whose fields are written as the outer struct's
	vcEmbeddedPtr              // the same, through a pointer
)

func (l *vcLayout) value(v reflect.Value, depth int) *vcLoss {
	for _, i := range l.active {
		f := &l.fields[i]
		fv := v.Field(f.i)
		var loss *vcLoss
		switch f.how {
		case vcVisible:
			if f.node.walk || depth+f.node.height > vcMaxDepth {
				loss = f.node.value(fv, depth)
			}
		case vcSkipped:
			if !fv.IsZero() {
				return vcNonZero(fv, f.seg, l.owner, l.t.Field(f.i))
			}
		case vcEmbedded:
			loss = f.sub.value(fv, depth)
		case vcEmbeddedPtr:
			if fv.IsNil() {
				continue
			}
			if f.unexported {
				loss = &vcLoss{
					reason: "is a non-nil embedded pointer to the unexported struct type " + f.typ.Elem().String() + ": encoding/json cannot allocate it when decoding",
					fix:    "export the type, or embed it by value",
					owner:  l.owner,
				}
			} else if !f.alwaysWrites && !f.sub.zeroers && !f.sub.writes(fv.Elem()) {
				loss = vcUnwritten(l.owner)
			} else {
				loss = f.sub.value(fv.Elem(), depth)
			}
		}
		if loss != nil {
			return loss.under(f.seg)
		}
	}
	return nil
}

func vcUnwritten(owner reflect.Type) *vcLoss {
	return &vcLoss{
		reason: "is a non-nil embedded pointer none of whose fields is written: it reads back as nil",
		fix:    "drop omitempty or omitzero below it, or leave it nil",
		owner:  owner,
	}
}

// writes reports whether encoding/json writes at least one field of v, a
// struct embedded through a pointer, leaving out the fields under omitzero
// that an IsZero method decides on (see writesByMethod).
func (l *vcLayout) writes(v reflect.Value) bool {
	for i := range l.fields {
		f := &l.fields[i]
		fv := v.Field(f.i)
		switch f.how {
		case vcVisible:
			if f.omitEmpty && vcEmpty(fv) || f.omitZero && (f.isZeroer || fv.IsZero()) {
				continue
			}
			return true
		case vcEmbedded:
			if f.sub.writes(fv) {
				return true
			}
		case vcEmbeddedPtr:
			if !fv.IsNil() && f.sub.writes(fv.Elem()) {
				return true
			}
		}
	}
	return false
}

// writesByMethod reports whether encoding/json writes a field of v under
// omitzero whose IsZero method says it is not zero.
func (l *vcLayout) writesByMethod(v reflect.Value) bool {
	for i := range l.fields {
		f := &l.fields[i]
		fv := v.Field(f.i)
		switch f.how {
		case vcVisible:
			if f.isZeroer && !(f.omitEmpty && vcEmpty(fv)) && !vcZeroByMethod(fv) {
				return true
			}
		case vcEmbedded:
			if f.sub.writesByMethod(fv) {
				return true
			}
		case vcEmbeddedPtr:
			if !fv.IsNil() && f.sub.writesByMethod(fv.Elem()) {
				return true
			}
		}
	}
	return false
}

// methods looks at v, a value of c.t, for what only IsZero methods tell:
// the fields omitzero drops although they are not zero, and embedded
// pointers none of whose fields is written.
func (c *jsonCheck) methods(v reflect.Value) *vcLoss {
	if !c.heavy {
		return nil
	}
	switch c.kind {
	case vcPointer:
		if v.IsNil() {
			return nil
		}
		return c.elem.methods(v.Elem())
	case vcSlice, vcArray:
		for i := range v.Len() {
			if loss := c.elem.methods(v.Index(i)); loss != nil {
				return loss.under("[" + strconv.Itoa(i) + "]")
			}
		}
	case vcMap:
		for _, k := range v.MapKeys() {
			if loss := c.elem.methods(v.MapIndex(k)); loss != nil {
				return loss.under(vcKeySegment(k))
			}
		}
	case vcStruct:
		return c.fields.methods(v)
	}
	return nil
}

func (l *vcLayout) methods(v reflect.Value) *vcLoss {
	for i := range l.fields {
		f := &l.fields[i]
		fv := v.Field(f.i)
		var loss *vcLoss
		switch f.how {
		case vcVisible:
			if f.zeroCheck && !fv.IsZero() && !(f.omitEmpty && vcEmpty(fv)) && vcZeroByMethod(fv) {
				reason := "is not the zero " + f.typ.String() + ", but its IsZero method says it is, so omitzero drops it"
				if fv.Kind() == reflect.Pointer {
					reason = "is a non-nil pointer whose IsZero method says it is zero, so omitzero drops it and it reads back as nil"
				}
				loss = &vcLoss{reason: reason, fix: "drop omitzero, or make IsZero agree with the zero value"}
			} else {
				loss = f.node.methods(fv)
			}
		case vcEmbedded:
			loss = f.sub.methods(fv)
		case vcEmbeddedPtr:
			if fv.IsNil() || f.unexported {
				continue // refused by the first pass if not nil
			}
			e := fv.Elem()
			if !f.alwaysWrites && f.sub.zeroers && !f.sub.writes(e) && !f.sub.writesByMethod(e) {
				loss = vcUnwritten(l.owner)
			} else {
				loss = f.sub.methods(e)
			}
		}
		if loss != nil {
			return loss.under(f.seg)
		}
	}
	return nil
}

// vcEmpty is encoding/json's isEmptyValue, for omitempty.
func vcEmpty(v reflect.Value) bool {
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

// vcZeroByMethod is what the IsZero method of v's type says, as omitzero
// asks it. It calls the method on a copy of v, never on v itself, so that
// nothing check looks at escapes.
func vcZeroByMethod(v reflect.Value) bool {
	if !v.CanInterface() {
		return false
	}
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return true
	}
	cp := reflect.New(v.Type())
	cp.Elem().Set(v)
	if v.Kind() == reflect.Pointer {
		cp = cp.Elem()
	}
	z, ok := cp.Interface().(interface{ IsZero() bool })
	return ok && z.IsZero()
}

// vcNonZero reports the skipped field v (sf, named seg, in owner's layout)
// at its first non-zero part, so that the path leads to what is lost. An
// embedded struct is skipped when all of its fields are: the reason is the
// first non-embedded field's.
func vcNonZero(v reflect.Value, seg string, owner reflect.Type, sf reflect.StructField) *vcLoss {
	var segs []string
	why := ""
	for {
		if why == "" && !(sf.Anonymous && sf.Type.Kind() == reflect.Struct) {
			why = vcWhySkipped(sf)
		}
		if v.Kind() != reflect.Struct {
			break
		}
		i := 0
		for i < v.NumField() && v.Field(i).IsZero() {
			i++
		}
		if i == v.NumField() {
			break
		}
		sf = v.Type().Field(i)
		segs = append(segs, "."+sf.Name)
		v = v.Field(i)
	}
	if why == "" {
		why = vcWhySkipped(sf)
	}
	loss := &vcLoss{reason: "is non-zero, and encoding/json drops it: " + why, owner: owner}
	for _, s := range slices.Backward(segs) {
		loss.under(s)
	}
	return loss.under(seg)
}

// A vcLoss is what check finds: a path, inner segments first, and why.
type vcLoss struct {
	segs   []string
	reason string
	fix    string       // empty: implement MarshalJSON and UnmarshalJSON on owner
	owner  reflect.Type // the struct type holding the field, for fix
}

func (l *vcLoss) under(seg string) *vcLoss {
	l.segs = append(l.segs, seg)
	return l
}

func (l *vcLoss) error(t reflect.Type) error {
	segs := slices.Clone(l.segs)
	slices.Reverse(segs)
	return &vcError{typ: t, path: vcPath(t, segs), reason: l.reason, fix: vcFix(l.fix, l.owner, t)}
}

// A vcProblem is what makes a type never round-trip, with the path to it.
type vcProblem struct {
	segs   []string
	reason string
	fix    string
	owner  reflect.Type
}

// under is p seen from t, whose part at seg has it.
func (p *vcProblem) under(seg string, t reflect.Type) *vcProblem {
	q := *p
	q.segs = append([]string{seg}, p.segs...)
	if q.owner == nil && q.fix == "" && t.Kind() == reflect.Struct && t.Name() != "" {
		q.owner = t // the innermost named struct: where methods would help
	}
	return &q
}

func (p *vcProblem) loss() *vcLoss {
	l := &vcLoss{reason: p.reason, fix: p.fix, owner: p.owner}
	for _, s := range slices.Backward(p.segs) {
		l.under(s)
	}
	return l
}

// vcError is what never and check return.
type vcError struct {
	typ    reflect.Type
	path   string // the type, then Go field names, indexes and keys: main.invoice.Lines[2].cents
	reason string
	fix    string
	static bool
}

func (e *vcError) Error() string {
	what := e.path
	if what == e.typ.String() {
		what = "the value itself"
	}
	if e.static {
		return "durable: " + e.typ.String() + " cannot round-trip through encoding/json: " + what + " " + e.reason + "; " + e.fix
	}
	return "durable: a value of type " + e.typ.String() + " would change through encoding/json: " + what + " " + e.reason + "; " + e.fix
}

func vcPath(t reflect.Type, segs []string) string {
	if len(segs) > 40 { // nested thousands deep
		segs = slices.Concat(segs[:20], []string{"…"}, segs[len(segs)-20:])
	}
	return t.String() + strings.Join(segs, "")
}

func vcFix(fix string, owner, t reflect.Type) string {
	if owner == nil {
		owner = t
	}
	switch {
	case fix != "":
	case owner.Name() != "" && owner.Kind() == reflect.Struct:
		fix = "implement MarshalJSON and UnmarshalJSON on " + owner.String()
	default:
		fix = "use a named type that implements MarshalJSON and UnmarshalJSON"
	}
	return fix + ", or use durable.WithCodec with another codec"
}

// Analysis. A type's parts are analysed once for each position they appear
// in; a recursive type refers back to itself. So the verdicts of every type
// met are built first, then completed together (problems and run-time needs
// spread from parts to wholes), then published.

type vcEdge struct {
	to  *jsonCheck
	seg string // static path segment: ".Name", "[]"
}

type vcSession struct {
	nodes []*jsonCheck
	seen  map[vcKey]*jsonCheck
}

// vcNode returns the published verdict for k, analysing it if need be.
func vcNode(k vcKey) *jsonCheck {
	if c, ok := vcNodes.Load(k); ok {
		return c.(*jsonCheck)
	}
	return vcAnalyse(k)
}

func vcAnalyse(k vcKey) *jsonCheck {
	s := &vcSession{seen: map[vcKey]*jsonCheck{}}
	root := s.node(k)
	if root.final {
		return root
	}
	for _, c := range s.nodes {
		s.height(c)
	}
	for _, c := range s.nodes {
		c.prob = c.own
	}
	for changed := true; changed; {
		changed = false
		for _, c := range s.nodes {
			if c.prob != nil {
				continue
			}
			for _, e := range c.edges {
				if e.to.prob != nil {
					c.prob = e.to.prob.under(e.seg, c.t)
					changed = true
					break
				}
			}
		}
	}
	for _, c := range s.nodes {
		c.heavy = c.prob == nil && c.asks
		c.walk = c.prob != nil || c.needs || c.asks || c.height > vcMaxDepth
	}
	for changed := true; changed; {
		changed = false
		for _, c := range s.nodes {
			for _, e := range c.edges {
				if e.to.walk && !c.walk {
					c.walk, changed = true, true
				}
				if e.to.heavy && !c.heavy && c.prob == nil {
					c.heavy, changed = true, true
				}
			}
		}
	}
	for _, c := range s.nodes {
		if c.prob != nil {
			c.err = &vcError{typ: c.t, path: vcPath(c.t, c.prob.segs), reason: c.prob.reason, fix: vcFix(c.prob.fix, c.prob.owner, c.t), static: true}
		}
		if c.fields != nil {
			c.fields.activate()
		}
		c.edges, c.own = nil, nil
		c.final = true
	}
	for _, c := range s.nodes {
		vcNodes.LoadOrStore(c.key, c)
	}
	return root
}

// height computes c.height: a part met again while its own height is being
// computed is part of a recursive type, whose values nest without bound.
func (s *vcSession) height(c *jsonCheck) int {
	if c.final || c.state == 2 {
		return c.height
	}
	if c.state == 1 {
		return vcUnbounded
	}
	c.state = 1
	h := 0
	for _, e := range c.edges {
		h = max(h, s.height(e.to))
	}
	switch c.kind {
	case vcInterface:
		h = vcUnbounded
	case vcSlice, vcArray, vcMap, vcStruct:
		h = min(h+1, vcUnbounded)
	}
	c.height, c.state = h, 2
	return h
}

func (s *vcSession) node(k vcKey) *jsonCheck {
	if c, ok := vcNodes.Load(k); ok {
		return c.(*jsonCheck)
	}
	if c, ok := s.seen[k]; ok {
		return c
	}
	c := &jsonCheck{t: k.t, key: k}
	s.seen[k] = c
	s.nodes = append(s.nodes, c)
	s.build(c)
	return c
}

func (s *vcSession) edge(c *jsonCheck, k vcKey, seg string) *jsonCheck {
	to := s.node(k)
	c.edges = append(c.edges, vcEdge{to: to, seg: seg})
	return to
}

func (c *jsonCheck) refuse(reason, fix string) {
	c.kind, c.own = vcNever, &vcProblem{reason: reason, fix: fix}
}

func (s *vcSession) build(c *jsonCheck) {
	t, k := c.t, c.key
	switch t.Kind() {
	case reflect.Interface:
		if t.NumMethod() > 0 {
			c.refuse("has the interface type "+t.String()+", which encoding/json cannot decode into", "use a concrete type, or implement UnmarshalJSON on the struct holding it")
			return
		}
		c.kind, c.needs = vcInterface, true
		return
	case reflect.Pointer:
		c.kind = vcPointer
		c.elem = s.edge(c, vcKey{t: t.Elem(), addr: true, viaPtr: true}, "")
		switch t.Elem().Kind() {
		case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map:
			// Written as null when nil, unless its own methods say otherwise.
			c.nullElem = !c.elem.trusted && c.elem.kind != vcNever
		}
		c.needs = c.nullElem
		return
	}
	if s.methods(c) {
		return
	}
	switch t.Kind() {
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		c.kind = vcPlain
	case reflect.String:
		c.kind, c.needs = vcString, true
		if t == vcNumberType {
			c.kind = vcNumber
		}
	case reflect.Slice:
		if e := t.Elem(); e.Kind() == reflect.Uint8 && !vcEncodes(reflect.PointerTo(e)) {
			c.kind = vcPlain // base64
			return
		}
		c.kind = vcSlice
		c.elem = s.edge(c, vcKey{t: t.Elem(), addr: true}, "[]")
	case reflect.Array:
		c.kind = vcArray
		c.elem = s.edge(c, vcKey{t: t.Elem(), addr: k.addr}, "[]")
	case reflect.Map:
		kt := t.Key()
		pk := reflect.PointerTo(kt)
		keyKind := vcKeyKind(kt.Kind())
		switch {
		case !keyKind && !kt.Implements(vcTextMarshaler):
			c.refuse("is a map with keys of type "+kt.String()+", which encoding/json cannot write as object keys", "use string or integer keys, or implement MarshalText and UnmarshalText on "+kt.String())
			return
		case !keyKind && !pk.Implements(vcTextUnmarsh):
			c.refuse("is a map with keys of type "+kt.String()+", which encoding/json writes with MarshalText but cannot read back", "implement UnmarshalText on "+kt.String())
			return
		case kt.Kind() != reflect.String && keyKind && kt.Implements(vcTextMarshaler) && !pk.Implements(vcTextUnmarsh):
			c.refuse("is a map with keys of type "+kt.String()+", which encoding/json writes with MarshalText and reads back as numbers", "implement UnmarshalText on "+kt.String())
			return
		}
		c.kind = vcMap
		c.keyString = kt.Kind() == reflect.String
		c.needs = c.keyString
		c.elem = s.edge(c, vcKey{t: t.Elem()}, "[]")
	case reflect.Struct:
		c.kind = vcStruct
		c.fields = s.layout(c, t, nil, vcTypeFields(t), k.addr)
	default: // func, chan, complex, unsafe.Pointer
		c.refuse("has type "+t.String()+", which encoding/json cannot encode", "")
	}
}

// methods decides for a type whose own methods encoding/json may call, and
// reports whether it did.
func (s *vcSession) methods(c *jsonCheck) bool {
	t, k := c.t, c.key
	pt := reflect.PointerTo(t)
	_, to := pt.MethodByName("MarshalJSONTo")
	_, from := pt.MethodByName("UnmarshalJSONFrom")
	if to || from {
		c.trusted = true // json/v2's methods
		return true
	}
	enc := vcEncodes(t) || k.addr && vcEncodes(pt)
	decodes := pt.Implements(vcUnmarshaler) || pt.Implements(vcTextUnmarsh)
	dec := decodes && (t.Name() != "" || k.viaPtr)
	switch {
	case !enc && !dec:
		return false // written and read field by field
	case !enc && vcEncodes(pt):
		m := "MarshalJSON"
		if !pt.Implements(vcMarshaler) {
			m = "MarshalText"
		}
		c.refuse("has type "+t.String()+", whose "+m+" method has a pointer receiver: encoding/json does not call it on a value it cannot address, as here, and encodes the value as if it had no such method, but decoding calls its unmarshaling method",
			"give "+m+" a value receiver, or hold a *"+t.String())
	case !dec && decodes:
		c.refuse("has the unnamed type "+t.String()+", whose promoted marshaling methods encoding/json calls when encoding but not when decoding", "declare a named type for it")
	case !enc && !pt.Implements(vcUnmarshaler) && t.Kind() != reflect.String && !(t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8):
		c.refuse("has type "+t.String()+", which has UnmarshalText but not MarshalText: encoding/json writes it as "+vcJSONKind(t.Kind())+", which UnmarshalText cannot read", "implement MarshalText on "+t.String())
	default:
		c.trusted = true
	}
	return true
}

// vcJSONKind is what encoding/json writes for a value of kind k.
func vcJSONKind(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "a boolean"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "a number"
}

// vcEncodes reports whether encoding/json calls a method of t to encode it.
func vcEncodes(t reflect.Type) bool {
	return t.Implements(vcMarshaler) || t.Implements(vcTextMarshaler)
}

// vcKeyKind reports whether encoding/json writes and reads map keys of kind
// k as themselves.
func vcKeyKind(k reflect.Kind) bool {
	switch k {
	case reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

// layout lays out struct type t, embedded at index path prefix in c's type
// (nil for c's type itself), given encoding/json's fields of c's type. addr
// tells whether the encoder can address t's fields.
func (s *vcSession) layout(c *jsonCheck, t reflect.Type, prefix []int, jf []vcJSONField, addr bool) *vcLayout {
	l := &vcLayout{t: t, owner: c.t, fields: make([]vcField, t.NumField())}
	path := vcPrefixPath(c.t, prefix)
	for i := range t.NumField() {
		sf := t.Field(i)
		f := &l.fields[i]
		f.i, f.seg, f.typ = i, "."+sf.Name, sf.Type
		index := append(prefix[:len(prefix):len(prefix)], i)
		var exact *vcJSONField
		below := false
		for j := range jf {
			if slices.Equal(jf[j].index, index) {
				exact = &jf[j]
			} else if len(jf[j].index) > len(index) && slices.Equal(jf[j].index[:len(index)], index) {
				below = true
			}
		}
		switch {
		case exact != nil:
			f.how = vcVisible
			f.omitEmpty, f.omitZero = exact.omitEmpty, exact.omitZero
			f.node = s.edge(c, vcKey{t: sf.Type, addr: addr}, path+f.seg)
			// omitzero asks an IsZero method if there is one. A trusted
			// type's is its own business; any other's must agree with
			// the zero value, which is what comes back.
			f.isZeroer = f.omitZero && sf.Type.Kind() != reflect.Interface &&
				(sf.Type.Implements(vcZeroer) || reflect.PointerTo(sf.Type).Implements(vcZeroer))
			f.zeroCheck = f.isZeroer && !f.node.trusted
			l.zeroers = l.zeroers || f.isZeroer
			c.asks = c.asks || f.zeroCheck
		case below:
			ft := sf.Type
			f.how = vcEmbedded
			subAddr := addr
			if ft.Kind() == reflect.Pointer {
				f.how, ft, subAddr = vcEmbeddedPtr, ft.Elem(), true
				f.unexported = !sf.IsExported()
				c.needs = true
			}
			f.sub = s.layout(c, ft, index, jf, subAddr)
			l.zeroers = l.zeroers || f.sub.zeroers
			if f.how == vcEmbeddedPtr {
				f.alwaysWrites = f.sub.alwaysWrites()
				c.asks = c.asks || !f.alwaysWrites && f.sub.zeroers
			}
		default:
			f.how = vcSkipped
			c.needs = c.needs || sf.Type.Size() > 0
		}
	}
	return l
}

func vcPrefixPath(t reflect.Type, prefix []int) string {
	var b strings.Builder
	for _, i := range prefix {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		b.WriteString("." + t.Field(i).Name)
		t = t.Field(i).Type
	}
	return b.String()
}

func (l *vcLayout) alwaysWrites() bool {
	for _, f := range l.fields {
		switch f.how {
		case vcVisible:
			if !f.omitEmpty && !f.omitZero {
				return true
			}
		case vcEmbedded:
			if f.sub.alwaysWrites() {
				return true
			}
		}
	}
	return false
}

// activate lists the fields check looks at, once the parts' verdicts are
// complete.
func (l *vcLayout) activate() {
	l.active = l.active[:0]
	for i := range l.fields {
		f := &l.fields[i]
		switch f.how {
		case vcVisible:
			if !f.node.walk && f.node.height == 0 && !f.zeroCheck {
				continue
			}
		case vcSkipped:
			if f.typ.Size() == 0 {
				continue
			}
		case vcEmbedded, vcEmbeddedPtr:
			f.sub.activate()
			if len(f.sub.active) == 0 && (f.how == vcEmbedded || !f.unexported && f.alwaysWrites) {
				continue
			}
		}
		l.active = append(l.active, i)
	}
}

func vcWhySkipped(sf reflect.StructField) string {
	t := sf.Type
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case sf.Anonymous && !sf.IsExported() && t.Kind() != reflect.Struct:
		return "an embedded field of an unexported non-struct type"
	case sf.Anonymous && !sf.IsExported():
		return "an embedded field of an unexported struct type with no exported fields"
	case !sf.IsExported():
		return "an unexported field"
	case sf.Tag.Get("json") == "-":
		return `a field tagged json:"-"`
	}
	return "another field has the same JSON name"
}

// vcJSONField is a field as encoding/json's typeFields finds it.
type vcJSONField struct {
	name  string
	tag   bool
	index []int
	typ   reflect.Type

	omitEmpty, omitZero bool
}

// vcTypeFields is encoding/json's typeFields (encode.go): the fields it
// writes and reads for struct type t, with the index path to each.
// Embedded structs are explored breadth first; a name at a shallower depth,
// or tagged at the same depth, hides the others; two at the same depth, both
// tagged or both not, hide each other.
func vcTypeFields(t reflect.Type) []vcJSONField {
	current := []vcJSONField{}
	next := []vcJSONField{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	var fields []vcJSONField
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
					t := sf.Type
					if t.Kind() == reflect.Pointer {
						t = t.Elem()
					}
					if !sf.IsExported() && t.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !vcValidTag(name) {
					name = ""
				}
				index := append(f.index[:len(f.index):len(f.index)], i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					tagged := name != ""
					if name == "" {
						name = sf.Name
					}
					fields = append(fields, vcJSONField{
						name: name, tag: tagged, index: index, typ: ft,
						omitEmpty: vcHasOption(opts, "omitempty"),
						omitZero:  vcHasOption(opts, "omitzero"),
					})
					if count[f.typ] > 1 {
						fields = append(fields, fields[len(fields)-1])
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, vcJSONField{name: ft.Name(), index: index, typ: ft})
				}
			}
		}
	}
	slices.SortFunc(fields, func(a, b vcJSONField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tag != b.tag {
			if a.tag {
				return -1
			}
			return +1
		}
		return slices.Compare(a.index, b.index)
	})
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
		// The dominant field: the first, unless the second is as deep
		// and as tagged.
		if g := fields[i+1]; len(fi.index) == len(g.index) && fi.tag == g.tag {
			continue
		}
		out = append(out, fi)
	}
	return out
}

func vcHasOption(opts, name string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == name {
			return true
		}
	}
	return false
}

// vcValidTag is encoding/json's isValidTag.
func vcValidTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
