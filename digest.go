package durable

// The digest of a FanOut item, journaled with its result so that a resumed run
// whose item at that index changed fails closed.

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"sync"
	"time"
	"unicode/utf8"
)

// itemDigest identifies a FanOut item's data: 16 bytes.
//
// It covers all of the item's data, exported or not and through pointers, and
// never an address, so the same data resumes and other data fails closed. It
// is the 128-bit FNV-1a hash (hash/fnv's New128a) of an encoding of the item
// that never calls the item's methods:
//
//   - An item of kind bool, int*, uint* or string hashes its JSON text, which
//     encoding/json would write for the underlying value: the same digest as
//     [itemDigestV1], so journals written before resume for these items.
//     (V1 hashed a MarshalJSON or MarshalText method's output instead, when
//     the type had one; and it replaced invalid UTF-8 with U+FFFD, so that
//     different strings had one digest: a string that is not valid UTF-8 hashes
//     its bytes here, as if nested.) The predeclared types skip reflection and
//     do not allocate.
//
//   - Any other item hashes a walk of its value (see [digestWalker.value]): a
//     tag byte per kind, then lengths and data. Bools, integers, floats (their
//     IEEE bits: -0 is not 0, and a NaN is equal to itself), complex numbers,
//     strings, arrays, slices (a nil slice is the same data as an empty one),
//     maps (whatever their order; nil is empty), pointers (nil, or the pointed-to
//     data), interfaces (nil, or the dynamic type's name and its data) and
//     structs (every field, exported or not). Channels, functions and
//     unsafe.Pointers are not data: they add nothing, not even whether they are
//     nil. The types of package sync hold state, not data, and add nothing. A
//     time.Time is its instant (seconds and nanoseconds: exact in every year)
//     and its location's name (and offset, for a fixed zone), never its
//     monotonic clock reading or its *Location's address; a time.Location is
//     its name (and offset, for a fixed zone). An item of interface type adds
//     its dynamic type's name, unless it holds a bool, integer or string.
//
// Pointers, slices and maps that may reach more of them are hashed apart and
// the outer walk takes their 16-byte digest, so sharing is not data: two
// pointers to one value digest as two copies of it would. A pointer back to a
// value still being walked (a cycle) is a back-reference instead: a tag and how
// many such values up the walk it points. A value reached again outside a
// cycle takes the digest of its first walk, so a value shared a million times is
// walked once.
//
// An item nested deeper than [digestMaxDepth] levels (a linked list of
// thousands of nodes), or whose walk, cycles unrolled, takes more than
// [digestMaxSteps] steps (a densely linked graph, or a million values), is
// hashed as a bag of nodes instead, without recursion: each distinct pointer,
// slice or map and each interface is a node, hashed with its own data and,
// for each node it refers to, that node's own data; the item's digest takes
// the item's own data and the sum of the nodes' digests. It still covers all
// of the data and every link between two nodes, but not the whole shape: two
// graphs made of the same linked pairs of nodes, assembled otherwise, share a
// digest. Which encoding an item takes depends on its data only.
//
// The digest is the same in every process and on every run: no seed, no
// address. It guards against mistakes, not adversaries.
func itemDigest[I any](item I) [16]byte {
	if sum, ok := scalarItemDigest(item); ok {
		return sum
	}
	return reflectDigest(item)
}

// scalarItemDigest is itemDigest for the items appendScalarJSON writes
// (integers, booleans, plain ASCII strings), with a small frame: it runs on a
// worker's young stack. Other scalars take the reflect walk, which hashes them
// the same way.
func scalarItemDigest[I any](item I) ([16]byte, bool) {
	var buf [24]byte
	data, ok := appendScalarJSON(buf[:0], item)
	if !ok || len(data) > len(buf) {
		return [16]byte{}, false
	}
	h := newFNV()
	h.bytes(data)
	return h.sum(), true
}

