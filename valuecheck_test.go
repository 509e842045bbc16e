package durable

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// Types for the table tests.

type vcMoney struct{ cents int }

type vcLine struct {
	SKU      string
	Qty      int
	Callback func() `json:"-"`
	price    vcMoney
}

type vcInvoice struct {
	ID    string
	Lines []vcLine
}

type vcOrder struct {
	Lines []struct {
		Name     string
		Callback func()
	}
}

type vcWithErr struct {
	Name string
	Err  error
}

type vcInner struct{ A, B int }

type vcOuter struct {
	vcInner // unexported type, exported fields: promoted
	C       int
}

type vcHidden struct {
	x int
	Y int
}

type vcOuterHidden struct {
	vcHidden
}

type vcList struct {
	Next *vcList
	V    int
	v    int
}

type vcTree struct {
	Kids map[string]*vcTree
	Name string
}

// vcValMoney marshals with value receivers: trusted everywhere.
type vcValMoney struct{ cents int64 }

func (m vcValMoney) MarshalJSON() ([]byte, error) { return json.Marshal(m.cents) }
func (m *vcValMoney) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &m.cents)
}

// vcPtrMoney marshals with a pointer receiver: encoding/json skips it where
// the value is not addressable.
type vcPtrMoney struct{ cents int64 }

func (m *vcPtrMoney) MarshalJSON() ([]byte, error) { return json.Marshal(m.cents) }
func (m *vcPtrMoney) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &m.cents)
}

type vcLevel int

func (l *vcLevel) UnmarshalText(b []byte) error {
	_, err := fmt.Sscan(string(b), (*int)(l))
	return err
}

type vcKey2 struct{ A, B int }

type vcTextKey int

func (k vcTextKey) MarshalText() ([]byte, error) { return []byte(fmt.Sprintf("k%d", int(k))), nil }

type vcConflictA struct{ X int }
type vcConflictB struct{ X int }
type vcConflict struct {
	vcConflictA
	vcConflictB
	Y int
}

type vcShadow struct {
	vcConflictA
	X string
}

type vcTagged struct {
	vcConflictA
	Z int `json:"X"`
}

type vcunexp struct{ A int }

type vcEmbedPtr struct {
	*vcunexp
	B int
}

type VcExp struct {
	A int `json:",omitempty"`
}

type vcEmbedExpPtr struct {
	*VcExp
	B int
}

type vcEmptyZero struct {
	A int
	B int
}

func (z vcEmptyZero) IsZero() bool { return z.A == 0 }

type vcOmitZero struct {
	Z vcEmptyZero `json:",omitzero"`
	T time.Time   `json:",omitzero"`
}

type vcMyInt int

type vcEmbedInt struct {
	vcMyInt
	A int
}

type vcPtrField struct {
	P  *vcPtrMoney
	S  []vcPtrMoney
	PP **int
	PS *[]int
	PA *any
}

type vcStructKey struct {
	M map[vcKey2]int
}

type vcNumbers struct{ N json.Number }

type vcOmitEmpty struct {
	F    float64        `json:",omitempty"`
	Tags []string       `json:",omitempty"`
	M    map[string]int `json:",omitempty"`
}

type vcRecA struct {
	B *vcRecB
	F func()
}

type vcRecB struct{ A *vcRecA }

type vcStamp struct{ time.Time }

type VcZeroHolder struct {
	Z vcEmptyZero `json:",omitzero"`
}

type vcEmbedZeroPtr struct {
	*VcZeroHolder
}

type vcBytes []byte

type vcMarshaledByte uint8

func (b vcMarshaledByte) MarshalJSON() ([]byte, error) { return fmt.Appendf(nil, `"%d"`, b), nil }
func (b *vcMarshaledByte) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	_, err := fmt.Sscan(s, (*uint8)(b))
	return err
}

// vcTestCase checks one value against the rules and against what
// encoding/json really does.
type vcTestCase struct {
	name      string
	run       func(t *testing.T) (never, check error)
	wantNever string // substring of never's error; "" for nil
	wantCheck string // substring of check's error; "" for nil
}

func vcCase[T any](name string, v T, wantNever, wantCheck string) vcTestCase {
	return vcTestCase{name: name, wantNever: wantNever, wantCheck: wantCheck, run: func(t *testing.T) (never, check error) {
		c := jsonCheckOf(reflect.TypeFor[T]())
		never = c.never()
		check = checkJSONValue(v)
		if never != nil {
			return never, check
		}
		same, why := vcRoundTrips(v)
		if (check == nil) != same {
			t.Errorf("check = %v, but round trip same = %v (%s)", check, same, why)
		}
		return never, check
	}}
}

