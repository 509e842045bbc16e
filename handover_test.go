package durable_test

import (
	"context"
	"errors"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// hoJournal is a journal whose Puts of branch records (keys "e/b/<name>")
// misbehave per key, decided by a hash of the key and a seed: a virtual delay
// (respecting the context or not), then a success, an error, or a Goexit.
type hoJournal struct {
	*scanMemory
	seed    uint64
	maxMs   int
	pGoexit int // per mille
	pErr    int // per mille
}

var errHOPut = errors.New("handover: injected Put failure")

func (j *hoJournal) roll(key string, salt string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(strconv.FormatUint(j.seed, 10) + "/" + salt + "/" + key))
	return h.Sum64()
}

func (j *hoJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	seg, ok := strings.CutPrefix(key, "e/b/")
	if !ok || strings.ContainsAny(seg, "/!") {
		return j.scanMemory.Put(ctx, key, value)
	}
	d := time.Duration(j.roll(key, "d")%uint64(j.maxMs)) * time.Millisecond
	honour := j.roll(key, "c")%2 == 0
	act := int(j.roll(key, "a") % 1000)
	if d > 0 {
		if honour {
			if err := pause(ctx, d); err != nil {
				return nil, err
			}
		} else {
			time.Sleep(d)
		}
	}
	switch {
	case act < j.pGoexit:
		runtime.Goexit()
	case act < j.pGoexit+j.pErr:
		return nil, errHOPut
	}
	return j.scanMemory.Put(ctx, key, value)
}

// hoRandomCases is the number of random cases per combinator kind.
const hoRandomCases = 120

// Hunts for hangs, lost or doubled counts and cap overruns in the hand-over
// with checkpoints that come back out of order, fail, or never return, with
// caps wide enough to grow the reorder ring past its first size, and a
// caller that may give up or a deadline that may pass meanwhile.
func TestHandoverRandom(t *testing.T) {
	kinds := []string{"Settle", "Parallel", "FanOut", "Race", "Any"}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			for seed := range uint64(hoRandomCases) {
				rng := rand.New(rand.NewPCG(seed, 0xb0b))
				n := 1 + rng.IntN(60)
				branches := genStressBranches(rng, n,
					[]stressOutcome{stressFail, stressPermanent, stressPanic, stressGoexit},
					[]float64{0, 0.1, 0.3}[rng.IntN(3)])
				limit := 0
				if rng.IntN(4) != 0 {
					limit = 1 + rng.IntN(n)
				}
				var policy []durable.Completion
				minK, tolF := 0, -1
				if kind == "Settle" {
					if rng.IntN(2) == 0 {
						minK = 1 + rng.IntN(n)
						policy = append(policy, durable.MinSuccessful(minK))
					}
					if rng.IntN(3) == 0 {
						tolF = rng.IntN(3)
						policy = append(policy, durable.ToleratedFailures(tolF))
					}
				}
				pG := []int{0, 0, 50, 200}[rng.IntN(4)]
				pE := []int{0, 0, 30, 150}[rng.IntN(4)]
				maxMs := 1 + rng.IntN(30)
				cancelAt := time.Duration(-1)
				if rng.IntN(4) == 0 {
					cancelAt = time.Duration(rng.IntN(20)) * time.Millisecond
				}
				timeout := time.Duration(0)
				if rng.IntN(4) == 0 {
					timeout = time.Duration(1+rng.IntN(20)) * time.Millisecond
				}
				synctest.Test(t, func(t *testing.T) {
					mem := newScanMemory()
					for run := range 2 {
						j := &hoJournal{scanMemory: mem, seed: seed*2 + uint64(run), maxMs: maxMs, pGoexit: pG, pErr: pE}
						ctx, cancel := context.WithCancelCause(context.Background())
						if cancelAt >= 0 {
							stop := time.AfterFunc(cancelAt, func() { cancel(errStressGaveUp) })
							defer stop.Stop()
						}
						journaled := make([]bool, n)
						for i := range journaled {
							_, journaled[i], _ = mem.Get(context.Background(), "e/b/"+durable.EscapeName(stressName(kind, i)))
						}
						p := newStressProbe(branches)
						var opts []durable.Option
						if timeout > 0 {
							opts = append(opts, durable.WithTimeout(timeout))
						}
						c := runStressCall(durable.WithJournal(ctx, j, "e"), kind, p, limit, policy, opts...)
						cancel(nil)
						p.checkCommon(t, limit)
						for i := range journaled {
							if journaled[i] {
								require.Zero(t, p.calls[i], "branch %d was journaled, yet ran again", i)
							}
						}
						if c.res != nil { // Settle returned a result
							hoCheckSettle(t, c, p, minK, tolF)
						}
						if kind == "Parallel" || kind == "FanOut" {
							if c.err == nil {
								for i := range branches {
									require.Equal(t, stressValue(i), c.values[i])
								}
							}
						}
						if t.Failed() {
							return
						}
						mem = withoutDecisions(t, mem)
					}
				})
				if t.Failed() {
					t.Fatalf("seed %d: n=%d limit=%d policy=%v pG=%d pE=%d maxMs=%d cancelAt=%v timeout=%v branches=%v",
						seed, n, limit, policy, pG, pE, maxMs, cancelAt, timeout, branches)
				}
			}
		})
	}
}

