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
func ItemDigest(item any) string { return itemDigest(item) }