func TestValueCheckRules(t *testing.T) {
	one := 1
	onePtr := &one
	var nilInts []int
	var nilAny any
	var nilIntPtr *int
	cases := []vcTestCase{
		vcCase("int", 42, "", ""),
		vcCase("string", "héllo", "", ""),
		vcCase("invalid UTF-8 string", "a\xffb", "", "the value itself is not valid UTF-8"),
		vcCase("money zero", vcMoney{}, "", ""),
		vcCase("money non-zero", vcMoney{cents: 5}, "", "durable.vcMoney.cents is non-zero"),
		vcCase("time.Time", time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), "", ""),
		vcCase("big.Int", big.NewInt(7), "", ""),
		vcCase("stamp embeds time.Time", vcStamp{time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)}, "", ""),
		vcCase("error field", vcWithErr{Name: "x"}, "durable.vcWithErr.Err has the interface type error", ""),
		vcCase("error itself", error(nil), "the value itself has the interface type error", ""),
		vcCase("func", func() {}, "which encoding/json cannot encode", ""),
		vcCase("chan field", struct{ C chan int }{}, ".C has type chan int", ""),
		vcCase("complex", []complex128{1}, "[] has type complex128", ""),
		vcCase("func in slice of structs", vcOrder{}, "durable.vcOrder.Lines[].Callback has type func()", ""),
		vcCase("unexported func nil", struct {
			A int
			f func()
		}{A: 1}, "", ""),
		vcCase("unexported func set", struct {
			A int
			f func()
		}{A: 1, f: func() {}}, "", ".f is non-zero"),
		vcCase("tagged - zero", vcLine{SKU: "a"}, "", ""),
		vcCase("tagged - set", vcLine{SKU: "a", Callback: func() {}}, "", `.Callback is non-zero, and encoding/json drops it: a field tagged json:"-"`),
		vcCase("invoice line price", vcInvoice{Lines: []vcLine{{}, {}, {price: vcMoney{3}}}}, "", "durable.vcInvoice.Lines[2].price.cents is non-zero"),
		vcCase("embedded unexported struct, exported fields", vcOuter{vcInner{1, 2}, 3}, "", ""),
		vcCase("embedded unexported struct, unexported field", vcOuterHidden{vcHidden{x: 1, Y: 2}}, "", "durable.vcOuterHidden.vcHidden.x is non-zero"),
		vcCase("invalid UTF-8 in nested map key", map[string]map[string]int{"a": {"ok": 1, "b\xff": 2}}, "", `["a"]["b\xff"] (key) is not valid UTF-8`),
		vcCase("invalid UTF-8 in map value", map[int]string{3: "\xc3"}, "", "[3] is not valid UTF-8"),
		vcCase("recursive list", &vcList{V: 1, Next: &vcList{V: 2}}, "", ""),
		vcCase("recursive list, lost field", &vcList{V: 1, Next: &vcList{v: 2}}, "", "durable.vcList.Next.v is non-zero"),
		vcCase("recursive tree", vcTree{Name: "r", Kids: map[string]*vcTree{"a": {Name: "a"}}}, "", ""),
		vcCase("recursive, never", vcRecB{}, "durable.vcRecB.A.F has type func()", ""),
		vcCase("any holding struct with unexported field", any(vcMoney{cents: 1}), "", ".(durable.vcMoney).cents is non-zero"),
		vcCase("any holding a struct", any(vcInner{1, 2}), "", "reads back into an interface as a map[string]interface {}"),
		vcCase("any holding an int", any(3), "", "as a float64"),
		vcCase("any holding natives", any(map[string]any{"a": []any{1.5, "x", true, nil, map[string]any{}}}), "", ""),
		vcCase("any holding nil slice", any(nilInts), "", "holds a nil []int"),
		vcCase("any nil", nilAny, "", ""),
		vcCase("field of any holding func (json.Marshal fails)", struct{ A any }{A: func() {}}, "", "cannot encode"),
		vcCase("pointer receiver marshaler, top level", vcPtrMoney{3}, "MarshalJSON method has a pointer receiver", ""),
		vcCase("pointer receiver marshaler, through pointer and slice", struct {
			P *vcPtrMoney
			S []vcPtrMoney
		}{&vcPtrMoney{1}, []vcPtrMoney{{2}}}, "", ""),
		vcCase("pointer receiver marshaler, map value", map[string]vcPtrMoney{}, `durable.vcPtrMoney`, ""),
		vcCase("value receiver marshaler, map value", map[string]vcValMoney{"a": {4}}, "", ""),
		vcCase("UnmarshalText without MarshalText", vcLevel(3), "has UnmarshalText but not MarshalText", ""),
		vcCase("struct map key", vcStructKey{}, "keys of type durable.vcKey2, which encoding/json cannot write", ""),
		vcCase("MarshalText int key without UnmarshalText", map[vcTextKey]int{}, "reads back as numbers", ""),
		vcCase("pointer key", map[*big.Int]int{}, "cannot read back", ""),
		vcCase("dominance: conflict zero", vcConflict{Y: 1}, "", ""),
		vcCase("dominance: conflict set", vcConflict{vcConflictA: vcConflictA{X: 1}}, "", "durable.vcConflict.vcConflictA.X is non-zero, and encoding/json drops it: another field has the same JSON name"),
		vcCase("dominance: shadowed", vcShadow{vcConflictA{1}, "x"}, "", "vcShadow.vcConflictA.X is non-zero"),
		vcCase("dominance: tagged wins", vcTagged{vcConflictA{1}, 2}, "", "vcTagged.vcConflictA.X is non-zero"),
		vcCase("embedded pointer to unexported struct, nil", vcEmbedPtr{B: 1}, "", ""),
		vcCase("embedded pointer to unexported struct, set", vcEmbedPtr{vcunexp: &vcunexp{A: 1}}, "", "non-nil embedded pointer to the unexported struct type"),
		vcCase("embedded pointer, fields written", vcEmbedExpPtr{VcExp: &VcExp{A: 1}}, "", ""),
		vcCase("embedded pointer, no field written", vcEmbedExpPtr{VcExp: &VcExp{}}, "", "none of whose fields is written"),
		vcCase("embedded non-struct unexported type", vcEmbedInt{vcMyInt: 3}, "", "an embedded field of an unexported non-struct type"),
		vcCase("omitzero with a lying IsZero", vcOmitZero{Z: vcEmptyZero{B: 1}}, "", "IsZero method says it is"),
		vcCase("omitzero, honest", vcOmitZero{Z: vcEmptyZero{A: 1, B: 1}, T: time.Unix(5, 0).UTC()}, "", ""),
		vcCase("pointer to nil pointer", vcPtrField{PP: &nilIntPtr}, "", "non-nil pointer to a nil *int"),
		vcCase("pointer to nil slice", vcPtrField{PS: &nilInts}, "", "non-nil pointer to a nil []int"),
		vcCase("pointer to nil interface", vcPtrField{PA: &nilAny}, "", "non-nil pointer to a nil interface {}"),
		vcCase("pointers fine", vcPtrField{PP: &onePtr, PS: &[]int{}, PA: func() *any { var a any = 1.5; return &a }()}, "", ""),
		vcCase("json.Number empty", vcNumbers{}, "", "empty json.Number"),
		vcCase("json.Number set", vcNumbers{N: "1.50"}, "", ""),
		vcCase("omitempty equivalences", vcOmitEmpty{F: math.Copysign(0, -1), Tags: []string{}, M: map[string]int{}}, "", ""),
		vcCase("byte slice", []byte("\xff\x00"), "", ""),
		vcCase("array of strings", [2]string{"a", "\xff"}, "", "[1] is not valid UTF-8"),
		vcCase("nil type", (*vcInvoice)(nil), "", ""),

		// Corners of encoding/json.
		vcCase("unnamed struct embedding time.Time, as a field", struct{ S struct{ time.Time } }{}, "whose promoted marshaling methods", ""),
		vcCase("unnamed struct embedding time.Time, through a pointer", struct{ S *struct{ time.Time } }{&struct{ time.Time }{time.Unix(1, 0).UTC()}}, "", ""),
		vcCase("pointer receiver marshaler, field of v", struct{ M vcPtrMoney }{}, "struct { M durable.vcPtrMoney }.M has type durable.vcPtrMoney, whose MarshalJSON method has a pointer receiver", ""),
		vcCase("pointer receiver marshaler, field of *v", &struct{ M vcPtrMoney }{vcPtrMoney{5}}, "", ""),
		vcCase("pointer receiver marshaler, in a slice of structs", []struct{ M vcPtrMoney }{{vcPtrMoney{5}}}, "", ""),
		vcCase("pointer receiver marshaler, array held by value", [1]vcPtrMoney{}, "pointer receiver", ""),
		vcCase("pointer receiver marshaler, array through a pointer", &[1]vcPtrMoney{{7}}, "", ""),
		vcCase("map of structs with pointer receiver marshaler", map[string]struct{ M vcPtrMoney }{}, "pointer receiver", ""),
		vcCase("invalid UTF-8 key in a dynamic map", any(map[string]any{"\xff": 1.0}), "", `["\xff"] (key) is not valid UTF-8`),
		vcCase("nil []any inside dynamic values", any(map[string]any{"a": []any{[]any(nil)}}), "", `["a"][0] holds a nil []interface {}`),
		vcCase("text-marshaled string keys", map[vcpColor]int{"red": 1}, "", ""),
		vcCase(",string options", struct {
			N int64   `json:",string"`
			S string  `json:",string"`
			P *int    `json:",string"`
			F float64 `json:",string"`
		}{N: -5, S: "héllo", F: math.Copysign(0, -1)}, "", ""),
		vcCase(",string with invalid UTF-8", struct {
			S string `json:",string"`
		}{S: "\xff"}, "", "not valid UTF-8"),
		vcCase("-0 without omitempty", math.Copysign(0, -1), "", ""),
		vcCase("uintptr", struct{ U uintptr }{7}, "", ""),
		vcCase("names differing in case", struct {
			Name string
			NAME string
		}{"a", "b"}, "", ""),
		vcCase("tagged embedded unexported struct", struct {
			vcInner `json:"in"`
		}{vcInner{1, 2}}, "", ""),
		vcCase("embedded non-empty interface, exported", struct{ fmt.Stringer }{}, "has the interface type fmt.Stringer", ""),
		vcCase("embedded error, nil", struct {
			error
			A int
		}{A: 1}, "", ""),
		vcCase("embedded error, set", struct {
			error
			A int
		}{error: errors.New("x")}, "", ".error is non-zero, and encoding/json drops it: an embedded field of an unexported non-struct type"),
		vcCase("*time.Time under omitzero, zero time", struct {
			T *time.Time `json:",omitzero"`
		}{T: &time.Time{}}, "", ".T is a non-nil pointer whose IsZero method says it is zero"),
		vcCase("*time.Time under omitzero, set", struct {
			T *time.Time `json:",omitzero"`
		}{T: func() *time.Time { t := time.Unix(9, 0).UTC(); return &t }()}, "", ""),
		vcCase("lying IsZero deep in a map", map[string][]vcOmitZero{"k": {{}, {Z: vcEmptyZero{B: 2}}}}, "", `["k"][1].Z is not the zero`),
		vcCase("embedded pointer whose only field IsZero omits", vcEmbedZeroPtr{VcZeroHolder: &VcZeroHolder{Z: vcEmptyZero{B: 1}}}, "", "none of whose fields is written"),
		vcCase("embedded pointer whose only field IsZero keeps", vcEmbedZeroPtr{VcZeroHolder: &VcZeroHolder{Z: vcEmptyZero{A: 1}}}, "", ""),
		vcCase("pointer to pointer, top level", func() **int { var p *int; return &p }(), "", "non-nil pointer to a nil *int"),
		vcCase("named byte slice", vcBytes("\x00\xff"), "", ""),
		vcCase("bytes with a marshaler per byte", []vcMarshaledByte{1, 2}, "", ""),
		vcCase("json.RawMessage", struct{ R json.RawMessage }{json.RawMessage(`{"a":[1,2]}`)}, "", ""),
		vcCase("big.Int by value in a struct", struct{ B big.Int }{}, "pointer receiver", ""),
		vcCase("uint8 array", [3]uint8{1, 2, 3}, "", ""),
		vcCase("empty struct, deep", struct{ A [2]struct{} }{}, "", ""),
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			never, check := tc.run(t)
			vcWant(t, "never", never, tc.wantNever)
			if tc.wantNever == "" {
				vcWant(t, "check", check, tc.wantCheck)
			} else if check == nil {
				t.Errorf("check = nil for a type never accepts")
			}
			for _, err := range []error{never, check} {
				if err != nil && !strings.HasPrefix(err.Error(), "durable: ") {
					t.Errorf("error %q lacks the durable: prefix", err)
				}
				if err != nil && !strings.Contains(err.Error(), "durable.WithCodec") && !strings.Contains(err.Error(), "or use") {
					t.Errorf("error %q says no fix", err)
				}
			}
		})
	}
}

