package durable

import (
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// refCheckNames is the naive checkNames: a map from each name to its first
// index.
func refCheckNames(names []string) error {
	if len(names) == 1 && names[0] == "" {
		return errors.New("durable: step with an empty name")
	}
	first := make(map[string]int, len(names))
	for i, s := range names {
		if s == "" {
			return fmt.Errorf("durable: branch %d has an empty name", i)
		}
		if j, ok := first[s]; ok {
			return fmt.Errorf("%w: branches %d and %d are both %q", ErrDuplicateName, j, i, s)
		}
		first[s] = i
	}
	return nil
}

// randomNames returns a list of n names drawn from k distinct ones (all
// distinct when k is 0), each empty with probability pEmpty.
func randomNames(r *rand.Rand, n, k int, pEmpty float64) []string {
	names := make([]string, n)
	for i := range names {
		v := i
		if k > 0 {
			v = r.IntN(k)
		}
		names[i] = "step-" + strconv.Itoa(v)
		if v%5 == 0 { // some longer names
			names[i] += strings.Repeat("x", 20+v%40)
		}
		if r.Float64() < pEmpty {
			names[i] = ""
		}
	}
	if k == 0 {
		r.Shuffle(n, func(i, j int) { names[i], names[j] = names[j], names[i] })
	}
	return names
}

func sameErr(t *testing.T, what string, names []string, got, want error) {
	t.Helper()
	if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
		t.Fatalf("%s(%d names %q): got %v, want %v", what, len(names), names, got, want)
	}
	if errors.Is(want, ErrDuplicateName) && !errors.Is(got, ErrDuplicateName) {
		t.Fatalf("%s: %v does not match ErrDuplicateName", what, got)
	}
}

// hashMasks force hash collisions in uniqueNames: ^0 is the real hash; 0 makes
// every name collide; low bits only leave no tag bits to tell names apart, so
// every occupied slot is compared by name; high bits only start every probe at
// slot 0, one long cluster.
var hashMasks = []uint64{^uint64(0), 0, 1, 3, 0xff, 0xffff0000, 0xffff << 48, 1<<63 | 1}

// uniqueNamesBoth runs uniqueNames with a uint32 and a uint64 table of the
// size checkNames uses, and fails if they disagree.
func uniqueNamesBoth(t *testing.T, names []string, hashBits uint64) error {
	t.Helper()
	n := len(names)
	nameOf := func(i int) string { return names[i] }
	size := 2 << bits.Len(uint(n))
	err32 := uniqueNames(make([]uint32, size), n, nameOf, hashBits)
	err64 := uniqueNames(make([]uint64, size), n, nameOf, hashBits)
	if fmt.Sprint(err32) != fmt.Sprint(err64) {
		t.Fatalf("uniqueNames(%q, mask %#x): uint32 table: %v, uint64 table: %v", names, hashBits, err32, err64)
	}
	return err32
}

func TestCheckNamesMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 100, 257, 1000}
	for iter := range 3000 {
		n := sizes[iter%len(sizes)]
		if iter%7 == 0 {
			n = r.IntN(300)
		}
		var k int // 0: all distinct
		switch iter % 4 {
		case 1:
			k = 1 + r.IntN(n+1) // many duplicates
		case 2:
			k = 1 + 4*n + r.IntN(100*n+1) // few duplicates
		}
		pEmpty := 0.0
		if iter%5 == 0 {
			pEmpty = r.Float64() / float64(n+1)
		}
		names := randomNames(r, n, k, pEmpty)
		nameOf := func(i int) string { return names[i] }
		want := refCheckNames(names)
		sameErr(t, "checkNames", names, checkNames(n, nameOf), want)
		if n < 2 || n > 300 && iter%3 != 0 {
			continue // a single name has its own message; the masks are quadratic
		}
		for _, m := range hashMasks {
			sameErr(t, fmt.Sprintf("uniqueNames(mask %#x)", m), names, uniqueNamesBoth(t, names, m), want)
		}
	}
}

func TestCheckNamesReportsFirstPair(t *testing.T) {
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{[]string{"a", "b", "a", "b"}, `durable: duplicate step name: branches 0 and 2 are both "a"`},
		{[]string{"a", "b", "b", "a"}, `durable: duplicate step name: branches 1 and 2 are both "b"`},
		{[]string{"a", "a", "a"}, `durable: duplicate step name: branches 0 and 1 are both "a"`},
		{[]string{"a", "b", "a", ""}, `durable: duplicate step name: branches 0 and 2 are both "a"`},
		{[]string{"a", "", "a"}, `durable: branch 1 has an empty name`},
		{[]string{"", "a"}, `durable: branch 0 has an empty name`},
	} {
		// Pad past the quadratic path with distinct names, keeping the
		// indices of the pair.
		for _, pad := range []int{0, 40} {
			names := append(append([]string{}, tc.names...), randomNames(rand.New(rand.NewPCG(3, 4)), pad, 0, 0)...)
			want := tc.want
			if refErr := refCheckNames(names); refErr == nil || refErr.Error() != want {
				t.Fatalf("reference on %q: %v, want %s", names, refErr, want)
			}
			sameErr(t, "checkNames", names, checkNames(len(names), func(i int) string { return names[i] }), refCheckNames(names))
			for _, m := range hashMasks {
				got := uniqueNamesBoth(t, names, m)
				if got == nil || got.Error() != want {
					t.Errorf("uniqueNames(%q, mask %#x) = %v, want %s", names, m, got, want)
				}
			}
		}
	}
	// A single step has its own message.
	if err := checkNames(1, func(int) string { return "" }); err == nil || err.Error() != "durable: step with an empty name" {
		t.Errorf("checkNames of one empty name = %v", err)
	}
}
