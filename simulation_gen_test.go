package durable_test

// The programs of the simulation test (simulation_test.go): a tree of calls —
// Step.Run and the combinators — whose branches run nested calls in sequence and
// then a leaf of their own. Everything is drawn from one seed.

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/durable-go/durable"
)

// simKind is what a call does.
type simKind uint8

const (
	simStep     simKind = iota // Step.Run of one leaf
	simParallel                // Parallel
	simNamed                   // ParallelNamed
	simFanOut                  // FanOut, branches named by index
	simFanKey                  // FanOut with WithKey
	simSettle                  // Settle, with a random policy
	simRace                    // Race
	simAny                     // Any
	simGroup                   // NewGroup, Go, Wait
	simEach                    // SettleEach, branches named by index, with a random policy
	simEachKey                 // SettleEach with WithKey
)

var (
	simKindNames  = [...]string{"Step", "Parallel", "ParallelNamed", "FanOut", "FanOutKey", "Settle", "Race", "Any", "Group", "SettleEach", "SettleEachKey"}
	simKindPrefix = [...]string{"s", "p", "n", "f", "k", "t", "r", "a", "g", "e", "h"}
)

func (k simKind) String() string { return simKindNames[k] }

// final reports whether a completed call of kind k is journaled as a decision.
func (k simKind) final() bool { return k.settles() || k == simRace || k == simAny }

// settles reports whether a call of kind k returns a BatchResult: Settle or
// SettleEach.
func (k simKind) settles() bool { return k == simSettle || k == simEach || k == simEachKey }

// byIndex reports whether the branches of a call of kind k are named by index.
func (k simKind) byIndex() bool { return k == simFanOut || k == simEach }

// keyed reports whether the branches of a call of kind k are named by WithKey.
func (k simKind) keyed() bool { return k == simFanKey || k == simEachKey }

// simType is the value type of a call: its branches' and its own.
type simType uint8

const (
	simInt simType = iota
	simString
	simStruct // simValue
	simSlice  // []string
)

var simTypeNames = [...]string{"int", "string", "struct", "slice"}

// simValue is the small struct a call may return.
type simValue struct {
	S string
	N int
}

// simOutcome is what a leaf does once its time has passed.
type simOutcome uint8

const (
	simOK        simOutcome = iota // returns a value
	simFail                        // a plain failure, on every run
	simPermanent                   // durable.Permanent
	simPanic                       // panics (never a top-level Step.Run: Run does not recover)
	simFlaky                       // a plain failure in the first run of a sequence, else a value
)

var simOutcomeNames = [...]string{"ok", "fail", "perm", "panic", "flaky"}

// simLeaf is the work at the bottom of the tree: a Step.Run's Fn, or the last thing
// a branch does. It takes d, or until its context ends unless it is stubborn.
type simLeaf struct {
	id       int
	top      int // the top-level call it is under
	d        time.Duration
	out      simOutcome
	stubborn bool
}

// simCall is a Step.Run (leaf) or a combinator (branches).
type simCall struct {
	id       int
	top      int
	parent   *simBranch // the branch whose body holds it; nil at the top level
	kind     simKind
	name     string
	key      string // its journal key
	typ      simType
	limit    int           // WithMaxConcurrency, 0: none
	timeout  time.Duration // WithTimeout, 0: none
	policy   []simPolicy   // Settle's and SettleEach's WithCompletion
	branches []*simBranch
	leaf     *simLeaf
}

// simBranch runs its body, nested calls one after the other, then its leaf. Its
// value is made of its nested calls' and its leaf's.
type simBranch struct {
	id     int
	top    int
	parent *simCall
	name   string
	key    string
	body   []*simCall
	leaf   *simLeaf
}

// simPolicy is one criterion of a Settle's completion policy.
type simPolicy struct {
	kind  byte // 'a' AllCompleted, 's' AllSuccessful, 'f' FirstSuccessful, 'm' MinSuccessful, 't' ToleratedFailures, 'r' ratio
	n     int
	ratio float64
}

func (p simPolicy) completion() durable.Completion {
	switch p.kind {
	case 's':
		return durable.AllSuccessful()
	case 'f':
		return durable.FirstSuccessful()
	case 'm':
		return durable.MinSuccessful(p.n)
	case 't':
		return durable.ToleratedFailures(p.n)
	case 'r':
		return durable.ToleratedFailureRatio(p.ratio)
	}
	return durable.AllCompleted()
}

