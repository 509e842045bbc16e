package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// Stress and adversarial tests of the engine's dispatch: indices claimed from
// one atomic word with a stop bit, successes of fail-fast batches without a
// journal recorded without the batch's lock, and checkpoints that come back out
// of order handed off to whoever counts them. Most run in a synctest bubble, with
// random virtual delays, so that a batch that never finishes is reported as a
// deadlock instead of hanging, and instants can be compared exactly.

// stressCases scales the randomised tests: enough to hit the interleavings, few
// enough to keep this file's tests to a few seconds under -race.
const stressCases = 300

// stressErr is a branch's own failure.
type stressErr struct{ i int }

func (e stressErr) Error() string { return "branch " + strconv.Itoa(e.i) + " failed" }

// stressOutcome is what a branch does once its delay has passed.
type stressOutcome uint8

const (
	stressOK        stressOutcome = iota // returns its value
	stressFail                           // returns stressErr
	stressPermanent                      // returns durable.Permanent(stressErr)
	stressPanic                          // panics
	stressGoexit                         // calls runtime.Goexit
)

type stressBranch struct {
	delay    time.Duration
	outcome  stressOutcome
	stubborn bool // ignores its context
}

func (b stressBranch) String() string {
	return fmt.Sprintf("{%v %d stubborn=%v}", b.delay, b.outcome, b.stubborn)
}

func stressValue(i int) int { return 10*i + 1 }

// stressProbe watches the branches of one call: how many run at once, how often
// each ran, when each started and returned, and whether it returned its own
// outcome or its context's error.
type stressProbe struct {
	branches []stressBranch

	mu      sync.Mutex
	running int
	peak    int
	calls   []int
	start   []time.Time
	end     []time.Time
	own     []bool // returned its own outcome (not its context's error)
}

func newStressProbe(branches []stressBranch) *stressProbe {
	n := len(branches)
	return &stressProbe{branches: branches, calls: make([]int, n), start: make([]time.Time, n),
		end: make([]time.Time, n), own: make([]bool, n)}
}

func (p *stressProbe) run(ctx context.Context, i int) (int, error) {
	b := p.branches[i]
	p.mu.Lock()
	p.running++
	p.peak = max(p.peak, p.running)
	p.calls[i]++
	p.start[i] = time.Now()
	p.mu.Unlock()
	own := false
	defer func() {
		p.mu.Lock()
		p.running--
		p.end[i] = time.Now()
		p.own[i] = own
		p.mu.Unlock()
	}()
	if b.stubborn {
		time.Sleep(b.delay)
	} else if err := pause(ctx, b.delay); err != nil {
		return 0, err
	}
	own = true
	switch b.outcome {
	case stressFail:
		return 0, stressErr{i}
	case stressPermanent:
		return 0, durable.Permanent(stressErr{i})
	case stressPanic:
		panic(stressErr{i})
	case stressGoexit:
		runtime.Goexit()
	}
	return stressValue(i), nil
}

func (p *stressProbe) steps() []durable.Step[int] {
	steps := make([]durable.Step[int], len(p.branches))
	for i := range steps {
		steps[i] = durable.NewStep("s"+strconv.Itoa(i), func(ctx context.Context) (int, error) { return p.run(ctx, i) })
	}
	return steps
}

func (p *stressProbe) items() []int {
	items := make([]int, len(p.branches))
	for i := range items {
		items[i] = i
	}
	return items
}

func (p *stressProbe) fanFn(ctx context.Context, i int) (int, error) { return p.run(ctx, i) }

// ownFailure reports whether branch i ran and returned its own failure.
func (p *stressProbe) ownFailure(i int) bool {
	return p.calls[i] > 0 && p.own[i] && p.branches[i].outcome != stressOK
}

// checkCommon checks what holds for every call: the cap, at most one run per
// branch, and nothing still running once the call returned.
func (p *stressProbe) checkCommon(t *testing.T, limit int) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Zero(t, p.running, "a branch outlived the call")
	if limit > 0 {
		require.LessOrEqual(t, p.peak, limit, "more branches ran at once than the cap")
	}
	for i, c := range p.calls {
		require.LessOrEqual(t, c, 1, "branch %d ran %d times", i, c)
	}
}

func genStressBranches(rng *rand.Rand, n int, outcomes []stressOutcome, failP float64) []stressBranch {
	branches := make([]stressBranch, n)
	for i := range branches {
		b := &branches[i]
		b.delay = time.Duration(rng.IntN(6)) * time.Millisecond
		b.stubborn = rng.IntN(5) == 0
		if rng.Float64() < failP {
			b.outcome = outcomes[rng.IntN(len(outcomes))]
		}
	}
	return branches
}

func genStressLimit(rng *rand.Rand, n int) int {
	if rng.IntN(3) == 0 {
		return 0
	}
	return 1 + rng.IntN(min(n, 6))
}

