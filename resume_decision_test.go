package durable_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

func statusesOf[T any](res *durable.BatchResult[T]) (st []durable.Status, replayed []bool) {
	for _, it := range res.Items {
		st = append(st, it.Status)
		replayed = append(replayed, it.Replayed)
	}
	return st, replayed
}

// A timed-out Settle is final: a branch that ignored its context and finished
// after the deadline is Cancelled, on the first run and on a resume whose
// decision was lost in a crash.
func TestTimedOutSettleResumesAsDecided(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newRecordingJournal()
		c := newRunCounter()
		steps := []durable.Step[string]{
			durable.NewStep("a", func(ctx context.Context) (string, error) {
				c.add("a")
				return "a", pause(ctx, time.Second)
			}),
			durable.NewStep("b", func(context.Context) (string, error) {
				c.add("b")
				time.Sleep(15 * time.Second)
				return "b", nil
			}),
		}
		run := func(j journal.Journal) *durable.BatchResult[string] {
			res, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", steps, durable.WithTimeout(10*time.Second))
			require.NoError(t, err)
			return res
		}
		first := run(j)
		want := []durable.Status{durable.StatusSucceeded, durable.StatusCancelled}
		st, _ := statusesOf(first)
		require.Equal(t, durable.ReasonTimedOut, first.Reason)
		require.Equal(t, want, st)
		require.Equal(t, []string{"e/s/!h", "e/s/a", "e/s/!d", "e/s/b"}, j.order(),
			"the decision is journaled at the deadline, before b's late checkpoint")

		time.Sleep(10 * time.Second)
		resumed := run(withoutDecisions(t, j.scanMemory)) // the decision lost
		st, rep := statusesOf(resumed)
		require.Equal(t, durable.ReasonTimedOut, resumed.Reason)
		require.Equal(t, want, st)
		require.Equal(t, []bool{true, false}, rep)
		require.Equal(t, 1, c.of("a"))
		require.Equal(t, 1, c.of("b"))
	})
}

// A Race decided by a failure journals its decision before it waits for the
// losers: a loser's late success, checkpointed after it, never changes it.
func TestRaceDecisionIsJournaledBeforeTheLosersReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newRecordingJournal()
		steps := []durable.Step[string]{
			durable.NewStep("a", func(context.Context) (string, error) {
				time.Sleep(2900 * time.Millisecond) // ignores its context
				return "a", nil
			}),
			durable.NewStep("d", func(context.Context) (string, error) {
				time.Sleep(950 * time.Millisecond)
				return "", errors.New("d failed")
			}),
		}
		for range 2 {
			_, err := durable.Race(durable.WithJournal(context.Background(), j, "e"), "r", steps)
			var be *durable.BranchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, "d", be.Name)
		}
		require.Equal(t, []string{"e/r/!h", "e/r/!d", "e/r/a"}, j.order())
	})
}

// On a replayed decision only restored outcomes are Replayed; Cancelled and
// NotStarted branches keep their status, and are not Replayed.
func TestReplayedDecisionKeepsCancelledAndNotStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := newScanMemory()
		steps := []durable.Step[int]{
			durable.NewStep("a", func(context.Context) (int, error) { time.Sleep(time.Second); return 1, nil }),
			durable.NewStep("b", func(ctx context.Context) (int, error) { return 0, pause(ctx, time.Hour) }),
			durable.NewStep("c", func(context.Context) (int, error) { return 3, nil }),
		}
		want := []durable.Status{durable.StatusSucceeded, durable.StatusCancelled, durable.StatusNotStarted}
		for i, replayed := range [][]bool{{false, false, false}, {true, false, false}} {
			res, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", steps,
				durable.WithCompletion(durable.FirstSuccessful()), durable.WithMaxConcurrency(2))
			require.NoError(t, err)
			st, rep := statusesOf(res)
			require.Equal(t, want, st, "run %d", i)
			require.Equal(t, replayed, rep, "run %d", i)
		}
	})
}

