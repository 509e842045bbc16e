package durable_test

import (
	"context"
	"errors"
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
