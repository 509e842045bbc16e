package durable_test

// Property tests: random branch sets (delays, failures, panics, branches that
// ignore their context), random completion policies, caps and deadlines, run on
// the fake clock of testing/synctest and checked against a small sequential
// model of the semantics in DESIGN.md: statuses, reason, values and errors, the
// instant each branch is dispatched, peak concurrency, which branches are
// cancelled, and the instant the call returns.
//
// Every case is built from its own seed, and a failing case names it and logs
// its branch set: rerun one with -run 'TestSettleProperty/seed=17$'.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
)

const propertyCases = 500

// --- the branch set ---

type propOutcome uint8

const (
	propSucceeds propOutcome = iota
	propFails
	propPanics
)

// propBranch is one random branch: it waits delay, then succeeds with value,
// fails with err, or panics with panicValue. It returns ctx.Err() as soon as
// its context is cancelled, unless it is deaf: then it sleeps its whole delay.
type propBranch struct {
	name       string
	delay      time.Duration
	deaf       bool
	kind       propOutcome
	value      int
	err        error
	panicValue any
}

func (b propBranch) String() string {
	deaf := ""
	if b.deaf {
		deaf = " ignoring its context,"
	}
	switch b.kind {
	case propFails:
		return fmt.Sprintf("%q %v%s fails %q", b.name, b.delay, deaf, b.err)
	case propPanics:
		return fmt.Sprintf("%q %v%s panics %#v", b.name, b.delay, deaf, b.panicValue)
	}
	return fmt.Sprintf("%q %v%s succeeds %d", b.name, b.delay, deaf, b.value)
}

// genPropBranches draws 1 to 30 branches; genPropDelays sets their delays.
func genPropBranches(rng *rand.Rand) []propBranch {
	n := 1 + rng.IntN(30)
	pFail := []float64{0, 0.1, 0.3, 0.5, 0.8, 1}[rng.IntN(6)]
	pDeaf := []float64{0, 0, 0.1, 0.3}[rng.IntN(4)]
	branches := make([]propBranch, n)
	for i := range branches {
		b := propBranch{
			name:  fmt.Sprintf("s%d-%d", i, rng.IntN(1000)),
			value: i*1000 + rng.IntN(1000),
			deaf:  rng.Float64() < pDeaf,
		}
		if rng.Float64() < pFail {
			if rng.IntN(3) == 0 {
				b.kind = propPanics
				switch rng.IntN(3) {
				case 0:
					b.panicValue = fmt.Sprintf("panic in branch %d", i)
				case 1:
					b.panicValue = rng.IntN(1000)
				default:
					b.panicValue = fmt.Errorf("panic error in branch %d", i)
				}
			} else {
				b.kind = propFails
				b.err = fmt.Errorf("branch %d: failure %d", i, rng.IntN(1000))
			}
		}
		branches[i] = b
	}
	return branches
}

// genPropDelays gives the branches distinct delays, whole milliseconds, such
// that no two branches finish at the same instant when dispatched under limit.
// It returns the instant the last one finishes when none stops the batch.
func genPropDelays(rng *rand.Rand, branches []propBranch, limit int) time.Duration {
	span := max(3*len(branches), 40)
	for attempt := 0; ; attempt++ {
		if attempt > 0 && attempt%50 == 0 {
			span *= 2
		}
		perm := rng.Perm(span)
		for i := range branches {
			branches[i].delay = time.Duration(perm[i]+1) * time.Millisecond
		}
		all := propSimulate(branches, limit, 0, func(succeeded, failed, total int) (durable.Reason, bool) {
			return durable.ReasonAllCompleted, succeeded+failed == total
		})
		seen := make(map[time.Duration]bool, len(branches))
		distinct := true
		for i, b := range branches {
			end := all.dispatchAt[i] + b.delay
			if seen[end] {
				distinct = false
				break
			}
			seen[end] = true
		}
		if distinct {
			return all.decidedAt
		}
	}
}

// genPropLimit draws no cap (0) or a cap of 1 to 8.
func genPropLimit(rng *rand.Rand) int {
	if rng.IntN(3) == 0 {
		return 0
	}
	return 1 + rng.IntN(8)
}

