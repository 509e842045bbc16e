package durable

import (
	"encoding/json"
	"hash/fnv"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// --- scalars: the JSON text, as itemDigestV1 ---

type (
	digestID    string
	digestCount int16
	digestFlag  bool
)

func jsonFNV(t *testing.T, v any) [16]byte {
	t.Helper()
	data, err := json.Marshal(v)
	require.NoError(t, err)
	h := fnv.New128a()
	h.Write(data)
	return [16]byte(h.Sum(nil))
}

// Strings, integers and booleans digest as itemDigestV1 did (the FNV-1a of
// their JSON text), so journals written before resume: for the predeclared
// types, named ones, and behind an interface.
func TestItemDigestScalarsAreV1(t *testing.T) {
	strs := []string{"", "a", "order-17", "héllo", "<tag>", "a&b", `q"`, "a\\b", "\n\r\t\b\f", "\x00\x01\x1f",
		"\x7f", "\u2028\u2029", "\ufffd", "日本語", "😀", strings.Repeat("x", 300)}
	check := func(v any, s string) {
		want := jsonFNV(t, v)
		require.Equal(t, want, itemDigestV1(v), s)
		require.Equal(t, want, itemDigest(v), "%s: behind an interface", s)
	}
	for _, s := range strs {
		check(s, strconv.Quote(s))
		require.Equal(t, itemDigestV1(s), itemDigest(s), "%q", s)
		require.Equal(t, itemDigestV1(digestID(s)), itemDigest(digestID(s)), "%q", s)
		check(digestID(s), strconv.Quote(s))
	}
	for _, n := range []int64{0, 1, -1, 42, math.MaxInt64, math.MinInt64, math.MaxInt32, math.MinInt32} {
		require.Equal(t, itemDigestV1(n), itemDigest(n))
		require.Equal(t, itemDigestV1(int(n)), itemDigest(int(n)))
		require.Equal(t, itemDigestV1(int32(n)), itemDigest(int32(n)))
		require.Equal(t, itemDigestV1(int16(n)), itemDigest(int16(n)))
		require.Equal(t, itemDigestV1(int8(n)), itemDigest(int8(n)))
		require.Equal(t, itemDigestV1(digestCount(n)), itemDigest(digestCount(n)))
		require.Equal(t, itemDigestV1(uint64(n)), itemDigest(uint64(n)))
		require.Equal(t, itemDigestV1(uint(n)), itemDigest(uint(n)))
		require.Equal(t, itemDigestV1(uint32(n)), itemDigest(uint32(n)))
		require.Equal(t, itemDigestV1(uint16(n)), itemDigest(uint16(n)))
		require.Equal(t, itemDigestV1(uint8(n)), itemDigest(uint8(n)))
		require.Equal(t, itemDigestV1(uintptr(n)), itemDigest(uintptr(n)))
		check(n, "int64")
		check(uint64(n), "uint64")
		check(digestCount(n), "named int16")
	}
	for _, b := range []bool{false, true} {
		require.Equal(t, itemDigestV1(b), itemDigest(b))
		check(b, "bool")
		check(digestFlag(b), "named bool")
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(2) == 0 {
				b[i] = byte(rng.IntN(0x80))
			}
		}
		s := string(b)
		if !utf8.ValidString(s) {
			continue
		}
		require.Equal(t, itemDigestV1(s), itemDigest(s), "%q", s)
		require.Equal(t, jsonFNV(t, s), itemDigest(s), "%q", s)
		n := rng.Int64() >> rng.IntN(64)
		require.Equal(t, itemDigestV1(n), itemDigest(n))
		require.Equal(t, itemDigestV1(-n), itemDigest(-n))
	}
}

// The fast paths allocate nothing.
func TestItemDigestScalarsDoNotAllocate(t *testing.T) {
	s, n := "order-17", 42
	require.Zero(t, testing.AllocsPerRun(100, func() { itemDigest(s) }))
	require.Zero(t, testing.AllocsPerRun(100, func() { itemDigest(n) }))
	require.Zero(t, testing.AllocsPerRun(100, func() { itemDigest(uint8(n)) }))
	require.Zero(t, testing.AllocsPerRun(100, func() { itemDigest(true) }))
	require.Zero(t, testing.AllocsPerRun(100, func() { itemDigest("héllo <\u2028>") }))
}