// reflectDigest is itemDigest for every other item: the other scalars
// without allocating, then a walk of the item's data.
//
//go:noinline
func reflectDigest[I any](item I) [16]byte {
	h := newFNV()
	switch x := any(item).(type) { // does not escape: no allocation
	case string:
		if h.jsonString(x) {
			return h.sum()
		}
	case int:
		h.jsonInt(int64(x))
		return h.sum()
	case int64:
		h.jsonInt(x)
		return h.sum()
	case int32:
		h.jsonInt(int64(x))
		return h.sum()
	case int16:
		h.jsonInt(int64(x))
		return h.sum()
	case int8:
		h.jsonInt(int64(x))
		return h.sum()
	case uint:
		h.jsonUint(uint64(x))
		return h.sum()
	case uint64:
		h.jsonUint(x)
		return h.sum()
	case uint32:
		h.jsonUint(uint64(x))
		return h.sum()
	case uint16:
		h.jsonUint(uint64(x))
		return h.sum()
	case uint8:
		h.jsonUint(uint64(x))
		return h.sum()
	case uintptr:
		h.jsonUint(uint64(x))
		return h.sum()
	case bool:
		h.jsonBool(x)
		return h.sum()
	}
	return valueDigest(reflect.ValueOf(any(item)), reflect.TypeFor[I]().Kind() == reflect.Interface, digestMaxDepth, digestMaxSteps)
}

// itemDigestV1 is the digest record format version 1 stored: the 128-bit
// FNV-1a hash (see hash/fnv) of the item's JSON encoding (of its %#v form if it
// has none), 16 bytes big-endian. Strings and integers, the common items of a
// fan-out, skip the encoder: they hash their JSON text, built directly.
//
// It misses unexported fields, and the %#v form prints addresses.
func itemDigestV1[I any](item I) [16]byte {
	var buf [64]byte
	data, ok := appendScalarJSON(buf[:0], item)
	if !ok {
		var err error
		data, err = encodeValue(item) // a panicking MarshalJSON is an error too
		if err != nil {
			data = fmt.Appendf(nil, "%#v", item)
		}
	}
	var sum [16]byte
	hi, lo := fnv128a(data)
	binary.BigEndian.PutUint64(sum[:8], hi)
	binary.BigEndian.PutUint64(sum[8:], lo)
	return sum
}

// fnv128a is hash/fnv's New128a, without the allocations of a hash.Hash.
func fnv128a(data []byte) (hi, lo uint64) {
	h := newFNV()
	h.bytes(data)
	return h.hi, h.lo
}

// The limits of the walk, past which it hashes the bag of nodes instead.
const (
	// digestMaxDepth bounds the recursion: about 5,000 nodes of a linked list.
	digestMaxDepth = 10_000
	// digestMaxSteps bounds the values walked, a memoized one counted once
	// wherever it is reached again: about a million, some 50 milliseconds.
	digestMaxSteps = 1 << 20
)

// The tags of the walk's encoding, one per kind. None is a byte JSON text of
// a scalar starts with, so no walk hashes the same bytes as a scalar item.
const (
	tagNil       = 0x01 // nil pointer or interface
	tagFalse     = 0x02
	tagTrue      = 0x03
	tagInt       = 0x04 // zigzag uvarint
	tagUint      = 0x05 // uvarint
	tagFloat     = 0x06 // IEEE 754 bits of the float64 (a float32 widened), 8 bytes big-endian
	tagComplex   = 0x07 // two of tagFloat's
	tagString    = 0x08 // uvarint length, bytes
	tagArray     = 0x09 // uvarint length, elements (bytes: raw)
	tagSlice     = 0x0a // uvarint length, elements (bytes: raw)
	tagMap       = 0x0b // uvarint length, 16-byte sum of the entries' mixed digests
	tagPointer   = 0x0c // the pointed-to value
	tagInterface = 0x0d // package path and name of the dynamic type (uvarint length, bytes each), value
	tagStruct    = 0x0e // the fields in order
	tagTime      = 0x0f // zigzag uvarint seconds since year 1, uvarint nanoseconds, location
	tagLocation  = 0x10 // name (uvarint length, bytes), tagInt offset or tagNil
	tagRef       = 0x11 // a slice, map or pointer hashed apart: kind tag, 16-byte digest
	tagBack      = 0x12 // a cycle: uvarint how many references up the walk
	tagNode      = 0x13 // the bag of nodes: a reference; in a node's data, its data with its references bare tagNode's
	tagBag       = 0x14 // the bag of nodes: root, uvarint node count, 16-byte sum of their mixed digests
)