// Fail-fast batches without a journal record their successes without the
// batch's lock. Whatever the interleaving of successes, failures, panics,
// Goexits, the caller's cancellation and the deadline, the call must report
// the first failure or the context's end, whichever came first, dispatch
// nothing after it, never run a branch twice, and keep to the cap.
func TestStressFailFastWithoutJournal(t *testing.T) {
	kinds := []string{"Parallel", "FanOut", "ParallelNamed"}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			for seed := range uint64(stressCases) {
				rng := rand.New(rand.NewPCG(seed, 0xfa57))
				n := 1 + rng.IntN(24)
				failP := []float64{0, 0.05, 0.2}[rng.IntN(3)]
				branches := genStressBranches(rng, n, []stressOutcome{stressFail, stressPanic, stressGoexit}, failP)
				limit := genStressLimit(rng, n)
				// The caller gives up, or the deadline passes, at a random
				// instant, often one at which branches return too.
				end := time.Duration(-1)
				timeout := rng.IntN(3) == 0
				if rng.IntN(2) == 0 {
					end = time.Duration(rng.IntN(12)) * time.Millisecond
					if timeout && end == 0 {
						end = time.Millisecond
					}
				}
				synctest.Test(t, func(t *testing.T) {
					checkFailFastStress(t, kind, branches, limit, end, timeout)
				})
				if t.Failed() {
					t.Fatalf("seed %d: n=%d limit=%d end=%v timeout=%v branches=%v", seed, n, limit, end, timeout, branches)
				}
			}
		})
	}
}

var errStressGaveUp = errors.New("stress: the caller gave up")

func checkFailFastStress(t *testing.T, kind string, branches []stressBranch, limit int, end time.Duration, timeout bool) {
	p := newStressProbe(branches)
	ctx := context.Background()
	var opts []durable.Option
	if limit > 0 {
		opts = append(opts, durable.WithMaxConcurrency(limit))
	}
	t0 := time.Now()
	switch {
	case end >= 0 && timeout:
		opts = append(opts, durable.WithTimeout(end))
	case end >= 0:
		cctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		stop := time.AfterFunc(end, func() { cancel(errStressGaveUp) })
		defer stop.Stop()
		ctx = cctx
	}
	var values []int
	var err error
	switch kind {
	case "Parallel":
		values, err = durable.Parallel(ctx, "p", p.steps(), opts...)
	case "FanOut":
		values, err = durable.FanOut(ctx, "f", p.items(), p.fanFn, opts...)
	case "ParallelNamed":
		var m map[string]int
		m, err = durable.ParallelNamed(ctx, "n", p.steps(), opts...)
		if err == nil {
			values = make([]int, len(branches))
			for i := range values {
				values[i] = m["s"+strconv.Itoa(i)]
			}
			require.Len(t, m, len(branches))
		}
	}
	p.checkCommon(t, limit)

	// What the probe saw: the first own failure, and the end of the context.
	firstFail := time.Duration(-1)
	for i := range branches {
		if p.ownFailure(i) {
			if d := p.end[i].Sub(t0); firstFail < 0 || d < firstFail {
				firstFail = d
			}
		}
	}
	stopAt := end
	if firstFail >= 0 && (stopAt < 0 || firstFail < stopAt) {
		stopAt = firstFail
	}
	if stopAt >= 0 {
		for i := range branches {
			if p.calls[i] > 0 {
				require.LessOrEqual(t, p.start[i].Sub(t0), stopAt, "branch %d dispatched after the batch ended", i)
			}
		}
	}

	var be *durable.BranchError
	switch {
	case err == nil:
		require.Equal(t, time.Duration(-1), firstFail, "a branch failed, yet the call succeeded")
		for i := range branches {
			require.Equal(t, 1, p.calls[i], "branch %d", i)
			require.True(t, p.own[i], "branch %d saw its context end, yet the call succeeded", i)
			require.Equal(t, stressValue(i), values[i], "branch %d", i)
			if end >= 0 {
				require.LessOrEqual(t, p.end[i].Sub(t0), end, "branch %d finished after the context ended", i)
			}
		}
	case errors.As(err, &be):
		require.Nil(t, values)
		require.True(t, p.ownFailure(be.Index), "reported branch %d did not fail: %v", be.Index, err)
		require.Equal(t, firstFail, p.end[be.Index].Sub(t0), "not the first failure: %v", err)
		if end >= 0 {
			require.LessOrEqual(t, firstFail, end, "the context ended before the reported failure")
		}
	default:
		require.Nil(t, values)
		require.GreaterOrEqual(t, end, time.Duration(0), "an error with no failure and no end: %v", err)
		if timeout {
			require.ErrorIs(t, err, durable.ErrTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
		} else {
			require.ErrorIs(t, err, errStressGaveUp)
		}
		if firstFail >= 0 {
			require.LessOrEqual(t, end, firstFail, "a failure came first, yet the context's end was reported")
		}
		// Unless every branch had returned its success before the end.
		all := true
		for i := range branches {
			all = all && p.calls[i] == 1 && p.own[i] && p.end[i].Sub(t0) < end
		}
		require.False(t, all, "every branch succeeded before the context ended, yet: %v", err)
	}
}

// The same, in real time on every CPU: no virtual clock to order things, so
// only what holds under any interleaving is checked. The caller's
// cancellation lands at a random point, often while successes are being
// recorded without the lock.
func TestStressFailFastRealTime(t *testing.T) {
	const rounds = 400
	for r := range rounds {
		rng := rand.New(rand.NewPCG(uint64(r), 0x7ea1))
		n := 1 + rng.IntN(32)
		limit := genStressLimit(rng, n)
		failAt := -1
		if rng.IntN(3) == 0 {
			failAt = rng.IntN(n)
		}
		var calls = make([]atomic.Int32, n)
		var running, peak atomic.Int32
		ctx, cancel := context.WithCancelCause(context.Background())
		spin := rng.IntN(200)
		fn := func(ctx context.Context, i int) (int, error) {
			calls[i].Add(1)
			r := running.Add(1)
			defer running.Add(-1)
			for {
				p := peak.Load()
				if r <= p || peak.CompareAndSwap(p, r) {
					break
				}
			}
			for range i % 4 {
				runtime.Gosched()
			}
			if i == failAt {
				return 0, stressErr{i}
			}
			return stressValue(i), nil
		}
		var opts []durable.Option
		if limit > 0 {
			opts = append(opts, durable.WithMaxConcurrency(limit))
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range spin {
				runtime.Gosched()
			}
			cancel(errStressGaveUp)
		}()
		items := make([]int, n)
		for i := range items {
			items[i] = i
		}
		values, err := durable.FanOut(ctx, "f", items, fn, opts...)
		require.Zero(t, running.Load(), "a branch outlived the call")
		<-done
		if limit > 0 {
			require.LessOrEqual(t, int(peak.Load()), limit)
		}
		for i := range calls {
			require.LessOrEqual(t, calls[i].Load(), int32(1), "branch %d ran twice", i)
		}
		var be *durable.BranchError
		switch {
		case err == nil:
			require.Equal(t, -1, failAt)
			for i := range n {
				require.Equal(t, int32(1), calls[i].Load())
				require.Equal(t, stressValue(i), values[i])
			}
		case errors.As(err, &be):
			require.Equal(t, failAt, be.Index)
			require.Equal(t, stressErr{failAt}, be.Err)
		default:
			require.ErrorIs(t, err, errStressGaveUp)
		}
	}
}

// A Settle whose policy happens to be fail-fast (AllSuccessful) reports every
// status, so it must not take the path that records successes without them:
// a branch running when the batch completed is Cancelled, not NotStarted, and
// Race and Any, without a journal, report theirs too.
func TestSettleIsNeverOnTheFastPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		steps := []durable.Step[int]{
			sleepStep("quick", time.Millisecond, 1),
			failStep[int]("fails", 2*time.Millisecond, errors.New("down")),
			sleepStep("slow", time.Hour, 3),
			sleepStep("queued", time.Millisecond, 4),
		}
		res, err := durable.Settle(context.Background(), "s", steps,
			durable.WithCompletion(durable.AllSuccessful()), durable.WithMaxConcurrency(2))
		require.NoError(t, err)
		require.Equal(t, durable.ReasonFailureToleranceExceeded, res.Reason)
		require.Equal(t, []durable.Status{durable.StatusSucceeded, durable.StatusFailed, durable.StatusCancelled, durable.StatusNotStarted},
			itemStatuses(res))
		require.Equal(t, 1, res.Items[0].Value)
	})
}

