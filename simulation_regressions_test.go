package durable_test

// Divergences found by TestSimulation (simulation_test.go), each as the smallest
// deterministic program that shows it.

import (
	"context"
	"errors"
	"testing"

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