func vcWant(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s = %v, want nil", what, err)
	case want != "" && err == nil:
		t.Errorf("%s = nil, want an error containing %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s = %v\nwant it to contain %q", what, err, want)
	}
}

func TestValueCheckMessages(t *testing.T) {
	err := checkJSONValue(vcInvoice{ID: "a", Lines: []vcLine{{}, {}, {price: vcMoney{3}}}})
	want := "durable: a value of type durable.vcInvoice would change through encoding/json: " +
		"durable.vcInvoice.Lines[2].price.cents is non-zero, and encoding/json drops it: an unexported field; " +
		"implement MarshalJSON and UnmarshalJSON on durable.vcLine, or use durable.WithCodec with another codec"
	if err == nil || err.Error() != want {
		t.Errorf("check:\n got %v\nwant %s", err, want)
	}
	err = jsonCheckOf(reflect.TypeFor[vcOrder]()).never()
	want = "durable: durable.vcOrder cannot round-trip through encoding/json: " +
		"durable.vcOrder.Lines[].Callback has type func(), which encoding/json cannot encode; " +
		"implement MarshalJSON and UnmarshalJSON on durable.vcOrder, or use durable.WithCodec with another codec"
	if err == nil || err.Error() != want {
		t.Errorf("never:\n got %v\nwant %s", err, want)
	}
	err = jsonCheckOf(reflect.TypeFor[[]func()]()).never()
	want = "durable: []func() cannot round-trip through encoding/json: []func()[] has type func(), which encoding/json cannot encode; " +
		"use a named type that implements MarshalJSON and UnmarshalJSON, or use durable.WithCodec with another codec"
	if err == nil || err.Error() != want {
		t.Errorf("never:\n got %v\nwant %s", err, want)
	}
	err = checkJSONValue(struct{ Name string }{"\xff"})
	if err == nil || !strings.Contains(err.Error(), "use []byte for binary data") {
		t.Errorf("UTF-8: got %v", err)
	}
}