// --- journal: out-of-order checkpoints ---

// jitterJournal delays every Put by a random time, so that checkpoints come
// back in another order than the branches finished in. In a synctest bubble
// the delays are virtual.
type jitterJournal struct {
	*scanMemory
	mu   sync.Mutex
	rng  *rand.Rand
	max  int // delays are 0 .. max-1 milliseconds
	puts atomic.Int64
}

func newJitterJournal(mem *scanMemory, seed uint64, maxMillis int) *jitterJournal {
	return &jitterJournal{scanMemory: mem, rng: rand.New(rand.NewPCG(seed, 0x717)), max: maxMillis}
}

func (j *jitterJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	j.puts.Add(1)
	j.mu.Lock()
	d := time.Duration(j.rng.IntN(j.max)) * time.Millisecond
	j.mu.Unlock()
	if d > 0 {
		time.Sleep(d) // a slow write, not a cancelled one
	}
	return j.scanMemory.Put(ctx, key, value)
}

// view returns the journal the engine sees: with or without Scan, so that both
// restore paths are taken.
func (j *jitterJournal) view(scan bool) journal.Journal {
	if scan {
		return j
	}
	return jitterNoScan{j}
}

type jitterNoScan struct{ j *jitterJournal }

func (v jitterNoScan) Get(ctx context.Context, key string) ([]byte, bool, error) {
	return v.j.Get(ctx, key)
}

func (v jitterNoScan) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	return v.j.Put(ctx, key, value)
}

// withoutDecisions copies src without the journaled decisions: what a crash just
// before the decision was written would have left.
func withoutDecisions(t *testing.T, src *scanMemory) *scanMemory {
	t.Helper()
	dst := newScanMemory()
	for _, k := range src.Keys("") {
		if strings.HasSuffix(k, "/!d") {
			continue
		}
		v, ok, err := src.Get(context.Background(), k)
		require.NoError(t, err)
		require.True(t, ok)
		_, err = dst.Put(context.Background(), k, v)
		require.NoError(t, err)
	}
	return dst
}

// stressCall is the outcome of one journaled call, in a form that does not
// depend on which run produced it.
type stressCall struct {
	kind     string
	statuses []durable.Status // Settle
	reason   durable.Reason   // Settle
	value    int              // Race, Any
	values   []int            // Parallel, FanOut
	errIndex int              // the *BranchError's index, or -1
	err      error
	replayed []bool                    // Settle
	res      *durable.BatchResult[int] // Settle
}

