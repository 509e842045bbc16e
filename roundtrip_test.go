package durable

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durable-go/durable/journal"
)

// decoded is what a checkpoint decodes when its own write was stored.
func decoded[T any](t testing.TB, v T) (T, error) {
	t.Helper()
	b, err := appendValue(nil, v)
	if err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	var got T
	err = json.Unmarshal(b, &got)
	return got, err
}

// checkRoundTrips fails when roundTrips says v comes back unchanged and it
// does not, and reports what roundTrips said.
func checkRoundTrips[T any](t testing.TB, v T) bool {
	t.Helper()
	ok := roundTrips(v)
	if !ok {
		return false
	}
	got, err := decoded(t, v)
	if err != nil {
		t.Fatalf("roundTrips(%#v) = true, but it does not decode: %v", v, err)
	}
	if !identical(reflect.ValueOf(got), reflect.ValueOf(v)) {
		t.Fatalf("roundTrips(%#v) = true, but it decodes as %#v", v, got)
	}
	return true
}

// identical is reflect.DeepEqual for the values roundTrips accepts, with
// floats compared bit for bit: a caller can tell -0 from 0.
func identical(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Array:
		for i := range a.Len() {
			if !identical(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !identical(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	return a.Equal(b)
}

type (
	status    string
	flatPoint struct {
		X, Y  float64
		Label string `json:"label,omitempty"`
	}
	flatOrder struct {
		Status status `json:"status"`
		Item   int    `json:"item"`
		Where  flatPoint
		Tags   [2]string
		Done   bool
		Small  uint8
		Half   float32
	}
	withUnexported struct {
		A int
		b int
	}
	withSkipped struct {
		A int
		B int `json:"-"`
	}
	withStringOpt struct {
		A int `json:"a,string"`
	}
	withOmitZero struct {
		A int `json:"a,omitzero"`
	}
	withFoldedNames struct {
		A int
		B int `json:"a"`
	}
	withOddName struct {
		A int `json:"a-b"`
	}
	embedded  struct{ flatPoint }
	withTime  struct{ At time.Time }
	withPtr   struct{ P *int }
	withSlice struct{ S []int }
	withMap   struct{ M map[string]int }
	withAny   struct{ V any }
	custom    int
)

func (c custom) MarshalJSON() ([]byte, error) { return json.Marshal(int(c) + 1) }

func TestRoundTripsKnowsFlatTypes(t *testing.T) {
	order := flatOrder{Status: "paid", Item: -3, Where: flatPoint{X: 0.1, Y: math.Copysign(0, -1)},
		Tags: [2]string{"é", "<&>\u2028"}, Done: true, Small: 255, Half: 1.1}
	for name, ok := range map[string]bool{
		"int":          checkRoundTrips(t, math.MinInt64),
		"float64":      checkRoundTrips(t, math.SmallestNonzeroFloat64),
		"named string": checkRoundTrips(t, status("shipped")),
		"struct":       checkRoundTrips(t, order),
		"zero struct":  checkRoundTrips(t, flatOrder{}),
		"array":        checkRoundTrips(t, [3]flatPoint{{X: 1}, {Y: 2}, {Label: "z"}}),
		"empty struct": checkRoundTrips(t, struct{}{}),
	} {
		if !ok {
			t.Errorf("%s: roundTrips = false, want true", name)
		}
	}
	for name, ok := range map[string]bool{
		"invalid UTF-8":      checkRoundTrips(t, flatOrder{Tags: [2]string{"ok", "\xff"}}),
		"unexported field":   checkRoundTrips(t, withUnexported{A: 1, b: 2}),
		"skipped field":      checkRoundTrips(t, withSkipped{A: 1, B: 2}),
		"string option":      checkRoundTrips(t, withStringOpt{A: 1}),
		"omitzero":           checkRoundTrips(t, withOmitZero{A: 1}),
		"names equal folded": checkRoundTrips(t, withFoldedNames{A: 1, B: 2}),
		"name to escape":     checkRoundTrips(t, withOddName{A: 1}),
		"embedded":           checkRoundTrips(t, embedded{flatPoint{X: 1}}),
		"time.Time":          checkRoundTrips(t, withTime{At: time.Now()}),
		"pointer":            checkRoundTrips(t, withPtr{}),
		"slice":              checkRoundTrips(t, withSlice{S: []int{}}),
		"map":                checkRoundTrips(t, withMap{}),
		"interface":          checkRoundTrips(t, withAny{V: 1}),
		"MarshalJSON":        checkRoundTrips(t, custom(1)),
		"array of custom":    checkRoundTrips(t, [1]custom{2}),
		"json.Number":        checkRoundTrips(t, struct{ N json.Number }{""}),
	} {
		if ok {
			t.Errorf("%s: roundTrips = true, want false", name)
		}
	}
}

// Random flat values, with random strings of every kind of byte, round-trip
// whenever roundTrips says they do, and roundTrips says so for all but the
// invalid UTF-8 ones.
func TestRoundTripsRandomValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	str := func() string {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if rng.IntN(2) == 0 {
			return string([]rune(string(b))) // valid UTF-8
		}
		return string(b)
	}
	float := func() float64 {
		switch rng.IntN(4) {
		case 0:
			return math.Float64frombits(rng.Uint64())
		case 1:
			return float64(rng.Int64())
		}
		return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
	}
	for range 20000 {
		v := flatOrder{
			Status: status(str()), Item: int(rng.Int64()), Done: rng.IntN(2) == 0,
			Where: flatPoint{X: float(), Y: float(), Label: str()},
			Tags:  [2]string{str(), str()}, Small: uint8(rng.Uint32()), Half: float32(float()),
		}
		if math.IsNaN(v.Where.X) || math.IsInf(v.Where.X, 0) || math.IsNaN(v.Where.Y) || math.IsInf(v.Where.Y, 0) ||
			math.IsNaN(float64(v.Half)) || math.IsInf(float64(v.Half), 0) {
			continue // encoding/json refuses them
		}
		valid := validStrings(reflect.ValueOf(v))
		if ok := checkRoundTrips(t, v); ok != valid {
			t.Fatalf("roundTrips(%#v) = %v, want %v", v, ok, valid)
		}
	}
}

func FuzzRoundTrips(f *testing.F) {
	f.Add("paid", int64(7), uint16(1), 0.5, float32(2), true, "a", "")
	f.Add("\xff", int64(-1), uint16(0), -0.0, float32(-1e-40), false, "\u2028<", "\x00")
	f.Fuzz(func(t *testing.T, s string, i int64, u uint16, x float64, y float32, b bool, a0, a1 string) {
		v := struct {
			S status `json:"s"`
			I int64
			U uint16 `json:"u,omitempty"`
			X float64
			Y float32
			B bool
			A [2]string `json:"a"`
		}{status(s), i, u, x, y, b, [2]string{a0, a1}}
		if math.IsNaN(x) || math.IsInf(x, 0) || math.IsNaN(float64(y)) || math.IsInf(float64(y), 0) {
			return
		}
		checkRoundTrips(t, v)
	})
}

type (
	digest       [4]byte
	withZeroSize struct {
		E struct{}
		Z [0]int    `json:",omitempty"`
		P flatPoint `json:"p,omitempty"`
	}
	withOmittedFloats struct {
		F float64 `json:"f,omitempty"`
		G float32 `json:"g,omitempty"`
	}
	withSameNames struct {
		A int
		B int `json:"A"`
	}
	// textIn reads itself from a JSON string only: a number in its place is an
	// error.
	textIn int
	// shout has AppendText and no MarshalText: encoding/json ignores it, but
	// built with GOEXPERIMENT=jsonv2 it writes a shout with it.
	shout string
)

func (p *textIn) UnmarshalText(b []byte) error { return nil }

func (s shout) AppendText(b []byte) ([]byte, error) {
	return append(b, strings.ToUpper(string(s))...), nil
}

// Values at the edges of what encoding/json writes and reads: whatever
// roundTrips says of them must hold, and it must take the flat ones.
func TestRoundTripsEdges(t *testing.T) {
	negZero := math.Copysign(0, -1)
	for name, ok := range map[string]bool{
		"float64 edges": checkRoundTrips(t, [...]float64{negZero, 1e21, math.Nextafter(1e21, 0), 1e-6,
			math.Nextafter(1e-6, 0), math.MaxFloat64, -math.SmallestNonzeroFloat64,
			math.Float64frombits(0x000fffffffffffff), 0.1, 1 << 53, 1<<53 + 2}),
		"float32 edges": checkRoundTrips(t, [...]float32{float32(negZero), 1e21, math.Nextafter32(1e21, 0), 1e-6,
			math.Nextafter32(1e-6, 0), math.MaxFloat32, -math.SmallestNonzeroFloat32,
			math.Float32frombits(0x007fffff), 0.1, 16777216, 16777218, 3.4e38}),
		"integer limits": checkRoundTrips(t, struct {
			A int8
			B int16
			C int32
			D [2]int64
			E uint64
			F uint
		}{math.MinInt8, math.MinInt16, math.MinInt32, [2]int64{math.MinInt64, math.MaxInt64}, math.MaxUint64, math.MaxUint}),
		"durations":            checkRoundTrips(t, [...]time.Duration{-1, math.MaxInt64, math.MinInt64}),
		"byte array":           checkRoundTrips(t, [4]uint8{0, 1, 254, 255}),
		"named byte array":     checkRoundTrips(t, struct{ D digest }{digest{0xde, 0xad, 0xbe, 0xef}}),
		"zero-size fields":     checkRoundTrips(t, withZeroSize{}),
		"nested arrays":        checkRoundTrips(t, [2][2][1]flatPoint{{{{X: 1}}, {{Label: "\u2029"}}}}),
		"escaped strings":      checkRoundTrips(t, "\u2028\u2029<>&\x00\x1f\x7f\"\\/\ufffd\U0010ffff"),
		"replacement in array": checkRoundTrips(t, [2]status{"\ufffd", "\xef\xbf\xbd"}),
	} {
		if !ok {
			t.Errorf("%s: roundTrips = false, want true", name)
		}
	}
	for name, ok := range map[string]bool{
		"surrogate half":        checkRoundTrips(t, "\xed\xa0\x80"),
		"beyond U+10FFFF":       checkRoundTrips(t, [1]string{"\xf4\x90\x80\x80"}),
		"overlong NUL":          checkRoundTrips(t, struct{ S string }{"\xc0\x80"}),
		"names the same":        checkRoundTrips(t, withSameNames{A: 1, B: 2}),
		"pointer UnmarshalText": checkRoundTrips(t, [2]textIn{1, 2}),
	} {
		if ok {
			t.Errorf("%s: roundTrips = true, want false", name)
		}
	}
	// Whatever roundTrips says of these, it must be right: -0 is empty, and
	// built with GOEXPERIMENT=jsonv2, encoding/json calls AppendText.
	checkRoundTrips(t, withOmittedFloats{F: negZero})
	checkRoundTrips(t, withOmittedFloats{G: float32(negZero)})
	checkRoundTrips(t, [1]struct{ S shout }{{"hi"}})
}

// Random float32 values, of every bit pattern, round-trip.
func TestRoundTripsFloat32Bits(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 400 {
		var v [256]float32
		for i := range v {
			for {
				v[i] = math.Float32frombits(rng.Uint32())
				if !math.IsNaN(float64(v[i])) && !math.IsInf(float64(v[i]), 0) {
					break
				}
			}
		}
		if !checkRoundTrips(t, v) {
			t.Fatal("roundTrips([256]float32) = false")
		}
	}
}

// encoding/json writes values nested deeper than it reads (10000 arrays and
// objects): such a type must not be taken as round-tripping.
func TestRoundTripsDeepNesting(t *testing.T) {
	typ := reflect.TypeFor[bool]()
	for range 10001 {
		typ = reflect.ArrayOf(1, typ)
	}
	v := reflect.New(typ)
	b, err := json.Marshal(v.Elem().Interface())
	if err != nil {
		return // not written, so never decoded (GOEXPERIMENT=jsonv2)
	}
	if err := json.Unmarshal(b, v.Interface()); err != nil && flatOf(typ).ok {
		t.Fatalf("flatOf(10001 nested arrays).ok = true, but it does not decode: %v", err)
	}
}

// Goroutines asking about a type at once, for the first time, get the same
// verdicts (run with -race).
func TestRoundTripsConcurrentFirstUse(t *testing.T) {
	type good struct {
		A [2]string
		B float32
	}
	type bad struct {
		A int
		B int `json:"a"`
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if !roundTrips(good{A: [2]string{"x", "y"}}) || roundTrips(good{A: [2]string{"\xff"}}) || roundTrips(bad{}) {
				t.Error("verdicts differ from one goroutine to another")
			}
		})
	}
	wg.Wait()
}

// A step's first run returns what its replay returns, bit for bit.
func TestRoundTripsReplaySeesFirstRunsValue(t *testing.T) {
	j := journal.NewMemory()
	step := NewStep("s", func(context.Context) (withOmittedFloats, error) {
		return withOmittedFloats{F: math.Copysign(0, -1)}, nil
	})
	var got [2]withOmittedFloats
	for run := range got {
		v, err := step.Run(WithJournal(context.Background(), j, "e"))
		if err != nil {
			t.Fatal(err)
		}
		got[run] = v
	}
	if !identical(reflect.ValueOf(got[0]), reflect.ValueOf(got[1])) {
		t.Fatalf("the first run returns %#v, its replay %#v", got[0], got[1])
	}
}