// V1 replaced invalid UTF-8 with U+FFFD, so different strings had one digest.
// Such a string now hashes its bytes.
func TestItemDigestInvalidUTF8(t *testing.T) {
	a, b := "a\xff", "a\xfe"
	require.Equal(t, itemDigestV1(a), itemDigestV1(b), "V1 collides")
	require.NotEqual(t, itemDigest(a), itemDigest(b))
	require.Equal(t, itemDigest(a), itemDigest(any(a)))
	require.Equal(t, itemDigest(a), itemDigest(strings.Clone(a)))
	require.NotEqual(t, itemDigest(a), itemDigest("a\ufffd"))
	require.NotEqual(t, itemDigest(struct{ s string }{a}), itemDigest(struct{ s string }{b}))
}

// --- same data, same digest; other data, another ---

type digestInner struct {
	name  string
	score float64
	tags  []string
}

type digestOuter struct {
	ID    int
	inner *digestInner
	attrs map[string]*digestInner
	list  []digestInner
	any   any
	when  time.Time
	arr   [3]byte
	pp    **int
}

func newDigestOuter(keys []string) digestOuter {
	n := 7
	p := &n
	o := digestOuter{
		ID:    5,
		inner: &digestInner{name: "in", score: 1.5, tags: []string{"x", "y"}},
		attrs: map[string]*digestInner{},
		list:  []digestInner{{name: "l0"}, {name: "l1", tags: []string{}}},
		any:   &digestInner{name: "boxed"},
		when:  time.Date(2024, 3, 1, 12, 0, 0, 5, time.UTC),
		arr:   [3]byte{1, 2, 3},
		pp:    &p,
	}
	for _, k := range keys {
		o.attrs[k] = &digestInner{name: "v" + k, score: float64(len(k))}
	}
	return o
}

// Two values allocated apart, maps filled in different orders: one digest.
func TestItemDigestSameDataOtherAddresses(t *testing.T) {
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	rev := slicesReversed(keys)
	a, b := newDigestOuter(keys), newDigestOuter(rev)
	require.NotSame(t, a.inner, b.inner)
	require.Equal(t, itemDigest(a), itemDigest(b))
	require.Equal(t, itemDigest(&a), itemDigest(&b))
	for range 20 { // map iteration order is random: the digest is not
		require.Equal(t, itemDigest(a), itemDigest(a))
	}

	// Sharing is not data: two pointers to one value digest as two copies.
	shared := &digestInner{name: "s"}
	type two struct{ x, y *digestInner }
	require.Equal(t, itemDigest(two{shared, shared}), itemDigest(two{&digestInner{name: "s"}, &digestInner{name: "s"}}))

	// A nil slice or map is the same data as an empty one.
	require.Equal(t, itemDigest(digestInner{}), itemDigest(digestInner{tags: []string{}}))
	require.Equal(t, itemDigest(struct{ m map[int]int }{}), itemDigest(struct{ m map[int]int }{map[int]int{}}))

	// NaN is data: the same bits are the same digest.
	require.Equal(t, itemDigest(digestInner{score: math.NaN()}), itemDigest(digestInner{score: math.NaN()}))
}

func slicesReversed(s []string) []string {
	r := make([]string, len(s))
	for i, x := range s {
		r[len(s)-1-i] = x
	}
	return r
}

type onlyUnexported struct {
	a int
	b string
	c []uint16
}

