package durable_test

// The programs of the simulation test (simulation_test.go): a tree of calls —
// Step.Run and the combinators — whose branches run nested calls in sequence and
// then a leaf of their own. Everything is drawn from one seed.

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
	simPanic                       // panics (a top-level Step.Run's only under a policy: Run does not recover otherwise)
	simFlaky                       // a plain failure in the first run of a sequence, else a value
	simFlakyK                      // a plain failure in its function's attempts 1..k, else a value
)

var simOutcomeNames = [...]string{"ok", "fail", "perm", "panic", "flaky", "flaky"}

// simLeaf is the work at the bottom of the tree: a Step.Run's Fn, or the last thing
// a branch does. It takes d, or until its context ends unless it is stubborn.
type simLeaf struct {
	id       int
	top      int // the top-level call it is under
	d        time.Duration
	out      simOutcome
	k        int // simFlakyK: the attempts that fail
	stubborn bool
}

// simCall is a Step.Run (leaf) or a combinator (branches).
type simCall struct {
	id      int
	top     int
	parent  *simBranch // the branch whose body holds it; nil at the top level
	kind    simKind
	name    string
	key     string // its journal key
	typ     simType
	limit   int           // WithMaxConcurrency, 0: none
	timeout time.Duration // WithTimeout, 0: none
	policy  []simPolicy   // Settle's and SettleEach's WithCompletion
	// A Step.Run's WithRetry and WithStepTimeout, given to NewStep; a
	// combinator's, given to it for each of its branches.
	retry       *simRetry
	stepTimeout time.Duration
	codec       simCodec // WithCodec, given to NewStep or the combinator
	branches    []*simBranch
	leaf        *simLeaf
	fn          *simFunc // a Step.Run's Fn
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
	// The branch step's own WithRetry and WithStepTimeout, given to NewStep
	// (combinators of steps only): they win over the combinator's.
	retry       *simRetry
	stepTimeout time.Duration
	codec       simCodec
	fn          *simFunc
}

// simCodec names a codec: none, or one of the simulation's own (simulation_test.go).
type simCodec uint8

const (
	simNoCodec   simCodec = iota // encoding/json, or the one in scope
	simTextCodec                 // simText
	simGobCodec                  // gobCodec
)

var simCodecNames = [...]string{"", "text", "gob"}

// codec draws a codec one time in oneIn.
func (g *simGen) codec(oneIn int) simCodec {
	if g.rng.IntN(oneIn) != 0 {
		return simNoCodec
	}
	return simCodec(1 + g.rng.IntN(2))
}

// simRetry is a RetryPolicy. Its Backoff is drawn on the clock, as leaves'
// times are.
type simRetry struct {
	max     int
	backoff time.Duration
	mult    float64 // 0: 2
	jitter  float64
	capped  bool // MaxBackoff: 2 × Backoff
}

func (p *simRetry) policy() durable.RetryPolicy {
	rp := durable.RetryPolicy{MaxAttempts: p.max, Backoff: p.backoff, Multiplier: p.mult, Jitter: p.jitter}
	if p.capped {
		rp.MaxBackoff = 2 * p.backoff
	}
	return rp
}

func (p *simRetry) String() string {
	s := fmt.Sprintf("retry(%d, %s", p.max, simDur(p.backoff))
	if p.mult != 0 {
		s += fmt.Sprintf(" ×%g", p.mult)
	}
	if p.jitter != 0 {
		s += fmt.Sprintf(" ±%g", p.jitter)
	}
	if p.capped {
		s += " capped"
	}
	return s + ")"
}

// simFunc is a function whose outcome is journaled — a branch's, or a Step.Run's
// Fn — with the attempts the engine gives it: the step's own options win over
// the combinator's, each of its own (retry.go's attemptsOf).
type simFunc struct {
	id      int // the branch's id, or the Step.Run's leaf's
	key     string
	top     int
	call    *simCall   // the combinator that runs it; nil for a Step.Run
	branch  *simBranch // nil for a Step.Run
	max     int        // MaxAttempts, at least 1
	timeout time.Duration
	on      bool     // the engine runs it under a policy: WithRetry or WithStepTimeout
	codec   simCodec // what its values are encoded with, its own or the one in scope
}

