package durable_test

import (
	"context"
	"errors"
	"fmt"
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

// A Group that failed resumes: its journaled successes come back from the
// journal without running again, and the failed branch (and those it cancelled)
// run again.
func TestGroupResumesAfterAFailedRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, kind := range journalKinds {
			j := kind.new()
			c := newRunCounter()
			run := func(attempt int) (string, int, []int, error) {
				g := durable.NewGroup(durable.WithJournal(t.Context(), j, "exec"), "g")
				s := durable.Go(g, "s", func(ctx context.Context) (string, error) {
					c.add("s")
					return fmt.Sprintf("s-%d", attempt), pause(ctx, time.Second)
				})
				n := durable.Go(g, "n", func(ctx context.Context) (int, error) {
					c.add("n")
					if err := pause(ctx, 2*time.Second); err != nil {
						return 0, err
					}
					if attempt == 1 {
						return 0, errors.New("n failed")
					}
					return 10 + attempt, nil
				})
				l := durable.Go(g, "l", func(ctx context.Context) ([]int, error) {
					c.add("l")
					return []int{attempt}, pause(ctx, 3*time.Second) // cancelled by n
				})
				err := g.Wait()
				sv, _ := s.Get()
				nv, _ := n.Get()
				lv, _ := l.Get()
				return sv, nv, lv, err
			}
			_, _, _, err := run(1)
			var be *durable.BranchError
			require.ErrorAs(t, err, &be, kind.name)
			require.Equal(t, "n", be.Name, kind.name)

			start := time.Now()
			s, n, l, err := run(2)
			require.NoError(t, err, kind.name)
			require.Equal(t, "s-1", s, kind.name)
			require.Equal(t, 12, n, kind.name)
			require.Equal(t, []int{2}, l, kind.name)
			require.Equal(t, 3*time.Second, time.Since(start), kind.name)
			require.Equal(t, 1, c.of("s"), kind.name)
			require.Equal(t, 2, c.of("n"), kind.name)
			require.Equal(t, 2, c.of("l"), kind.name)

			// Complete now: a third run replays every branch.
			s, n, l, err = run(3)
			require.NoError(t, err, kind.name)
			require.Equal(t, "s-1", s, kind.name)
			require.Equal(t, 12, n, kind.name)
			require.Equal(t, []int{2}, l, kind.name)
			require.Equal(t, 5, c.total(), kind.name)
		}
	})
}

// A permanent failure in a Group is journaled and replayed: the next run fails
// the same way without running the branch.
func TestGroupPermanentFailureReplays(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		j := newJournal()
		c := newRunCounter()
		run := func() (*durable.Future[int], error) {
			g := durable.NewGroup(durable.WithJournal(t.Context(), j, "exec"), "g", durable.WithMaxConcurrency(1))
			durable.Go(g, "ok", func(context.Context) (string, error) { c.add("ok"); return "ok", nil })
			f := durable.Go(g, "bad", func(context.Context) (int, error) {
				c.add("bad")
				return 0, durable.Permanent(permanentPathError())
			})
			durable.Go(g, "after", func(context.Context) (int, error) { c.add("after"); return 1, nil })
			return f, g.Wait()
		}
		f1, err1 := run()
		var be *durable.BranchError
		require.ErrorAs(t, err1, &be)
		require.Equal(t, "bad", be.Name)
		_, ferr1 := f1.Get()

		f2, err2 := run()
		require.ErrorAs(t, err2, &be)
		require.Equal(t, "bad", be.Name)
		require.Equal(t, err1.Error(), err2.Error())
		_, ferr2 := f2.Get()
		require.Error(t, ferr2)
		require.Equal(t, ferr1.Error(), ferr2.Error())
		var tn typeNamer
		require.ErrorAs(t, err2, &tn)
		require.Equal(t, "*fs.PathError", tn.TypeName())
		require.Equal(t, map[string]int{"ok": 1, "bad": 1}, map[string]int{"ok": c.of("ok"), "bad": c.of("bad")})
		require.Zero(t, c.of("after"), "a branch queued behind a replayed failure ran")
	})
}