func TestTimedOutRaceIsNotFinal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := journal.NewMemory()
		runs := 0
		slow := durable.NewStep("slow", func(ctx context.Context) (string, error) {
			runs++
			select {
			case <-time.After(time.Minute):
				return "late", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		})
		steps := []durable.Step[string]{slow}
		_, err := durable.Race(durable.WithJournal(context.Background(), j, "e"), "r", steps, durable.WithTimeout(time.Second))
		require.ErrorIs(t, err, durable.ErrTimeout)
		// A Race that returned an error is not final: no decision is journaled,
		// and the next run asks again (and, past the durable deadline, times out
		// again without a decision).
		_, ok, err := j.Get(context.Background(), "e/r/!d")
		require.NoError(t, err)
		require.False(t, ok, "a timed-out Race journals no decision")
		_, err = durable.Race(durable.WithJournal(context.Background(), j, "e"), "r", steps, durable.WithTimeout(time.Second))
		require.ErrorIs(t, err, durable.ErrTimeout, "the deadline of the first run holds")
		require.Equal(t, 1, runs, "past the deadline nothing is dispatched")
		// With a longer timeout the Race is asked again, and now has a winner.
		v, err := durable.Race(durable.WithJournal(context.Background(), j, "e"), "r", steps, durable.WithTimeout(2*time.Minute))
		require.NoError(t, err)
		require.Equal(t, "late", v)
	})
}

// A decision committed by a run whose steps come in another order than the run
// that journaled the head replays with each status on its own branch.
func TestDecisionOfAReorderedResumeReplays(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		f := newFaultJournal(newJournal())
		c := newRunCounter()
		a := counted(c, "a", 0, "a-1", nil)
		b := counted(c, "b", 0, "", durable.Permanent(errors.New("b is gone")))

		// The first run journals the head in the order a, b, and both
		// outcomes, but dies before its decision is stored.
		f.failPuts(errInjected, func(k string) bool { return strings.HasSuffix(k, "/!d") })
		_, err := durable.Settle(f.in(t.Context(), "exec"), "s", []durable.Step[string]{a, b})
		require.ErrorIs(t, err, errInjected)
		f.clear()

		// The resumed run lists b, a: it restores both and commits the decision.
		r2, err := durable.Settle(f.in(t.Context(), "exec"), "s", []durable.Step[string]{b, a})
		require.NoError(t, err)
		require.Equal(t, []durable.Status{durable.StatusFailed, durable.StatusSucceeded}, itemStatuses(r2))

		// Replaying that decision, in the same order, gives the same result.
		r3, err := durable.Settle(f.in(t.Context(), "exec"), "s", []durable.Step[string]{b, a})
		require.NoError(t, err)
		require.Equal(t, viewItems(r2), viewItems(r3))

		// And in the head's order.
		r4, err := durable.Settle(f.in(t.Context(), "exec"), "s", []durable.Step[string]{a, b})
		require.NoError(t, err)
		require.Equal(t, []durable.Status{durable.StatusSucceeded, durable.StatusFailed}, itemStatuses(r4))
		require.Equal(t, []string{"a-1"}, r4.Values())
		require.Equal(t, 1, c.of("a"))
		require.Equal(t, 1, c.of("b"))
	})
	t.Run("Race", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFaultJournal(plainMemory())
			c := newRunCounter()
			x := counted(c, "x", time.Second, "x-1", nil)
			y := counted(c, "y", 2*time.Second, "y-1", nil)
			z := counted(c, "z", 3*time.Second, "z-1", nil)
			f.failPuts(errInjected, func(k string) bool { return strings.HasSuffix(k, "/!d") })
			_, err := durable.Race(f.in(t.Context(), "exec"), "r", []durable.Step[string]{x, y, z})
			require.ErrorIs(t, err, errInjected)
			f.clear()
			v, err := durable.Race(f.in(t.Context(), "exec"), "r", []durable.Step[string]{z, y, x})
			require.NoError(t, err)
			require.Equal(t, "x-1", v)
			v, err = durable.Race(f.in(t.Context(), "exec"), "r", []durable.Step[string]{z, y, x})
			require.NoError(t, err)
			require.Equal(t, "x-1", v, "the replayed Race returned another branch as the winner")
			require.Equal(t, 1, c.of("x"))
		})
	})
}