// valueDigest is itemDigest for an item of any other kind than the
// predeclared scalars; iface says whether the item's type is an interface, v
// being then its dynamic value or, for nil, the zero Value.
func valueDigest(v reflect.Value, iface bool, maxDepth, maxSteps int) [16]byte {
	if v.IsValid() && isScalarKind(v.Kind()) {
		if sum, ok := scalarDigest(v); ok {
			return sum
		}
		iface = false // a string that is not valid UTF-8: hashed as nested, without its type
	}
	w := digestWalker{h: newFNV(), maxDepth: maxDepth, maxSteps: maxSteps, low: noBack}
	w.root(v, iface)
	if !w.abort {
		return w.h.sum()
	}
	w = digestWalker{h: newFNV(), bag: true}
	w.h.byte(tagBag)
	w.root(v, iface)
	var count uint64
	var sum fnvState // a plain 128-bit sum, not a hash
	for len(w.queue) > 0 {
		n := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		outer := w.h
		w.h = newFNV()
		if n.iface {
			w.typeName(n.v.Type())
			w.value(n.v)
		} else {
			w.node(n.v)
		}
		sum.add(w.h.mixed())
		w.h = outer
		count++
	}
	w.h.uvarint(count)
	w.h.digest(sum)
	return w.h.sum()
}

func isScalarKind(k reflect.Kind) bool {
	return k == reflect.Bool || k == reflect.String ||
		reflect.Int <= k && k <= reflect.Uintptr
}