// retried reports whether the engine journals f's failed attempts.
func (f *simFunc) retried() bool { return f.max > 1 }

func newSimFunc(id int, retry *simRetry, timeout time.Duration) *simFunc {
	f := &simFunc{id: id, max: 1, timeout: timeout, on: retry != nil || timeout > 0}
	if retry != nil {
		f.max = max(retry.max, 1)
	}
	return f
}

// stepTimeouts reports whether some branch of c has a WithStepTimeout. Such a
// combinator has no cap and is never called early (see "How a run is made
// faithful"), so that each attempt of its branches begins, and its deadline
// falls, when they did in the crash-free run.
func (c *simCall) stepTimeouts() bool {
	for _, b := range c.branches {
		if b.fn.timeout > 0 {
			return true
		}
	}
	return false
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
	funcs   []*simFunc         // every function whose outcome is journaled
	unit    time.Duration      // the clock's unit: see simClock
	big     time.Duration      // later than anything the program plans
}

type simGen struct {
	rng    *rand.Rand
	p      *simProg
	clock  []simClock // every duration the program plans
	combs  []*simCall
	budget int // leaves left
	width  int // branches of a combinator: at most
	flaky  int // flaky leaves the program may still hold
}

// simClock is a duration the program plans: a leaf's time, a combinator's
// timeout, a backoff or a step timeout; drop, when not nil, takes it out of
// the program (a policy, when there are too many for the clock).
//
// Each takes a distinct power of two of the program's unit, and a random part
// of up to half as much again, in nanoseconds: the powers spread them over
// every scale, and the random parts keep any two sums of them apart, so that
// no two things the program waits for happen at the same instant. Distinct
// powers alone would not: an instant is a sum along one causal chain, and
// with retries a chain repeats a leaf's time and a backoff (1+2+1+4+1+8+1 is
// 8+2+8). The unit is as large as the clock allows, so that the random parts
// are large too: a time.Duration holds 2^63 ns.
type simClock struct {
	d    *time.Duration
	drop func()
}

// simExtra is how many more powers of two than the program plans the clock
// must hold: the attempts of retried functions nested three deep repeat their
// leaves' times, and their waits add up.
const simExtra = 8

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
	// Drop the last policies drawn until the clock holds the program with a
	// unit of 2^8 ns at least.
	for k := len(g.clock) - 1; len(g.clock)+simExtra+2 > 62-8; k-- {
		if k < 0 {
			panic("genSimProg: too many leaves and timeouts for the clock")
		}
		if c := g.clock[k]; c.drop != nil {
			c.drop()
			g.clock = slices.Delete(g.clock, k, k+1)
		}
	}
	// Distinct powers of two, shuffled over everything the program waits for,
	// and a random part each.
	n := len(g.clock)
	g.p.unit = time.Duration(1) << min(62-(n+simExtra+2), 32)
	exps := rng.Perm(n)
	for i, c := range g.clock {
		d := g.p.unit << exps[i]
		*c.d = d + time.Duration(rng.Int64N(int64(d/2)))
	}
	// A combinator's step timeout starts with each branch's attempt, and
	// branches start together: two of them slower than it would fail at the
	// same instant, and their attempts after that too (the retries of siblings
	// wait alike). Keep it for combinators with one slow branch at most.
	for _, c := range g.combs {
		slow := 0
		for _, b := range c.branches {
			if b.stepTimeout == 0 && b.leaf.d > c.stepTimeout {
				slow++
			}
		}
		if slow > 1 {
			c.stepTimeout = 0
		}
	}
	g.p.big = g.p.unit << (n + simExtra + 1)
	g.p.index()
	return g.p
}