// genPropDeadline draws no deadline (0), or a WithTimeout deadline between 0
// and a little after end, the instant the batch would end without one. Branches
// finish on whole milliseconds and the deadline falls half-way between two, so
// it never coincides with a finish.
func genPropDeadline(rng *rand.Rand, end time.Duration) time.Duration {
	if rng.IntN(4) != 0 {
		return 0
	}
	ms := int(end/time.Millisecond) + 2
	return time.Duration(rng.IntN(ms))*time.Millisecond + 500*time.Microsecond
}

// --- the policy ---

// propRatio is a tolerated failure ratio, as the float given to the library and
// as the exact fraction num/den the model compares with.
type propRatio struct {
	f        float64
	num, den int
}

var propRatios = []propRatio{
	{0, 0, 1}, {0.05, 1, 20}, {0.1, 1, 10}, {0.25, 1, 4}, {0.3, 3, 10},
	{0.5, 1, 2}, {0.55, 11, 20}, {0.75, 3, 4}, {0.9, 9, 10}, {1, 1, 1},
}

type propCriterionKind uint8

const (
	critAllCompleted propCriterionKind = iota
	critAllSuccessful
	critFirstSuccessful
	critMinSuccessful
	critToleratedFailures
	critToleratedFailureRatio
	numCriterionKinds
)

type propCriterion struct {
	kind propCriterionKind
	n    int
	r    propRatio
}

func (c propCriterion) completion() durable.Completion {
	switch c.kind {
	case critAllSuccessful:
		return durable.AllSuccessful()
	case critFirstSuccessful:
		return durable.FirstSuccessful()
	case critMinSuccessful:
		return durable.MinSuccessful(c.n)
	case critToleratedFailures:
		return durable.ToleratedFailures(c.n)
	case critToleratedFailureRatio:
		return durable.ToleratedFailureRatio(c.r.f)
	}
	return durable.AllCompleted()
}

func (c propCriterion) String() string {
	switch c.kind {
	case critAllSuccessful:
		return "AllSuccessful()"
	case critFirstSuccessful:
		return "FirstSuccessful()"
	case critMinSuccessful:
		return fmt.Sprintf("MinSuccessful(%d)", c.n)
	case critToleratedFailures:
		return fmt.Sprintf("ToleratedFailures(%d)", c.n)
	case critToleratedFailureRatio:
		return fmt.Sprintf("ToleratedFailureRatio(%v)", c.r.f)
	}
	return "AllCompleted()"
}

// propPolicy is Settle's completion policy: no WithCompletion at all when given
// is false, else WithCompletion(criteria...).
type propPolicy struct {
	given    bool
	criteria []propCriterion
}

func (p propPolicy) String() string {
	if !p.given {
		return "default"
	}
	s := make([]string, len(p.criteria))
	for i, c := range p.criteria {
		s[i] = c.String()
	}
	return "WithCompletion(" + strings.Join(s, ", ") + ")"
}

func (p propPolicy) options() []durable.Option {
	if !p.given {
		return nil
	}
	cs := make([]durable.Completion, len(p.criteria))
	for i, c := range p.criteria {
		cs[i] = c.completion()
	}
	return []durable.Option{durable.WithCompletion(cs...)}
}

func genPropPolicy(rng *rand.Rand, n int) propPolicy {
	if rng.IntN(6) == 0 {
		return propPolicy{}
	}
	p := propPolicy{given: true}
	for range rng.IntN(4) {
		c := propCriterion{kind: propCriterionKind(rng.IntN(int(numCriterionKinds)))}
		switch c.kind {
		case critMinSuccessful:
			c.n = 1 + rng.IntN(n+2) // above n is allowed
		case critToleratedFailures:
			c.n = rng.IntN(n + 1)
		case critToleratedFailureRatio:
			c.r = propRatios[rng.IntN(len(propRatios))]
		}
		p.criteria = append(p.criteria, c)
	}
	return p
}

