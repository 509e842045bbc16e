package durable_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

var (
	errCardDeclined = errors.New("card declined")
	errUnregistered = errors.New("not registered")
)

func init() { durable.RegisterErrors(errCardDeclined) }

type declineError struct{ code int }

func (e *declineError) Error() string { return fmt.Sprintf("declined with code %d", e.code) }
func (e *declineError) Unwrap() error { return errCardDeclined }

// A replayed failure keeps its identity: IsPermanent, errors.Is against a
// registered sentinel, and the type name of the innermost error that is not a
// plain wrapper.
func TestReplayedFailureKeepsItsIdentity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		typeName string
		isCard   bool
	}{
		{"wrapped with %w", fmt.Errorf("charge: %w", errCardDeclined), "*errors.errorString", true},
		{"typed", &declineError{51}, "*durable_test.declineError", true},
		{"two %w", fmt.Errorf("charge: %w, %w", errUnregistered, errCardDeclined), "*errors.errorString", true},
		{"unregistered", fmt.Errorf("x: %w", errUnregistered), "*errors.errorString", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := journal.NewMemory()
			ran := 0
			steps := []durable.Step[int]{durable.NewStep("charge", func(context.Context) (int, error) {
				ran++
				return 0, durable.Permanent(tc.err)
			})}
			check := func(err error, replayed bool) {
				require.True(t, durable.IsPermanent(err))
				require.Equal(t, tc.isCard, errors.Is(err, errCardDeclined), "errors.Is the registered sentinel")
				require.ErrorContains(t, err, tc.err.Error())
				var tn interface{ TypeName() string }
				require.True(t, errors.As(err, &tn))
				require.Equal(t, tc.typeName, tn.TypeName())
				if replayed {
					require.False(t, errors.Is(err, errUnregistered), "an unregistered sentinel is not matched on replay")
				}
			}
			_, err := durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p", steps)
			check(err, false)
			_, err = durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p", steps)
			check(err, true)
			require.Equal(t, 1, ran)

			// Failures in a Settle's decision too, permanent or not.
			plain := []durable.Step[int]{durable.NewStep("charge", func(context.Context) (int, error) { return 0, tc.err })}
			res, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", plain)
			require.NoError(t, err)
			require.Equal(t, tc.isCard, errors.Is(res.Items[0].Err, errCardDeclined))
			res, err = durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", plain)
			require.NoError(t, err)
			require.True(t, res.Items[0].Replayed)
			require.Equal(t, tc.isCard, errors.Is(res.Items[0].Err, errCardDeclined))
			require.False(t, durable.IsPermanent(res.Items[0].Err))
		})
	}
	require.False(t, durable.IsPermanent(errors.New("plain")))
	require.False(t, durable.IsPermanent(nil))
	durable.RegisterErrors(nil, errCardDeclined) // nil and twice: nothing
}

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