// A batch too large for its head to keep its names cannot map a decision made
// in another order: a resumed run that lists its branches in another order fails
// closed instead of journaling statuses that a later run would give to the
// wrong branches.
func TestDecisionOfAHugeReorderedResume(t *testing.T) {
	const n = 5000
	f := newFaultJournal(plainMemory())
	steps := make([]durable.Step[int], n)
	for i := range steps {
		steps[i] = durable.NewStep(strconv.Itoa(i), func(context.Context) (int, error) {
			if i%2 == 1 {
				return 0, durable.Permanent(fmt.Errorf("%d is odd", i))
			}
			return i, nil
		})
	}
	reversed := make([]durable.Step[int], n)
	for i, s := range steps {
		reversed[n-1-i] = s
	}
	f.failPuts(errInjected, func(k string) bool { return strings.HasSuffix(k, "/!d") })
	_, err := durable.Settle(f.in(t.Context(), "exec"), "s", steps)
	require.ErrorIs(t, err, errInjected)
	f.clear()

	_, err = durable.Settle(f.in(t.Context(), "exec"), "s", reversed)
	require.ErrorIs(t, err, durable.ErrNondeterministic)

	res, err := durable.Settle(f.in(t.Context(), "exec"), "s", steps)
	require.NoError(t, err)
	for i, it := range res.Items {
		want := durable.StatusSucceeded
		if i%2 == 1 {
			want = durable.StatusFailed
		}
		require.Equal(t, want, it.Status, "item %d", i)
	}
}

// A decision record that decodes but names no winner for a Race or an Any that
// has one is a corrupt entry: an error naming the key, not a panic.
func TestCorruptWinnerIsAnError(t *testing.T) {
	src := newScanMemory()
	ctx := durable.WithJournal(t.Context(), src, "exec")
	steps := []durable.Step[int]{
		durable.NewStep("a", func(context.Context) (int, error) { return 1, nil }),
		durable.NewStep("b", func(context.Context) (int, error) { return 2, nil }),
	}
	_, err := durable.Race(ctx, "r", steps, durable.WithMaxConcurrency(1))
	require.NoError(t, err)
	_, err = durable.Any(ctx, "y", steps, durable.WithMaxConcurrency(1))
	require.NoError(t, err)

	// version 1, a decision, reason MIN_SUCCESSFUL_REACHED, no winner (0 is
	// winner+1), two statuses, no failures.
	noWinner := []byte{1, 'd', byte(durable.ReasonMinSuccessfulReached), 0, 2,
		byte(durable.StatusSucceeded), byte(durable.StatusNotStarted), 0}
	// The same, with the winner (b) never having run.
	idleWinner := []byte{1, 'd', byte(durable.ReasonMinSuccessfulReached), 2, 2,
		byte(durable.StatusSucceeded), byte(durable.StatusNotStarted), 0}
	for _, bad := range []struct {
		name  string
		value []byte
	}{{"NoWinner", noWinner}, {"IdleWinner", idleWinner}} {
		for _, kind := range []struct {
			name string
			key  string
			run  func(ctx context.Context) error
		}{
			{"Race", "exec/r/!d", func(ctx context.Context) error { _, err := durable.Race(ctx, "r", steps); return err }},
			{"Any", "exec/y/!d", func(ctx context.Context) error { _, err := durable.Any(ctx, "y", steps); return err }},
		} {
			t.Run(kind.name+"/"+bad.name, func(t *testing.T) {
				j := copyJournal(t, src, map[string][]byte{kind.key: bad.value})
				var err error
				require.NotPanics(t, func() { err = kind.run(durable.WithJournal(t.Context(), j, "exec")) })
				require.Error(t, err)
				require.Contains(t, err.Error(), strconv.Quote(kind.key))
			})
		}
	}
}