// TestValueCheckDepth checks that a value nested deeper than encoding/json
// decodes is refused, and one just within its limit is not.
func TestValueCheckDepth(t *testing.T) {
	list := func(n int) *vcList { // n objects deep
		var head *vcList
		for range n {
			head = &vcList{Next: head}
		}
		return head
	}
	if err := checkJSONValue(list(vcMaxDepth)); err != nil {
		t.Errorf("%d levels: %v", vcMaxDepth, err)
	}
	if _, err := vcRoundTrip(list(vcMaxDepth)); err != nil {
		t.Errorf("%d levels do not decode: %v", vcMaxDepth, err)
	}
	deep := list(vcMaxDepth + 1)
	if err := checkJSONValue(deep); err == nil || !strings.Contains(err.Error(), "nested deeper") {
		t.Errorf("%d levels: %v", vcMaxDepth+1, err)
	}
	if _, err := vcRoundTrip(deep); err == nil {
		t.Errorf("%d levels decode", vcMaxDepth+1)
	}
	var a any = 1.0
	for range vcMaxDepth + 1 {
		a = []any{a}
	}
	if err := checkJSONValue(a); err == nil {
		t.Errorf("%d nested []any: no error", vcMaxDepth+1)
	}
}

// TestValueCheckRecursiveTypesTerminate analyses mutually recursive types
// from each end, concurrently.
func TestValueCheckRecursiveTypesTerminate(t *testing.T) {
	types := []reflect.Type{
		reflect.TypeFor[vcRecA](), reflect.TypeFor[vcRecB](), reflect.TypeFor[*vcRecB](),
		reflect.TypeFor[vcTree](), reflect.TypeFor[map[string]vcTree](), reflect.TypeFor[vcList](),
	}
	var wg sync.WaitGroup
	for _, typ := range types {
		for range 4 {
			wg.Go(func() {
				c := jsonCheckOf(typ)
				wantNever := strings.HasPrefix(typ.String(), "durable.vcRec") || strings.HasPrefix(typ.String(), "*durable.vcRec")
				if (c.never() != nil) != wantNever {
					t.Errorf("%s: never() = %v", typ, c.never())
				}
			})
		}
	}
	wg.Wait()
	if jsonCheckOf(reflect.TypeFor[vcRecA]()) != jsonCheckOf(reflect.TypeFor[vcRecA]()) {
		t.Error("verdict not cached")
	}
}

