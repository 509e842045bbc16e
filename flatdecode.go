package durable

import (
	"reflect"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"
)

// A rerun decodes every journaled value, and encoding/json spends most of a
// small struct's decode on reflection and allocations. For a flat type (see
// flatType), decodeFlat reads the form json.Marshal writes with a plan
// compiled once per type, and leaves anything else to encoding/json.

// decodeFlat decodes data into *p, which must be a zero T, when T is flat and
// data is a T's JSON in this form, which json.Marshal writes for a T whose
// strings it does not escape: no white space; each struct's fields in
// declaration order under the names json.Marshal writes, omitempty ones
// possibly absent; integers that fit, without a fraction, an exponent or
// leading zeros; floats as JSON numbers within their range; strings of valid
// UTF-8 without escapes or control characters; arrays of their length;
// nothing after the value. It reports whether it did: then *p is what
// json.Unmarshal(data, p) gives, with a nil error. When it reports false, *p
// may be partly written.
func decodeFlat[T any](data []byte, p *T) bool {
	plan := flatPlanOf(reflect.TypeFor[T]())
	if plan == nil {
		return false
	}
	end, ok := plan.read(data, 0, unsafe.Pointer(p))
	return ok && end == len(data)
}

// flatKind is what a flatPlan reads.
type flatKind uint8

const (
	flatBool flatKind = iota
	flatInt
	flatUint
	flatFloat
	flatString
	flatArray
	flatStruct
)

// flatPlan is how decodeFlat reads a value of one flat type and where it
// writes it.
type flatPlan struct {
	kind   flatKind
	bits   int         // ints, uints and floats: the size in bits
	length int         // arrays: the length
	stride uintptr     // arrays: the size of an element
	elem   *flatPlan   // arrays: the plan of an element
	fields []flatField // structs: the fields in declaration order
}

// flatField is one field of a struct's plan.
type flatField struct {
	key       string // the name json.Marshal writes, quoted, then ':'
	offset    uintptr
	omitEmpty bool // json.Marshal may leave it out
	plan      *flatPlan
}

var flatPlans sync.Map // reflect.Type -> *flatPlan, nil when the type is not flat

// flatPlanOf is t's plan, compiled on first use, or nil when t is not flat.
func flatPlanOf(t reflect.Type) *flatPlan {
	if p, ok := flatPlans.Load(t); ok {
		return p.(*flatPlan)
	}
	var p *flatPlan
	if flatOf(t).ok {
		p = compileFlat(t)
	}
	flatPlans.Store(t, p)
	return p
}

// compileFlat is the plan of t, a type flatType takes; nil for any other kind.
func compileFlat(t reflect.Type) *flatPlan {
	switch t.Kind() {
	case reflect.Bool:
		return &flatPlan{kind: flatBool}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return &flatPlan{kind: flatInt, bits: t.Bits()}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &flatPlan{kind: flatUint, bits: t.Bits()}
	case reflect.Float32, reflect.Float64:
		return &flatPlan{kind: flatFloat, bits: t.Bits()}
	case reflect.String:
		return &flatPlan{kind: flatString}
	case reflect.Array:
		elem := compileFlat(t.Elem())
		if elem == nil {
			return nil
		}
		return &flatPlan{kind: flatArray, length: t.Len(), stride: t.Elem().Size(), elem: elem}
	case reflect.Struct:
		fields := make([]flatField, t.NumField())
		for i := range fields {
			f := t.Field(i)
			name, opts := fieldName(f)
			plan := compileFlat(f.Type)
			if plan == nil {
				return nil
			}
			fields[i] = flatField{key: `"` + name + `":`, offset: f.Offset, omitEmpty: opts == "omitempty", plan: plan}
		}
		return &flatPlan{kind: flatStruct, fields: fields}
	}
	return nil
}

// read decodes the value that starts at data[i] into the variable at p, and
// returns the index after it, or false when the value is not in the form
// decodeFlat reads.
func (d *flatPlan) read(data []byte, i int, p unsafe.Pointer) (int, bool) {
	switch d.kind {
	case flatBool:
		if at(data, i, "true") {
			*(*bool)(p) = true
			return i + len("true"), true
		}
		if at(data, i, "false") {
			*(*bool)(p) = false
			return i + len("false"), true
		}
	case flatInt:
		n, j, ok := parseJSONInt(data, i, d.bits)
		if !ok {
			return i, false
		}
		storeInt(p, d.bits, n)
		return j, true
	case flatUint:
		n, j, ok := parseJSONUint(data, i, d.bits)
		if !ok {
			return i, false
		}
		storeUint(p, d.bits, n)
		return j, true
	case flatFloat:
		return readFloat(data, i, d.bits, p)
	case flatString:
		return readString(data, i, p)
	case flatArray:
		return d.readArray(data, i, p)
	case flatStruct:
		return d.readStruct(data, i, p)
	}
	return i, false
}

func (d *flatPlan) readArray(data []byte, i int, p unsafe.Pointer) (int, bool) {
	if !at(data, i, "[") {
		return i, false
	}
	i++
	for k := range d.length {
		if k > 0 {
			if !at(data, i, ",") {
				return i, false
			}
			i++
		}
		var ok bool
		if i, ok = d.elem.read(data, i, unsafe.Add(p, uintptr(k)*d.stride)); !ok {
			return i, false
		}
	}
	if !at(data, i, "]") {
		return i, false
	}
	return i + 1, true
}

