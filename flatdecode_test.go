package durable

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
)

type (
	flatSizes struct {
		I8  int8
		I16 int16
		I32 int32
		I64 int64
		I   int
		U8  uint8
		U16 uint16
		U32 uint32
		U64 uint64
		U   uint
	}
	flatInner struct {
		Name string `json:"name"`
		N    int16  `json:"n,omitempty"`
		On   bool   `json:",omitempty"`
	}
	flatMixed struct {
		ID    uint32 `json:"id"`
		Label status `json:"label,omitempty"`
		Sizes flatSizes
		Inner flatInner `json:"inner,omitempty"`
		Grid  [2][3]int8
		Items [2]flatInner `json:"items"`
		Tags  [2]string    `json:",omitempty"`
		None  [0]int       `json:"none,omitempty"`
		Unit  struct{}
		Ok    bool `json:"ok,omitempty"`
		X     float64
		Y     float32 `json:"y"`
	}
	flatPair struct{ I, Sq int }
)

// randomFlat sets v, of a flat type, to a random value: integers often at
// their limits, strings of ASCII and other runes, some that encoding/json
// escapes, some of invalid UTF-8, and finite floats.
func randomFlat(rng *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(rng.IntN(2) == 0)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		n := []int64{0, -1, 1, -1 << (bits - 1), 1<<(bits-1) - 1, rng.Int64N(200) - 100,
			rng.Int64(), rng.Int64() >> rng.IntN(64)}[rng.IntN(8)]
		v.SetInt(n << (64 - bits) >> (64 - bits))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bits := v.Type().Bits()
		n := []uint64{0, 1, ^uint64(0), rng.Uint64N(200), rng.Uint64(), rng.Uint64() >> rng.IntN(64)}[rng.IntN(6)]
		v.SetUint(n << (64 - bits) >> (64 - bits))
	case reflect.Float32, reflect.Float64:
		for {
			f := []float64{0, math.Copysign(0, -1), float64(rng.Int64N(1e6)), rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30)),
				math.Float64frombits(rng.Uint64()), float64(math.Float32frombits(rng.Uint32()))}[rng.IntN(6)]
			if v.Kind() == reflect.Float32 {
				f = float64(float32(f))
			}
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				v.SetFloat(f)
				return
			}
		}
	case reflect.String:
		plain := []string{"a", "Z", "0", " ", "~", "\x7f", "é", "日本", "😀", "\ufffd", "\U0010ffff"}
		escaped := []string{"<", ">", "&", `"`, `\`, "\n", "\x00", "\u2028", "\u2029", "\xff", "\xed\xa0\x80"}
		var s string
		for range rng.IntN(8) {
			if rng.IntN(40) == 0 {
				s += escaped[rng.IntN(len(escaped))]
			} else {
				s += plain[rng.IntN(len(plain))]
			}
		}
		v.SetString(s)
	case reflect.Array:
		for i := range v.Len() {
			randomFlat(rng, v.Index(i))
		}
	case reflect.Struct:
		for i := range v.NumField() {
			randomFlat(rng, v.Field(i))
		}
	}
}

// checkDecodeFlatRandom decodes json.Marshal's form of n random Ts: decodeFlat
// must take exactly the forms without escapes, and give what json.Unmarshal
// gives, which is the value itself when its strings are valid UTF-8.
func checkDecodeFlatRandom[T any](t *testing.T, rng *rand.Rand, n int) {
	t.Run(reflect.TypeFor[T]().String(), func(t *testing.T) {
		taken := 0
		for range n {
			var v T
			randomFlat(rng, reflect.ValueOf(&v).Elem())
			data, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("json.Marshal(%#v): %v", v, err)
			}
			var got T
			ok := decodeFlat(data, &got)
			if ok == bytes.ContainsRune(data, '\\') {
				t.Fatalf("decodeFlat(%s) = %v", data, ok)
			}
			if !ok {
				continue
			}
			taken++
			var want T
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", data, err)
			}
			if !identical(reflect.ValueOf(got), reflect.ValueOf(want)) {
				t.Fatalf("decodeFlat(%s) gives %#v, json.Unmarshal %#v", data, got, want)
			}
			if validStrings(reflect.ValueOf(v)) && !identical(reflect.ValueOf(got), reflect.ValueOf(v)) {
				t.Fatalf("decodeFlat(%s) gives %#v, want %#v", data, got, v)
			}
		}
		if taken < n/4 {
			t.Fatalf("decodeFlat took %d of %d encodings", taken, n)
		}
	})
}

// Random values of flat types decode from json.Marshal's form as they were.
func TestDecodeFlatRandomValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 17))
	checkDecodeFlatRandom[flatPair](t, rng, 2000)
	checkDecodeFlatRandom[flatSizes](t, rng, 5000)
	checkDecodeFlatRandom[flatInner](t, rng, 5000)
	checkDecodeFlatRandom[flatMixed](t, rng, 5000)
	checkDecodeFlatRandom[flatOrder](t, rng, 5000)
	checkDecodeFlatRandom[[3][2]flatInner](t, rng, 2000)
	checkDecodeFlatRandom[withZeroSize](t, rng, 100)
	checkDecodeFlatRandom[int8](t, rng, 1000)
	checkDecodeFlatRandom[uint64](t, rng, 1000)
	checkDecodeFlatRandom[float32](t, rng, 5000)
	checkDecodeFlatRandom[float64](t, rng, 5000)
	checkDecodeFlatRandom[status](t, rng, 1000)
	checkDecodeFlatRandom[[4]bool](t, rng, 100)
}

// Integers at their limits, and floats at the edges of their formats.
func TestDecodeFlatEdges(t *testing.T) {
	negZero := math.Copysign(0, -1)
	check := func(v any, decode func([]byte) (any, bool)) {
		t.Helper()
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decode(data)
		if !ok || !identical(reflect.ValueOf(got), reflect.ValueOf(v)) {
			t.Errorf("decodeFlat(%s) = %#v, %v; want %#v, true", data, got, ok, v)
		}
	}
	for _, v := range []flatSizes{
		{math.MinInt8, math.MinInt16, math.MinInt32, math.MinInt64, math.MinInt, 0, 0, 0, 0, 0},
		{math.MaxInt8, math.MaxInt16, math.MaxInt32, math.MaxInt64, math.MaxInt, math.MaxUint8, math.MaxUint16, math.MaxUint32, math.MaxUint64, math.MaxUint},
	} {
		check(v, func(data []byte) (any, bool) {
			var got flatSizes
			ok := decodeFlat(data, &got)
			return got, ok
		})
	}
	floats := [...]float64{negZero, 1e21, math.Nextafter(1e21, 0), 1e-6, math.Nextafter(1e-6, 0), math.MaxFloat64,
		-math.SmallestNonzeroFloat64, math.Float64frombits(0x000fffffffffffff), 0.1, 1 << 53, 1<<53 + 2}
	check(floats, func(data []byte) (any, bool) {
		var got [len(floats)]float64
		ok := decodeFlat(data, &got)
		return got, ok
	})
	floats32 := [...]float32{float32(negZero), 1e21, math.Nextafter32(1e21, 0), math.MaxFloat32,
		-math.SmallestNonzeroFloat32, math.Float32frombits(0x007fffff), 0.1, 16777216, 16777218}
	check(floats32, func(data []byte) (any, bool) {
		var got [len(floats32)]float32
		ok := decodeFlat(data, &got)
		return got, ok
	})
}

// Input that is not json.Marshal's form, or that encoding/json reads
// otherwise or not at all, is left to encoding/json.
func TestDecodeFlatDeclinesNearMisses(t *testing.T) {
	declines := func(data string, decode func([]byte) bool) {
		t.Helper()
		if decode([]byte(data)) {
			t.Errorf("decodeFlat(%s) = true, want false", data)
		}
	}
	pair := func(data []byte) bool { return decodeFlat(data, new(flatPair)) }
	for _, data := range []string{
		``, `null`, ` {"I":1,"Sq":2}`, `{"I":1,"Sq":2} `, `{"I": 1,"Sq":2}`, `{"I":1 ,"Sq":2}`,
		`{"Sq":2,"I":1}`, `{"I":1,"Sq":2,"X":3}`, `{"i":1,"Sq":2}`, `{"I":1,"SQ":2}`, `{"I":1,"I":1,"Sq":2}`,
		`{"I":1}`, `{"Sq":2}`, `{}`, `{"I":9223372036854775808,"Sq":2}`, `{"I":-9223372036854775809,"Sq":2}`,
		`{"I":18446744073709551616,"Sq":2}`, `{"I":01,"Sq":2}`, `{"I":-01,"Sq":2}`, `{"I":1.0,"Sq":2}`,
		`{"I":1e2,"Sq":2}`, `{"I":+1,"Sq":2}`, `{"I":-,"Sq":2}`, `{"I":null,"Sq":2}`, `{"I":"1","Sq":2}`,
		`{"I":true,"Sq":2}`, `{"I":1,"Sq":2}x`, `{"I":1,"Sq":2}{}`, `{"I":1,"Sq":2`, `{"I":1,`, `{"I"`,
		`{"\u0049":1,"Sq":2}`, `{"I":1,,"Sq":2}`, `{,"I":1,"Sq":2}`, `{"I":1,"Sq":2,}`, `["I",1]`, `[1,2]`,
	} {
		declines(data, pair)
	}
	for _, data := range []string{
		`"a\u0041"`, `"a\n"`, "\"\xff\"", "\"\xed\xa0\x80\"", "\"\t\"", `"abc`, `"`, `abc`, `"a""`, `1`,
	} {
		declines(data, func(data []byte) bool { return decodeFlat(data, new(string)) })
	}
	for _, data := range []string{`[true,false]`, `[true,false,true,true]`, `[true,false,true,]`, `[true,false,1]`, `[]`} {
		declines(data, func(data []byte) bool { return decodeFlat(data, new([3]bool)) })
	}
	for _, data := range []string{`1.`, `.5`, `1e`, `1e+`, `01.5`, `-01`, `1e400`, `-1e400`, `NaN`, `Infinity`, `-`, `0x10`, `1_0`, `+1`, `"1"`} {
		declines(data, func(data []byte) bool { return decodeFlat(data, new(float64)) })
	}
	declines(`3.5e38`, func(data []byte) bool { return decodeFlat(data, new(float32)) })
	declines(`{"Name":"x"}`, func(data []byte) bool { return decodeFlat(data, new(flatInner)) })
	declines(`{"name":"x","On":true,"n":1}`, func(data []byte) bool { return decodeFlat(data, new(flatInner)) })
	declines(`-1`, func(data []byte) bool { return decodeFlat(data, new(uint8)) })
	declines(`256`, func(data []byte) bool { return decodeFlat(data, new(uint8)) })
	declines(`-129`, func(data []byte) bool { return decodeFlat(data, new(int8)) })
	declines(`128`, func(data []byte) bool { return decodeFlat(data, new(int8)) })

	// Types that are not flat, in forms encoding/json reads.
	declines(`{"P":1}`, func(data []byte) bool { return decodeFlat(data, new(withPtr)) })
	declines(`{"S":[1]}`, func(data []byte) bool { return decodeFlat(data, new(withSlice)) })
	declines(`{"a":"1"}`, func(data []byte) bool { return decodeFlat(data, new(withStringOpt)) })
	declines(`{"A":1,"a":2}`, func(data []byte) bool { return decodeFlat(data, new(withFoldedNames)) })
	declines(`{"A":1}`, func(data []byte) bool { return decodeFlat(data, new(withUnexported)) })
	declines(`1`, func(data []byte) bool { return decodeFlat(data, new(custom)) })
	declines(`[1,2]`, func(data []byte) bool { return decodeFlat(data, new([2]textIn)) })
}

// Decoding a struct of integers allocates nothing; a string, only itself.
func TestDecodeFlatAllocations(t *testing.T) {
	data, err := json.Marshal(flatSizes{I8: -1, I64: math.MinInt64, U64: math.MaxUint64})
	if err != nil {
		t.Fatal(err)
	}
	var v flatSizes
	if n := testing.AllocsPerRun(100, func() {
		v = flatSizes{}
		if !decodeFlat(data, &v) {
			t.Fatalf("decodeFlat(%s) = false", data)
		}
	}); n != 0 {
		t.Errorf("decodeFlat(%s) allocates %v times", data, n)
	}
	pair := []byte(`{"I":12345,"Sq":152399025}`)
	if n := testing.AllocsPerRun(100, func() {
		if p, err := decodeWith[flatPair](pair, nil); err != nil || p.Sq != 152399025 {
			t.Fatalf("decodeWith(%s) = %v, %v", pair, p, err)
		}
	}); n != 0 {
		t.Errorf("decodeWith(%s) allocates %v times", pair, n)
	}
	inner := []byte(`{"name":"ada","n":3,"On":true}`)
	if n := testing.AllocsPerRun(100, func() {
		var v flatInner
		if !decodeFlat(inner, &v) || v.Name != "ada" {
			t.Fatalf("decodeFlat(%s) = %#v", inner, v)
		}
	}); n != 1 {
		t.Errorf("decodeFlat(%s) allocates %v times, want 1", inner, n)
	}
}

// Goroutines decoding a type at once, for the first time, all decode it (run
// with -race).
func TestDecodeFlatConcurrentFirstUse(t *testing.T) {
	type fresh struct {
		A [2]string
		B int32 `json:"b,omitempty"`
	}
	data := []byte(`{"A":["x","y"],"b":-7}`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			var v fresh
			if !decodeFlat(data, &v) || v != (fresh{A: [2]string{"x", "y"}, B: -7}) {
				t.Errorf("decodeFlat(%s) = %#v", data, v)
			}
		})
	}
	wg.Wait()
}