// scalarDigest hashes the JSON text of a bool, an integer or a valid UTF-8
// string, as itemDigest's fast path does.
func scalarDigest(v reflect.Value) ([16]byte, bool) {
	h := newFNV()
	switch v.Kind() {
	case reflect.Bool:
		h.jsonBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		h.jsonInt(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		h.jsonUint(v.Uint())
	case reflect.String:
		if !h.jsonString(v.String()) {
			return [16]byte{}, false
		}
	default:
		return [16]byte{}, false
	}
	return h.sum(), true
}

// noBack is the lowest back-reference of a walk that made none.
const noBack = math.MaxInt

// A digestWalker hashes a value's data into h.
type digestWalker struct {
	h        fnvState
	maxDepth int
	maxSteps int
	depth    int  // the nesting of value calls
	deepest  int  // the greatest depth reached, for the heights of memoized digests
	steps    int  // value calls
	abort    bool // a limit was passed: hash the bag of nodes instead
	refs     int  // the references being walked: the path of back-references
	low      int  // the lowest path index a back-reference reached in the current walk
	seen     refTable

	bag     bool        // hashing the bag of nodes
	shallow bool        // hashing a node's own data, its references as bare markers
	queue   []queuedRef // the bag's nodes not hashed yet
}

type queuedRef struct {
	v     reflect.Value
	iface bool // v is an interface's dynamic value
}

func (w *digestWalker) root(v reflect.Value, iface bool) {
	if iface {
		w.iface(v)
		return
	}
	w.value(v)
}

// value hashes v's data: its kind's tag, then the data (see the tag constants).
func (w *digestWalker) value(v reflect.Value) {
	switch {
	case w.bag: // bounded by the nesting of types: every reference is a node
		w.kind(v)
	case w.abort:
	case w.depth >= w.maxDepth || w.steps >= w.maxSteps:
		w.abort = true
	default:
		w.steps++
		w.depth++
		w.deepest = max(w.deepest, w.depth)
		w.kind(v)
		w.depth--
	}
}

func (w *digestWalker) kind(v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			w.h.byte(tagTrue)
		} else {
			w.h.byte(tagFalse)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w.h.byte(tagInt)
		w.h.varint(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		w.h.byte(tagUint)
		w.h.uvarint(v.Uint())
	case reflect.Float32, reflect.Float64:
		w.h.byte(tagFloat)
		w.h.uint64(math.Float64bits(v.Float()))
	case reflect.Complex64, reflect.Complex128:
		c := v.Complex()
		w.h.byte(tagComplex)
		w.h.uint64(math.Float64bits(real(c)))
		w.h.uint64(math.Float64bits(imag(c)))
	case reflect.String:
		w.h.byte(tagString)
		w.h.lenString(v.String())
	case reflect.Array:
		w.h.byte(tagArray)
		w.elems(v)
	case reflect.Slice:
		if v.Len() > 0 && typeInfoOf(v.Type().Elem()).refs {
			w.ref(v)
			break
		}
		w.h.byte(tagSlice)
		w.elems(v)
	case reflect.Map:
		t := v.Type()
		if v.Len() > 0 && (typeInfoOf(t.Key()).refs || typeInfoOf(t.Elem()).refs) {
			w.ref(v)
			break
		}
		w.h.byte(tagMap)
		w.entries(v)
	case reflect.Pointer:
		switch {
		case v.IsNil():
			w.h.byte(tagNil)
		case typeInfoOf(v.Type().Elem()).refs:
			w.ref(v)
		default: // no pointer reached from here: no cycle, and sharing costs little
			w.h.byte(tagPointer)
			w.value(v.Elem())
		}
	case reflect.Interface:
		if v.IsNil() {
			w.h.byte(tagNil)
			break
		}
		w.iface(v.Elem())
	case reflect.Struct:
		switch typeInfoOf(v.Type()).special {
		case specialTime:
			w.time(v)
		case specialLocation:
			w.location(v)
		case specialSync: // state, not data
		default:
			w.h.byte(tagStruct)
			for i := range v.NumField() {
				w.value(v.Field(i))
			}
		}
	default: // chan, func, unsafe.Pointer: not data
	}
}

// iface hashes the dynamic value of an interface: its type's name and its data.
func (w *digestWalker) iface(v reflect.Value) {
	if !v.IsValid() {
		w.h.byte(tagNil)
		return
	}
	if w.bag { // nested interfaces are a node each: the bag's walk never recurses deeply
		w.h.byte(tagNode)
		if !w.shallow {
			w.queue = append(w.queue, queuedRef{v: v, iface: true})
			w.h.digest(w.shallowDigest(v, true))
		}
		return
	}
	w.typeName(v.Type())
	w.value(v)
}

func (w *digestWalker) typeName(t reflect.Type) {
	w.h.byte(tagInterface)
	name := t.Name()
	if name == "" {
		name = t.String()
	}
	w.h.lenString(t.PkgPath())
	w.h.lenString(name)
}

// elems hashes an array's or a slice's length and elements.
func (w *digestWalker) elems(v reflect.Value) {
	n := v.Len()
	w.h.uvarint(uint64(n))
	if v.Type().Elem().Kind() == reflect.Uint8 {
		if v.Kind() == reflect.Slice || v.CanAddr() {
			w.h.bytes(v.Bytes())
			return
		}
		for i := range n {
			w.h.byte(byte(v.Index(i).Uint()))
		}
		return
	}
	for i := range n {
		w.value(v.Index(i))
	}
}

// entries hashes a map's length and the sum of its entries' digests, which
// does not depend on their order.
func (w *digestWalker) entries(v reflect.Value) {
	w.h.uvarint(uint64(v.Len()))
	outer := w.h
	var sum fnvState
	var it reflect.MapIter
	it.Reset(v)
	if v.CanInterface() { // entries copied into two variables, not one each
		t := v.Type()
		k, e := reflect.New(t.Key()).Elem(), reflect.New(t.Elem()).Elem()
		for it.Next() {
			k.SetIterKey(&it)
			e.SetIterValue(&it)
			w.h = newFNV()
			w.value(k)
			w.value(e)
			sum.add(w.h.mixed())
		}
	} else { // an unexported field's map: its entries cannot be copied into variables
		for it.Next() {
			w.h = newFNV()
			w.value(it.Key())
			w.value(it.Value())
			sum.add(w.h.mixed())
		}
	}
	w.h = outer
	w.h.digest(sum)
}

// ref hashes a non-nil pointer, or a non-empty slice or map, that may reach
// more of them: cycles and sharing are possible. It is hashed apart, and the
// walk takes its kind's tag and its digest; or a back-reference when it is
// being walked (a cycle); or, when it was walked before and is on no cycle,
// the digest of that walk. In the bag of nodes, it is a node.
func (w *digestWalker) ref(v reflect.Value) {
	var key refKey
	key.t = v.Type()
	key.p = v.Pointer()
	if v.Kind() == reflect.Slice {
		key.n = v.Len()
	}
	if w.bag {
		w.bagRef(key, v)
		return
	}
	i, found := w.seen.find(key)
	if !found {
		i = w.seen.add(key)
	}
	e := w.seen.at(i)
	if e.path >= 0 { // a cycle
		w.h.byte(tagBack)
		w.h.uvarint(uint64(w.refs - e.path))
		w.low = min(w.low, e.path)
		return
	}
	tag := kindTag(v.Kind())
	if e.memo {
		if w.depth+e.height > w.maxDepth {
			w.abort = true
			return
		}
		w.deepest = max(w.deepest, w.depth+e.height)
		w.h.byte(tagRef)
		w.h.byte(tag)
		w.h.digest(e.sum)
		return
	}
	outer, outerLow, outerDeepest := w.h, w.low, w.deepest
	w.h, w.low, w.deepest = newFNV(), noBack, w.depth
	e.path = w.refs
	w.refs++
	w.node(v)
	w.refs--
	sum, low, height := w.h, w.low, w.deepest-w.depth
	w.h, w.deepest = outer, max(outerDeepest, w.deepest)
	e = w.seen.at(i) // the table may have grown
	e.path = -1
	if low == noBack { // on no cycle: its digest is the same wherever it is reached
		e.memo, e.sum, e.height = true, sum, height
	}
	if low >= w.refs {
		low = noBack // only cycles within
	}
	w.low = min(outerLow, low)
	w.h.byte(tagRef)
	w.h.byte(tag)
	w.h.digest(sum)
}

// bagRef hashes a reference as a node of the bag: a marker and, unless
// hashing a node's own data, that data, its own references as bare markers.
func (w *digestWalker) bagRef(key refKey, v reflect.Value) {
	w.h.byte(tagNode)
	if w.shallow {
		return
	}
	i, found := w.seen.find(key)
	if !found {
		i = w.seen.add(key)
		w.queue = append(w.queue, queuedRef{v: v})
	}
	if e := w.seen.at(i); !e.memo {
		sum := w.shallowDigest(v, false)
		e = w.seen.at(i)
		e.memo, e.sum = true, sum
	}
	w.h.digest(w.seen.at(i).sum)
}

// shallowDigest hashes what a reference or an interface refers to, with the
// references in it as bare markers.
func (w *digestWalker) shallowDigest(v reflect.Value, iface bool) fnvState {
	outer := w.h
	w.h, w.shallow = newFNV(), true
	if iface {
		w.typeName(v.Type())
		w.value(v)
	} else {
		w.node(v)
	}
	sum := w.h
	w.h, w.shallow = outer, false
	return sum
}

// node hashes what a reference refers to, into a hash of its own.
func (w *digestWalker) node(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		w.value(v.Elem())
	case reflect.Slice:
		w.elems(v)
	case reflect.Map:
		w.entries(v)
	}
}

