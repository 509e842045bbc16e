// Package arena copies many short byte slices into shared blocks, as strings
// or byte slices, with few allocations. The journals' Scan uses it for the
// keys it hands out, which its callback may keep, and a batch's restore for
// the records it keeps of what Scan only lends.
package arena

import "unsafe"

// Size is the size of the largest blocks that a [Blocks] copies bytes into.
// Its first block is of 256 bytes, and each after it twice the size of the one
// before, up to Size: a few short strings cost a small block.
const Size = 4096

// first is the size of a Blocks' first block.
const first = 256

// Blocks makes copies, strings or byte slices, by copying bytes into a block
// that the copies after them share, until it is full, so that it allocates
// once per [Size] bytes rather than once per copy. A copy that is kept keeps
// its whole block in memory. The zero value is ready to use; a Blocks is not
// safe for concurrent use.
type Blocks struct {
	block []byte // its bytes below len are handed out already: never written again
}

// String returns a string of the bytes of b.
func (k *Blocks) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	c := k.copy(b)
	return unsafe.String(&c[0], len(c))
}

// Bytes returns a copy of b, of capacity len(b): appending to it copies it.
func (k *Blocks) Bytes(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	return k.copy(b)
}

// copy copies b, which is not empty, into the block.
func (k *Blocks) copy(b []byte) []byte {
	if len(b) > cap(k.block)-len(k.block) {
		k.block = make([]byte, 0, max(min(2*cap(k.block), Size), first, len(b)))
	}
	off := len(k.block)
	k.block = append(k.block, b...)
	return k.block[off:len(k.block):len(k.block)]
}