// decide is the policy in the model, written from DESIGN.md: evaluated after
// each finished branch, with the counts so far. Only one count changes per
// evaluation, so at most one of "tolerance exceeded" and "minimum reached" can
// become true at once: their order below does not matter.
func (p propPolicy) decide(succeeded, failed, total int) (durable.Reason, bool) {
	exceeded, reached := false, false
	for _, c := range p.criteria {
		switch c.kind {
		case critAllSuccessful:
			exceeded = exceeded || failed > 0
		case critToleratedFailures:
			exceeded = exceeded || failed > c.n
		case critToleratedFailureRatio:
			// failed/total > num/den, in integers.
			exceeded = exceeded || failed*c.r.den > c.r.num*total
		case critFirstSuccessful:
			reached = reached || succeeded >= 1
		case critMinSuccessful:
			reached = reached || succeeded >= c.n
		}
	}
	switch {
	case exceeded:
		return durable.ReasonFailureToleranceExceeded, true
	case reached:
		return durable.ReasonMinSuccessfulReached, true
	case succeeded+failed == total:
		return durable.ReasonAllCompleted, true
	}
	return 0, false
}

// --- the model ---

type propDecide func(succeeded, failed, total int) (durable.Reason, bool)

// propSchedule is what the model says becomes of a batch.
type propSchedule struct {
	status     []durable.Status
	dispatchAt []time.Duration // -1: never dispatched
	reason     durable.Reason  // ReasonTimedOut when the deadline decided
	decider    int             // the branch whose outcome decided, or -1
	decidedAt  time.Duration
	returnAt   time.Duration // decidedAt, or later when a deaf branch was running
	peak       int           // most branches running at once
}

func (s propSchedule) count(st durable.Status) int {
	n := 0
	for _, x := range s.status {
		if x == st {
			n++
		}
	}
	return n
}

// propSimulate runs the batch sequentially: branches are dispatched in input
// order, at most limit at once (0: no limit); a branch dispatched at t finishes
// at t+delay; each finish is counted and the policy evaluated before the freed
// slot is given to the next branch, at that same instant. When the deadline
// (0: none) comes first, the batch times out then. At the decision the running
// branches are cancelled; the call returns once they have returned, which a
// deaf one does only at the end of its delay. Delays must be such that no two
// branches finish at once, and the deadline must not fall on a finish.
func propSimulate(branches []propBranch, limit int, deadline time.Duration, decide propDecide) propSchedule {
	n := len(branches)
	s := propSchedule{
		status:     make([]durable.Status, n),
		dispatchAt: make([]time.Duration, n),
		decider:    -1,
	}
	for i := range s.dispatchAt {
		s.dispatchAt[i] = -1
	}
	var (
		running           []int
		next              int
		now               time.Duration
		succeeded, failed int
	)
	fill := func() {
		for next < n && (limit == 0 || len(running) < limit) {
			s.dispatchAt[next] = now
			running = append(running, next)
			next++
		}
		s.peak = max(s.peak, len(running))
	}
	fill()
	for len(running) > 0 {
		k := 0
		for j := range running {
			if s.dispatchAt[running[j]]+branches[running[j]].delay < s.dispatchAt[running[k]]+branches[running[k]].delay {
				k = j
			}
		}
		i := running[k]
		if end := s.dispatchAt[i] + branches[i].delay; deadline > 0 && end > deadline {
			s.reason, s.decidedAt = durable.ReasonTimedOut, deadline
			break
		}
		running = append(running[:k], running[k+1:]...)
		now = s.dispatchAt[i] + branches[i].delay
		if branches[i].kind == propSucceeds {
			succeeded++
			s.status[i] = durable.StatusSucceeded
		} else {
			failed++
			s.status[i] = durable.StatusFailed
		}
		if reason, ok := decide(succeeded, failed, n); ok {
			s.reason, s.decider, s.decidedAt = reason, i, now
			break
		}
		fill()
	}
	s.returnAt = s.decidedAt
	for _, j := range running {
		s.status[j] = durable.StatusCancelled
		if branches[j].deaf {
			s.returnAt = max(s.returnAt, s.dispatchAt[j]+branches[j].delay)
		}
	}
	for i := next; i < n; i++ {
		s.status[i] = durable.StatusNotStarted
	}
	return s
}

func modelFailFast(succeeded, failed, total int) (durable.Reason, bool) {
	switch {
	case failed > 0:
		return durable.ReasonFailureToleranceExceeded, true
	case succeeded == total:
		return durable.ReasonAllCompleted, true
	}
	return 0, false
}

func modelFirstDone(succeeded, failed, total int) (durable.Reason, bool) {
	return durable.ReasonAllCompleted, succeeded+failed > 0
}