// A Group's deadline is journaled with its head: a Group resumed after the
// deadline times out at once, running nothing.
func TestGroupResumedAfterItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, kind := range journalKinds {
			j := kind.new()
			c := newRunCounter()
			run := func(ctx context.Context) (*durable.Future[string], *durable.Future[int], error) {
				g := durable.NewGroup(durable.WithJournal(ctx, j, "exec"), "g", durable.WithTimeout(10*time.Second))
				a := durable.Go(g, "a", func(ctx context.Context) (string, error) {
					c.add("a")
					return "a", pause(ctx, time.Second)
				})
				b := durable.Go(g, "b", func(ctx context.Context) (int, error) {
					c.add("b")
					return 2, pause(ctx, 20*time.Second)
				})
				return a, b, g.Wait()
			}
			start := time.Now()
			ctx, cancel := context.WithCancel(t.Context())
			timer := time.AfterFunc(4*time.Second, cancel)
			_, _, err := run(ctx)
			timer.Stop()
			require.ErrorIs(t, err, context.Canceled, kind.name)
			require.Equal(t, 4*time.Second, time.Since(start), kind.name)

			time.Sleep(12*time.Second - time.Since(start))
			before := time.Now()
			a, b, err := run(t.Context())
			require.ErrorIs(t, err, durable.ErrTimeout, kind.name)
			require.ErrorIs(t, err, context.DeadlineExceeded, kind.name)
			require.Zero(t, time.Since(before), "%s: the resumed Group waited", kind.name)
			require.Equal(t, 2, c.total(), "%s: a branch ran after the deadline", kind.name)
			va, err := a.Get()
			require.NoError(t, err, "%s: a journaled success is a success, after the deadline too", kind.name)
			require.Equal(t, "a", va)
			_, err = b.Get()
			require.ErrorIs(t, err, durable.ErrTimeout, kind.name)

			// Resumed before the deadline, the deadline is still the first run's.
			j = kind.new()
			start = time.Now()
			ctx, cancel = context.WithCancel(t.Context())
			timer = time.AfterFunc(4*time.Second, cancel)
			_, _, err = run(ctx)
			timer.Stop()
			require.ErrorIs(t, err, context.Canceled, kind.name)
			time.Sleep(3 * time.Second)
			a, _, err = run(t.Context())
			require.ErrorIs(t, err, durable.ErrTimeout, kind.name)
			require.Equal(t, 10*time.Second, time.Since(start), kind.name)
			v, err := a.Get()
			require.NoError(t, err, kind.name)
			require.Equal(t, "a", v, kind.name)
		}
	})
}

// A Parallel inside a Group branch checkpoints under that branch: when the
// branch fails half-way, the next run replays the Parallel's finished steps.
func TestGroupNestedParallelResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, kind := range journalKinds {
			j := kind.new()
			c := newRunCounter()
			run := func(attempt int) ([]int, error) {
				g := durable.NewGroup(durable.WithJournal(t.Context(), j, "exec"), "g")
				f := durable.Go(g, "branch", func(ctx context.Context) ([]int, error) {
					c.add("branch")
					return durable.Parallel(ctx, "inner", []durable.Step[int]{
						counted(c, "x", time.Second, 10+attempt, nil),
						durable.NewStep("y", func(ctx context.Context) (int, error) {
							c.add("y")
							if err := pause(ctx, 2*time.Second); err != nil {
								return 0, err
							}
							if attempt == 1 {
								return 0, errors.New("y failed")
							}
							return 20 + attempt, nil
						}),
					})
				})
				if err := g.Wait(); err != nil {
					return nil, err
				}
				return f.Get()
			}
			_, err := run(1)
			require.Error(t, err, kind.name)
			got, err := run(2)
			require.NoError(t, err, kind.name)
			require.Equal(t, []int{11, 22}, got, kind.name)
			require.Equal(t, 2, c.of("branch"), kind.name)
			require.Equal(t, 1, c.of("x"), kind.name)
			require.Equal(t, 2, c.of("y"), kind.name)

			got, err = run(3)
			require.NoError(t, err, kind.name)
			require.Equal(t, []int{11, 22}, got, kind.name)
			require.Equal(t, 2, c.of("branch"), kind.name, "the succeeded branch ran again")
		}
	})
}
