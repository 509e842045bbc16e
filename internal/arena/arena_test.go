package arena_test

import (
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/durable-go/durable/internal/arena"
)

// The strings stay as they were made while more are made, whatever their
// lengths, and the source bytes may change after.
func TestStringsStay(t *testing.T) {
	var k arena.Blocks
	var want, got []string
	src := make([]byte, 0, 3*arena.Size)
	for i := range 2000 {
		n := i % 50
		switch i {
		case 700:
			n = arena.Size
		case 701:
			n = 3 * arena.Size
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
	var k arena.Blocks
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

// The blocks grow from 256 bytes to Size: a string or two cost a small block.
func TestBlockSizes(t *testing.T) {
	var k arena.Blocks
	b := make([]byte, 100)
	var sizes []int
	var prev string
	for range 200 {
		s := k.String(b)
		if prev == "" || addr(s) != addr(prev)+uintptr(len(prev)) {
			sizes = append(sizes, 0) // a new block
		}
		sizes[len(sizes)-1] += len(s)
		prev = s
	}
	// Blocks of 256, 512, 1024, 2048 and 4096 bytes hold 2, 5, 10, 20 and 40
	// strings of 100 bytes.
	want := []int{200, 500, 1000, 2000, 4000, 4000, 4000, 4000}
	if len(sizes) < len(want) || !slices.Equal(sizes[:len(want)], want) {
		t.Fatalf("bytes per block: %v, want %v first", sizes, want)
	}
}

func addr(s string) uintptr { return uintptr(unsafe.Pointer(unsafe.StringData(s))) }
