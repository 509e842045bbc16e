package durable

// Exported for the tests of package durable_test.

// DecodeRecord decodes a journal record and encodes it again.
func DecodeRecord(b []byte) (reencoded []byte, err error) {
	r, err := decodeRecord(b)
	if err != nil {
		return nil, err
	}
	return r.encode(), nil
}

// EscapeName is the key encoding of one name.
var EscapeName = escapeName

// ItemDigest is the digest journaled with a FanOut item.
func ItemDigest(item any) string {
	d := itemDigest(item)
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