func TestItemDigestOtherData(t *testing.T) {
	base := newDigestOuter([]string{"a", "b"})
	d := itemDigest(base)
	changes := map[string]func(o *digestOuter){
		"exported int":            func(o *digestOuter) { o.ID++ },
		"behind a pointer":        func(o *digestOuter) { o.inner.name = "other" },
		"slice element":           func(o *digestOuter) { o.inner.tags[1] = "z" },
		"slice length":            func(o *digestOuter) { o.inner.tags = o.inner.tags[:1] },
		"nil pointer":             func(o *digestOuter) { o.inner = nil },
		"pointer to zero value":   func(o *digestOuter) { o.inner = &digestInner{} },
		"map value":               func(o *digestOuter) { o.attrs["a"].score = -1 },
		"map key":                 func(o *digestOuter) { o.attrs["c"] = o.attrs["a"]; delete(o.attrs, "a") },
		"map entry added":         func(o *digestOuter) { o.attrs["c"] = nil },
		"struct in a slice":       func(o *digestOuter) { o.list[0].score = 2 },
		"interface's data":        func(o *digestOuter) { o.any.(*digestInner).name = "x" },
		"interface's type":        func(o *digestOuter) { o.any = digestInner{name: "boxed"} },
		"nil interface":           func(o *digestOuter) { o.any = nil },
		"instant":                 func(o *digestOuter) { o.when = o.when.Add(time.Nanosecond) },
		"location":                func(o *digestOuter) { o.when = o.when.In(time.FixedZone("UTC", 0)) },
		"byte array":              func(o *digestOuter) { o.arr[2] = 0 },
		"pointer to pointer":      func(o *digestOuter) { **o.pp = 8 },
		"nil vs empty in a slice": func(o *digestOuter) { o.list[1].tags = []string{""} },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			o := newDigestOuter([]string{"a", "b"})
			require.Equal(t, d, itemDigest(o))
			change(&o)
			require.NotEqual(t, d, itemDigest(o))
		})
	}

	// A struct with unexported fields only: V1 saw "{}" for both.
	x, y := onlyUnexported{1, "b", []uint16{3}}, onlyUnexported{1, "b", []uint16{4}}
	require.Equal(t, itemDigestV1(x), itemDigestV1(y))
	require.NotEqual(t, itemDigest(x), itemDigest(y))
	require.NotEqual(t, itemDigest(x), itemDigest(onlyUnexported{2, "b", []uint16{3}}))
	require.NotEqual(t, itemDigest(x), itemDigest(onlyUnexported{1, "c", []uint16{3}}))

	// Shapes: the lengths keep the strings apart.
	require.NotEqual(t, itemDigest([]string{"ab", "c"}), itemDigest([]string{"a", "bc"}))
	require.NotEqual(t, itemDigest([2]string{"ab", ""}), itemDigest([2]string{"a", "b"}))
	require.NotEqual(t, itemDigest([][]int{{1, 2}, {}}), itemDigest([][]int{{1}, {2}}))
	require.NotEqual(t, itemDigest(map[string]int{"a": 1, "b": 2}), itemDigest(map[string]int{"a": 2, "b": 1}))
	require.NotEqual(t, itemDigest(map[int]int{1: 1}), itemDigest(map[int]int{1: 1, 2: 2}))
	require.NotEqual(t, itemDigest(map[int]int{1: 2}), itemDigest(map[int]int{2: 1}))
	require.NotEqual(t, itemDigest(struct{ a, b *int }{nil, new(int)}), itemDigest(struct{ a, b *int }{new(int), nil}))
	require.NotEqual(t, itemDigest(3.5), itemDigest(3.25))
	require.NotEqual(t, itemDigest(0.0), itemDigest(math.Copysign(0, -1)), "-0 is not 0")
	require.NotEqual(t, itemDigest(complex(1, 2)), itemDigest(complex(2, 1)))
}

// Behind an interface, the dynamic type is data; the scalars excepted, as V1.
func TestItemDigestInterfaceItems(t *testing.T) {
	type circle struct{ R int }
	type square struct{ R int }
	require.Equal(t, itemDigest(circle{2}), itemDigest(square{2}), "the item's own type is the code's")
	require.NotEqual(t, itemDigest[any](circle{2}), itemDigest[any](square{2}))
	require.Equal(t, itemDigest[any](circle{2}), itemDigest[any](circle{2}))
	require.NotEqual(t, itemDigest[any](nil), itemDigest[any](circle{}))
	require.Equal(t, itemDigest[error](nil), itemDigest[any](nil))
	require.Equal(t, itemDigest[any]("x"), itemDigest("x"))
	require.Equal(t, itemDigest[any](7), itemDigest(7))
	require.NotEqual(t, itemDigest([]any{int8(1)}), itemDigest([]any{int16(1)}))
}

