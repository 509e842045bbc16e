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

var errShutdown = errors.New("shutting down")

// The caller's cancellation cause comes back with a journal as without one,
// whether the context ended before the call or during it.
func TestCallerCauseWithAJournal(t *testing.T) {
	steps := []durable.Step[int]{durable.NewStep("a", func(ctx context.Context) (int, error) {
		return 0, pause(ctx, time.Hour)
	})}
	for _, before := range []bool{true, false} {
		for _, journaled := range []bool{false, true} {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancelCause(context.Background())
				if before {
					cancel(errShutdown)
				} else {
					time.AfterFunc(time.Second, func() { cancel(errShutdown) })
				}
				if journaled {
					ctx = durable.WithJournal(ctx, journal.NewMemory(), "e")
				}
				_, err := durable.Parallel(ctx, "p", steps)
				require.ErrorIs(t, err, errShutdown, "before=%v journaled=%v", before, journaled)
				_, err = durable.Settle(ctx, "s", steps)
				require.ErrorIs(t, err, errShutdown, "before=%v journaled=%v", before, journaled)
				g := durable.NewGroup(ctx, "g")
				durable.Go(g, "a", steps[0].Fn)
				require.ErrorIs(t, g.Wait(), errShutdown, "before=%v journaled=%v", before, journaled)
				cancel(nil)
			})
		}
	}
}

// A Settle that has decided keeps its decision when the caller cancels while
// it waits for a loser: the decision was journaled when it was made.
func TestDecidedSettleSurvivesTheCallersCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := journal.NewMemory()
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		time.AfterFunc(2*time.Second, func() { cancel(errShutdown) })
		steps := []durable.Step[int]{
			durable.NewStep("a", func(context.Context) (int, error) { time.Sleep(time.Second); return 1, nil }),
			durable.NewStep("b", func(context.Context) (int, error) { time.Sleep(3 * time.Second); return 2, nil }),
		}
		res, err := durable.Settle(durable.WithJournal(ctx, j, "e"), "s", steps, durable.WithCompletion(durable.FirstSuccessful()))
		require.NoError(t, err)
		require.Equal(t, durable.ReasonMinSuccessfulReached, res.Reason)
		again, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", steps, durable.WithCompletion(durable.FirstSuccessful()))
		require.NoError(t, err)
		require.Equal(t, res.Reason, again.Reason)
		require.True(t, again.Items[0].Replayed)
		require.Equal(t, durable.StatusCancelled, again.Items[1].Status)
	})
}

// A branch cancelled because its batch completed sees ErrBatchCompleted as
// its context's cause.
func TestLosersCauseIsErrBatchCompleted(t *testing.T) {
	for _, journaled := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			if journaled {
				ctx = durable.WithJournal(ctx, journal.NewMemory(), "e")
			}
			causes := make(chan error, 2)
			started := make(chan struct{}, 2)
			loser := func(ctx context.Context) (int, error) {
				started <- struct{}{}
				<-ctx.Done()
				causes <- context.Cause(ctx)
				return 0, ctx.Err()
			}
			// The deciding branch waits for the loser to start: else the batch
			// may decide before the loser is dispatched, and it never runs.
			_, err := durable.Parallel(ctx, "p", []durable.Step[int]{
				durable.NewStep("fail", func(context.Context) (int, error) { <-started; return 0, errors.New("x") }),
				durable.NewStep("loser", loser),
			})
			require.Error(t, err)
			_, err = durable.Race(ctx, "r", []durable.Step[int]{
				durable.NewStep("win", func(context.Context) (int, error) { <-started; return 1, nil }),
				durable.NewStep("loser", loser),
			})
			require.NoError(t, err)
			require.ErrorIs(t, <-causes, durable.ErrBatchCompleted)
			require.ErrorIs(t, <-causes, durable.ErrBatchCompleted)
		})
	}
}

// When Any times out, the failures seen before the deadline come back with
// the timeout.
func TestAnyTimeoutKeepsTheFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errEarly := errors.New("early failure")
		_, err := durable.Any(context.Background(), "any", []durable.Step[int]{
			durable.NewStep("a", func(context.Context) (int, error) { return 0, errEarly }),
			durable.NewStep("b", func(ctx context.Context) (int, error) { return 0, pause(ctx, time.Hour) }),
		}, durable.WithTimeout(time.Second))
		require.ErrorIs(t, err, durable.ErrTimeout)
		require.ErrorIs(t, err, errEarly)
	})
}

// A step that finished inside a branch is checkpointed even though the
// branch's batch was decided meanwhile by a sibling's failure: the retry does
// not run it again. So are the branches of a combinator nested in a branch,
// and of a Group.
func TestFinishedStepInACancelledBranchIsCheckpointed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := journal.NewMemory()
		c := newRunCounter()
		fail := true
		uncancellable := func(name string, v int) func(context.Context) (int, error) {
			return func(context.Context) (int, error) {
				c.add(name)
				time.Sleep(2 * time.Second) // finishes after the sibling failed
				return v, nil
			}
		}
		run := func() error {
			ctx := durable.WithJournal(context.Background(), j, "e")
			_, err := durable.Parallel(ctx, "p", []durable.Step[int]{
				durable.NewStep("a", func(context.Context) (int, error) {
					time.Sleep(time.Second)
					if fail {
						return 0, errors.New("a failed")
					}
					return 1, nil
				}),
				durable.NewStep("step", func(ctx context.Context) (int, error) {
					return durable.NewStep("charge", uncancellable("charge", 100)).Run(ctx)
				}),
				durable.NewStep("nested", func(ctx context.Context) (int, error) {
					vs, err := durable.Parallel(ctx, "inner", []durable.Step[int]{durable.NewStep("n", uncancellable("n", 5))})
					if err != nil {
						return 0, err
					}
					return vs[0], nil
				}),
				durable.NewStep("group", func(ctx context.Context) (int, error) {
					g := durable.NewGroup(ctx, "g")
					f := durable.Go(g, "x", uncancellable("x", 6))
					if err := g.Wait(); err != nil {
						return 0, err
					}
					return f.Get()
				}),
			})
			return err
		}
		require.ErrorContains(t, run(), "a failed")
		fail = false
		require.NoError(t, run())
		require.Equal(t, 1, c.of("charge"), "the charge was checkpointed and replayed")
		require.Equal(t, 1, c.of("n"), "the nested branch was checkpointed")
		require.Equal(t, 1, c.of("x"), "the Group's branch was checkpointed")
	})
}
