package durable_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
)

// The fast paths for scalars must write the bytes encoding/json writes and read
// back what it reads, or fall back to it.
func TestScalarValuesEncodeAsJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	check := func(v any, enc func() ([]byte, error)) {
		t.Helper()
		want, err := json.Marshal(v)
		require.NoError(t, err)
		got, err := enc()
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), "%#v", v)
	}
	ints := []int64{0, 1, -1, 9, 10, math.MaxInt64, math.MinInt64, math.MaxInt32, math.MinInt32}
	for range 200 {
		ints = append(ints, r.Int64()>>r.UintN(64))
	}
	for _, n := range ints {
		check(n, func() ([]byte, error) { return durable.EncodeValue(n) })
		check(int(n), func() ([]byte, error) { return durable.EncodeValue(int(n)) })
		check(int32(n), func() ([]byte, error) { return durable.EncodeValue(int32(n)) })
		check(uint64(n), func() ([]byte, error) { return durable.EncodeValue(uint64(n)) })
		check(uint32(n), func() ([]byte, error) { return durable.EncodeValue(uint32(n)) })
	}
	for _, b := range []bool{true, false} {
		check(b, func() ([]byte, error) { return durable.EncodeValue(b) })
	}
	strs := []string{"", "a", "order-17", "héllo", "<b>", "a&b", `q"`, `a\b`, "\n", "\x7f", "\xff", "\u2028", "tab\t"}
	for range 200 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.UintN(128))
		}
		strs = append(strs, string(b))
	}
	for _, s := range strs {
		check(s, func() ([]byte, error) { return durable.EncodeValue(s) })
	}
	type named int
	check(named(5), func() ([]byte, error) { return durable.EncodeValue(named(5)) })
}

func FuzzScalarDecodeMatchesJSON(f *testing.F) {
	for _, s := range []string{"0", "-0", "007", "+5", "1e3", "1.0", "18446744073709551615", "18446744073709551616",
		"-9223372036854775808", "9223372036854775808", "true", "false", "null", `"x"`, `"a\"b"`, `"\u0041"`, `"é"`, `""`, `"`, " 1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		same := func(fast any, ok bool, slow any, err error) {
			if !ok {
				return // left to encoding/json
			}
			if err != nil {
				t.Fatalf("fast path accepted %q, encoding/json rejects it: %v", data, err)
			}
			if fast != slow {
				t.Fatalf("%q: fast path %#v, encoding/json %#v", data, fast, slow)
			}
		}
		{
			v, ok := durable.DecodeScalar[int64](data)
			var w int64
			err := json.Unmarshal(data, &w)
			same(v, ok, w, err)
		}
		{
			v, ok := durable.DecodeScalar[uint32](data)
			var w uint32
			err := json.Unmarshal(data, &w)
			same(v, ok, w, err)
		}
		{
			v, ok := durable.DecodeScalar[int](data)
			var w int
			err := json.Unmarshal(data, &w)
			same(v, ok, w, err)
		}
		{
			v, ok := durable.DecodeScalar[bool](data)
			var w bool
			err := json.Unmarshal(data, &w)
			same(v, ok, w, err)
		}
		{
			v, ok := durable.DecodeScalar[string](data)
			var w string
			err := json.Unmarshal(data, &w)
			same(v, ok, w, err)
		}
	})
}

func TestAppendIntIsStrconvs(t *testing.T) {
	for _, n := range []int64{0, 1, -1, 9, 10, -10, 99, 100, math.MaxInt64, math.MinInt64, 1234567890123} {
		require.Equal(t, strconv.FormatInt(n, 10), string(durable.AppendInt(nil, n)))
		require.Equal(t, strconv.FormatUint(uint64(n), 10), string(durable.AppendUint([]byte{}, uint64(n))))
	}
}