// plantingJournal stores planted values under their keys just before the first
// Put to any of them, as another worker's earlier write would.
type plantingJournal struct {
	*journal.Memory
	plant map[string][]byte
}

func (j plantingJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if v, ok := j.plant[key]; ok {
		if _, err := j.Memory.Put(ctx, key, v); err != nil {
			return nil, err
		}
	}
	return j.Memory.Put(ctx, key, value)
}

func TestLosingTheDecisionWriteKeepsReplayedHonest(t *testing.T) {
	steps := func(tag string) []durable.Step[string] {
		return []durable.Step[string]{
			durable.NewStep("a", func(context.Context) (string, error) { return "a-" + tag, nil }),
			durable.NewStep("b", func(context.Context) (string, error) { return "", errors.New("b failed in " + tag) }),
		}
	}
	// Worker A's whole run, in a journal of its own: its decision is planted
	// in B's journal the moment B writes its own.
	other := journal.NewMemory()
	_, err := durable.Settle(durable.WithJournal(context.Background(), other, "e"), "s", steps("A"))
	require.NoError(t, err)
	decision, ok, err := other.Get(context.Background(), "e/s/!d")
	require.NoError(t, err)
	require.True(t, ok)

	j := plantingJournal{Memory: journal.NewMemory(), plant: map[string][]byte{"e/s/!d": decision}}
	res, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", steps("B"))
	require.NoError(t, err)
	require.Equal(t, "a-B", res.Items[0].Value, "the value B journaled first")
	require.EqualError(t, res.Items[1].Err, "b failed in A", "A's decision won: its failure is the one reported")
	for _, it := range res.Items {
		require.False(t, it.Replayed, "%s: B ran its Fn, so its outcome is not a replay", it.Name)
	}
	res, err = durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", steps("C"))
	require.NoError(t, err)
	for _, it := range res.Items {
		require.True(t, it.Replayed, it.Name)
	}
}

// Seed 6: a Settle with a timeout whose branch ignored its context and finished
// after the deadline, and whose decision could not be written, returned at once,
// with Reason(0) and no error, when resumed before its journaled deadline — as a
// worker whose clock is behind the one that stored the branch would be — instead of
// waiting for the deadline and timing out, as the run that stored the branch did.
// Restore marks such a branch running, so no worker ran it, and the batch was
// left undecided once the workers were gone.
func TestSimRegressionSettleResumedBeforeItsDeadline(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		fj := newFaultJournal(newJournal())
		steps := []durable.Step[int]{durable.NewStep("late", func(context.Context) (int, error) {
			time.Sleep(4 * time.Millisecond) // past the deadline, whatever the context says
			return 1, nil
		})}
		settle := func() (*durable.BatchResult[int], error) {
			return durable.Settle(fj.in(context.Background(), "e"), "s", steps, durable.WithTimeout(2*time.Millisecond))
		}
		// Each run is a bubble of its own, whose clock starts at the same
		// instant: the second run starts before the deadline the first one
		// journaled.
		fj.failPuts(errInjected, func(key string) bool { return strings.HasSuffix(key, "/!d") })
		synctest.Test(t, func(t *testing.T) {
			_, err := settle()
			require.ErrorIs(t, err, errInjected)
		})
		fj.clear()
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			res, err := settle()
			require.NoError(t, err)
			require.Equal(t, durable.ReasonTimedOut, res.Reason)
			require.Equal(t, durable.StatusCancelled, res.Items[0].Status)
			require.Equal(t, 2*time.Millisecond, time.Since(start), "it returns at the journaled deadline")
		})
		synctest.Test(t, func(t *testing.T) {
			res, err := settle()
			require.NoError(t, err)
			require.Equal(t, durable.ReasonTimedOut, res.Reason, "the decision is journaled")
		})
	})
}