func modelFirstSuccess(succeeded, failed, total int) (durable.Reason, bool) {
	switch {
	case succeeded > 0:
		return durable.ReasonMinSuccessfulReached, true
	case failed == total:
		return durable.ReasonAllCompleted, true
	}
	return 0, false
}

// --- the probe: what the branches saw ---

// propProbe records, on the fake clock, when each branch was dispatched, how
// many ran at once, which saw their context cancelled, and which are still
// running.
type propProbe struct {
	t        *testing.T
	branches []propBranch
	limit    int
	start    time.Time

	mu        sync.Mutex
	order     []int
	at        []time.Duration
	cancelled []bool
	running   int
	peak      int
}

func newPropProbe(t *testing.T, c propCase) *propProbe {
	n := len(c.branches)
	p := &propProbe{
		t: t, branches: c.branches, limit: c.limit, start: time.Now(),
		at: make([]time.Duration, n), cancelled: make([]bool, n),
	}
	for i := range p.at {
		p.at[i] = -1
	}
	return p
}

// run is branch i: it waits for its delay or its context, whichever ends
// first, or for its delay alone when it is deaf.
func (p *propProbe) run(ctx context.Context, i int) (int, error) {
	b := p.branches[i]
	p.mu.Lock()
	assert.Equalf(p.t, time.Duration(-1), p.at[i], "branch %d dispatched twice", i)
	p.at[i] = time.Since(p.start)
	p.order = append(p.order, i)
	p.running++
	p.peak = max(p.peak, p.running)
	if p.limit > 0 {
		assert.LessOrEqualf(p.t, p.running, p.limit, "branch %d: more branches running than the cap", i)
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	}()

	if b.deaf {
		time.Sleep(b.delay)
	} else {
		timer := time.NewTimer(b.delay)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			p.mu.Lock()
			p.cancelled[i] = true
			p.mu.Unlock()
			return 0, ctx.Err()
		}
	}
	switch b.kind {
	case propFails:
		return 0, b.err
	case propPanics:
		panic(b.panicValue)
	}
	return b.value, nil
}

func (p *propProbe) steps() []durable.Step[int] {
	steps := make([]durable.Step[int], len(p.branches))
	for i, b := range p.branches {
		steps[i] = durable.NewStep(b.name, func(ctx context.Context) (int, error) { return p.run(ctx, i) })
	}
	return steps
}

// check compares what the branches saw with the model, once the call returned.
func (p *propProbe) check(t *testing.T, want propSchedule) {
	t.Helper()
	elapsed := time.Since(p.start)
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Zero(t, p.running, "branches still running after the call returned")

	// The branches dispatched at one instant run concurrently, so the order in
	// which their functions are entered is the scheduler's. Input order shows
	// across instants: the model dispatches in input order, so matching its
	// instants means each branch started no earlier than the ones before it,
	// and nothing started after the decision.
	require.Equal(t, want.dispatchAt, p.at, "dispatch instants (-1: never dispatched)")
	dispatched := 0
	for _, at := range want.dispatchAt {
		if at >= 0 {
			dispatched++
		}
	}
	require.Len(t, p.order, dispatched, "branches dispatched")
	require.Equal(t, want.peak, p.peak, "peak concurrency")
	if p.limit > 0 {
		require.LessOrEqual(t, p.peak, p.limit, "peak concurrency above the cap")
	}
	for i, st := range want.status {
		wantCancelled := st == durable.StatusCancelled && !p.branches[i].deaf
		require.Equalf(t, wantCancelled, p.cancelled[i],
			"branch %d saw its context cancelled; the model says %v", i, st)
	}
	require.Equal(t, want.returnAt, elapsed,
		"the call returned at another instant than the model's (decided at %v)", want.decidedAt)
}

// --- checks on errors ---

// checkOwnFailure checks that err is b's own failure: its error, or a
// *PanicError holding its panic value and a stack that shows the panic.
func checkOwnFailure(t *testing.T, i int, b propBranch, err error) {
	t.Helper()
	switch b.kind {
	case propFails:
		require.Truef(t, err == b.err, "branch %d: error %v, want its own %v", i, err, b.err)
	case propPanics:
		pe, ok := err.(*durable.PanicError)
		require.Truef(t, ok, "branch %d: error %T %v, want a *durable.PanicError", i, err, err)
		require.Equalf(t, b.panicValue, pe.Value, "branch %d: panic value", i)
		require.Truef(t, bytes.Contains(pe.Stack, []byte("property_test.go")),
			"branch %d: the panic's stack does not show the panicking code:\n%s", i, pe.Stack)
		if perr, ok := b.panicValue.(error); ok {
			require.ErrorIs(t, err, perr)
		}
	default:
		require.Failf(t, "a success reported as a failure", "branch %d: %v", i, err)
	}
}