func runStressCall(ctx context.Context, kind string, p *stressProbe, limit int, policy []durable.Completion, extra ...durable.Option) stressCall {
	opts := extra
	if limit > 0 {
		opts = append(opts, durable.WithMaxConcurrency(limit))
	}
	c := stressCall{kind: kind, errIndex: -1}
	switch kind {
	case "Settle":
		if len(policy) > 0 {
			opts = append(opts, durable.WithCompletion(policy...))
		}
		res, err := durable.Settle(ctx, "b", p.steps(), opts...)
		c.err, c.res = err, res
		if err == nil {
			c.statuses = itemStatuses(res)
			c.reason = res.Reason
			c.replayed = replayedFlags(res)
			for _, it := range res.Items {
				if it.Status == durable.StatusSucceeded && it.Value != stressValue(it.Index) {
					c.err = fmt.Errorf("item %d holds %d", it.Index, it.Value)
				}
			}
		}
	case "Parallel":
		c.values, c.err = durable.Parallel(ctx, "b", p.steps(), opts...)
	case "FanOut":
		c.values, c.err = durable.FanOut(ctx, "b", p.items(), p.fanFn, opts...)
	case "Race":
		c.value, c.err = durable.Race(ctx, "b", p.steps(), opts...)
	case "Any":
		c.value, c.err = durable.Any(ctx, "b", p.steps(), opts...)
	}
	var be *durable.BranchError
	if errors.As(c.err, &be) {
		c.errIndex = be.Index
	}
	return c
}

func genStressPolicy(rng *rand.Rand, n int) []durable.Completion {
	var cs []durable.Completion
	if rng.IntN(2) == 0 {
		cs = append(cs, durable.MinSuccessful(1+rng.IntN(n)))
	}
	if rng.IntN(3) == 0 {
		cs = append(cs, durable.ToleratedFailures(rng.IntN(3)))
	}
	return cs
}

// Checkpoints come back in random order, so outcomes are parked and handed
// off to whoever counts them. No batch may hang, run more than the cap, run a
// branch twice, or lose a success; and because outcomes are counted in the
// order of their sequence numbers, a run resumed from the journal (the decision
// lost, as in a crash just before it was written) must reach the same decision
// without running any branch again.
func TestStressJournalHandOff(t *testing.T) {
	kinds := []string{"Settle", "Parallel", "FanOut", "Race", "Any"}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			for seed := range uint64(stressCases / 2) {
				rng := rand.New(rand.NewPCG(seed, 0x10ff))
				n := 1 + rng.IntN(16)
				// Permanent failures are journaled and replayed, so the
				// decision can be compared; plain failures are not.
				branches := genStressBranches(rng, n, []stressOutcome{stressPermanent}, []float64{0, 0.2, 0.5}[rng.IntN(3)])
				limit := genStressLimit(rng, n)
				var policy []durable.Completion
				if kind == "Settle" {
					policy = genStressPolicy(rng, n)
				}
				scan := rng.IntN(2) == 0
				synctest.Test(t, func(t *testing.T) {
					mem := newScanMemory()
					j := newJitterJournal(mem, seed, 1+rng.IntN(8))
					p1 := newStressProbe(branches)
					first := runStressCall(durable.WithJournal(context.Background(), j.view(scan), "e"), kind, p1, limit, policy)
					p1.checkCommon(t, limit)
					checkStressCall(t, first, p1)

					// Resume from the journal without its decision.
					j2 := newJitterJournal(withoutDecisions(t, mem), seed+1, 1+rng.IntN(8))
					p2 := newStressProbe(branches)
					second := runStressCall(durable.WithJournal(context.Background(), j2.view(!scan), "e"), kind, p2, limit, policy)
					p2.checkCommon(t, limit)
					for i := range branches {
						if _, ok, _ := mem.Get(context.Background(), "e/b/"+durable.EscapeName(stressName(kind, i))); ok {
							require.Zero(t, p2.calls[i], "branch %d was journaled, yet ran again", i)
						}
					}
					require.Equal(t, first.errIndex, second.errIndex, "first: %v; resumed: %v", first.err, second.err)
					require.Equal(t, first.err == nil, second.err == nil, "first: %v; resumed: %v", first.err, second.err)
					switch kind {
					case "Settle":
						require.Equal(t, first.reason, second.reason)
						for i := range branches {
							s1, s2 := first.statuses[i], second.statuses[i]
							if s1 == durable.StatusSucceeded || s1 == durable.StatusFailed ||
								s2 == durable.StatusSucceeded || s2 == durable.StatusFailed {
								require.Equal(t, s1, s2, "branch %d: first %v, resumed %v", i, first.statuses, second.statuses)
							}
							if s2 == durable.StatusSucceeded {
								require.True(t, second.replayed[i], "branch %d", i)
							}
						}
					case "Race", "Any":
						require.Equal(t, first.value, second.value)
					default:
						require.Equal(t, first.values, second.values)
					}
				})
				if t.Failed() {
					t.Fatalf("seed %d: n=%d limit=%d policy=%v scan=%v branches=%v", seed, n, limit, policy, scan, branches)
				}
			}
		})
	}
}

func stressName(kind string, i int) string {
	if kind == "FanOut" {
		return strconv.Itoa(i)
	}
	return "s" + strconv.Itoa(i)
}