// Channels and functions are not data: no address leaks in.
func TestItemDigestSkipsChanFuncUnsafe(t *testing.T) {
	type withFuncs struct {
		N  int
		c  chan int
		f  func() int
		fs []func()
		u  unsafe.Pointer
		mu sync.Mutex
		rw sync.RWMutex
		wg sync.WaitGroup
	}
	mk := func(n int) *withFuncs {
		x := 1
		return &withFuncs{N: n, c: make(chan int, n+1), f: func() int { return x }, fs: []func(){func() {}}, u: unsafe.Pointer(&x)}
	}
	a, b := mk(3), mk(3)
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Equal(t, itemDigest(a), itemDigest(b))
	require.Equal(t, itemDigest(a), itemDigest(&withFuncs{N: 3, fs: []func(){nil}}), "not even nil-ness")
	require.NotEqual(t, itemDigest(a), itemDigest(mk(4)))
	require.Equal(t, itemDigest(a.f), itemDigest(mk(5).f))
}

// time.Time is its instant and location's name: not the monotonic reading,
// not the *Location's address (nor the cache in the Location).
func TestItemDigestTime(t *testing.T) {
	require.True(t, timeLayoutOK)
	now := time.Now() // with a monotonic reading
	restarted := time.Unix(0, now.UnixNano())
	require.NotEqual(t, now, restarted)
	require.True(t, now.Equal(restarted))
	require.Equal(t, itemDigest(now), itemDigest(restarted))
	require.Equal(t, itemDigest(now), itemDigest(now.Round(0)))
	type at struct{ t time.Time }
	require.Equal(t, itemDigest(at{now}), itemDigest(at{restarted}))
	require.NotEqual(t, itemDigest(at{now}), itemDigest(at{now.Add(1)}))
	require.NotEqual(t, itemDigest(now), itemDigest(now.UTC()), "the location is data")

	far := time.Date(9999, 1, 1, 0, 0, 0, 1, time.UTC) // past UnixNano's range
	require.NotEqual(t, itemDigest(far), itemDigest(far.Add(1)))
	require.NotEqual(t, itemDigest(far), itemDigest(far.AddDate(-8000, 0, 0)))

	require.NotEqual(t, itemDigest(time.FixedZone("X", 3600)), itemDigest(time.FixedZone("X", 7200)))
	require.Equal(t, itemDigest(time.FixedZone("X", 3600)), itemDigest(time.FixedZone("X", 3600)))
	if l1, err := time.LoadLocation("Europe/Paris"); err == nil {
		time.Sleep(time.Millisecond)
		l2, err := time.LoadLocation("Europe/Paris")
		require.NoError(t, err)
		require.NotSame(t, l1, l2)
		require.Equal(t, itemDigest(l1), itemDigest(l2))
		require.Equal(t, itemDigest(far.In(l1)), itemDigest(far.In(l2)))
	}

	type myTime time.Time // a type defined from time.Time is one too
	require.Equal(t, itemDigest(myTime(now)), itemDigest(myTime(restarted)))
	require.Equal(t, itemDigest(myTime(now)), itemDigest(now))
}

// A big.Int is walked as its words.
func TestItemDigestBigInt(t *testing.T) {
	a := new(big.Int).Lsh(big.NewInt(3), 200)
	b, _ := new(big.Int).SetString(a.String(), 10)
	require.Equal(t, itemDigest(a), itemDigest(b))
	require.NotEqual(t, itemDigest(a), itemDigest(new(big.Int).Add(a, big.NewInt(1))))
	require.NotEqual(t, itemDigest(a), itemDigest(new(big.Int).Neg(a)))
}

// --- cycles, sharing, limits ---

type digestRing struct {
	v    int
	next *digestRing
	m    map[string]any
}