func (p simPolicy) String() string {
	switch p.kind {
	case 's':
		return "allOK"
	case 'f':
		return "first"
	case 'm':
		return "min" + strconv.Itoa(p.n)
	case 't':
		return "tol" + strconv.Itoa(p.n)
	case 'r':
		return "ratio" + strconv.FormatFloat(p.ratio, 'g', -1, 64)
	}
	return "all"
}

// simProg is a program: top-level calls made one after the other.
type simProg struct {
	seed    uint64
	scan    bool // the journal implements journal.Scanner
	calls   []*simCall
	nodes   int                // ids are 0..nodes-1
	leaves  map[int]*simLeaf   // by id
	callsBy map[int]*simCall   // every call, nested ones included, by id
	branch  map[int]*simBranch // by id
	big     time.Duration      // later than anything the program plans
}

// simUnit is the clock's unit: every leaf takes a distinct power of two of it, and so
// does every timeout, so that no two things the program waits for can happen at
// the same instant (an instant is a sum of distinct powers of two along one causal
// chain). Cuts by time fall on half units, between any two instants.
const simUnit = time.Microsecond

type simGen struct {
	rng    *rand.Rand
	p      *simProg
	leaves []*simLeaf
	calls  []*simCall // those with a timeout
	budget int        // leaves left
	width  int        // branches of a combinator: at most
	flaky  int        // flaky leaves the program may still hold
}

// genSimProg draws a program from seed; try > 0 draws another one from the same
// seed, for when the first was not deterministic.
func genSimProg(seed uint64, try int) *simProg {
	rng := rand.New(rand.NewPCG(seed, uint64(try)))
	g := &simGen{rng: rng, p: &simProg{seed: seed, scan: rng.IntN(4) != 0}, flaky: max(0, rng.IntN(6)-3)}
	// Mostly small programs, which cut quickly; now and then a larger one.
	g.budget, g.width = 6+rng.IntN(14), 4
	if rng.IntN(6) == 0 {
		g.budget, g.width = 16+rng.IntN(16), 7
	}
	for top := 0; top == 0 || top < 3 && g.budget > 0 && rng.IntN(2) == 0; top++ {
		g.p.calls = append(g.p.calls, g.call(top, 0, rng.IntN(5) != 0))
	}
	// Distinct powers of two, shuffled over leaves and timeouts.
	n := len(g.leaves) + len(g.calls)
	exps := rng.Perm(n)
	for i, l := range g.leaves {
		l.d = simUnit << exps[i]
	}
	for i, c := range g.calls {
		c.timeout = simUnit << exps[len(g.leaves)+i]
	}
	if n+2 >= 53 { // a time.Duration holds 2^63 ns, about 2^53 µs
		panic("genSimProg: too many leaves and timeouts for the clock")
	}
	g.p.big = simUnit << (n + 2)
	g.p.index()
	return g.p
}

func (g *simGen) id() int {
	g.p.nodes++
	return g.p.nodes - 1
}

func (g *simGen) leaf(top int, topStep bool) *simLeaf {
	g.budget--
	l := &simLeaf{id: g.id(), top: top, stubborn: g.rng.IntN(5) == 0}
	switch x := g.rng.IntN(100); {
	case x < 55:
		l.out = simOK
	case x < 72:
		l.out = simFail
	case x < 85:
		l.out = simPermanent
	case x < 93 && !topStep:
		l.out = simPanic
	case g.flaky > 0:
		l.out = simFlaky
		g.flaky--
	default:
		l.out = simOK
	}
	g.leaves = append(g.leaves, l)
	return l
}

// call draws a call at depth under top-level call top: a combinator if comb.
func (g *simGen) call(top, depth int, comb bool) *simCall {
	rng := g.rng
	c := &simCall{id: g.id(), top: top, typ: simType(rng.IntN(4))}
	if !comb || g.budget <= 0 {
		c.kind = simStep
		c.name = "s" + strconv.Itoa(c.id)
		c.leaf = g.leaf(top, depth == 0)
		return c
	}
	c.kind = simKind(1 + rng.IntN(int(simEachKey)))
	c.name = simKindPrefix[c.kind] + strconv.Itoa(c.id)
	n := 1 + rng.IntN(g.width)
	if rng.IntN(5) < 2 {
		c.limit = 1 + rng.IntN(n)
	}
	if rng.IntN(3) == 0 {
		g.calls = append(g.calls, c)
	}
	if c.kind.settles() {
		c.policy = genSimPolicy(rng, n)
	}
	for i := range n {
		b := &simBranch{id: g.id(), top: top, name: "b" + strconv.Itoa(i)}
		if c.kind.keyed() {
			b.name = "k" + strconv.Itoa(i)
		}
		for depth < 2 && g.budget > 1 && len(b.body) < 3 && rng.IntN(3) == 0 {
			b.body = append(b.body, g.call(top, depth+1, depth == 0 && rng.IntN(3) == 0))
		}
		// Two Step.Runs in a row may share a name: poll, poll#2.
		steps := 0
		for _, s := range b.body {
			if s.kind == simStep {
				steps++
			}
		}
		if steps >= 2 && rng.IntN(2) == 0 {
			for _, s := range b.body {
				if s.kind == simStep {
					s.name = "poll"
				}
			}
		}
		b.leaf = g.leaf(top, false)
		c.branches = append(c.branches, b)
	}
	return c
}