// vcPlainValue needs a walk only for its strings.
type vcPlainValue struct {
	ID    int64
	Name  string
	Email string
	Count int
	Score float64
	OK    bool
	Tags  [2]string
}

type vcIntsValue struct {
	A, B, C int64
	D       float64
	E       bool
	F       [4]uint16
}

type vcUnexportedValue struct {
	ID    int64
	Name  string
	cache int
	note  string
}

func TestValueCheckDoesNotAllocate(t *testing.T) {
	plain := vcPlainValue{ID: 1, Name: "Ada Lovelace", Email: "ada@example.com", Count: 3, Score: 1.5, Tags: [2]string{"x", "y"}}
	ints := vcIntsValue{A: 1, B: 2, C: 3}
	unexp := vcUnexportedValue{ID: 1, Name: "n"}
	for name, f := range map[string]func(){
		"ints":       func() { _ = checkJSONValue(ints) },
		"strings":    func() { _ = checkJSONValue(plain) },
		"unexported": func() { _ = checkJSONValue(unexp) },
		"pointer":    func() { _ = checkJSONValue(&plain) },
		"string":     func() { _ = checkJSONValue("héllo") },
	} {
		f() // analyse the type first
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per check, want 0", name, n)
		}
	}
	if jsonCheckOf(reflect.TypeFor[vcIntsValue]()).walk {
		t.Error("a struct of numbers needs a run-time walk")
	}
}