func newRing(vals ...int) *digestRing {
	nodes := make([]*digestRing, len(vals))
	for i, v := range vals {
		nodes[i] = &digestRing{v: v}
	}
	for i, n := range nodes {
		n.next = nodes[(i+1)%len(nodes)]
		n.m = map[string]any{"self": n, "next": n.next, "i": i}
	}
	return nodes[0]
}

func TestItemDigestCycles(t *testing.T) {
	a, b := newRing(1, 2, 3), newRing(1, 2, 3)
	d := itemDigest(a)
	for range 20 {
		require.Equal(t, d, itemDigest(a))
		require.Equal(t, d, itemDigest(b))
	}
	require.NotEqual(t, d, itemDigest(newRing(1, 2, 4)))
	require.NotEqual(t, d, itemDigest(newRing(1, 2, 3, 1, 2, 3)))
	require.NotEqual(t, d, itemDigest(newRing(2, 3, 1)), "where the walk enters is data")
	require.Equal(t, itemDigest(*a), itemDigest(*b))

	self := &digestRing{v: 1}
	self.next = self
	require.Equal(t, itemDigest(self), itemDigest(self))

	m := map[string]any{"k": 1}
	m["self"] = m
	m2 := map[string]any{"k": 1}
	m2["self"] = m2
	require.Equal(t, itemDigest(m), itemDigest(m2))
	m2["k"] = 2
	require.NotEqual(t, itemDigest(m), itemDigest(m2))

	s := []any{1, nil}
	s[1] = s
	s2 := []any{1, nil}
	s2[1] = s2
	require.Equal(t, itemDigest(s), itemDigest(s2))
	s2[0] = 2
	require.NotEqual(t, itemDigest(s), itemDigest(s2))

	type pp *pp // a pointer type to itself
	var p pp
	p = &p
	var q pp
	q = &q
	require.Equal(t, itemDigest(p), itemDigest(q))
}

type digestDAG struct {
	l, r *digestDAG
	n    int
}

// Sharing is memoized: a DAG with 2^60 paths digests at once.
func TestItemDigestSharedDAG(t *testing.T) {
	build := func(n int) *digestDAG {
		d := &digestDAG{n: -1}
		for i := range n {
			d = &digestDAG{l: d, r: d, n: i}
		}
		return d
	}
	unshared := func(n int) *digestDAG {
		var f func(int) *digestDAG
		f = func(i int) *digestDAG {
			if i < 0 {
				return &digestDAG{n: -1}
			}
			return &digestDAG{l: f(i - 1), r: f(i - 1), n: i}
		}
		return f(n - 1)
	}
	require.Equal(t, itemDigest(build(10)), itemDigest(unshared(10)))
	start := time.Now()
	require.NotEqual(t, itemDigest(build(60)), itemDigest(build(61)))
	require.Less(t, time.Since(start), 5*time.Second)
}

type digestList struct {
	v    int
	next *digestList
	back *digestList
}

func newDigestList(n int) *digestList {
	var head, prev *digestList
	for i := range n {
		l := &digestList{v: i, back: prev}
		if prev == nil {
			head = l
		} else {
			prev.next = l
		}
		prev = l
	}
	return head
}

