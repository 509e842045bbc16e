package durable_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// reusingScanner is a journal whose Scan hands fn a buffer it reuses for the
// next row and scribbles over once fn returns, as database drivers do with
// their raw row bytes (sql.RawBytes): the journal.Scanner contract lets it.
type reusingScanner struct{ *scanMemory }

func (m reusingScanner) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	buf := make([]byte, 0, 512)
	return m.scanMemory.Scan(ctx, prefix, func(key string, value []byte) error {
		buf = append(buf[:0], value...)
		err := fn(key, buf)
		clear(buf[:cap(buf)])
		return err
	})
}

var _ journal.Scanner = reusingScanner{}

// A restore through Scan keeps the values it needs: a backend may reuse the
// bytes it passed once fn has returned.
func TestScanValuesAreNotRetained(t *testing.T) {
	j := reusingScanner{newScanMemory()}
	c := newRunCounter()
	steps := func(tag string, failC bool) []durable.Step[string] {
		var errC error
		if failC {
			errC = errors.New("c failed")
		}
		return []durable.Step[string]{
			counted(c, "a", 0, "a-value-"+tag, nil),
			counted(c, "b", 0, "b-longer-value-"+tag, nil),
			counted(c, "c", 0, "c-"+tag, errC),
		}
	}
	_, err := durable.Parallel(durable.WithJournal(t.Context(), j, "exec"), "p", steps("1", true), durable.WithMaxConcurrency(1))
	require.Error(t, err)

	got, err := durable.Parallel(durable.WithJournal(t.Context(), j, "exec"), "p", steps("2", false))
	require.NoError(t, err)
	require.Equal(t, []string{"a-value-1", "b-longer-value-1", "c-2"}, got)
	require.Equal(t, 1, c.of("a"))
	require.Equal(t, 1, c.of("b"))

	// A completed Settle replays its decision and its successes from a scan too.
	r1, err := durable.Settle(durable.WithJournal(t.Context(), j, "exec"), "s", steps("1", true))
	require.NoError(t, err)
	r2, err := durable.Settle(durable.WithJournal(t.Context(), j, "exec"), "s", steps("2", false))
	require.NoError(t, err)
	require.Equal(t, viewItems(r1), viewItems(r2))
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

// Future.Get is only valid once Wait has returned: while Wait is still waiting
// for the branch, Get reports an error, not a zero value with a nil error.
func TestFutureGetWhileWaitIsWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := durable.NewGroup(t.Context(), "g")
		release := make(chan struct{})
		f := durable.Go(g, "slow", func(context.Context) (int, error) { <-release; return 7, nil })
		done := make(chan error, 1)
		go func() { done <- g.Wait() }()
		defer func() { <-done }()
		defer close(release)
		synctest.Wait()

		v, err := f.Get()
		require.Error(t, err, "Get returned %v while the branch was still running", v)
	})
	g := durable.NewGroup(t.Context(), "g")
	f := durable.Go(g, "a", func(context.Context) (int, error) { return 7, nil })
	require.NoError(t, g.Wait())
	v, err := f.Get()
	require.NoError(t, err)
	require.Equal(t, 7, v)
}

// A branch that calls runtime.Goexit fails, as in the other combinators: Wait
// does not report success, and neither the Future nor a queued branch's Future
// reports a zero value with a nil error.
func TestGroupBranchGoexit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := durable.NewGroup(t.Context(), "g", durable.WithMaxConcurrency(1))
		var queuedRan atomic.Bool
		exit := durable.Go(g, "exit", func(context.Context) (int, error) { runtime.Goexit(); return 1, nil })
		queued := durable.Go(g, "queued", func(context.Context) (string, error) { queuedRan.Store(true); return "q", nil })
		err := g.Wait()
		var be *durable.BranchError
		require.ErrorAs(t, err, &be)
		require.Equal(t, "exit", be.Name)
		_, err = exit.Get()
		require.Error(t, err)
		_, err = queued.Get()
		require.Error(t, err)
		require.False(t, queuedRan.Load())
	})
}

