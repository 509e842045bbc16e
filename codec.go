package durable

import (
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
)

// Codec encodes the values of journaled branches and steps, and decodes them
// on replay. The default is encoding/json. A Codec must be safe for concurrent
// use, and Unmarshal(Marshal(v)) must give v back: durable checks that it
// decodes before it stores, and the caller gets the decoded value, live and on
// replay.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// WithCodec encodes values with c instead of encoding/json. Given to [NewStep],
// it applies to that step; given to a combinator, to each of its branches, and
// to everything run inside them, unless they name a codec of their own. Each
// journaled value records which codec wrote it, as the codec's Go type (%T): a
// later run that reads it with another codec fails with
// [ErrNondeterministic] instead of decoding garbage. c must not be nil.
func WithCodec(c Codec) Option {
	return optionFunc(func(cfg *config) {
		if c == nil {
			cfg.errs = append(cfg.errs, errors.New("durable: WithCodec(nil)"))
			return
		}
		cfg.codec = c
	})
}

// codecName is what a record says of the codec that wrote it: "" for the
// default encoding/json.
func codecName(c Codec) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%T", c)
}

// appendCustom appends v's encoding by c to dst. A panic in the codec is
// returned as a *PanicError: it runs on a worker's goroutine, outside the
// branch's recover.
func appendCustom[T any](dst []byte, v T, c Codec) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = dst, &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	data, err := c.Marshal(v)
	return append(dst, data...), err
}

// decodeWith decodes data, written by c, into a T. A panic is an error. With
// encoding/json, scalars and flat values in the form json.Marshal writes are
// read without it.
func decodeWith[T any](data []byte, c Codec) (T, error) {
	if c == nil {
		if v, ok := decodeScalar[T](data); ok {
			return v, nil
		}
		var v T
		if decodeFlat(data, &v) {
			return v, nil
		}
		return decodeJSON[T](data)
	}
	return decodeCustom[T](data, c)
}

func decodeCustom[T any](data []byte, c Codec) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, err = zero, &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	err = c.Unmarshal(data, &v)
	return v, err
}

// checkEncodable reports, before anything runs, a type that the codec can
// never give back: with encoding/json, a func, chan or complex field, or a
// non-empty interface. Other codecs are checked value by value.
func checkEncodable[T any](c Codec) error {
	if c != nil {
		return nil
	}
	return jsonCheckOf(reflect.TypeFor[T]()).never()
}