// Past the depth limit, the bag of nodes: same data, same digest; other data,
// another; no stack overflow.
func TestItemDigestDeepValues(t *testing.T) {
	const n = 3 * digestMaxDepth
	a, b := newDigestList(n), newDigestList(n)
	d := itemDigest(a)
	require.Equal(t, d, itemDigest(b))
	last := b
	for last.next != nil {
		last = last.next
	}
	last.v = -1
	require.NotEqual(t, d, itemDigest(b))
	last.v = n - 1
	require.Equal(t, d, itemDigest(b))
	last.next = &digestList{}
	require.NotEqual(t, d, itemDigest(b))
	last.next = nil
	require.Equal(t, d, itemDigest(b))

	// The bag covers the links: two nodes swapped are another list.
	x10, x20 := b.next.next.next.next.next.next.next.next.next.next, b
	for range 20 {
		x20 = x20.next
	}
	x10.v, x20.v = x20.v, x10.v
	require.NotEqual(t, d, itemDigest(b))
	x10.v, x20.v = x20.v, x10.v
	require.Equal(t, d, itemDigest(b))

	w := digestWalker{h: newFNV(), maxDepth: digestMaxDepth, maxSteps: digestMaxSteps, low: noBack}
	w.root(reflect.ValueOf(a), false)
	require.True(t, w.abort, "the list is the bag's")

	// Nested by value through interfaces.
	type box struct{ in any }
	var x, y any = 0, 0
	for range n {
		x, y = box{x}, box{y}
	}
	require.Equal(t, itemDigest(x), itemDigest(y))
	require.NotEqual(t, itemDigest(x), itemDigest(box{x}))

	// Short lists are not the bag's.
	short := newDigestList(10)
	w = digestWalker{h: newFNV(), maxDepth: digestMaxDepth, maxSteps: digestMaxSteps, low: noBack}
	w.root(reflect.ValueOf(short), false)
	require.False(t, w.abort)
	require.Equal(t, w.h.sum(), itemDigest(short))
}

type graphNode struct {
	id    int
	edges map[int]*graphNode
	out   []*graphNode
}

func completeGraph(n int) *graphNode {
	nodes := make([]*graphNode, n)
	for i := range nodes {
		nodes[i] = &graphNode{id: i, edges: map[int]*graphNode{}}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.edges[b.id] = b
				a.out = append(a.out, b)
			}
		}
	}
	return nodes[0]
}

// A dense cyclic graph unrolls past the step limit: it is hashed as the bag of
// nodes, whatever the order its maps are walked in, and in bounded time.
func TestItemDigestDenseGraph(t *testing.T) {
	g := reflect.ValueOf(completeGraph(6))
	for _, steps := range []int{10, 100, 1000, 5000, 10_000, 20_000, 50_000} {
		d := valueDigest(g, false, digestMaxDepth, steps)
		for range 10 {
			require.Equal(t, d, valueDigest(g, false, digestMaxDepth, steps), "steps %d", steps)
			require.Equal(t, d, valueDigest(reflect.ValueOf(completeGraph(6)), false, digestMaxDepth, steps), "steps %d", steps)
		}
	}
	other := completeGraph(6)
	other.out[2].id = 99
	require.NotEqual(t, valueDigest(g, false, digestMaxDepth, 100), valueDigest(reflect.ValueOf(other), false, digestMaxDepth, 100))

	start := time.Now()
	dense := completeGraph(14)
	d := itemDigest(dense)
	require.Less(t, time.Since(start), 20*time.Second)
	require.Equal(t, d, itemDigest(completeGraph(14)))
}

// --- no panic, whatever the item ---

func TestItemDigestNeverPanics(t *testing.T) {
	type empty struct{}
	type blank struct {
		_ int
		A int
	}
	var nilMap map[string]int
	var nilPtr *digestInner
	var nilIface error
	items := []any{
		nil, nilMap, nilPtr, nilIface, &nilIface, []any{nil, (*int)(nil)}, empty{}, &empty{}, [0]int{}, [0]*int{},
		blank{A: 1}, map[float64]int{math.NaN(): 1, math.NaN() + 0: 2}, map[*int]int{new(int): 1, new(int): 1},
		map[any]int{1: 1, "1": 1, struct{ a *int }{}: 2, [1]any{1}: 3}, make(chan int), func() {}, unsafe.Pointer(nil), uintptr(7),
		complex64(1i), [2][2]byte{{1}}, struct{ a [3]byte }{}, reflect.ValueOf(5), reflect.TypeFor[int](),
		big.NewRat(1, 3), big.NewFloat(1.5), &sync.Mutex{}, &sync.Map{}, &sync.Once{}, strings.NewReader("x"),
		newRing(1), completeGraph(3), time.Local, time.UTC, errorString("x"), &strings.Builder{},
	}
	for _, it := range items {
		require.NotPanics(t, func() { itemDigest(it) }, "%T", it)
		require.Equal(t, itemDigest(it), itemDigest(it), "%T", it)
	}
	require.NotPanics(t, func() { itemDigest(items) })
	require.NotPanics(t, func() { itemDigest(struct{ x []any }{items}) })
	require.NotPanics(t, func() { itemDigest[*int](nil) })
	require.NotPanics(t, func() { itemDigest[any](nil) })
}

