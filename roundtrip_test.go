package durable

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// decoded is what a checkpoint decodes when its own write was stored.
func decoded[T any](t testing.TB, v T) T {
	t.Helper()
	b, err := appendValue(nil, v)
	if err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	var got T
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return got
}

// checkRoundTrips fails when roundTrips says v comes back unchanged and it
// does not, and reports what roundTrips said.
func checkRoundTrips[T any](t testing.TB, v T) bool {
	t.Helper()
	ok := roundTrips(v)
	if got := decoded(t, v); ok && !reflect.DeepEqual(got, v) {
		t.Fatalf("roundTrips(%#v) = true, but it decodes as %#v", v, got)
	}
	return ok
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