func kindTag(k reflect.Kind) byte {
	switch k {
	case reflect.Slice:
		return tagSlice
	case reflect.Map:
		return tagMap
	}
	return tagPointer
}

// time hashes a time.Time's instant and location, read from its fields: its
// methods cannot be called on an unexported field's value.
func (w *digestWalker) time(v reflect.Value) {
	wall, ext := v.Field(0).Uint(), v.Field(1).Int()
	sec := ext
	if wall&timeHasMonotonic != 0 {
		sec = timeWallToInternal + int64(wall<<1>>(timeNsecShift+1))
	}
	w.h.byte(tagTime)
	w.h.varint(sec)
	w.h.uvarint(wall & timeNsecMask)
	if loc := v.Field(2); !loc.IsNil() {
		w.location(loc.Elem())
		return
	}
	w.h.byte(tagLocation)
	w.h.lenString("UTC")
	w.h.byte(tagNil)
}

// location hashes a time.Location's name, and its offset when it has only one.
// Its other fields are a cache that depends on when it was loaded.
func (w *digestWalker) location(v reflect.Value) {
	w.h.byte(tagLocation)
	w.h.lenString(v.Field(0).String())
	if zones := v.Field(1); zones.Len() == 1 {
		w.h.byte(tagInt)
		w.h.varint(zones.Index(0).Field(1).Int())
		return
	}
	w.h.byte(tagNil)
}