func BenchmarkCheckJSONValue(b *testing.B) {
	plain := vcPlainValue{ID: 1, Name: "Ada Lovelace", Email: "ada@example.com", Count: 3, Score: 1.5, Tags: [2]string{"x", "y"}}
	bench := func(name string, f func() error) {
		b.Run(name, func(b *testing.B) {
			if err := f(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = f()
			}
		})
	}
	bench("ints", func() error { return checkJSONValue(vcIntsValue{A: 1}) })
	bench("plain", func() error { return checkJSONValue(plain) })
	bench("unexported", func() error { return checkJSONValue(vcUnexportedValue{ID: 1, Name: "n"}) })
	inv := vcInvoice{ID: "inv-1", Lines: make([]vcLine, 10)}
	for i := range inv.Lines {
		inv.Lines[i] = vcLine{SKU: fmt.Sprint("sku-", i), Qty: i}
	}
	bench("invoice10", func() error { return checkJSONValue(inv) })
	bench("lostField", func() error {
		if checkJSONValue(vcMoney{cents: 1}) == nil {
			return errors.New("accepted")
		}
		return nil
	})
}

// Round trips, compared as a careful caller would.

// vcRoundTrip is what the engine gives back for v: json.Marshal(v) decoded
// into a new T.
func vcRoundTrip[T any](v T) (T, error) {
	var got T
	b, err := json.Marshal(v)
	if err != nil {
		return got, err
	}
	err = json.Unmarshal(b, &got)
	return got, err
}

// vcRoundTrips reports whether v comes back from encoding/json the same, in
// vcSame's sense, and if not why.
func vcRoundTrips[T any](v T) (bool, string) {
	got, err := vcRoundTrip(v)
	if err != nil {
		return false, err.Error()
	}
	if !vcSame(reflect.ValueOf(&got).Elem(), reflect.ValueOf(&v).Elem(), false) {
		return false, fmt.Sprintf("got %#v", got)
	}
	return true, ""
}

// vcSame is reflect.DeepEqual with floats compared bit for bit, except for
// what the check accepts: under omitempty (omitEmpty), -0 for +0 and nil
// for an empty slice or map. Values of types with their own marshaling
// methods are the same when they encode the same.
func vcSame(a, b reflect.Value, omitEmpty bool) bool {
	if a.Type() != b.Type() {
		return false
	}
	t := a.Type()
	if t.Kind() != reflect.Interface && t.Kind() != reflect.Pointer && a.CanInterface() && b.CanInterface() {
		pt := reflect.PointerTo(t)
		if vcEncodes(t) || vcEncodes(pt) || pt.Implements(vcUnmarshaler) || pt.Implements(vcTextUnmarsh) {
			ja, erra := json.Marshal(vcAddr(a).Interface())
			jb, errb := json.Marshal(vcAddr(b).Interface())
			return erra == nil && errb == nil && bytes.Equal(ja, jb)
		}
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		if omitEmpty && a.Float() == 0 && b.Float() == 0 {
			return true
		}
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Slice, reflect.Map:
		if a.IsNil() != b.IsNil() {
			return omitEmpty && a.Len() == 0 && b.Len() == 0
		}
		if a.Len() != b.Len() {
			return false
		}
		if a.Kind() == reflect.Map {
			it := a.MapRange()
			for it.Next() {
				bv := b.MapIndex(it.Key())
				if !bv.IsValid() || !vcSame(it.Value(), bv, false) {
					return false
				}
			}
			return true
		}
		fallthrough
	case reflect.Array:
		for i := range a.Len() {
			if !vcSame(a.Index(i), b.Index(i), false) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return vcSame(a.Elem(), b.Elem(), false)
	case reflect.Struct:
		for i := range a.NumField() {
			_, opts, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			if !vcSame(a.Field(i), b.Field(i), vcHasOption(opts, "omitempty")) {
				return false
			}
		}
		return true
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return a.IsNil() && b.IsNil() || a.Pointer() == b.Pointer()
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Complex64, reflect.Complex128:
		return a.Complex() == b.Complex()
	}
	return false
}

// vcAddr is v's address when it has one, so that methods with pointer
// receivers are found, else v.
func vcAddr(v reflect.Value) reflect.Value {
	if v.CanAddr() {
		return v.Addr()
	}
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	return p
}

// The property test: random values of many types.

type vcpCents struct{ n int64 } // trusted: its unexported field is its own business

func (c vcpCents) MarshalJSON() ([]byte, error) { return json.Marshal(c.n) }
func (c *vcpCents) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &c.n)
}

type vcpColor string

func (c vcpColor) MarshalText() ([]byte, error) { return []byte(strings.ToUpper(string(c))), nil }
func (c *vcpColor) UnmarshalText(b []byte) error {
	*c = vcpColor(strings.ToLower(string(b)))
	return nil
}

type vcpLeaf struct {
	N    int
	S    string
	F    float64
	F32  float32
	B    bool
	U    uint8
	I8   int8
	Blob []byte
	Opt  string  `json:",omitempty"`
	OptF float64 `json:"optf,omitempty"`
	Q    int64   `json:",string"`
	hid  int
	Skip string `json:"-"`
}