// checkStressCall checks a first run's result against what its branches did.
func checkStressCall(t *testing.T, c stressCall, p *stressProbe) {
	t.Helper()
	switch c.kind {
	case "Settle":
		require.NoError(t, c.err)
		for i, s := range c.statuses {
			switch s {
			case durable.StatusNotStarted:
				require.Zero(t, p.calls[i], "branch %d is NotStarted, yet ran", i)
			case durable.StatusSucceeded:
				require.True(t, p.own[i] && p.branches[i].outcome == stressOK, "branch %d", i)
			case durable.StatusFailed:
				require.True(t, p.ownFailure(i), "branch %d", i)
			case durable.StatusCancelled:
				require.Equal(t, 1, p.calls[i], "branch %d is Cancelled, yet never ran", i)
			}
		}
	case "Parallel", "FanOut":
		if c.err == nil {
			for i := range p.branches {
				require.Equal(t, stressValue(i), c.values[i])
			}
		} else {
			require.GreaterOrEqual(t, c.errIndex, 0, "%v", c.err)
			require.True(t, p.ownFailure(c.errIndex))
		}
	case "Race":
		if c.err == nil {
			require.Equal(t, 0, (c.value-1)%10)
			require.True(t, p.own[(c.value-1)/10])
		} else {
			require.True(t, p.ownFailure(c.errIndex), "%v", c.err)
		}
	case "Any":
		if c.err == nil {
			require.True(t, p.own[(c.value-1)/10])
		} else {
			for i := range p.branches {
				require.True(t, p.ownFailure(i), "Any failed, yet branch %d did not: %v", i, c.err)
			}
		}
	}
}

// With plain failures (not journaled, counted at once) mixed in, panics and
// branches that ignore their context, the hand-off must still finish every
// batch and count every outcome exactly once.
func TestStressJournalHandOffMixedOutcomes(t *testing.T) {
	for seed := range uint64(stressCases / 2) {
		rng := rand.New(rand.NewPCG(seed, 0x3173))
		n := 1 + rng.IntN(20)
		branches := genStressBranches(rng, n, []stressOutcome{stressFail, stressPermanent, stressPanic, stressGoexit}, 0.3)
		limit := genStressLimit(rng, n)
		policy := genStressPolicy(rng, n)
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			var opts []durable.Option
			if rng.IntN(3) == 0 {
				opts = append(opts, durable.WithTimeout(time.Duration(rng.IntN(10))*time.Millisecond+time.Millisecond))
			}
			j := newJitterJournal(newScanMemory(), seed, 1+rng.IntN(8))
			p := newStressProbe(branches)
			if limit > 0 {
				opts = append(opts, durable.WithMaxConcurrency(limit))
			}
			if len(policy) > 0 {
				opts = append(opts, durable.WithCompletion(policy...))
			}
			mem := j.scanMemory
			if rng.IntN(4) == 0 {
				// The caller gives up at a random instant: the Settle is then
				// not final, and the next run replays its checkpoints.
				cctx, cancel := context.WithCancelCause(ctx)
				stop := time.AfterFunc(time.Duration(rng.IntN(8))*time.Millisecond, func() { cancel(errStressGaveUp) })
				res, err := durable.Settle(durable.WithJournal(cctx, j.view(true), "e"), "b", p.steps(), opts...)
				stop.Stop()
				cancel(nil)
				p.checkCommon(t, limit)
				if err != nil {
					// The cause, or the journal's refusal of a cancelled
					// context when the decision was written.
					if !errors.Is(err, context.Canceled) {
						require.ErrorIs(t, err, errStressGaveUp)
					}
					require.Nil(t, res)
					journaled := make([]bool, n)
					for i := range journaled {
						_, journaled[i], _ = mem.Get(ctx, "e/b/s"+strconv.Itoa(i))
					}
					p2 := newStressProbe(branches)
					_, err = durable.Settle(durable.WithJournal(ctx, j.view(false), "e"), "b", p2.steps(), opts...)
					require.NoError(t, err)
					p2.checkCommon(t, limit)
					for i := range branches {
						if journaled[i] {
							require.Zero(t, p2.calls[i], "branch %d was journaled, yet ran again", i)
						}
					}
				}
				return
			}
			res, err := durable.Settle(durable.WithJournal(ctx, j.view(true), "e"), "b", p.steps(), opts...)
			require.NoError(t, err)
			p.checkCommon(t, limit)
			for i, it := range res.Items {
				switch it.Status {
				case durable.StatusNotStarted:
					require.Zero(t, p.calls[i], "branch %d", i)
				case durable.StatusSucceeded:
					require.Equal(t, stressValue(i), it.Value)
					require.True(t, p.own[i] && branches[i].outcome == stressOK, "branch %d", i)
				case durable.StatusFailed:
					require.True(t, p.ownFailure(i), "branch %d: %v", i, it.Err)
				case durable.StatusCancelled:
					require.Equal(t, 1, p.calls[i], "branch %d", i)
				}
			}
			// The same execution again is final: nothing runs.
			p2 := newStressProbe(branches)
			res2, err := durable.Settle(durable.WithJournal(ctx, j.view(false), "e"), "b", p2.steps(), opts...)
			require.NoError(t, err)
			require.Equal(t, itemStatuses(res), itemStatuses(res2))
			require.Equal(t, res.Reason, res2.Reason)
			for i := range branches {
				require.Zero(t, p2.calls[i])
			}
		})
		if t.Failed() {
			t.Fatalf("seed %d: n=%d limit=%d policy=%v branches=%v", seed, n, limit, policy, branches)
		}
	}
}