// time.Time's encoding (see time/time.go).
const (
	timeHasMonotonic   = 1 << 63
	timeNsecMask       = 1<<30 - 1
	timeNsecShift      = 30
	timeWallToInternal = (1884*365 + 1884/4 - 1884/100 + 1884/400) * 86400
)

// timeLayoutOK says whether time.Time and time.Location have the fields
// [digestWalker.time] and [digestWalker.location] read. If a Go release
// changed them, they are walked as any struct, and the tests fail.
var timeLayoutOK = func() bool {
	field := func(t reflect.Type, i int, name string, k reflect.Kind) bool {
		return i < t.NumField() && t.Field(i).Name == name && t.Field(i).Type.Kind() == k
	}
	tt, lt := reflect.TypeFor[time.Time](), reflect.TypeFor[time.Location]()
	return tt.NumField() == 3 && field(tt, 0, "wall", reflect.Uint64) && field(tt, 1, "ext", reflect.Int64) &&
		field(tt, 2, "loc", reflect.Pointer) && tt.Field(2).Type.Elem() == lt &&
		field(lt, 0, "name", reflect.String) && field(lt, 1, "zone", reflect.Slice) &&
		field(lt.Field(1).Type.Elem(), 1, "offset", reflect.Int)
}()

// Struct types the walk treats apart.
const (
	specialNone = iota
	specialTime
	specialLocation
	specialSync
)

// A typeInfo is what the walk needs to know of a type.
type typeInfo struct {
	refs    bool // its values may hold pointers, slices, maps or interfaces the walk follows
	special uint8
}

var typeInfos sync.Map // reflect.Type → typeInfo

func typeInfoOf(t reflect.Type) typeInfo {
	if ti, ok := typeInfos.Load(t); ok {
		return ti.(typeInfo)
	}
	ti := newTypeInfo(t)
	typeInfos.Store(t, ti)
	return ti
}

func newTypeInfo(t reflect.Type) typeInfo {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return typeInfo{refs: true}
	case reflect.Array:
		return typeInfo{refs: t.Len() > 0 && typeInfoOf(t.Elem()).refs}
	case reflect.Struct:
		switch {
		case t.PkgPath() == "sync":
			return typeInfo{special: specialSync}
		case !timeLayoutOK:
		case t.ConvertibleTo(reflect.TypeFor[time.Time]()):
			return typeInfo{special: specialTime}
		case t.ConvertibleTo(reflect.TypeFor[time.Location]()):
			return typeInfo{special: specialLocation}
		}
		var ti typeInfo
		for i := range t.NumField() {
			ti.refs = ti.refs || typeInfoOf(t.Field(i).Type).refs
		}
		return ti
	}
	return typeInfo{}
}

// A refKey identifies a reference during one walk; the address is never hashed.
type refKey struct {
	t reflect.Type
	p uintptr
	n int // a slice's length
}

type refEntry struct {
	key    refKey
	path   int // its index in the path of references being walked, or -1
	memo   bool
	height int
	sum    fnvState
}

// A refTable holds the references a walk has met: the first few inline, so
// that small items do not allocate.
type refTable struct {
	n     int
	small [4]refEntry
	more  []refEntry
	index map[refKey]int
}

func (t *refTable) find(k refKey) (int, bool) {
	if t.index != nil {
		i, ok := t.index[k]
		return i, ok
	}
	for i := range t.n {
		if t.at(i).key == k {
			return i, true
		}
	}
	return 0, false
}

func (t *refTable) add(k refKey) int {
	i := t.n
	t.n++
	e := refEntry{key: k, path: -1}
	if i < len(t.small) {
		t.small[i] = e
		return i
	}
	t.more = append(t.more, e)
	if t.index == nil {
		t.index = make(map[refKey]int, 2*t.n)
		for j := range i {
			t.index[t.at(j).key] = j
		}
	}
	t.index[k] = i
	return i
}

func (t *refTable) at(i int) *refEntry {
	if i < len(t.small) {
		return &t.small[i]
	}
	return &t.more[i-len(t.small)]
}