// collectBranchErrors returns the *BranchError values in err's tree, outermost
// first.
func collectBranchErrors(err error) []*durable.BranchError {
	var found []*durable.BranchError
	var walk func(error)
	walk = func(err error) {
		if be, ok := err.(*durable.BranchError); ok {
			found = append(found, be)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				walk(e)
			}
		}
	}
	if err != nil {
		walk(err)
	}
	return found
}

// --- running cases ---

type propCase struct {
	seed     uint64
	branches []propBranch
	limit    int           // WithMaxConcurrency, 0: none
	deadline time.Duration // WithTimeout, 0: none
	settle   bool          // policy applies
	policy   propPolicy
}

func (c propCase) model(decide propDecide) propSchedule {
	return propSimulate(c.branches, c.limit, c.deadline, decide)
}

func (c propCase) String() string {
	var sb strings.Builder
	limit := "none"
	if c.limit > 0 {
		limit = strconv.Itoa(c.limit)
	}
	fmt.Fprintf(&sb, "seed %d: %d branches, cap %s", c.seed, len(c.branches), limit)
	if c.deadline > 0 {
		fmt.Fprintf(&sb, ", timeout %v", c.deadline)
	}
	if c.settle {
		fmt.Fprintf(&sb, ", policy %v", c.policy)
	}
	sb.WriteString("\n")
	for i, b := range c.branches {
		fmt.Fprintf(&sb, "  %2d %v\n", i, b)
	}
	return sb.String()
}

func (c propCase) options() []durable.Option {
	var opts []durable.Option
	if c.limit > 0 {
		opts = append(opts, durable.WithMaxConcurrency(c.limit))
	}
	if c.deadline > 0 {
		opts = append(opts, durable.WithTimeout(c.deadline))
	}
	return opts
}

func newPropRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

func genPropCase(seed uint64, withPolicy bool) propCase {
	rng := newPropRand(seed)
	c := propCase{seed: seed, branches: genPropBranches(rng), limit: genPropLimit(rng), settle: withPolicy}
	if withPolicy {
		c.policy = genPropPolicy(rng, len(c.branches))
	}
	end := genPropDelays(rng, c.branches, c.limit)
	c.deadline = genPropDeadline(rng, end)
	return c
}

// propCheck runs one combinator on a case and checks it against the model.
type propCheck struct {
	name  string
	check func(t *testing.T, c propCase)
}

// forEachPropCase runs every check on propertyCases random cases, each case in
// a subtest named by its seed, each check in its own synctest bubble.
func forEachPropCase(t *testing.T, base uint64, withPolicy bool, checks ...propCheck) {
	for k := range uint64(propertyCases) {
		c := genPropCase(base+k, withPolicy)
		t.Run(fmt.Sprintf("seed=%d", c.seed), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("failing case:\n%v", c)
				}
			})
			for _, cc := range checks {
				t.Run(cc.name, func(t *testing.T) {
					synctest.Test(t, func(t *testing.T) { cc.check(t, c) })
				})
			}
		})
	}
}

// --- Settle ---

func TestSettleProperty(t *testing.T) {
	forEachPropCase(t, 1_000, true, propCheck{"Settle", checkSettleCase})
}