// Parked outcomes: the first branch to finish is the slowest to checkpoint, so
// the next ones park their outcomes and their workers leave. Nothing may be
// dispatched in their place until they are counted, and then the policy is
// evaluated first: here it is met, and the queued branch never starts.
func TestParkedOutcomesWaitForTheSlowCheckpoint(t *testing.T) {
	for _, scan := range []bool{false, true} {
		t.Run(fmt.Sprintf("scan=%v", scan), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var inner journal.Journal = journal.NewMemory()
				if scan {
					inner = newScanMemory()
				}
				f := newFaultJournal(inner)
				f.setLatency(5*time.Second, func(k string) bool { return k == "e/s/a" })
				branches := []stressBranch{{delay: time.Second}, {delay: 2 * time.Second}, {delay: 3 * time.Second}, {delay: time.Second}}
				p := newStressProbe(branches)
				steps := p.steps()
				for i, name := range []string{"a", "b", "c", "d"} {
					steps[i].Name = name
				}
				t0 := time.Now()
				res, err := durable.Settle(f.in(context.Background(), "e"), "s", steps,
					durable.WithMaxConcurrency(3), durable.WithCompletion(durable.MinSuccessful(2)))
				require.NoError(t, err)
				require.Equal(t, durable.ReasonMinSuccessfulReached, res.Reason)
				require.Equal(t, []durable.Status{durable.StatusSucceeded, durable.StatusSucceeded, durable.StatusCancelled, durable.StatusNotStarted},
					itemStatuses(res), "b, counted after a, reaches the minimum; c, checkpointed, comes after the decision")
				require.Zero(t, p.calls[3], "d was dispatched while a's checkpoint was pending")
				require.Equal(t, 6*time.Second, time.Since(t0))
				require.Equal(t, 1, f.okPutsOf("e/s/c"), "c's success is journaled all the same")
			})
		})
	}
}

// Once the parked outcomes are counted, each of their waiting workers is handed
// a branch, up to the cap and no further, in input order.
func TestParkedOutcomesAreReplacedUpToTheCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultJournal(newScanMemory())
		f.setLatency(5*time.Second, func(k string) bool { return k == "e/s/s0" })
		branches := make([]stressBranch, 9)
		for i := range branches {
			branches[i].delay = time.Duration(i+1) * time.Second
			if i >= 3 {
				branches[i].delay = time.Second
			}
		}
		p := newStressProbe(branches)
		t0 := time.Now()
		res, err := durable.Settle(f.in(context.Background(), "e"), "s", p.steps(), durable.WithMaxConcurrency(3))
		require.NoError(t, err)
		require.Equal(t, durable.ReasonAllCompleted, res.Reason)
		p.checkCommon(t, 3)
		require.Equal(t, 3, p.peak)
		// s0 finishes at 1s and checkpoints until 6s; s1 and s2 park at 2s
		// and 3s. At 6s all three are counted and s3, s4, s5 start together.
		for i := 3; i < 6; i++ {
			require.Equal(t, 6*time.Second, p.start[i].Sub(t0), "s%d", i)
		}
		for i := 6; i < 9; i++ {
			require.Equal(t, 7*time.Second, p.start[i].Sub(t0), "s%d", i)
		}
		require.Equal(t, 8*time.Second, time.Since(t0))
	})
}

// The last outcome of a batch parked while the only other worker is still
// checkpointing: that worker counts it and the batch ends.
func TestLastOutcomeParkedIsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultJournal(plainMemory())
		f.setLatency(5*time.Second, func(k string) bool { return k == "e/p/a" })
		got, err := durable.Parallel(f.in(context.Background(), "e"), "p", []durable.Step[string]{
			sleepStep("a", time.Second, "A"),
			sleepStep("b", 2*time.Second, "B"),
		})
		require.NoError(t, err)
		require.Equal(t, []string{"A", "B"}, got)
		r, err := durable.Race(f.in(context.Background(), "e"), "r", []durable.Step[string]{
			sleepStep("a", time.Second, "A"),
			sleepStep("b", 2*time.Second, "B"),
		})
		require.NoError(t, err)
		require.Equal(t, "A", r, "a finished first: its later checkpoint does not change the winner")
	})
}

// slowGoexitJournal exits the goroutine of a Put to the keys match accepts,
// after a delay, as a test helper calling t.FailNow inside a journal would.
type slowGoexitJournal struct {
	*journal.Memory
	match func(key string) bool
	delay time.Duration
}

func (j slowGoexitJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if j.match(key) {
		time.Sleep(j.delay)
		runtime.Goexit()
	}
	return j.Memory.Put(ctx, key, value)
}

// A checkpoint that never returns (runtime.Goexit in the journal) while
// outcomes after it are parked: they are counted, then its branch's failure,
// and the policy is evaluated before anything is dispatched for them.
func TestGoexitInCheckpointIsCountedBeforeDispatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := slowGoexitJournal{journal.NewMemory(), func(k string) bool { return k == "e/s/a" }, 2 * time.Second}
		p := newStressProbe([]stressBranch{{delay: time.Second}, {delay: 2 * time.Second}, {delay: time.Hour}, {delay: time.Second}})
		steps := p.steps()
		for i, name := range []string{"a", "b", "c", "d"} {
			steps[i].Name = name
		}
		res, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", steps,
			durable.WithMaxConcurrency(2), durable.WithCompletion(durable.ToleratedFailures(0)))
		require.NoError(t, err)
		require.Equal(t, durable.ReasonFailureToleranceExceeded, res.Reason)
		require.Equal(t, []durable.Status{durable.StatusFailed, durable.StatusSucceeded, durable.StatusNotStarted, durable.StatusNotStarted},
			itemStatuses(res))
		require.Zero(t, p.calls[2], "c was dispatched before a's failure was counted")
		require.ErrorContains(t, res.Items[0].Err, "Goexit")

		// Without a policy to stop it, the batch goes on: every branch runs
		// once and the cap holds.
		j.match = func(k string) bool { return k == "e/s2/a" }
		p = newStressProbe([]stressBranch{{delay: time.Second}, {delay: 2 * time.Second}, {delay: time.Second}, {delay: time.Second}})
		steps = p.steps()
		for i, name := range []string{"a", "b", "c", "d"} {
			steps[i].Name = name
		}
		res, err = durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s2", steps, durable.WithMaxConcurrency(2))
		require.NoError(t, err)
		require.Equal(t, []durable.Status{durable.StatusFailed, durable.StatusSucceeded, durable.StatusSucceeded, durable.StatusSucceeded},
			itemStatuses(res))
		p.checkCommon(t, 2)
	})
}