type vcpInner struct {
	A int
	b string
}

type vcpPair struct {
	K string
	V *int
}

type vcpNode struct {
	vcpInner
	Leaf   vcpLeaf
	Leafs  []vcpLeaf
	PLeaf  *vcpLeaf
	M      map[string]vcpLeaf
	MI     map[int]*int
	MC     map[vcpColor]int
	Any    any
	Anys   []any
	Cents  vcpCents
	CentsS []vcpCents
	T      time.Time
	Next   *vcpNode
	Arr    [2]vcpPair
	PP     **int
	PS     *[]int
	Num    json.Number
	Tags   []string       `json:",omitempty"`
	Counts map[string]int `json:",omitempty"`
	Color  vcpColor
	skip   *vcpNode
}

var vcpTypes = []reflect.Type{
	reflect.TypeFor[vcpLeaf](),
	reflect.TypeFor[vcpNode](),
	reflect.TypeFor[*vcpNode](),
	reflect.TypeFor[[]vcpNode](),
	reflect.TypeFor[map[string]*vcpNode](),
	reflect.TypeFor[[3]vcpPair](),
	reflect.TypeFor[any](),
	reflect.TypeFor[[]any](),
	// Corners: names that clash, embedded pointers, IsZero methods.
	reflect.TypeFor[vcConflict](),
	reflect.TypeFor[vcShadow](),
	reflect.TypeFor[vcTagged](),
	reflect.TypeFor[vcEmbedPtr](),
	reflect.TypeFor[vcEmbedExpPtr](),
	reflect.TypeFor[vcOmitZero](),
	reflect.TypeFor[[]vcEmbedZeroPtr](),
	reflect.TypeFor[vcPtrField](),
	reflect.TypeFor[vcOmitEmpty](),
	reflect.TypeFor[vcOuterHidden](),
	reflect.TypeFor[map[string]vcTree](),
	reflect.TypeFor[*vcList](),
	reflect.TypeFor[vcNumbers](),
	reflect.TypeFor[vcEmbedInt](),
}

// vcGen fills values at random, and notes whether it put a non-zero value
// in a field encoding/json skips (outside a trusted type).
type vcGen struct {
	r    *rand.Rand
	lost bool
}

var vcStrings = []string{"", "a", "héllo", "日本語", "<&>\"\\", "\u2028", "\x00", "tab\t", "\xff", "a\xc3", "\xed\xa0\x80"}

func (g *vcGen) str() string {
	s := vcStrings[g.r.IntN(len(vcStrings))]
	if g.r.IntN(4) == 0 && vcValidUTF8(s) { // keep invalid strings rarer
		return s + "x"
	}
	return s
}

func vcValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func (g *vcGen) float() float64 {
	switch g.r.IntN(6) {
	case 0:
		return 0
	case 1:
		return math.Copysign(0, -1)
	case 2:
		return math.MaxFloat64 / float64(1+g.r.IntN(3))
	case 3:
		return math.SmallestNonzeroFloat64 * float64(g.r.IntN(5))
	}
	for {
		if f := math.Float64frombits(g.r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	}
}

// fill sets v, settable, at random. skipped: v is a field encoding/json
// drops; trusted: v is inside a type with its own methods.
func (g *vcGen) fill(v reflect.Value, depth int, skipped, trusted bool) {
	if g.r.IntN(4) == 0 || depth > 4 {
		return // zero
	}
	defer func() {
		if skipped && !trusted && !v.IsZero() {
			g.lost = true
		}
	}()
	t := v.Type()
	switch t {
	case reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Unix(g.r.Int64N(1e10), g.r.Int64N(1e9)).UTC()))
		return
	case reflect.TypeFor[json.Number]():
		v.SetString([]string{"", "0", "-0", "1.50", "1e300", "-12"}[g.r.IntN(6)])
		return
	case reflect.TypeFor[vcpColor]():
		v.SetString([]string{"red", "green", "blue"}[g.r.IntN(3)])
		return
	}
	if t.Kind() == reflect.Interface {
		v.Set(g.dynamic(depth))
		return
	}
	pt := reflect.PointerTo(t)
	trusted = trusted || pt.Implements(vcMarshaler) || pt.Implements(vcUnmarshaler)
	switch t.Kind() {
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(g.r.Int64() >> (64 - t.Bits()))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(g.r.Uint64() >> (64 - t.Bits()))
	case reflect.Float32:
		f := float32(g.float())
		if math.IsInf(float64(f), 0) {
			f = math.MaxFloat32
		}
		v.SetFloat(float64(f))
	case reflect.Float64:
		v.SetFloat(g.float())
	case reflect.String:
		v.SetString(g.str())
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		g.fill(p.Elem(), depth+1, skipped, trusted)
		v.Set(p)
	case reflect.Slice:
		n := g.r.IntN(4)
		s := reflect.MakeSlice(t, n, n)
		if t.Elem().Kind() == reflect.Uint8 {
			for i := range n {
				s.Index(i).SetUint(g.r.Uint64N(256))
			}
		} else {
			for i := range n {
				g.fill(s.Index(i), depth+1, skipped, trusted)
			}
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			g.fill(v.Index(i), depth+1, skipped, trusted)
		}
	case reflect.Map:
		m := reflect.MakeMap(t)
		for range g.r.IntN(4) {
			k := reflect.New(t.Key()).Elem()
			g.fill(k, depth+1, skipped, trusted)
			if m.MapIndex(k).IsValid() {
				continue // what is lost in an overwritten entry is not in the value
			}
			e := reflect.New(t.Elem()).Elem()
			g.fill(e, depth+1, skipped, trusted)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		for i := range t.NumField() {
			sf := t.Field(i)
			fv := v.Field(i)
			if !sf.IsExported() {
				fv = reflect.NewAt(sf.Type, unsafe.Pointer(fv.UnsafeAddr())).Elem()
			}
			// An embedded struct of an unexported type is not skipped:
			// its exported fields are promoted.
			drops := !sf.IsExported() && !sf.Anonymous || sf.Tag.Get("json") == "-"
			if drops && g.r.IntN(3) != 0 {
				continue // mostly zero, as in real values
			}
			g.fill(fv, depth+1, skipped || drops, trusted)
		}
	}
	// Now and then, a pointer to nil or a pointer that is nil.
	if t.Kind() == reflect.Pointer && (t.Elem().Kind() == reflect.Pointer || t.Elem().Kind() == reflect.Slice) && g.r.IntN(4) == 0 {
		v.Elem().SetZero()
	}
}