// checkDecodeFlat fails when decodeFlat takes data and json.Unmarshal does not
// give the same value without error, or when it leaves to encoding/json what
// json.Marshal writes for the value read, without escapes.
func checkDecodeFlat[T any](t *testing.T, data []byte) {
	var got, want T
	ok := decodeFlat(data, &got)
	err := json.Unmarshal(data, &want)
	if ok {
		if err != nil {
			t.Fatalf("decodeFlat[%T] takes %q, json.Unmarshal fails: %v", got, data, err)
		}
		if !identical(reflect.ValueOf(got), reflect.ValueOf(want)) {
			t.Fatalf("decodeFlat[%T](%q) gives %#v, json.Unmarshal %#v", got, data, got, want)
		}
		return
	}
	if err == nil && !bytes.ContainsRune(data, '\\') {
		if b, err := json.Marshal(want); err == nil && bytes.Equal(b, data) {
			t.Fatalf("decodeFlat[%T] leaves %q, json.Marshal's form, to encoding/json", want, data)
		}
	}
}

func FuzzDecodeFlat(f *testing.F) {
	for _, v := range []any{
		flatPair{12345, 152399025}, flatPair{-1, 0},
		flatSizes{math.MinInt8, math.MinInt16, math.MinInt32, math.MinInt64, math.MinInt, 1, 2, 3, 4, 5},
		flatSizes{U8: math.MaxUint8, U64: math.MaxUint64, U: math.MaxUint},
		flatInner{Name: "é日😀"}, flatInner{Name: "x", N: -3, On: true},
		flatMixed{ID: 7, Label: "l", Items: [2]flatInner{{Name: "a"}, {N: 1}}, Tags: [2]string{"t"}, X: 1e21, Y: -0.5},
		flatMixed{}, flatOrder{Status: "paid", Half: 1.1}, [3][2]flatInner{},
		int8(-128), uint64(math.MaxUint64), float32(3.4028235e38), 1e-7, math.Copysign(0, -1), "plain", "<&>", [4]bool{true},
	} {
		data, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		` {"I":1,"Sq":2}`, `{"I":1,"Sq":2} `, `{"I": 1,"Sq":2}`, `{"Sq":2,"I":1}`, `{"I":1,"Sq":2,"X":3}`,
		`{"i":1,"Sq":2}`, `{"I":1,"I":2,"Sq":2}`, `{"I":9223372036854775808,"Sq":2}`, `{"I":01,"Sq":2}`,
		`{"I":1.0,"Sq":2}`, `{"I":null,"Sq":2}`, `{"I":1,"Sq":2}x`, `{"I":1,"Sq"`, `null`, `{"\u0049":1,"Sq":2}`,
		`{"name":"a\u0041"}`, "{\"name\":\"\xff\"}", "{\"name\":\"\t\"}", `{"name":"x","n":1,"On":true}`,
		`{"name":"x","On":true}`, `{"name":"x","On":true,"n":1}`, `{"name":"x","n":0,"On":false}`, `{"NAME":"x"}`,
		`"a\u0041"`, "\"\xed\xa0\x80\"", `1e400`, `3.5e38`, `-0`, `-0.0`, `1E+2`, `[true,false,true,true,false]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeFlat[flatPair](t, data)
		checkDecodeFlat[flatSizes](t, data)
		checkDecodeFlat[flatInner](t, data)
		checkDecodeFlat[flatMixed](t, data)
		checkDecodeFlat[flatOrder](t, data)
		checkDecodeFlat[[3][2]flatInner](t, data)
		checkDecodeFlat[int8](t, data)
		checkDecodeFlat[uint64](t, data)
		checkDecodeFlat[float32](t, data)
		checkDecodeFlat[float64](t, data)
		checkDecodeFlat[string](t, data)
		checkDecodeFlat[[4]bool](t, data)
	})
}

// decodeWith against json.Unmarshal for the value of one branch of a FanOut.
func BenchmarkDecodeFlat(b *testing.B) {
	type square struct {
		I  int
		Sq int
	}
	data := []byte(`{"I":12345,"Sq":152399025}`)
	b.Run("decodeWith", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if v, err := decodeWith[square](data, nil); err != nil || v.Sq != 152399025 {
				b.Fatal(v, err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v square
			if err := json.Unmarshal(data, &v); err != nil || v.Sq != 152399025 {
				b.Fatal(v, err)
			}
		}
	})
}