// Wait called again returns what it returned the first time, whatever the
// deadline or the caller's context did in between.
func TestGroupWaitTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		g := durable.NewGroup(ctx, "g", durable.WithTimeout(time.Hour))
		f := durable.Go(g, "a", func(context.Context) (int, error) { return 1, nil })
		require.NoError(t, g.Wait())
		require.NoError(t, g.Wait(), "the second Wait reported the group's own release as a timeout")
		cancel()
		time.Sleep(2 * time.Hour)
		require.NoError(t, g.Wait())
		v, err := f.Get()
		require.NoError(t, err)
		require.Equal(t, 1, v)
	})
}

// badJSON's encoding panics in MarshalJSON or UnmarshalJSON.
type badJSON struct{ PanicOnDecode bool }

func (b badJSON) MarshalJSON() ([]byte, error) {
	if !b.PanicOnDecode {
		panic("MarshalJSON failed")
	}
	return []byte(`"decode me"`), nil
}

func (b *badJSON) UnmarshalJSON([]byte) error { panic("UnmarshalJSON failed") }

// A panic while a branch's value is encoded or decoded for the journal is the
// branch's failure, as a panic in its function is: it never crashes the process.
func TestJSONPanicIsABranchFailure(t *testing.T) {
	for _, onDecode := range []bool{false, true} {
		t.Run(fmt.Sprintf("onDecode=%v", onDecode), func(t *testing.T) {
			ctx := durable.WithJournal(t.Context(), journal.NewMemory(), "exec")
			step := durable.NewStep("v", func(context.Context) (badJSON, error) { return badJSON{onDecode}, nil })
			plain := durable.NewStep("plain", func(context.Context) (badJSON, error) { return badJSON{}, errors.New("plain") })

			_, err := durable.Parallel(ctx, "p", []durable.Step[badJSON]{step})
			var pe *durable.PanicError
			require.ErrorAs(t, err, &pe)

			// A value that cannot be read back is never stored: it is the
			// branch's failure, as one that cannot be encoded.
			res, err := durable.Settle(ctx, "s", []durable.Step[badJSON]{step, plain})
			require.NoError(t, err)
			require.Equal(t, durable.StatusFailed, res.Items[0].Status)
			require.ErrorAs(t, res.Items[0].Err, &pe)

			g := durable.NewGroup(ctx, "g")
			f := durable.Go(g, "v", step.Fn)
			require.ErrorAs(t, g.Wait(), &pe)
			_, err = f.Get()
			require.ErrorAs(t, err, &pe)

			_, err = step.Run(ctx)
			require.ErrorAs(t, err, &pe)

			// An item whose MarshalJSON panics still has a digest.
			got, err := durable.FanOut(ctx, "fan", []badJSON{{}}, func(context.Context, badJSON) (int, error) { return 1, nil })
			require.NoError(t, err)
			require.Equal(t, []int{1}, got)
		})
	}
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

// A nil context is bad input for Step.Run as for the combinators: an error,
// never a panic.
func TestNilContextIsAnError(t *testing.T) {
	var nilCtx context.Context
	step := durable.NewStep("s", func(context.Context) (int, error) { return 1, nil })
	require.NotPanics(t, func() {
		_, err := step.Run(nilCtx)
		require.Error(t, err)
	})
	require.NotPanics(t, func() {
		_, err := durable.Parallel(nilCtx, "p", []durable.Step[int]{step})
		require.Error(t, err)
		g := durable.NewGroup(nilCtx, "g")
		durable.Go(g, "a", step.Fn)
		require.Error(t, g.Wait())
	})
}

// Invalid completion thresholds are bad input even for an empty list of steps,
// as every other invalid option is.
func TestInvalidCompletionWithNoSteps(t *testing.T) {
	for _, c := range []durable.Completion{
		durable.MinSuccessful(0), durable.ToleratedFailures(-1),
		durable.ToleratedFailureRatio(1.5), {},
	} {
		_, err := durable.Settle[int](t.Context(), "s", nil, durable.WithCompletion(c))
		require.Error(t, err, "%+v", c)
		_, err = durable.Settle(t.Context(), "s", []durable.Step[int]{
			durable.NewStep("a", func(context.Context) (int, error) { t.Error("ran"); return 1, nil }),
		}, durable.WithCompletion(c))
		require.Error(t, err, "%+v", c)
	}
	_, err := durable.Settle[int](t.Context(), "s", nil, durable.WithMaxConcurrency(0))
	require.Error(t, err)
}

// --- Group and the journal ---

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

// oddJournal answers Put for the keys match accepts with what put returns,
// instead of what the key holds.
type oddJournal struct {
	*journal.Memory
	match func(key string) bool
	put   func(value []byte) []byte
}

func (j oddJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	stored, err := j.Memory.Put(ctx, key, value)
	if err == nil && j.match(key) {
		return j.put(value), nil
	}
	return stored, err
}

// A Put that answers with a record that does not decode, in the middle of a
// batch, fails the batch with an error naming the key: no panic, no hang, no
// success reported for the branch, and no decision journaled.
func TestUndecodableStoredValueMidBatch(t *testing.T) {
	for _, answer := range []struct {
		name string
		put  func(value []byte) []byte
	}{
		{"Garbage", func([]byte) []byte { return []byte("\x01s\x00\x00{") }},
		{"Nil", func([]byte) []byte { return nil }},
		{"Truncated", func(v []byte) []byte { return v[:len(v)-1] }},
	} {
		t.Run(answer.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				j := oddJournal{journal.NewMemory(), func(k string) bool { return strings.HasSuffix(k, "/b") }, answer.put}
				ctx := durable.WithJournal(t.Context(), j, "exec")
				steps := []durable.Step[string]{
					sleepStep("a", time.Second, "a"),
					sleepStep("b", 2*time.Second, "b"),
					sleepStep("c", 3*time.Second, "c"),
				}
				_, err := durable.Parallel(ctx, "p", steps)
				var be *durable.BranchError
				require.ErrorAs(t, err, &be)
				require.Equal(t, "b", be.Name)
				require.Contains(t, err.Error(), `"exec/p/b"`)

				res, err := durable.Settle(ctx, "s", steps)
				require.Error(t, err)
				require.Nil(t, res)
				require.Contains(t, err.Error(), `"exec/s/b"`)
				_, ok, gerr := j.Get(t.Context(), "exec/s/!d")
				require.NoError(t, gerr)
				require.False(t, ok, "a decision was journaled for a batch that failed")

				g := durable.NewGroup(ctx, "g")
				f := durable.Go(g, "b", steps[1].Fn)
				err = g.Wait()
				require.ErrorAs(t, err, &be)
				require.Contains(t, err.Error(), `"exec/g/b"`)
				_, err = f.Get()
				require.Error(t, err)

				_, err = steps[1].Run(ctx)
				require.Contains(t, err.Error(), `"exec/b"`)
			})
		})
	}
}

