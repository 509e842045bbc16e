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

// When every branch of a Group was journaled — one ignored its context and
// succeeded after the deadline — a later run returns their values, as Parallel
// does, instead of failing with ErrTimeout forever.
func TestGroupEveryBranchJournaledAfterItsDeadline(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		synctest.Test(t, func(t *testing.T) {
			j := newJournal()
			c := newRunCounter()
			run := func() (*durable.Future[string], *durable.Future[int], error) {
				g := durable.NewGroup(durable.WithJournal(context.Background(), j, "e"), "g", durable.WithTimeout(10*time.Second))
				a := durable.Go(g, "a", func(ctx context.Context) (string, error) {
					c.add("a")
					return "a", pause(ctx, time.Second)
				})
				b := durable.Go(g, "b", func(context.Context) (int, error) {
					c.add("b")
					time.Sleep(15 * time.Second) // ignores its context
					return 2, nil
				})
				return a, b, g.Wait()
			}
			_, _, err := run()
			require.ErrorIs(t, err, durable.ErrTimeout)
			for range 2 {
				a, b, err := run()
				require.NoError(t, err)
				va, err := a.Get()
				require.NoError(t, err)
				vb, err := b.Get()
				require.NoError(t, err)
				require.Equal(t, "a", va)
				require.Equal(t, 2, vb)
			}
			require.Equal(t, 1, c.of("a"))
			require.Equal(t, 1, c.of("b"))
		})
	})
}

// A Group whose first Go replays a permanent failure still returns the
// journaled successes of the branches after it, as the first run did.
func TestGroupReplayedFailureKeepsJournaledSuccesses(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		synctest.Test(t, func(t *testing.T) {
			j := newJournal()
			c := newRunCounter()
			run := func() (*durable.Future[int], error) {
				g := durable.NewGroup(durable.WithJournal(context.Background(), j, "e"), "g")
				durable.Go(g, "d", func(ctx context.Context) (int, error) {
					c.add("d")
					time.Sleep(3600 * time.Millisecond)
					return 0, durable.Permanent(errors.New("declined"))
				})
				b := durable.Go(g, "b", func(ctx context.Context) (int, error) {
					c.add("b")
					time.Sleep(1060 * time.Millisecond)
					return 7, nil
				})
				return b, g.Wait()
			}
			for range 2 {
				b, err := run()
				require.ErrorContains(t, err, "declined")
				v, err := b.Get()
				require.NoError(t, err)
				require.Equal(t, 7, v)
			}
			require.Equal(t, 1, c.of("d"))
			require.Equal(t, 1, c.of("b"))
		})
	})
}

// A running branch may call Go while Wait waits, as with errgroup: the new
// branch is waited for. Go after Wait returned is an error.
func TestGoFromABranchWhileWaitWaits(t *testing.T) {
	for _, journaled := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			if journaled {
				ctx = durable.WithJournal(ctx, journal.NewMemory(), "e")
			}
			g := durable.NewGroup(ctx, "g", durable.WithMaxConcurrency(1))
			var child *durable.Future[string]
			durable.Go(g, "parent", func(context.Context) (int, error) {
				time.Sleep(time.Second) // Wait is waiting by now
				child = durable.Go(g, "child", func(context.Context) (string, error) {
					time.Sleep(time.Second)
					return "late", nil
				})
				return 1, nil
			})
			start := time.Now()
			require.NoError(t, g.Wait())
			require.Equal(t, 2*time.Second, time.Since(start), "Wait waited for the child")
			v, err := child.Get()
			require.NoError(t, err)
			require.Equal(t, "late", v)

			after := durable.Go(g, "after", func(context.Context) (int, error) { t.Error("ran"); return 0, nil })
			_, err = after.Get()
			require.ErrorContains(t, err, "called after Wait")
		})
	}
}