// A Goexit in the JSON encoding of one value, with outcomes parked behind it.
type goexitValue struct{ Exit bool }

func (v goexitValue) MarshalJSON() ([]byte, error) {
	if v.Exit {
		runtime.Goexit()
	}
	return []byte(`{"Exit":false}`), nil
}

func TestGoexitInEncodingWithParkedOutcomes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultJournal(plainMemory())
		// a's checkpoint (the first in sequence) is slow, so b and c park
		// behind it; then c's value cannot be encoded.
		f.setLatency(3*time.Second, func(k string) bool { return k == "e/p/a" })
		mk := func(name string, d time.Duration, exit bool) durable.Step[goexitValue] {
			return durable.NewStep(name, func(ctx context.Context) (goexitValue, error) {
				time.Sleep(d)
				return goexitValue{exit}, nil
			})
		}
		_, err := durable.Parallel(f.in(context.Background(), "e"), "p", []durable.Step[goexitValue]{
			mk("a", time.Second, false), mk("b", 2*time.Second, false), mk("c", 2*time.Second, true),
		})
		var be *durable.BranchError
		require.ErrorAs(t, err, &be)
		require.Equal(t, "c", be.Name)
	})
}

// Restored branches are skipped when claiming, whatever the cap, and a policy
// met by restored outcomes alone stops everything: the stop bit and the skip
// over restored indices agree.
func TestRestoredBranchesAndTheStopBit(t *testing.T) {
	{
		// First run: even branches succeed, odd ones fail (not journaled).
		first := make([]stressBranch, 8)
		for i := range first {
			first[i].delay = time.Duration(i%3) * time.Millisecond
			if i%2 == 1 {
				first[i].outcome = stressFail
			}
		}
		all := make([]stressBranch, 8) // everything succeeds now
		for _, tc := range []struct {
			name   string
			policy []durable.Completion
			calls  []int // the branches that run, in order
			want   []durable.Status
			reason durable.Reason
		}{
			{"AllCompleted", nil, []int{1, 3, 5, 7}, nil, durable.ReasonAllCompleted},
			{"MetByRestored", []durable.Completion{durable.MinSuccessful(4)}, nil,
				[]durable.Status{1, 4, 1, 4, 1, 4, 1, 4}, durable.ReasonMinSuccessfulReached},
			{"MetByTheFirstRun", []durable.Completion{durable.MinSuccessful(5)}, []int{1},
				[]durable.Status{1, 1, 1, 4, 1, 4, 1, 4}, durable.ReasonMinSuccessfulReached},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var opts []durable.Option
				if tc.policy != nil {
					opts = append(opts, durable.WithCompletion(tc.policy...))
				}
				// The first run, under the same policy: the head records it.
				mem := newScanMemory()
				res, err := durable.Settle(durable.WithJournal(context.Background(), mem, "e"), "b", newStressProbe(first).steps(), opts...)
				require.NoError(t, err)
				require.Equal(t, 4, res.SuccessCount())
				opts = append(opts, durable.WithMaxConcurrency(1))
				for _, scan := range []bool{false, true} {
					synctest.Test(t, func(t *testing.T) {
						j := newJitterJournal(withoutDecisions(t, mem), 1, 1)
						var order []int
						var mu sync.Mutex
						p := newStressProbe(all)
						steps := p.steps()
						for i := range steps {
							fn := steps[i].Fn
							steps[i].Fn = func(ctx context.Context) (int, error) {
								mu.Lock()
								order = append(order, i)
								mu.Unlock()
								return fn(ctx)
							}
						}
						res, err := durable.Settle(durable.WithJournal(context.Background(), j.view(scan), "e"), "b", steps, opts...)
						require.NoError(t, err)
						require.Equal(t, tc.calls, order)
						require.Equal(t, tc.reason, res.Reason)
						if tc.want != nil {
							require.Equal(t, tc.want, itemStatuses(res))
						}
						for i := 0; i < 8; i += 2 {
							require.True(t, res.Items[i].Replayed)
						}
					})
				}
			})
		}
	}
}

// --- the branch context ---

type stressKey struct{}