func checkSettleCase(t *testing.T, c propCase) {
	n := len(c.branches)
	want := c.model(c.policy.decide)
	p := newPropProbe(t, c)
	opts := append(c.options(), c.policy.options()...)

	res, err := durable.Settle(t.Context(), "settle", p.steps(), opts...)
	require.NoError(t, err)
	p.check(t, want)

	require.Len(t, res.Items, n)
	var (
		wantValues []int
		wantErrs   []error
		firstFail  = -1
	)
	for i, it := range res.Items {
		b := c.branches[i]
		require.Equalf(t, i, it.Index, "item %d: Index", i)
		require.Equalf(t, b.name, it.Name, "item %d: Name", i)
		require.Equalf(t, want.status[i], it.Status, "item %d: Status", i)
		require.Falsef(t, it.Replayed, "item %d: Replayed without a journal", i)
		switch it.Status {
		case durable.StatusSucceeded:
			require.Equalf(t, b.value, it.Value, "item %d: Value", i)
			require.NoErrorf(t, it.Err, "item %d", i)
			wantValues = append(wantValues, b.value)
		case durable.StatusFailed:
			require.Zerof(t, it.Value, "item %d: Value of a failure", i)
			checkOwnFailure(t, i, b, it.Err)
			wantErrs = append(wantErrs, it.Err)
			if firstFail < 0 {
				firstFail = i
			}
		default:
			require.Zerof(t, it.Value, "item %d: Value of a %v item", i, it.Status)
			require.NoErrorf(t, it.Err, "item %d: Err of a %v item", i, it.Status)
		}
	}
	require.Equal(t, want.reason, res.Reason, "Reason")

	require.Equal(t, want.count(durable.StatusSucceeded), res.SuccessCount(), "SuccessCount")
	require.Equal(t, want.count(durable.StatusFailed), res.FailureCount(), "FailureCount")
	require.Len(t, res.Succeeded(), want.count(durable.StatusSucceeded), "Succeeded")
	require.Len(t, res.Failed(), want.count(durable.StatusFailed), "Failed")
	require.Len(t, res.Cancelled(), want.count(durable.StatusCancelled), "Cancelled")
	require.Len(t, res.NotStarted(), want.count(durable.StatusNotStarted), "NotStarted")
	require.Equal(t, n, res.SuccessCount()+res.FailureCount()+len(res.Cancelled())+len(res.NotStarted()),
		"the counts do not add up to len(Items)")
	require.Equal(t, wantValues, res.Values(), "Values")
	require.Equal(t, wantErrs, res.Errors(), "Errors")
	require.Equal(t, firstFail >= 0, res.HasFailure(), "HasFailure")
	if firstFail < 0 {
		require.NoError(t, res.Err())
	} else {
		var be *durable.BranchError
		require.ErrorAs(t, res.Err(), &be)
		require.Equal(t, firstFail, be.Index, "Err: the first failure in input order")
		require.Equal(t, c.branches[firstFail].name, be.Name)
		checkOwnFailure(t, firstFail, c.branches[firstFail], be.Err)
	}
}

// TestSettlePropertyBoundaries pins cases the model must get right on its own,
// with the expected reason written out, so that a wrong model cannot agree with
// a wrong engine.
func TestSettlePropertyBoundaries(t *testing.T) {
	// failures first, one per millisecond, then the successes.
	failingFirst := func(n, failures int) []propBranch {
		bs := make([]propBranch, n)
		for i := range bs {
			bs[i] = propBranch{name: fmt.Sprintf("b%d", i), delay: time.Duration(i+1) * time.Millisecond, value: i}
			if i < failures {
				bs[i].kind, bs[i].err = propFails, fmt.Errorf("failure %d", i)
			}
		}
		return bs
	}
	ratioOf := func(f float64) propRatio {
		for _, r := range propRatios {
			if r.f == f {
				return r
			}
		}
		panic("no such ratio")
	}
	crit := func(kind propCriterionKind, n int, r float64) propPolicy {
		c := propCriterion{kind: kind, n: n}
		if kind == critToleratedFailureRatio {
			c.r = ratioOf(r)
		}
		return propPolicy{given: true, criteria: []propCriterion{c}}
	}
	tests := []struct {
		name     string
		branches []propBranch
		limit    int
		policy   propPolicy
		reason   durable.Reason
	}{
		{"11 of 20 at 0.55", failingFirst(20, 11), 0, crit(critToleratedFailureRatio, 0, 0.55), durable.ReasonAllCompleted},
		{"12 of 20 at 0.55", failingFirst(20, 12), 0, crit(critToleratedFailureRatio, 0, 0.55), durable.ReasonFailureToleranceExceeded},
		{"3 of 10 at 0.3", failingFirst(10, 3), 0, crit(critToleratedFailureRatio, 0, 0.3), durable.ReasonAllCompleted},
		{"4 of 10 at 0.3", failingFirst(10, 4), 3, crit(critToleratedFailureRatio, 0, 0.3), durable.ReasonFailureToleranceExceeded},
		{"1 of 10 at 0", failingFirst(10, 1), 2, crit(critToleratedFailureRatio, 0, 0), durable.ReasonFailureToleranceExceeded},
		{"10 of 10 at 1", failingFirst(10, 10), 0, crit(critToleratedFailureRatio, 0, 1), durable.ReasonAllCompleted},
		{"min reached by the last branch", failingFirst(5, 4), 1, crit(critMinSuccessful, 1, 0), durable.ReasonMinSuccessfulReached},
		{"min above the number of branches", failingFirst(5, 0), 0, crit(critMinSuccessful, 6, 0), durable.ReasonAllCompleted},
		{"min alone tolerates failures", failingFirst(6, 5), 0, crit(critMinSuccessful, 2, 0), durable.ReasonAllCompleted},
		{"tolerated 2, 3 fail", failingFirst(6, 3), 2, crit(critToleratedFailures, 2, 0), durable.ReasonFailureToleranceExceeded},
		{"default policy", failingFirst(6, 6), 0, propPolicy{}, durable.ReasonAllCompleted},
	}
	for k, tt := range tests {
		require.Equal(t, tt.reason, propSimulate(tt.branches, tt.limit, 0, tt.policy.decide).reason, "%s: the model", tt.name)
		c := propCase{seed: uint64(k), branches: tt.branches, limit: tt.limit, settle: true, policy: tt.policy}
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { checkSettleCase(t, c) })
		})
	}
}