// hoCheckSettle checks that every outcome was counted once, and none after
// the decision: the counts agree with the reason.
func hoCheckSettle(t *testing.T, c stressCall, p *stressProbe, minK, tolF int) {
	t.Helper()
	res := c.res
	succ, fail := 0, 0
	for i, it := range res.Items {
		switch it.Status {
		case durable.StatusSucceeded:
			succ++
			require.Equal(t, stressValue(i), it.Value, "branch %d", i)
		case durable.StatusFailed:
			fail++
		case durable.StatusNotStarted:
			if !it.Replayed {
				require.Zero(t, p.calls[i], "branch %d is NotStarted, yet ran", i)
			}
		case durable.StatusCancelled:
		default:
			t.Fatalf("branch %d: status %v", i, it.Status)
		}
	}
	switch res.Reason {
	case durable.ReasonAllCompleted:
		require.Equal(t, len(res.Items), succ+fail, "all completed, yet %v", itemStatuses(res))
	case durable.ReasonMinSuccessfulReached:
		require.Equal(t, minK, succ, "%v", itemStatuses(res))
	case durable.ReasonFailureToleranceExceeded:
		require.Equal(t, tolF+1, fail, "%v", itemStatuses(res))
	}
}

// hoSlowJournal delays the Put of one key by delay (ignoring the context),
// then fails it with err, or stores it when err is nil.
type hoSlowJournal struct {
	*journal.Memory
	key   string
	delay time.Duration
	err   error
}

func (j hoSlowJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if key == j.key {
		time.Sleep(j.delay)
		if j.err != nil {
			return nil, j.err
		}
	}
	return j.Memory.Put(ctx, key, value)
}

// hoSteps names the probe's steps a, b, c, ...
func hoSteps(p *stressProbe) []durable.Step[int] {
	steps := p.steps()
	for i := range steps {
		steps[i].Name = string(rune('a' + i))
	}
	return steps
}

// The first checkpoint in sequence fails in the journal while the workers of
// the outcomes after it wait for their next branch: they are counted and told
// to leave, nothing more is dispatched, and the call returns the journal's
// error as soon as the failing Put returns.
func TestHandoverJournalErrorWhileWorkersWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := hoSlowJournal{Memory: journal.NewMemory(), key: "e/p/a", delay: 5 * time.Second, err: errInjected}
		// a finishes at 1s and checkpoints until 6s; b and c park at 2s and
		// 3s, with d still to claim: their workers wait.
		p := newStressProbe([]stressBranch{{delay: time.Second}, {delay: 2 * time.Second}, {delay: 3 * time.Second}, {delay: time.Second}})
		t0 := time.Now()
		_, err := durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p", hoSteps(p), durable.WithMaxConcurrency(3))
		var be *durable.BranchError
		require.ErrorAs(t, err, &be)
		require.Equal(t, "a", be.Name)
		require.ErrorIs(t, err, errInjected)
		require.Equal(t, 6*time.Second, time.Since(t0), "the call waits for nothing after the failing Put")
		require.Zero(t, p.calls[3], "d was dispatched after the journal failed")
		p.checkCommon(t, 3)
		for _, k := range []string{"e/p/b", "e/p/c"} {
			_, ok, err := j.Get(context.Background(), k)
			require.NoError(t, err)
			require.True(t, ok, "%s was checkpointed", k)
		}
	})
}

