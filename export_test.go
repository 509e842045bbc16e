package durable

import "github.com/durable-go/durable/internal/record"

// Exported for the tests of package durable_test.

// DecodeRecord decodes the journal record stored under key and encodes it
// again.
func DecodeRecord(key string, b []byte) (reencoded []byte, err error) {
	r, err := record.Decode(key, b)
	if err != nil {
		return nil, err
	}
	return r.Encode(key), nil
}

// EscapeName is the key encoding of one name.
var EscapeName = record.Escape

// ItemDigest is the digest journaled with a FanOut item.
func ItemDigest(item any) string {
	d := itemDigest(item)
	return string(d[:])
}

// ItemDigestV1 is the digest record format version 1 journaled.
func ItemDigestV1(item any) string {
	d := itemDigestV1(item)
	return string(d[:])
}

// EncodeValue is how a branch's value is journaled.
func EncodeValue[T any](v T) ([]byte, error) { return encodeValue(v) }

// DecodeScalar is the decoder's fast path: ok is false when it leaves data to
// encoding/json.
func DecodeScalar[T any](data []byte) (v T, ok bool) {
	ok = scalarFromJSON(data, &v)
	return v, ok
}

// AppendInt and AppendUint are the scalar encoder's integer formatting.
var (
	AppendInt  = appendInt
	AppendUint = appendUint
)