// dynamic is a value for an empty interface: mostly what encoding/json
// decodes into one, sometimes not.
func (g *vcGen) dynamic(depth int) reflect.Value {
	var x any
	switch g.r.IntN(12) {
	case 0:
		x = g.r.IntN(2) == 0
	case 1:
		x = g.float()
	case 2:
		x = g.str()
	case 3, 4:
		s := make([]any, g.r.IntN(3))
		for i := range s {
			if depth < 4 {
				s[i] = g.dynamic(depth + 1).Interface()
			}
		}
		x = s
	case 5, 6:
		m := map[string]any{}
		for range g.r.IntN(3) {
			if depth < 4 {
				m[g.str()] = g.dynamic(depth + 1).Interface()
			}
		}
		x = m
	case 7:
		x = g.r.IntN(100) // comes back as a float64
	case 8:
		x = vcpInner{A: 1} // comes back as a map
	case 9:
		x = []any(nil)
	case 10:
		x = vcpCents{n: 3}
	default:
		return reflect.Zero(reflect.TypeFor[any]())
	}
	return reflect.ValueOf(&x).Elem()
}

// TestValueCheckProperty checks, for random values of many types, that
// check accepts a value exactly when encoding/json gives it back the same,
// and refuses every value with a non-zero field that encoding/json drops.
func TestValueCheckProperty(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 50
	}
	var accepted, refused int
	for seed := range uint64(n) {
		g := &vcGen{r: rand.New(rand.NewPCG(seed, 0x5eed))}
		for _, typ := range vcpTypes {
			c := jsonCheckOf(typ)
			if err := c.never(); err != nil {
				t.Fatalf("%s: never() = %v", typ, err)
			}
			g.lost = false
			v := reflect.New(typ).Elem()
			g.fill(v, 0, false, false)
			b, err := json.Marshal(v.Interface())
			if err != nil {
				t.Fatalf("seed %d: %s: json.Marshal: %v", seed, typ, err)
			}
			got := reflect.New(typ)
			derr := json.Unmarshal(b, got.Interface())
			same := derr == nil && vcSame(got.Elem(), v, false)
			cerr := c.check(v)
			if (cerr == nil) != same {
				t.Fatalf("seed %d: %s: check = %v, but same after a round trip = %v (decode error %v)\nvalue %#v\njson  %s\nback  %#v",
					seed, typ, cerr, same, derr, v.Interface(), b, got.Elem().Interface())
			}
			if g.lost && cerr == nil {
				t.Fatalf("seed %d: %s: a skipped field is set, check = nil\nvalue %#v", seed, typ, v.Interface())
			}
			if cerr == nil {
				accepted++
			} else {
				refused++
			}
		}
	}
	t.Logf("accepted %d, refused %d", accepted, refused)
	if accepted < n || refused < n {
		t.Errorf("too lopsided to mean much: accepted %d, refused %d", accepted, refused)
	}
}