func TestFanOutPermanentFailureOfAChangedItem(t *testing.T) {
	j := journal.NewMemory()
	fn := func(_ context.Context, s string) (string, error) {
		if s == "y" {
			return "", durable.Permanent(errors.New("y is bad"))
		}
		return s + "!", nil
	}
	_, err := durable.FanOut(durable.WithJournal(context.Background(), j, "e"), "f", []string{"x", "y"}, fn)
	require.ErrorContains(t, err, "y is bad")
	_, err = durable.FanOut(durable.WithJournal(context.Background(), j, "e"), "f", []string{"x", "z"}, fn)
	require.ErrorIs(t, err, durable.ErrNondeterministic, "the failure journaled for item y is not replayed for item z")
	require.ErrorContains(t, err, `"e/f/1"`)
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

func TestGroupDeadlineAfterEveryBranchFinished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		g := durable.NewGroup(ctx, "g", durable.WithTimeout(time.Second))
		f := durable.Go(g, "quick", func(context.Context) (int, error) { return 7, nil })
		time.Sleep(2 * time.Second) // the deadline passes with nothing running
		cancel()
		require.NoError(t, g.Wait(), "nothing was running when the deadline passed")
		v, err := f.Get()
		require.NoError(t, err)
		require.Equal(t, 7, v)
	})
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