type errorString string

func (e errorString) Error() string { return string(e) }

// --- property: random values ---

type propNode struct {
	b  bool
	i  int64
	u  uint16
	f  float64
	s  string
	bs []byte
	a  [2]int32
	c  complex64
	t  time.Time
	p  *propNode
	l  []*propNode
	m  map[string]*propNode
	x  any
	E  string
}

func genPropNode(rng *rand.Rand, depth int) *propNode {
	n := &propNode{
		b: rng.IntN(2) == 0, i: rng.Int64() >> rng.IntN(64), u: uint16(rng.Uint32()),
		f: math.Float64frombits(rng.Uint64()), s: genString(rng), a: [2]int32{rng.Int32(), -rng.Int32()},
		c: complex(rng.Float32(), rng.Float32()), t: time.Unix(rng.Int64N(1<<40), rng.Int64N(1e9)), E: genString(rng),
	}
	if rng.IntN(2) == 0 {
		n.bs = []byte(genString(rng))
	}
	if depth > 0 {
		if rng.IntN(2) == 0 {
			n.p = genPropNode(rng, depth-1)
		}
		for range rng.IntN(3) {
			var c *propNode
			if rng.IntN(4) > 0 {
				c = genPropNode(rng, depth-1)
			}
			n.l = append(n.l, c)
		}
		if rng.IntN(2) == 0 {
			n.m = map[string]*propNode{}
			for range rng.IntN(4) {
				n.m[genString(rng)] = genPropNode(rng, depth-1)
			}
		}
	}
	switch rng.IntN(5) {
	case 1:
		n.x = rng.IntN(100)
	case 2:
		n.x = genString(rng)
	case 3:
		if depth > 0 {
			n.x = genPropNode(rng, depth-1)
		}
	case 4:
		n.x = []int{rng.IntN(9), rng.IntN(9)}
	}
	return n
}

func genString(rng *rand.Rand) string {
	b := make([]byte, rng.IntN(6))
	for i := range b {
		b[i] = byte('a' + rng.IntN(4))
	}
	return string(b)
}

func (n *propNode) clone() *propNode {
	if n == nil {
		return nil
	}
	c := *n
	if n.bs != nil {
		c.bs = append([]byte{}, n.bs...)
	}
	c.p = n.p.clone()
	c.l = nil
	for _, x := range n.l {
		c.l = append(c.l, x.clone())
	}
	if n.m != nil {
		c.m = make(map[string]*propNode, len(n.m))
		for k, x := range n.m {
			c.m[k] = x.clone()
		}
	}
	switch x := n.x.(type) {
	case *propNode:
		c.x = x.clone()
	case []int:
		c.x = append([]int{}, x...)
	}
	return &c
}

// leaves lists functions that each change one leaf of the tree.
func (n *propNode) leaves(out []func()) []func() {
	if n == nil {
		return out
	}
	out = append(out,
		func() { n.b = !n.b }, func() { n.i++ }, func() { n.u-- },
		func() { n.f = math.Float64frombits(math.Float64bits(n.f) ^ 1) }, func() { n.s += "z" },
		func() { n.a[1]++ }, func() { n.c += 1 }, func() { n.t = n.t.Add(1) }, func() { n.E = "~" + n.E },
		func() {
			if len(n.bs) > 0 {
				n.bs[0]++
			} else {
				n.bs = append(n.bs, 0)
			}
		},
	)
	out = n.p.leaves(out)
	for i, x := range n.l {
		if x == nil {
			out = append(out, func() { n.l[i] = &propNode{} })
		}
		out = x.leaves(out)
	}
	for k, x := range n.m {
		out = append(out, func() { delete(n.m, k); n.m[k+"~"] = x })
		out = x.leaves(out)
	}
	switch x := n.x.(type) {
	case int:
		out = append(out, func() { n.x = x + 1 })
	case string:
		out = append(out, func() { n.x = x + "z" })
	case *propNode:
		out = x.leaves(out)
	case []int:
		out = append(out, func() { x[1]++ })
	}
	return out
}