// A journaled branch's context carries its scope in one allocation; to
// everything else it must behave as context.WithValue would: values of the
// caller, the deadline, causes, AfterFunc and WithoutCancel.
func TestBranchContextBehavesLikeWithValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := journal.NewMemory()
		parent, cancel := context.WithCancelCause(context.WithValue(context.Background(), stressKey{}, "caller's"))
		defer cancel(nil)
		ctx := durable.WithJournal(parent, mem, "e")
		t0 := time.Now()
		var afterFired atomic.Bool
		var gotCause error
		_, err := durable.Parallel(ctx, "p", []durable.Step[int]{
			durable.NewStep("a", func(ctx context.Context) (int, error) {
				assert.Equal(t, "caller's", ctx.Value(stressKey{}))
				deadline, ok := ctx.Deadline()
				assert.True(t, ok)
				assert.Equal(t, t0.Add(time.Minute), deadline)

				// WithoutCancel keeps the scope: a step run with it is
				// journaled under this branch.
				detached := context.WithoutCancel(ctx)
				_, err := durable.NewStep("inner", func(context.Context) (int, error) { return 7, nil }).Run(detached)
				assert.NoError(t, err)

				// Children attach to the batch's cancellation directly,
				// without a goroutine watching each one.
				before := runtime.NumGoroutine()
				var children []context.CancelFunc
				for range 50 {
					_, c := context.WithCancel(ctx)
					children = append(children, c)
				}
				assert.Less(t, runtime.NumGoroutine()-before, 50, "a goroutine per child context")
				for _, c := range children {
					c()
				}
				stop := context.AfterFunc(ctx, func() { afterFired.Store(true) })
				defer stop()
				<-ctx.Done()
				gotCause = context.Cause(ctx)
				assert.ErrorIs(t, context.Cause(detached), nil)
				return 0, ctx.Err()
			}),
			durable.NewStep("b", func(ctx context.Context) (int, error) {
				time.Sleep(time.Second)
				cancel(errStressGaveUp)
				return 2, nil
			}),
		}, durable.WithTimeout(time.Minute))
		require.ErrorIs(t, err, errStressGaveUp)
		require.ErrorIs(t, gotCause, errStressGaveUp, "the cause reaches the branch through its context")
		synctest.Wait()
		require.True(t, afterFired.Load(), "AfterFunc on a branch's context")
		_, ok, err := mem.Get(context.Background(), "e/p/a/inner")
		require.NoError(t, err)
		require.True(t, ok, "the step under WithoutCancel is journaled under the branch")
	})
}

// Printing a branch's context, as a log line might, while a step in another
// goroutine uses its scope: no data race, and no internals in the text.
func TestBranchContextPrintsWithoutRace(t *testing.T) {
	ctx := durable.WithJournal(context.Background(), journal.NewMemory(), "e")
	var text string
	_, err := durable.Parallel(ctx, "p", []durable.Step[int]{durable.NewStep("a", func(ctx context.Context) (int, error) {
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range 50 {
				_, _ = durable.NewStep("s"+strconv.Itoa(i%3), func(context.Context) (int, error) { return 1, nil }).Run(ctx)
			}
		})
		for range 50 {
			text = fmt.Sprint(ctx)
		}
		wg.Wait()
		return 1, nil
	})})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(text, "context.Background"), text)
	require.NotContains(t, text, "e/p/a", "the scope's internals are not printed")
}

// --- the item digest ---

// The digest is hash/fnv's 128-bit FNV-1a of the item's JSON, also for the
// strings and integers that skip the encoder.
func TestItemDigestV1MatchesFNVOfJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	check := func(v any) {
		data, err := json.Marshal(v)
		require.NoError(t, err)
		h := fnv.New128a()
		h.Write(data)
		require.Equal(t, string(h.Sum(nil)), durable.ItemDigestV1(v), "%#v", v)
	}
	for range 2000 {
		b := make([]byte, rng.IntN(80))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(2) == 0 {
				b[i] = byte(0x20 + rng.IntN(0x60))
			}
		}
		check(string(b))
		check(rng.Int64() >> rng.IntN(64))
		check(int(rng.Int64()>>rng.IntN(64)) * (1 - 2*rng.IntN(2)))
		check(int32(rng.Int32()) * int32(1-2*rng.IntN(2)))
		check(rng.Uint64() >> rng.IntN(64))
	}
}

// With checkpoints coming back out of order, workers leave and others are
// started in their place: goroutines must stay O(cap) all the same.
func TestHandOffKeepsGoroutinesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const capN, n = 4, 3000
		j := newJitterJournal(newScanMemory(), 9, 4)
		items := make([]int, n)
		for i := range items {
			items[i] = i
		}
		base := runtime.NumGoroutine()
		var peakG, running, peakRunning atomic.Int64
		var mu sync.Mutex
		workers := make(map[string]bool) // the goroutines that ran branches
		raise := func(p *atomic.Int64, v int64) {
			for {
				cur := p.Load()
				if v <= cur || p.CompareAndSwap(cur, v) {
					return
				}
			}
		}
		got, err := durable.FanOut(durable.WithJournal(context.Background(), j, "e"), "f", items,
			func(_ context.Context, i int) (int, error) {
				raise(&peakRunning, running.Add(1))
				defer running.Add(-1)
				raise(&peakG, int64(runtime.NumGoroutine()))
				mu.Lock()
				workers[goroutineID()] = true
				mu.Unlock()
				time.Sleep(time.Duration(i%3) * time.Millisecond)
				return i, nil
			}, durable.WithMaxConcurrency(capN))
		require.NoError(t, err)
		require.Equal(t, items, got)
		require.LessOrEqual(t, peakRunning.Load(), int64(capN))
		require.LessOrEqual(t, peakG.Load(), int64(base+capN), "goroutines stay within the cap")
		// A worker whose outcome parked waits for its next branch instead of
		// leaving: the same capN goroutines run all 3,000 branches.
		require.LessOrEqual(t, len(workers), capN, "branches ran on %d goroutines", len(workers))
	})
}

// goroutineID is the number of the calling goroutine, from its stack trace.
func goroutineID() string {
	var buf [64]byte
	f := strings.Fields(string(buf[:runtime.Stack(buf[:], false)]))
	return f[1] // "goroutine N [running]:"
}