// fnvState is a running 128-bit FNV-1a hash (hash/fnv's New128a), and a
// 128-bit number.
type fnvState struct{ hi, lo uint64 }

func newFNV() fnvState { return fnvState{0x6c62272e07bb0142, 0x62b821756295c58d} }

func (h *fnvState) byte(c byte) {
	const primeLower, primeShift = 0x13b, 24 // the prime is 2^88 + 0x13b
	h.lo ^= uint64(c)
	hi, lo := bits.Mul64(primeLower, h.lo)
	hi += h.lo<<primeShift + primeLower*h.hi
	h.hi, h.lo = hi, lo
}

func (h *fnvState) bytes(b []byte) {
	for _, c := range b {
		h.byte(c)
	}
}

func (h *fnvState) string(s string) {
	for i := 0; i < len(s); i++ {
		h.byte(s[i])
	}
}

func (h *fnvState) lenString(s string) {
	h.uvarint(uint64(len(s)))
	h.string(s)
}

func (h *fnvState) uvarint(x uint64) {
	for x >= 0x80 {
		h.byte(byte(x) | 0x80)
		x >>= 7
	}
	h.byte(byte(x))
}

func (h *fnvState) varint(x int64) { h.uvarint(uint64(x<<1) ^ uint64(x>>63)) }

func (h *fnvState) uint64(x uint64) {
	for s := 56; s >= 0; s -= 8 {
		h.byte(byte(x >> s))
	}
}

// digest hashes another hash's state.
func (h *fnvState) digest(d fnvState) {
	h.uint64(d.hi)
	h.uint64(d.lo)
}

func (h *fnvState) sum() [16]byte {
	var sum [16]byte
	binary.BigEndian.PutUint64(sum[:8], h.hi)
	binary.BigEndian.PutUint64(sum[8:], h.lo)
	return sum
}

// mixed scrambles the hash, one to one, so that digests can be added: FNV
// hashes of data differing in its last bytes differ by little, and their sums
// would collide.
func (h fnvState) mixed() fnvState {
	lo := fmix64(h.lo ^ h.hi)
	hi := fmix64(h.hi ^ lo)
	return fnvState{hi, lo ^ hi}
}

// add adds x to h, as 128-bit numbers.
func (h *fnvState) add(x fnvState) {
	var carry uint64
	h.lo, carry = bits.Add64(h.lo, x.lo, 0)
	h.hi, _ = bits.Add64(h.hi, x.hi, carry)
}

// fmix64 is MurmurHash3's finalizer: one-to-one, every bit depending on all.
func fmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func (h *fnvState) jsonBool(b bool) {
	if b {
		h.string("true")
	} else {
		h.string("false")
	}
}

// jsonInt hashes x's decimal form, as encoding/json writes it. Neither it
// nor jsonUint is inlined: a buffer in each of itemDigest's cases would make
// its frame, on a worker's young stack, large.
//
//go:noinline
func (h *fnvState) jsonInt(x int64) {
	var buf [21]byte
	h.bytes(appendInt(buf[:0], x))
}

//go:noinline
func (h *fnvState) jsonUint(x uint64) {
	var buf [20]byte
	h.bytes(appendUint(buf[:0], x))
}

// jsonString hashes s as encoding/json writes it (HTML-safe escapes, U+2028
// and U+2029 escaped), and reports false, having hashed part of it, when s is
// not valid UTF-8: encoding/json would write U+FFFD for the invalid bytes.
func (h *fnvState) jsonString(s string) bool {
	const hex = "0123456789abcdef"
	h.byte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch {
			case c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&':
				h.byte(c)
			case c == '"' || c == '\\':
				h.byte('\\')
				h.byte(c)
			case c == '\b':
				h.string(`\b`)
			case c == '\f':
				h.string(`\f`)
			case c == '\n':
				h.string(`\n`)
			case c == '\r':
				h.string(`\r`)
			case c == '\t':
				h.string(`\t`)
			default:
				h.string(`\u00`)
				h.byte(hex[c>>4])
				h.byte(hex[c&0xF])
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return false
		case r == '\u2028' || r == '\u2029':
			h.string(`\u202`)
			h.byte(hex[r&0xF])
		default:
			h.string(s[i : i+size])
		}
		i += size
	}
	h.byte('"')
	return true
}