// A deep copy has the digest of the original; a copy with one leaf changed
// has another (collisions aside: 2^-128).
func TestItemDigestProperty(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		v := genPropNode(rng, 1+rng.IntN(3))
		d := itemDigest(v)
		c := v.clone()
		require.Equal(t, d, itemDigest(c), "seed %d", seed)
		require.Equal(t, itemDigest(*v), itemDigest(*c), "seed %d", seed)
		leaves := c.leaves(nil)
		leaves[rng.IntN(len(leaves))]()
		require.NotEqual(t, d, itemDigest(c), "seed %d", seed)
		require.Equal(t, d, itemDigest(v), "seed %d: the original is unchanged", seed)
	}
}

// --- fuzz ---

type fuzzShape struct {
	s    string
	n    int64
	b    []byte
	p    *int64
	m    map[string]int64
	list *fuzzLink
}

type fuzzLink struct {
	b    byte
	next *fuzzLink
	loop *fuzzLink
}

func buildFuzzShape(s string, n int64, b []byte) fuzzShape {
	f := fuzzShape{s: s, n: n, b: append([]byte(nil), b...), m: map[string]int64{}}
	if n%2 == 0 {
		f.p = new(int64)
		*f.p = n / 2
	}
	for i, part := range strings.Split(s, ",") {
		f.m[part] = int64(i) + n
	}
	var links []*fuzzLink
	for _, c := range b {
		links = append(links, &fuzzLink{b: c})
	}
	for i, l := range links {
		if i+1 < len(links) {
			l.next = links[i+1]
		}
		if n != 0 {
			l.loop = links[int(uint64(n)%uint64(len(links)))]
		}
	}
	if len(links) > 0 {
		f.list = links[0]
	}
	return f
}

func FuzzItemDigest(f *testing.F) {
	f.Add("order-17", int64(3), []byte{1, 2, 3})
	f.Add("a,b,a", int64(-8), []byte{})
	f.Add("\xff<&>\u2028", int64(math.MinInt64), []byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, s string, n int64, b []byte) {
		b = b[:min(len(b), 64)] // a longer list only takes longer: the lollipop is O(n²) steps
		if utf8.ValidString(s) {
			require.Equal(t, itemDigestV1(s), itemDigest(s))
		}
		require.Equal(t, itemDigestV1(n), itemDigest(n))
		require.Equal(t, itemDigest(s), itemDigest(strings.Clone(s)))
		require.Equal(t, itemDigest(b), itemDigest(append([]byte(nil), b...)))
		x, y := buildFuzzShape(s, n, b), buildFuzzShape(s, n, b)
		require.Equal(t, itemDigest(x), itemDigest(y))
		require.Equal(t, itemDigest[any](&x), itemDigest[any](&y))
		y.n++
		require.NotEqual(t, itemDigest(x), itemDigest(y))
	})
}

// --- benchmarks ---

type benchSmall struct {
	ID    int
	Name  string
	Price float64
	ok    bool
}

type benchRefs struct {
	ID    int
	owner *benchSmall
	attrs map[string]string
}

// go test -run '^$' -bench ItemDigest -benchmem
func BenchmarkItemDigest(b *testing.B) {
	small := benchSmall{ID: 17, Name: "widget", Price: 9.5, ok: true}
	refs := benchRefs{ID: 17, owner: &small, attrs: map[string]string{"color": "red", "size": "L"}}
	bench := func(name string, f func()) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f()
			}
		})
	}
	bench("string", func() { itemDigest("order-17") })
	bench("string/v1", func() { itemDigestV1("order-17") })
	bench("int", func() { itemDigest(123456) })
	bench("int/v1", func() { itemDigestV1(123456) })
	bench("struct", func() { itemDigest(small) })
	bench("struct/v1", func() { itemDigestV1(small) })
	bench("pointer+map", func() { itemDigest(refs) })
	bench("pointer+map/v1", func() { itemDigestV1(refs) })
}