// The caller gives up while workers wait behind a slow checkpoint. A journal
// that honours the context ends the checkpoint at once; one that ignores it
// ends it later, and the end of the context is noticed when it is counted.
// Either way the waiting workers are released and nothing more starts.
func TestHandoverCallerGivesUpWhileWorkersWait(t *testing.T) {
	for _, honour := range []bool{true, false} {
		t.Run("honours="+strconv.FormatBool(honour), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var jn journal.Journal = hoSlowJournal{Memory: journal.NewMemory(), key: "e/s/a", delay: 5 * time.Second}
				want := 6 * time.Second
				if honour {
					f := newFaultJournal(plainMemory())
					f.setLatency(5*time.Second, func(k string) bool { return k == "e/s/a" })
					jn = f.journal()
					want = 4 * time.Second
				}
				ctx, cancel := context.WithCancelCause(context.Background())
				defer cancel(nil)
				stop := time.AfterFunc(4*time.Second, func() { cancel(errStressGaveUp) })
				defer stop.Stop()
				p := newStressProbe([]stressBranch{{delay: time.Second}, {delay: 2 * time.Second}, {delay: 3 * time.Second}, {delay: time.Second}})
				t0 := time.Now()
				res, err := durable.Settle(durable.WithJournal(ctx, jn, "e"), "s", hoSteps(p), durable.WithMaxConcurrency(3))
				require.ErrorIs(t, err, errStressGaveUp)
				require.Nil(t, res)
				require.Equal(t, want, time.Since(t0))
				require.Zero(t, p.calls[3], "d was dispatched after the caller gave up")
				p.checkCommon(t, 3)
			})
		})
	}
}

// A checkpoint that never returns (Goexit in the journal) while the outcomes
// of 19 other workers are parked behind it, more than the reorder ring's first
// size: its exit counts them all, hands each waiting worker a branch, starts
// one in its own place, and the cap holds.
func TestHandoverGoexitInCheckpointWithManyWaiting(t *testing.T) {
	const capN, n = 20, 40
	branches := make([]stressBranch, n)
	for i := range branches {
		branches[i].delay = time.Second
		if i > 0 && i < capN {
			branches[i].delay = 2 * time.Second
		}
	}
	t.Run("AllCompleted", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := slowGoexitJournal{journal.NewMemory(), func(k string) bool { return k == "e/s/s0" }, 10 * time.Second}
			p := newStressProbe(branches)
			t0 := time.Now()
			res, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", p.steps(), durable.WithMaxConcurrency(capN))
			require.NoError(t, err)
			require.Equal(t, durable.ReasonAllCompleted, res.Reason)
			require.Equal(t, durable.StatusFailed, res.Items[0].Status)
			require.ErrorContains(t, res.Items[0].Err, "Goexit")
			for i := 1; i < n; i++ {
				require.Equal(t, durable.StatusSucceeded, res.Items[i].Status, "s%d", i)
				require.Equal(t, stressValue(i), res.Items[i].Value)
			}
			p.checkCommon(t, capN)
			require.Equal(t, capN, p.peak)
			for i := capN; i < n; i++ {
				require.Equal(t, 11*time.Second, p.start[i].Sub(t0), "s%d starts when s0's checkpoint exits", i)
			}
			require.Equal(t, 12*time.Second, time.Since(t0))
		})
	})
	// The parked outcomes meet the policy as they are counted: every waiting
	// worker is told to leave and nothing more starts.
	t.Run("DecidedWhileDraining", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := slowGoexitJournal{journal.NewMemory(), func(k string) bool { return k == "e/s/s0" }, 10 * time.Second}
			p := newStressProbe(branches)
			res, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", p.steps(),
				durable.WithMaxConcurrency(capN), durable.WithCompletion(durable.MinSuccessful(5)))
			require.NoError(t, err)
			require.Equal(t, durable.ReasonMinSuccessfulReached, res.Reason)
			// s1 to s19 park at the same instant, in any order of sequence:
			// the first five counted succeed, the others come after the
			// decision, and so does s0's Goexit.
			succeeded := 0
			for i, st := range itemStatuses(res) {
				switch {
				case i >= 1 && i < capN && st == durable.StatusSucceeded:
					succeeded++
				case i < capN:
					require.Equal(t, durable.StatusCancelled, st, "s%d", i)
				default:
					require.Equal(t, durable.StatusNotStarted, st, "s%d", i)
				}
			}
			require.Equal(t, 5, succeeded, "%v", itemStatuses(res))
			for i := capN; i < n; i++ {
				require.Zero(t, p.calls[i], "s%d", i)
			}
			p.checkCommon(t, capN)
		})
	})
}

// goexitJournal calls runtime.Goexit in Put for the keys match accepts.
type goexitJournal struct {
	*journal.Memory
	match func(key string) bool
}