func genSimPolicy(rng *rand.Rand, n int) []simPolicy {
	var ps []simPolicy
	for range rng.IntN(3) {
		switch rng.IntN(6) {
		case 0:
			ps = append(ps, simPolicy{kind: 'a'})
		case 1:
			ps = append(ps, simPolicy{kind: 's'})
		case 2:
			ps = append(ps, simPolicy{kind: 'f'})
		case 3:
			ps = append(ps, simPolicy{kind: 'm', n: 1 + rng.IntN(n+1)})
		case 4:
			ps = append(ps, simPolicy{kind: 't', n: rng.IntN(n)})
		case 5:
			ps = append(ps, simPolicy{kind: 'r', ratio: []float64{0, 0.25, 0.5, 0.75, 1}[rng.IntN(5)]})
		}
	}
	return ps
}

// index fills the lookup maps, and gives every call and branch its journal key:
// the escaped names on the path from the execution, with an occurrence suffix for
// a name used again in one scope (doc.go, "Journal records").
func (p *simProg) index() {
	p.leaves = make(map[int]*simLeaf)
	p.callsBy = make(map[int]*simCall)
	p.branch = make(map[int]*simBranch)
	var calls func(scope string, parent *simBranch, cs []*simCall)
	calls = func(scope string, parent *simBranch, cs []*simCall) {
		seen := map[string]int{}
		for _, c := range cs {
			p.callsBy[c.id] = c
			c.parent = parent
			seen[c.name]++
			c.key = scope + "/" + c.name
			if k := seen[c.name]; k > 1 {
				c.key += "#" + strconv.Itoa(k)
			}
			if c.leaf != nil {
				p.leaves[c.leaf.id] = c.leaf
			}
			for i, b := range c.branches {
				p.branch[b.id] = b
				b.parent = c
				p.leaves[b.leaf.id] = b.leaf
				b.key = c.key + "/" + b.name
				if c.kind.byIndex() {
					b.key = c.key + "/" + strconv.Itoa(i)
				}
				calls(b.key, b, b.body)
			}
		}
	}
	calls(simExecution, nil, p.calls)
}

// String prints the program, one call or branch a line.
func (p *simProg) String() string {
	var sb strings.Builder
	journal := "Memory"
	if p.scan {
		journal = "Scanner"
	}
	fmt.Fprintf(&sb, "program seed=%d journal=%s\n", p.seed, journal)
	var call func(indent string, c *simCall)
	call = func(indent string, c *simCall) {
		fmt.Fprintf(&sb, "%s#%d %s %s[%s]", indent, c.id, c.kind, c.name, simTypeNames[c.typ])
		if c.limit > 0 {
			fmt.Fprintf(&sb, " cap=%d", c.limit)
		}
		if c.timeout > 0 {
			fmt.Fprintf(&sb, " timeout=%s", simDur(c.timeout))
		}
		if len(c.policy) > 0 {
			fmt.Fprintf(&sb, " policy=%v", c.policy)
		}
		if c.leaf != nil {
			fmt.Fprintf(&sb, " %s", c.leaf)
		}
		sb.WriteByte('\n')
		for _, b := range c.branches {
			fmt.Fprintf(&sb, "%s  #%d %s: %s\n", indent, b.id, b.name, b.leaf)
			for _, s := range b.body {
				call(indent+"    ", s)
			}
		}
	}
	for _, c := range p.calls {
		call("  ", c)
	}
	return sb.String()
}

func (l *simLeaf) String() string {
	s := fmt.Sprintf("leaf#%d %s %s", l.id, simDur(l.d), simOutcomeNames[l.out])
	if l.stubborn {
		s += " stubborn"
	}
	return s
}

// simDur prints d in units: 2^k as "2^k".
func simDur(d time.Duration) string {
	u := d / simUnit
	for k := 0; k < 63 && d%simUnit == 0; k++ {
		if u == 1<<k {
			return "2^" + strconv.Itoa(k)
		}
	}
	return fmt.Sprintf("%.1fu", float64(d)/float64(simUnit))
}