func (d *flatPlan) readStruct(data []byte, i int, p unsafe.Pointer) (int, bool) {
	if !at(data, i, "{") {
		return i, false
	}
	i++
	first := true
	for k := range d.fields {
		f := &d.fields[k]
		j := i
		if !first {
			if !at(data, j, ",") {
				if f.omitEmpty {
					continue
				}
				return i, false
			}
			j++
		}
		if !at(data, j, f.key) {
			if f.omitEmpty {
				continue
			}
			return i, false
		}
		var ok bool
		if i, ok = f.plan.read(data, j+len(f.key), unsafe.Add(p, f.offset)); !ok {
			return i, false
		}
		first = false
	}
	if !at(data, i, "}") {
		return i, false
	}
	return i + 1, true
}

// at reports whether data[i:] starts with s.
func at(data []byte, i int, s string) bool {
	return i <= len(data) && len(data)-i >= len(s) && string(data[i:i+len(s)]) == s
}

// readDigits reads the JSON integer without a sign that starts at data[i]:
// "0", or digits that do not start with 0. It returns its value and the index
// after it, or false when there is none or it does not fit in 64 bits.
func readDigits(data []byte, i int) (uint64, int, bool) {
	if i >= len(data) || data[i] < '0' || data[i] > '9' {
		return 0, i, false
	}
	if data[i] == '0' {
		return 0, i + 1, true
	}
	var n uint64
	for ; i < len(data); i++ {
		c := data[i] - '0'
		if c > 9 {
			break
		}
		const most = ^uint64(0)
		if n > most/10 || n == most/10 && uint64(c) > most%10 {
			return 0, i, false
		}
		n = n*10 + uint64(c)
	}
	return n, i, true
}

// parseJSONInt parses the JSON integer that starts at data[i], when it fits
// in a signed integer of bits bits, and returns the index after it.
func parseJSONInt(data []byte, i, bits int) (int64, int, bool) {
	neg := at(data, i, "-")
	j := i
	if neg {
		j++
	}
	u, j, ok := readDigits(data, j)
	most := uint64(1)<<(bits-1) - 1
	if neg {
		most++
	}
	if !ok || u > most {
		return 0, i, false
	}
	n := int64(u)
	if neg {
		n = -n
	}
	return n, j, true
}

// parseJSONUint parses the JSON integer without a sign that starts at
// data[i], when it fits in an unsigned integer of bits bits, and returns the
// index after it.
func parseJSONUint(data []byte, i, bits int) (uint64, int, bool) {
	n, j, ok := readDigits(data, i)
	if !ok || n > ^uint64(0)>>(64-bits) {
		return 0, i, false
	}
	return n, j, true
}

func storeInt(p unsafe.Pointer, bits int, n int64) {
	switch bits {
	case 8:
		*(*int8)(p) = int8(n)
	case 16:
		*(*int16)(p) = int16(n)
	case 32:
		*(*int32)(p) = int32(n)
	default:
		*(*int64)(p) = n
	}
}

func storeUint(p unsafe.Pointer, bits int, n uint64) {
	switch bits {
	case 8:
		*(*uint8)(p) = uint8(n)
	case 16:
		*(*uint16)(p) = uint16(n)
	case 32:
		*(*uint32)(p) = uint32(n)
	default:
		*(*uint64)(p) = n
	}
}

// readFloat reads a JSON number into the float of bits bits at p, parsed as
// encoding/json parses it: with strconv.ParseFloat, an error when out of
// range.
func readFloat(data []byte, i, bits int, p unsafe.Pointer) (int, bool) {
	j := i
	if at(data, j, "-") {
		j++
	}
	j, ok := skipDigits(data, j, true)
	if !ok {
		return i, false
	}
	if at(data, j, ".") {
		if j, ok = skipDigits(data, j+1, false); !ok {
			return i, false
		}
	}
	if at(data, j, "e") || at(data, j, "E") {
		j++
		if at(data, j, "+") || at(data, j, "-") {
			j++
		}
		if j, ok = skipDigits(data, j, false); !ok {
			return i, false
		}
	}
	// The string lives only for the call: strconv keeps no part of it.
	f, err := strconv.ParseFloat(unsafe.String(&data[i], j-i), bits)
	if err != nil {
		return i, false
	}
	if bits == 32 {
		*(*float32)(p) = float32(f)
	} else {
		*(*float64)(p) = f
	}
	return j, true
}

// skipDigits returns the index after the digits that start at data[i], of
// which there must be one or more; with integer, a JSON number's integer part:
// one 0, or digits that do not start with 0.
func skipDigits(data []byte, i int, integer bool) (int, bool) {
	start := i
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
		if integer && data[start] == '0' {
			break
		}
	}
	return i, i > start
}

// readString reads a JSON string without escapes, of valid UTF-8, into the
// string at p.
func readString(data []byte, i int, p unsafe.Pointer) (int, bool) {
	if !at(data, i, `"`) {
		return i, false
	}
	start := i + 1
	ascii := true
	for j := start; j < len(data); j++ {
		c := data[j]
		switch {
		case c == '"':
			s := data[start:j]
			if !ascii && !utf8.Valid(s) {
				return i, false // encoding/json reads an invalid byte as U+FFFD
			}
			*(*string)(p) = string(s)
			return j + 1, true
		case c < ' ' || c == '\\':
			return i, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return i, false
}
