package durable_test

// Divergences found by TestSimulation (simulation_test.go), each as the smallest
// deterministic program that shows it.

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// Seed 2: a Settle decided with a branch's Permanent failure reported it with
// IsPermanent on the run that decided, but not on the runs that replayed the
// decision, though doc.go promises that for "a failed branch of a final Settle,
// Race or Any ... IsPermanent holds for it as it did live". The decision's record
// of a failure kept its message, type name and sentinels, but not that it was
// Permanent.
func TestSimRegressionReplayedDecisionKeepsPermanent(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		j := newJournal()
		declined := []durable.Step[int]{durable.NewStep("charge", func(context.Context) (int, error) {
			return 0, durable.Permanent(errors.New("card declined"))
		})}
		plain := []durable.Step[int]{durable.NewStep("charge", func(context.Context) (int, error) {
			return 0, errors.New("timed out")
		})}
		for run := range 2 { // decided, then replayed
			ctx := durable.WithJournal(context.Background(), j, "e")
			res, err := durable.Settle(ctx, "settle", declined)
			require.NoError(t, err)
			require.Equal(t, durable.StatusFailed, res.Items[0].Status)
			require.Equal(t, run == 1, res.Items[0].Replayed)
			require.True(t, durable.IsPermanent(res.Items[0].Err), "run %d", run)
			require.EqualError(t, res.Items[0].Err, "card declined")

			_, err = durable.Race(ctx, "race", declined)
			require.True(t, durable.IsPermanent(err), "run %d: %v", run, err)
			_, err = durable.Any(ctx, "any", declined)
			require.True(t, durable.IsPermanent(err), "run %d: %v", run, err)

			res, err = durable.Settle(ctx, "plain", plain)
			require.NoError(t, err)
			require.False(t, durable.IsPermanent(res.Items[0].Err), "run %d", run)
		}
	})
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