// --- Parallel and FanOut: all-successful, fail-fast ---

func TestFailFastProperty(t *testing.T) {
	forEachPropCase(t, 2_000, false,
		propCheck{"Parallel", func(t *testing.T, c propCase) {
			want := c.model(modelFailFast)
			p := newPropProbe(t, c)
			values, err := durable.Parallel(t.Context(), "parallel", p.steps(), c.options()...)
			p.check(t, want)
			checkFailFastCase(t, c, want, values, err, func(i int) string { return c.branches[i].name })
		}},
		propCheck{"FanOut", func(t *testing.T, c propCase) {
			want := c.model(modelFailFast)
			p := newPropProbe(t, c)
			items := make([]int, len(c.branches))
			for i := range items {
				items[i] = i
			}
			values, err := durable.FanOut(t.Context(), "fanout", items, func(ctx context.Context, i int) (int, error) {
				return p.run(ctx, i)
			}, c.options()...)
			p.check(t, want)
			checkFailFastCase(t, c, want, values, err, strconv.Itoa)
		}},
		propCheck{"ParallelNamed", func(t *testing.T, c propCase) {
			want := c.model(modelFailFast)
			p := newPropProbe(t, c)
			byName, err := durable.ParallelNamed(t.Context(), "named", p.steps(), c.options()...)
			p.check(t, want)
			var values []int
			if err == nil {
				require.Len(t, byName, len(c.branches))
				for _, b := range c.branches {
					v, ok := byName[b.name]
					require.Truef(t, ok, "no value for %q", b.name)
					values = append(values, v)
				}
			}
			checkFailFastCase(t, c, want, values, err, func(i int) string { return c.branches[i].name })
		}},
		propCheck{"Group", checkGroupCase},
	)
}

// checkGroupCase: a Group is fail-fast like Parallel; after Wait, a Future
// holds its branch's value when the branch succeeded before the failure, its
// own failure for the failing branch, and the group's failure otherwise.
func checkGroupCase(t *testing.T, c propCase) {
	want := c.model(modelFailFast)
	p := newPropProbe(t, c)
	g := durable.NewGroup(t.Context(), "group", c.options()...)
	futures := make([]*durable.Future[int], len(c.branches))
	for i, b := range c.branches {
		futures[i] = durable.Go(g, b.name, func(ctx context.Context) (int, error) { return p.run(ctx, i) })
	}
	err := g.Wait()
	p.check(t, want)
	var values []int
	if err == nil {
		for _, f := range futures {
			v, ferr := f.Get()
			require.NoError(t, ferr)
			values = append(values, v)
		}
	}
	checkFailFastCase(t, c, want, values, err, func(i int) string { return c.branches[i].name })
	if err == nil {
		return
	}
	for i, f := range futures {
		v, ferr := f.Get()
		switch {
		case want.status[i] == durable.StatusSucceeded:
			require.NoErrorf(t, ferr, "future %d", i)
			require.Equalf(t, c.branches[i].value, v, "future %d", i)
		case i == want.decider:
			require.Zerof(t, v, "future %d", i)
			var be *durable.BranchError
			require.ErrorAsf(t, ferr, &be, "future %d", i)
			require.Equal(t, i, be.Index)
			checkOwnFailure(t, i, c.branches[i], be.Err)
		default:
			require.Zerof(t, v, "future %d", i)
			require.ErrorIsf(t, ferr, err, "future %d (%v): the group's failure", i, want.status[i])
		}
	}
}

