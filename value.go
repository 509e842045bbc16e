package durable

import (
	"encoding/json"
	"runtime/debug"
	"strconv"
	"unicode/utf8"
)

// Values are journaled as their encoding/json form. Integers, booleans and
// plain ASCII strings, the most common results, skip the encoder and the
// decoder: the bytes written and the values read back are exactly what
// encoding/json would give, without its reflection and deep stacks.

// encodeValue is json.Marshal, with a panic in a MarshalJSON method returned as
// a *PanicError: it runs on a branch's goroutine, outside the branch's recover.
func encodeValue[T any](v T) ([]byte, error) { return appendValue(nil, v) }

// appendValue appends the JSON encoding of v to dst, as encodeValue.
func appendValue[T any](dst []byte, v T) (b []byte, err error) {
	if b, ok := appendScalarJSON(dst, v); ok {
		return b, nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	js, err := json.Marshal(v)
	return append(dst, js...), err
}

// decodeScalar is scalarFromJSON into a variable of its own, which stays on the
// stack: decodeJSON's escapes to the heap.
func decodeScalar[T any](data []byte) (v T, ok bool) {
	ok = scalarFromJSON(data, &v)
	return v, ok
}

// decodeJSON is json.Unmarshal into a new T. A panic in an UnmarshalJSON
// method is an error, as in appendValue.
func decodeJSON[T any](data []byte) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, err = zero, &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	err = json.Unmarshal(data, &v)
	return v, err
}

// appendScalarJSON appends the JSON encoding of v when v is an integer, a
// boolean or a plain ASCII string (not a named type, which may have its own
// MarshalJSON), and reports whether it did.
func appendScalarJSON[T any](dst []byte, v T) ([]byte, bool) {
	switch x := any(v).(type) { // does not escape: no allocation
	case int:
		return appendInt(dst, int64(x)), true
	case int64:
		return appendInt(dst, x), true
	case int32:
		return appendInt(dst, int64(x)), true
	case uint:
		return appendUint(dst, uint64(x)), true
	case uint64:
		return appendUint(dst, x), true
	case uint32:
		return appendUint(dst, uint64(x)), true
	case bool:
		return strconv.AppendBool(dst, x), true
	case string:
		if plainJSONString(x) {
			dst = append(dst, '"')
			dst = append(dst, x...)
			return append(dst, '"'), true
		}
	}
	return dst, false
}

// appendInt is strconv.AppendInt(dst, x, 10), with a small frame: it runs on
// a worker's young stack, where strconv's would make it grow.
func appendInt(dst []byte, x int64) []byte {
	u := uint64(x)
	if x < 0 {
		dst = append(dst, '-')
		u = -u
	}
	return appendUint(dst, u)
}

// appendUint is strconv.AppendUint(dst, x, 10), with a small frame. Not
// inlined: a copy of its buffer in each of its callers' cases would make their
// frames large.
//
//go:noinline
func appendUint(dst []byte, x uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for x >= 10 {
		i--
		buf[i] = byte('0' + x%10)
		x /= 10
	}
	i--
	buf[i] = byte('0' + x)
	return append(dst, buf[i:]...)
}

// scalarFromJSON decodes data into *p when p points to an integer, a boolean or
// a string and data is the plain form appendScalarJSON writes, and reports
// whether it did; anything else is left to encoding/json.
func scalarFromJSON[T any](data []byte, p *T) bool {
	switch q := any(p).(type) {
	case *int:
		return setInt(data, q, strconv.IntSize)
	case *int64:
		return setInt(data, q, 64)
	case *int32:
		return setInt(data, q, 32)
	case *uint:
		return setUint(data, q, strconv.IntSize)
	case *uint64:
		return setUint(data, q, 64)
	case *uint32:
		return setUint(data, q, 32)
	case *bool:
		switch string(data) {
		case "true":
			*q = true
			return true
		case "false":
			*q = false
			return true
		}
	case *string:
		if len(data) >= 2 && data[0] == '"' && data[len(data)-1] == '"' && plainJSONString(string(data[1:len(data)-1])) {
			*q = string(data[1 : len(data)-1])
			return true
		}
	}
	return false
}

func setInt[N int | int64 | int32](data []byte, q *N, bits int) bool {
	n, ok := jsonInt(data, bits)
	*q = N(n)
	return ok
}

func setUint[N uint | uint64 | uint32](data []byte, q *N, bits int) bool {
	n, ok := jsonUint(data, bits)
	*q = N(n)
	return ok
}

// jsonInt parses data when it is a JSON integer (no '+', no leading zeros)
// that fits in bits.
func jsonInt(data []byte, bits int) (int64, bool) {
	n, end, ok := parseJSONInt(data, 0, bits)
	return n, ok && end == len(data)
}

// jsonUint parses data when it is a non-negative JSON integer that fits in bits.
func jsonUint(data []byte, bits int) (uint64, bool) {
	n, end, ok := parseJSONUint(data, 0, bits)
	return n, ok && end == len(data)
}

// plainJSONString reports whether encoding/json writes s as itself in quotes,
// and reads it back unchanged: printable ASCII without the characters it
// escapes ('"', '\\', and, for HTML safety, '<', '>', '&').
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