// retry draws a retry policy one time in oneIn, else nil; drop takes it out of
// the program.
func (g *simGen) retry(oneIn int, drop func()) *simRetry {
	rng := g.rng
	if rng.IntN(oneIn) != 0 {
		return nil
	}
	p := &simRetry{max: 1 + rng.IntN(4), mult: []float64{0, 1, 1.5}[rng.IntN(3)], capped: rng.IntN(4) == 0}
	if rng.IntN(2) == 0 {
		p.jitter = []float64{0.1, 0.5, 1}[rng.IntN(3)]
	}
	g.clock = append(g.clock, simClock{&p.backoff, drop})
	return p
}

// stepTimeout draws a step timeout into d one time in oneIn, else leaves it 0;
// drop takes it out of the program.
func (g *simGen) stepTimeout(oneIn int, d *time.Duration, drop func()) {
	if g.rng.IntN(oneIn) == 0 {
		*d = 1 // until the clock is drawn
		g.clock = append(g.clock, simClock{d, drop})
	}
}

func (g *simGen) id() int {
	g.p.nodes++
	return g.p.nodes - 1
}

// leaf draws the leaf of a function with retry policy retry (nil: none), and
// a step timeout if timed (its leaf then never ignores its context): a
// top-level Step.Run's if topStep.
func (g *simGen) leaf(top int, topStep bool, retry *simRetry, timed bool) *simLeaf {
	g.budget--
	l := &simLeaf{id: g.id(), top: top, stubborn: !timed && g.rng.IntN(5) == 0}
	// A step with a policy recovers a panic: it is a failed attempt.
	policy := retry != nil || timed
	attempts := 1
	if retry != nil {
		attempts = retry.max
	}
	switch x := g.rng.IntN(100); {
	case attempts > 1 && x < 30:
		l.out, l.k = simFlakyK, 1+g.rng.IntN(attempts)
	case x < 55:
		l.out = simOK
	case x < 72:
		l.out = simFail
	case x < 85:
		l.out = simPermanent
	case x < 93 && (!topStep || policy):
		l.out = simPanic
	case g.flaky > 0:
		l.out = simFlaky
		g.flaky--
	default:
		l.out = simOK
	}
	g.clock = append(g.clock, simClock{&l.d, nil})
	return l
}