func checkFailFastCase(t *testing.T, c propCase, want propSchedule, values []int, err error, nameOf func(int) string) {
	t.Helper()
	if want.reason == durable.ReasonTimedOut {
		checkTimeoutErr(t, err)
		return
	}
	if want.reason == durable.ReasonAllCompleted {
		require.NoError(t, err)
		wantValues := make([]int, len(c.branches))
		for i, b := range c.branches {
			wantValues[i] = b.value
		}
		require.Equal(t, wantValues, values)
		return
	}
	require.Error(t, err)
	require.NotErrorIs(t, err, context.Canceled, "a cancellation echo instead of the cause")
	var be *durable.BranchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, want.decider, be.Index, "the failure returned is not the first to finish")
	require.Equal(t, nameOf(want.decider), be.Name)
	checkOwnFailure(t, be.Index, c.branches[be.Index], be.Err)
}

// checkTimeoutErr: after the deadline, a combinator other than Settle returns
// an error matching both ErrTimeout and context.DeadlineExceeded.
func checkTimeoutErr(t *testing.T, err error) {
	t.Helper()
	require.ErrorIs(t, err, durable.ErrTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// --- Race and Any ---

func TestRaceAnyProperty(t *testing.T) {
	forEachPropCase(t, 3_000, false,
		propCheck{"Race", checkRaceCase},
		propCheck{"Any", checkAnyCase},
	)
}

// checkRaceCase: Race returns the outcome of the first branch to finish.
func checkRaceCase(t *testing.T, c propCase) {
	want := c.model(modelFirstDone)
	p := newPropProbe(t, c)
	v, err := durable.Race(t.Context(), "race", p.steps(), c.options()...)
	p.check(t, want)
	if want.reason == durable.ReasonTimedOut {
		require.Zero(t, v)
		checkTimeoutErr(t, err)
		return
	}
	w := c.branches[want.decider]
	if w.kind == propSucceeds {
		require.NoError(t, err)
		require.Equal(t, w.value, v)
		return
	}
	require.Zero(t, v)
	var be *durable.BranchError
	require.ErrorAs(t, err, &be)
	require.Equal(t, want.decider, be.Index, "the outcome returned is not the first to finish")
	require.Equal(t, w.name, be.Name)
	checkOwnFailure(t, be.Index, w, be.Err)
}

// checkAnyCase: Any returns the first success, or, when every branch failed, an
// error from which every branch's failure is reachable.
func checkAnyCase(t *testing.T, c propCase) {
	want := c.model(modelFirstSuccess)
	p := newPropProbe(t, c)
	v, err := durable.Any(t.Context(), "any", p.steps(), c.options()...)
	p.check(t, want)
	if want.reason == durable.ReasonTimedOut {
		require.Zero(t, v)
		checkTimeoutErr(t, err)
		return
	}
	if want.reason == durable.ReasonMinSuccessfulReached {
		require.NoError(t, err)
		require.Equal(t, c.branches[want.decider].value, v, "not the first success")
		return
	}
	require.Error(t, err)
	require.Zero(t, v)
	found := make(map[int]*durable.BranchError)
	for _, be := range collectBranchErrors(err) {
		require.NotContainsf(t, found, be.Index, "branch %d reported twice", be.Index)
		found[be.Index] = be
	}
	require.Len(t, found, len(c.branches), "every branch's failure must be reachable")
	for i, b := range c.branches {
		be := found[i]
		require.NotNilf(t, be, "branch %d's failure is not reachable", i)
		require.Equal(t, b.name, be.Name)
		checkOwnFailure(t, i, b, be.Err)
		if b.kind == propFails {
			require.ErrorIs(t, err, b.err)
		}
	}
}
