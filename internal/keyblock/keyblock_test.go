package keyblock_test

import (
	"strings"
	"testing"

	"github.com/durable-go/durable/internal/keyblock"
)

// The strings stay as they were made while more are made, whatever their
// lengths, and the source bytes may change after.
func TestStringsStay(t *testing.T) {
	var k keyblock.Blocks
	var want, got []string
	src := make([]byte, 0, 3*keyblock.Size)
	for i := range 2000 {
		n := i % 50
		switch i {
		case 700:
			n = keyblock.Size
		case 701:
			n = 3 * keyblock.Size
		case 702:
			n = 0
		}
		s := strings.Repeat(string(rune('a'+i%26)), n)
		src = append(src[:0], s...)
		want = append(want, s)
		got = append(got, k.String(src))
		clear(src)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("string %d is %q, want %q", i, got[i], want[i])
		}
	}
}

func TestAllocations(t *testing.T) {
	var k keyblock.Blocks
	b := []byte("exec/steps/1234")
	// The first String may allocate a block; 200 strings of 15 bytes fill
	// one block at most.
	allocs := testing.AllocsPerRun(10, func() {
		for range 200 {
			k.String(b)
		}
	})
	if allocs > 1 {
		t.Fatalf("200 strings of 15 bytes: %v allocations, want at most 1", allocs)
	}
}