// call draws a call at depth under top-level call top: a combinator if comb.
func (g *simGen) call(top, depth int, comb bool) *simCall {
	rng := g.rng
	c := &simCall{id: g.id(), top: top, typ: simType(rng.IntN(4))}
	if !comb || g.budget <= 0 {
		c.kind = simStep
		c.name = "s" + strconv.Itoa(c.id)
		// A top-level Step.Run's Fn may panic only under a policy: Run does
		// not recover panics otherwise.
		fix := func() {
			if depth == 0 && c.retry == nil && c.stepTimeout == 0 && c.leaf.out == simPanic {
				c.leaf.out = simFail
			}
		}
		c.retry = g.retry(4, func() { c.retry = nil; fix() })
		g.stepTimeout(5, &c.stepTimeout, func() { c.stepTimeout = 0; fix() })
		c.codec = g.codec(5)
		c.leaf = g.leaf(top, depth == 0, c.retry, c.stepTimeout > 0)
		return c
	}
	c.kind = simKind(1 + rng.IntN(int(simEachKey)))
	g.combs = append(g.combs, c)
	c.name = simKindPrefix[c.kind] + strconv.Itoa(c.id)
	n := 1 + rng.IntN(g.width)
	if rng.IntN(5) < 2 {
		c.limit = 1 + rng.IntN(n)
	}
	if rng.IntN(3) == 0 {
		g.clock = append(g.clock, simClock{&c.timeout, nil})
	}
	if c.kind.settles() {
		c.policy = genSimPolicy(rng, n)
	}
	// Step timeouts go to combinators without a cap, on branches that run
	// nothing nested: see stepTimeouts.
	c.retry = g.retry(4, func() { c.retry = nil })
	if c.limit == 0 {
		g.stepTimeout(6, &c.stepTimeout, func() { c.stepTimeout = 0 })
	}
	c.codec = g.codec(5)
	steps := c.kind == simParallel || c.kind == simNamed || c.kind == simSettle || c.kind == simRace || c.kind == simAny
	for i := range n {
		b := &simBranch{id: g.id(), top: top, name: "b" + strconv.Itoa(i)}
		if c.kind.keyed() {
			b.name = "k" + strconv.Itoa(i)
		}
		if steps {
			b.codec = g.codec(8)
			b.retry = g.retry(8, func() { b.retry = nil })
			if c.limit == 0 {
				g.stepTimeout(8, &b.stepTimeout, func() { b.stepTimeout = 0 })
			}
		}
		retry, timed := b.retry, b.stepTimeout > 0 || c.stepTimeout > 0
		if retry == nil {
			retry = c.retry
		}
		for !timed && depth < 2 && g.budget > 1 && len(b.body) < 3 && rng.IntN(3) == 0 {
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
		b.leaf = g.leaf(top, false, retry, timed)
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
	// A codec given to NewStep applies to the step, given to a combinator to
	// each of its branches, and to everything run inside them, unless they
	// name one of their own (codec.go's WithCodec).
	var calls func(scope string, parent *simBranch, codec simCodec, cs []*simCall)
	calls = func(scope string, parent *simBranch, codec simCodec, cs []*simCall) {
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
				c.fn = newSimFunc(c.leaf.id, c.retry, c.stepTimeout)
				c.fn.key, c.fn.top, c.fn.codec = c.key, c.top, simCodecOr(c.codec, codec)
				p.funcs = append(p.funcs, c.fn)
			}
			for i, b := range c.branches {
				p.branch[b.id] = b
				b.parent = c
				p.leaves[b.leaf.id] = b.leaf
				b.key = c.key + "/" + b.name
				if c.kind.byIndex() {
					b.key = c.key + "/" + strconv.Itoa(i)
				}
				retry, timeout := b.retry, b.stepTimeout
				if retry == nil {
					retry = c.retry
				}
				if timeout == 0 {
					timeout = c.stepTimeout
				}
				b.fn = newSimFunc(b.id, retry, timeout)
				b.fn.key, b.fn.top, b.fn.call, b.fn.branch = b.key, b.top, c, b
				b.fn.codec = simCodecOr(b.codec, simCodecOr(c.codec, codec))
				p.funcs = append(p.funcs, b.fn)
				calls(b.key, b, b.fn.codec, b.body)
			}
		}
	}
	calls(simExecution, nil, simNoCodec, p.calls)
}

// simCodecOr is own, or inherited when own names none.
func simCodecOr(own, inherited simCodec) simCodec {
	if own != simNoCodec {
		return own
	}
	return inherited
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
		sb.WriteString(simOptionsString(c.codec, c.retry, c.stepTimeout))
		if c.leaf != nil {
			fmt.Fprintf(&sb, " %s", c.leaf)
		}
		sb.WriteByte('\n')
		for _, b := range c.branches {
			fmt.Fprintf(&sb, "%s  #%d %s:%s %s\n", indent, b.id, b.name, simOptionsString(b.codec, b.retry, b.stepTimeout), b.leaf)
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

func simOptionsString(codec simCodec, retry *simRetry, stepTimeout time.Duration) string {
	var s string
	if codec != simNoCodec {
		s += " codec=" + simCodecNames[codec]
	}
	if retry != nil {
		s += " " + retry.String()
	}
	if stepTimeout > 0 {
		s += " steptimeout=" + simDur(stepTimeout)
	}
	return s
}

func (l *simLeaf) String() string {
	s := fmt.Sprintf("leaf#%d %s %s", l.id, simDur(l.d), simOutcomeNames[l.out])
	if l.out == simFlakyK {
		s += strconv.Itoa(l.k)
	}
	if l.stubborn {
		s += " stubborn"
	}
	return s
}

// simDur prints d.
func simDur(d time.Duration) string { return d.String() }