func (j goexitJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if j.match(key) {
		runtime.Goexit()
	}
	return j.Memory.Put(ctx, key, value)
}

// A checkpoint that never returns to the engine (here the journal's Put exits
// its goroutine) fails its branch; the workers counting after it in sequence do
// not wait for it forever.
func TestCheckpointGoexitDoesNotBlockTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := goexitJournal{journal.NewMemory(), func(k string) bool { return strings.HasSuffix(k, "/a") }}
		ctx := durable.WithJournal(t.Context(), j, "exec")
		_, err := durable.Parallel(ctx, "p", []durable.Step[string]{
			sleepStep("a", time.Second, "a"),
			sleepStep("b", 2*time.Second, "b"),
			sleepStep("c", 3*time.Second, "c"),
		})
		var be *durable.BranchError
		require.ErrorAs(t, err, &be)
		require.Equal(t, "a", be.Name)

		res, err := durable.Settle(ctx, "s", []durable.Step[string]{
			sleepStep("a", time.Second, "a"),
			sleepStep("b", 2*time.Second, "b"),
		})
		require.NoError(t, err)
		require.Equal(t, []durable.Status{durable.StatusFailed, durable.StatusSucceeded}, itemStatuses(res))
	})
}

// A parked outcome whose worker has nothing left to claim: the worker leaves
// at once instead of waiting to be handed nothing, and the outcome is still
// counted, in sequence, when the checkpoint before it returns.
func TestHandoverWorkerLeavesWhenAllClaimed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFaultJournal(plainMemory())
		f.setLatency(5*time.Second, func(k string) bool { return k == "e/r/a" })
		var got string
		var err error
		done := make(chan struct{})
		go func() {
			defer close(done)
			got, err = durable.Race(f.in(context.Background(), "e"), "r", []durable.Step[string]{
				sleepStep("a", time.Second, "A"),
				sleepStep("b", 2*time.Second, "B"),
			})
		}()
		time.Sleep(3 * time.Second)
		synctest.Wait()
		// Counted by their stacks: goroutines outside the bubble come and go.
		during := simGoroutines()
		<-done
		// At 3s: the caller's goroutine and a's worker, in its checkpoint;
		// b's worker has left.
		require.Len(t, during, 2, "b's worker waits to be handed nothing: %v", slices.Collect(maps.Values(during)))
		require.NoError(t, err)
		require.Equal(t, "A", got, "b's parked outcome is counted after a's")
		require.Equal(t, 1, f.okPutsOf("e/r/b"))
	})
}

// On resume, the branch handed to a waiting worker skips the restored ones,
// as the caller's dispatch does.
func TestHandoverSkipsRestoredBranches(t *testing.T) {
	// First run: b, d and f succeed and are journaled; the others fail (not
	// journaled).
	first := make([]stressBranch, 7)
	for i := range first {
		if i%2 == 0 {
			first[i].outcome = stressFail
		}
	}
	mem := newScanMemory()
	res, err := durable.Settle(durable.WithJournal(context.Background(), mem, "e"), "s", hoSteps(newStressProbe(first)))
	require.NoError(t, err)
	require.Equal(t, 3, res.SuccessCount())
	synctest.Test(t, func(t *testing.T) {
		j := hoSlowJournal{Memory: withoutDecisions(t, mem).Memory, key: "e/s/a", delay: 5 * time.Second}
		// a checkpoints from 1s to 6s; c parks at 2s and waits. At 6s
		// a's worker claims e (d restored), and c's is handed g (f
		// restored).
		p := newStressProbe([]stressBranch{{delay: time.Second}, {}, {delay: 2 * time.Second}, {}, {delay: time.Second}, {}, {delay: time.Second}})
		t0 := time.Now()
		res, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", hoSteps(p), durable.WithMaxConcurrency(2))
		require.NoError(t, err)
		require.Equal(t, durable.ReasonAllCompleted, res.Reason)
		for i, it := range res.Items {
			require.Equal(t, durable.StatusSucceeded, it.Status, "%s", it.Name)
			require.Equal(t, i%2 == 1, it.Replayed, "%s", it.Name)
			require.Equal(t, i%2 == 0, p.calls[i] == 1, "%s", it.Name)
		}
		p.checkCommon(t, 2)
		require.Equal(t, 6*time.Second, p.start[4].Sub(t0))
		require.Equal(t, 6*time.Second, p.start[6].Sub(t0))
		require.Equal(t, 7*time.Second, time.Since(t0))
	})
}
