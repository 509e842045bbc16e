package durable_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
)

// sleepStep succeeds with v after d, or returns ctx's error when cancelled first.
func sleepStep[T any](name string, d time.Duration, v T) durable.Step[T] {
	return durable.NewStep(name, func(ctx context.Context) (T, error) {
		var zero T
		select {
		case <-time.After(d):
			return v, nil
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	})
}

// failStep fails with err after d.
func failStep[T any](name string, d time.Duration, err error) durable.Step[T] {
	return durable.NewStep(name, func(ctx context.Context) (T, error) {
		var zero T
		select {
		case <-time.After(d):
			return zero, err
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	})
}

func TestBadInputIsReportedBeforeAnythingRuns(t *testing.T) {
	ctx := context.Background()
	var ran atomic.Int32
	ok := func(name string) durable.Step[int] {
		return durable.NewStep(name, func(context.Context) (int, error) { ran.Add(1); return 1, nil })
	}
	cases := []struct {
		name  string
		steps []durable.Step[int]
		opts  []durable.Option
		is    error
		msg   string
	}{
		{"nil Fn", []durable.Step[int]{ok("a"), {Name: "b"}}, nil, nil, `"b" has a nil Fn`},
		{"empty step name", []durable.Step[int]{ok("a"), ok("")}, nil, nil, "empty name"},
		{"duplicate name", []durable.Step[int]{ok("a"), ok("b"), ok("a")}, nil, durable.ErrDuplicateName, `branches 0 and 2 are both "a"`},
		{"zero cap", []durable.Step[int]{ok("a")}, []durable.Option{durable.WithMaxConcurrency(0)}, nil, "WithMaxConcurrency(0)"},
		{"negative cap", []durable.Step[int]{ok("a")}, []durable.Option{durable.WithMaxConcurrency(-3)}, nil, "WithMaxConcurrency(-3)"},
		{"zero timeout", []durable.Step[int]{ok("a")}, []durable.Option{durable.WithTimeout(0)}, nil, "WithTimeout(0s)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(err error) {
				t.Helper()
				require.Error(t, err)
				if c.is != nil {
					require.ErrorIs(t, err, c.is)
				}
				require.Contains(t, err.Error(), c.msg)
			}
			_, err := durable.Parallel(ctx, "p", c.steps, c.opts...)
			check(err)
			_, err = durable.ParallelNamed(ctx, "p", c.steps, c.opts...)
			check(err)
			_, err = durable.Settle(ctx, "p", c.steps, c.opts...)
			check(err)
			_, err = durable.Race(ctx, "p", c.steps, c.opts...)
			check(err)
			_, err = durable.Any(ctx, "p", c.steps, c.opts...)
			check(err)
			require.Zero(t, ran.Load(), "a branch ran despite bad input")
		})
	}

	t.Run("thresholds", func(t *testing.T) {
		steps := []durable.Step[int]{ok("a"), ok("b")}
		for _, c := range []struct {
			c   durable.Completion
			msg string
		}{
			{durable.MinSuccessful(0), "MinSuccessful(0)"},
			{durable.ToleratedFailures(-1), "ToleratedFailures(-1)"},
			{durable.ToleratedFailureRatio(-0.1), "ToleratedFailureRatio(-0.1)"},
			{durable.ToleratedFailureRatio(1.5), "ToleratedFailureRatio(1.5)"},
			{durable.Completion{}, "zero Completion"},
		} {
			_, err := durable.Settle(ctx, "s", steps, durable.WithCompletion(durable.AllCompleted(), c.c))
			require.ErrorContains(t, err, c.msg)
		}
		require.Zero(t, ran.Load())
	})

	t.Run("options that do not apply", func(t *testing.T) {
		steps := []durable.Step[int]{ok("a")}
		_, err := durable.Parallel(ctx, "p", steps, durable.WithCompletion(durable.FirstSuccessful()))
		require.ErrorContains(t, err, "WithCompletion applies to Settle")
		_, err = durable.Race(ctx, "p", steps, durable.WithKey(func(s string) string { return s }))
		require.ErrorContains(t, err, "WithKey applies to FanOut")
		_, err = durable.FanOut(ctx, "f", []int{1}, func(context.Context, int) (int, error) { ran.Add(1); return 0, nil },
			durable.WithKey(func(s string) string { return s }))
		require.ErrorContains(t, err, "WithKey's function takes string, FanOut's items are int")
		_, err = durable.FanOut(ctx, "f", []int{1, 2, 1}, func(context.Context, int) (int, error) { ran.Add(1); return 0, nil },
			durable.WithKey(func(i int) string { return fmt.Sprint(i) }))
		require.ErrorIs(t, err, durable.ErrDuplicateName)
		_, err = durable.FanOut[int, int](ctx, "f", []int{1}, nil)
		require.ErrorContains(t, err, "nil fn")
		_, err = durable.Parallel(ctx, "", steps)
		require.ErrorContains(t, err, "empty name")
		require.Zero(t, ran.Load())
	})
}

func TestEmptyInput(t *testing.T) {
	ctx := context.Background()
	out, err := durable.Parallel[int](ctx, "p", nil)
	require.NoError(t, err)
	require.NotNil(t, out)
	require.Empty(t, out)
	m, err := durable.ParallelNamed[int](ctx, "p", nil)
	require.NoError(t, err)
	require.NotNil(t, m)
	require.Empty(t, m)
	f, err := durable.FanOut(ctx, "f", []string{}, func(context.Context, string) (int, error) { return 0, nil })
	require.NoError(t, err)
	require.Empty(t, f)
	res, err := durable.Settle[int](ctx, "s", nil)
	require.NoError(t, err)
	require.Empty(t, res.Items)
	require.Equal(t, durable.ReasonAllCompleted, res.Reason)
	_, err = durable.Race[int](ctx, "r", nil)
	require.ErrorContains(t, err, "no winner")
	_, err = durable.Any[int](ctx, "a", nil)
	require.ErrorContains(t, err, "no winner")
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

func TestFailFastReturnsTheCauseAndWaitsForSiblings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errBoom := errors.New("boom")
		var siblingReturned atomic.Bool
		steps := []durable.Step[int]{
			durable.NewStep("slow", func(ctx context.Context) (int, error) {
				<-ctx.Done()
				time.Sleep(time.Second) // a slow cleanup: the call must wait for it
				siblingReturned.Store(true)
				return 0, ctx.Err()
			}),
			failStep[int]("bad", 10*time.Millisecond, errBoom),
			sleepStep("never", time.Hour, 3),
		}
		start := time.Now()
		_, err := durable.Parallel(context.Background(), "p", steps)
		var be *durable.BranchError
		require.ErrorAs(t, err, &be)
		require.Equal(t, 1, be.Index)
		require.Equal(t, "bad", be.Name)
		require.ErrorIs(t, err, errBoom)
		require.NotErrorIs(t, err, context.Canceled, "the cause, not a sibling's cancellation echo")
		require.True(t, siblingReturned.Load(), "Parallel returned before its branches did")
		require.Equal(t, 10*time.Millisecond+time.Second, time.Since(start))
	})
}

func TestCallerCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(context.Background())
		time.AfterFunc(50*time.Millisecond, func() { cancel(cause) })
		var cancelled atomic.Int32
		block := func(name string) durable.Step[int] {
			return durable.NewStep(name, func(ctx context.Context) (int, error) {
				<-ctx.Done()
				cancelled.Add(1)
				return 0, ctx.Err()
			})
		}
		steps := []durable.Step[int]{block("a"), block("b"), sleepStep("c", time.Millisecond, 1)}
		_, err := durable.Parallel(ctx, "p", steps)
		require.ErrorIs(t, err, cause)
		require.Equal(t, int32(2), cancelled.Load())

		ctx2, cancel2 := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel2)
		res, err := durable.Settle(ctx2, "s", steps)
		require.ErrorIs(t, err, context.Canceled)
		require.Nil(t, res)
	})
}

func TestPanicBecomesPanicError(t *testing.T) {
	steps := []durable.Step[int]{
		durable.NewStep("ok", func(context.Context) (int, error) { return 1, nil }),
		durable.NewStep("bad", func(context.Context) (int, error) { panic("kaboom") }),
	}
	_, err := durable.Parallel(context.Background(), "p", steps)
	var pe *durable.PanicError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "kaboom", pe.Value)
	require.Contains(t, string(pe.Stack), "core_test.go", "the stack names the panicking function")

	res, err := durable.Settle(context.Background(), "s", steps)
	require.NoError(t, err)
	require.Equal(t, durable.StatusSucceeded, res.Items[0].Status)
	require.Equal(t, durable.StatusFailed, res.Items[1].Status)
	require.ErrorAs(t, res.Items[1].Err, &pe)

	errInner := errors.New("inner")
	_, err = durable.Parallel(context.Background(), "p", []durable.Step[int]{
		durable.NewStep("e", func(context.Context) (int, error) { panic(errInner) }),
	})
	require.ErrorIs(t, err, errInner, "a panic with an error unwraps to it")
}

func TestGoexitInABranchIsAFailure(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	var got []int
	var err error
	// A branch that calls runtime.Goexit (t.FailNow does) must not hang the
	// batch, and the branches after it still run on a cap of 1.
	go func() {
		defer wg.Done()
		got, err = durable.FanOut(context.Background(), "f", []int{0, 1, 2},
			func(_ context.Context, i int) (int, error) {
				if i == 1 {
					runtime.Goexit()
				}
				return i, nil
			}, durable.WithMaxConcurrency(1))
	}()
	wg.Wait()
	require.ErrorContains(t, err, "Goexit")
	require.Nil(t, got)

	res, err := durable.Settle(context.Background(), "s", []durable.Step[int]{
		durable.NewStep("a", func(context.Context) (int, error) { runtime.Goexit(); return 0, nil }),
		durable.NewStep("b", func(context.Context) (int, error) { return 2, nil }),
	}, durable.WithMaxConcurrency(1))
	require.NoError(t, err)
	require.Equal(t, durable.StatusFailed, res.Items[0].Status)
	require.Equal(t, durable.StatusSucceeded, res.Items[1].Status)
}

func TestTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		steps := []durable.Step[string]{
			sleepStep("fast", time.Second, "fast"),
			failStep[string]("broken", 2*time.Second, errors.New("broken")),
			sleepStep("slow", time.Hour, "slow"),
			sleepStep("queued", time.Second, "queued"),
		}
		start := time.Now()
		res, err := durable.Settle(ctx, "s", steps, durable.WithTimeout(time.Minute), durable.WithMaxConcurrency(3))
		require.NoError(t, err, "Settle reports a timeout as its reason")
		require.Equal(t, time.Minute, time.Since(start))
		require.Equal(t, durable.ReasonTimedOut, res.Reason)
		statuses := []durable.Status{}
		for _, it := range res.Items {
			statuses = append(statuses, it.Status)
		}
		// "queued" ran after "fast" finished: dispatched at 1s, done at 2s.
		require.Equal(t, []durable.Status{durable.StatusSucceeded, durable.StatusFailed, durable.StatusCancelled, durable.StatusSucceeded}, statuses)

		res, err = durable.Settle(ctx, "s", steps, durable.WithTimeout(1500*time.Millisecond), durable.WithMaxConcurrency(1))
		require.NoError(t, err)
		require.Equal(t, []durable.Status{durable.StatusSucceeded, durable.StatusCancelled, durable.StatusNotStarted, durable.StatusNotStarted},
			[]durable.Status{res.Items[0].Status, res.Items[1].Status, res.Items[2].Status, res.Items[3].Status})
		require.Equal(t, 4, res.SuccessCount()+res.FailureCount()+len(res.Cancelled())+len(res.NotStarted()))

		only := []durable.Step[string]{steps[0], steps[2]}
		_, err = durable.Parallel(ctx, "p", only, durable.WithTimeout(time.Minute))
		require.ErrorIs(t, err, durable.ErrTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		_, err = durable.Race(ctx, "r", []durable.Step[string]{steps[2]}, durable.WithTimeout(time.Minute))
		require.ErrorIs(t, err, durable.ErrTimeout)
		_, err = durable.Any(ctx, "a", []durable.Step[string]{steps[1], steps[2]}, durable.WithTimeout(time.Minute))
		require.ErrorIs(t, err, durable.ErrTimeout)

		var cause error
		g := durable.NewGroup(ctx, "g", durable.WithTimeout(time.Minute))
		durable.Go(g, "slow", func(ctx context.Context) (int, error) {
			<-ctx.Done()
			cause = context.Cause(ctx)
			return 0, ctx.Err()
		})
		err = g.Wait()
		require.ErrorIs(t, err, durable.ErrTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, cause, durable.ErrTimeout, "branches see ErrTimeout as their context's cause")
	})
}

func TestToleranceRatioIsExact(t *testing.T) {
	run := func(failures, total int, ratio float64) durable.Reason {
		steps := make([]durable.Step[int], total)
		for i := range steps {
			fail := i < failures
			steps[i] = durable.NewStep(fmt.Sprint(i), func(context.Context) (int, error) {
				if fail {
					return 0, errors.New("x")
				}
				return i, nil
			})
		}
		res, err := durable.Settle(context.Background(), "s", steps,
			durable.WithCompletion(durable.ToleratedFailureRatio(ratio)), durable.WithMaxConcurrency(1))
		require.NoError(t, err)
		return res.Reason
	}
	require.Equal(t, durable.ReasonAllCompleted, run(11, 20, 0.55), "11 of 20 at 0.55 is not exceeded")
	require.Equal(t, durable.ReasonFailureToleranceExceeded, run(12, 20, 0.55))
	require.Equal(t, durable.ReasonAllCompleted, run(3, 10, 0.3), "3 of 10 at 0.3 is not exceeded")
	require.Equal(t, durable.ReasonAllCompleted, run(7, 10, 0.7))
	require.Equal(t, durable.ReasonFailureToleranceExceeded, run(1, 10, 0))
	require.Equal(t, durable.ReasonAllCompleted, run(10, 10, 1))
}

func TestPolicies(t *testing.T) {
	ctx := context.Background()
	outcome := func(pattern string) []durable.Step[int] { // s: success, f: failure, run in order
		steps := make([]durable.Step[int], len(pattern))
		for i, c := range pattern {
			steps[i] = durable.NewStep(fmt.Sprint(i), func(context.Context) (int, error) {
				if c == 'f' {
					return 0, fmt.Errorf("fail %d", i)
				}
				return i, nil
			})
		}
		return steps
	}
	settle := func(pattern string, c ...durable.Completion) *durable.BatchResult[int] {
		res, err := durable.Settle(ctx, "s", outcome(pattern), durable.WithCompletion(c...), durable.WithMaxConcurrency(1))
		require.NoError(t, err)
		n := res.SuccessCount() + res.FailureCount() + len(res.Cancelled()) + len(res.NotStarted())
		require.Equal(t, len(pattern), n, "statuses add up")
		return res
	}
	r := settle("ssfss", durable.MinSuccessful(2))
	require.Equal(t, durable.ReasonMinSuccessfulReached, r.Reason)
	require.Equal(t, []int{0, 1}, r.Values())
	require.Len(t, r.NotStarted(), 3)

	r = settle("ffs", durable.MinSuccessful(1))
	require.Equal(t, durable.ReasonMinSuccessfulReached, r.Reason, "also when the last branch reaches it")
	require.Len(t, r.Errors(), 2)
	require.ErrorContains(t, r.Err(), "fail 0")
	require.True(t, r.HasFailure())

	r = settle("fsfsf", durable.MinSuccessful(5))
	require.Equal(t, durable.ReasonAllCompleted, r.Reason, "an unreachable minimum runs to the end")

	r = settle("sfsfs", durable.ToleratedFailures(1))
	require.Equal(t, durable.ReasonFailureToleranceExceeded, r.Reason)
	require.Len(t, r.NotStarted(), 1)

	r = settle("sfs", durable.AllSuccessful())
	require.Equal(t, durable.ReasonFailureToleranceExceeded, r.Reason)
	require.Equal(t, 1, r.SuccessCount())

	r = settle("fss", durable.FirstSuccessful(), durable.ToleratedFailures(0))
	require.Equal(t, durable.ReasonFailureToleranceExceeded, r.Reason, "whichever is met first decides")

	r = settle("sffs", durable.FirstSuccessful(), durable.ToleratedFailures(0))
	require.Equal(t, durable.ReasonMinSuccessfulReached, r.Reason)

	r = settle("sss")
	require.Equal(t, durable.ReasonAllCompleted, r.Reason)
	require.False(t, r.HasFailure())
	require.NoError(t, r.Err())
}

func TestRaceAndAny(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		errA, errB := errors.New("a down"), errors.New("b down")
		v, err := durable.Race(ctx, "r", []durable.Step[string]{
			sleepStep("slow", time.Hour, "slow"),
			sleepStep("fast", time.Second, "fast"),
		})
		require.NoError(t, err)
		require.Equal(t, "fast", v)

		_, err = durable.Race(ctx, "r", []durable.Step[string]{
			sleepStep("slow", time.Hour, "slow"),
			failStep[string]("broken", time.Second, errA),
		})
		var be *durable.BranchError
		require.ErrorAs(t, err, &be, "Race returns the first to finish, even a failure")
		require.Equal(t, "broken", be.Name)

		v, err = durable.Any(ctx, "a", []durable.Step[string]{
			failStep[string]("a", time.Second, errA),
			sleepStep("b", 2*time.Second, "b"),
			sleepStep("c", time.Hour, "c"),
		})
		require.NoError(t, err)
		require.Equal(t, "b", v)

		_, err = durable.Any(ctx, "a", []durable.Step[string]{
			failStep[string]("a", 2*time.Second, errA),
			failStep[string]("b", time.Second, errB),
		})
		require.ErrorIs(t, err, errA)
		require.ErrorIs(t, err, errB)
		require.Less(t, strings.Index(err.Error(), "a down"), strings.Index(err.Error(), "b down"), "joined in input order")
	})
}

func TestCapKeepsGoroutinesBounded(t *testing.T) {
	const capN = 8
	const n = 1_000_000
	items := make([]int32, n)
	base := runtime.NumGoroutine()
	var running, peakRunning, peakG atomic.Int64
	var order atomic.Int64
	out, err := durable.FanOut(context.Background(), "million", items,
		func(_ context.Context, _ int32) (int64, error) {
			r := running.Add(1)
			defer running.Add(-1)
			for {
				p := peakRunning.Load()
				if r <= p || peakRunning.CompareAndSwap(p, r) {
					break
				}
			}
			seq := order.Add(1)
			if seq%1000 == 0 {
				g := int64(runtime.NumGoroutine())
				for {
					p := peakG.Load()
					if g <= p || peakG.CompareAndSwap(p, g) {
						break
					}
				}
			}
			return seq, nil
		}, durable.WithMaxConcurrency(capN))
	require.NoError(t, err)
	require.Len(t, out, n)
	require.LessOrEqual(t, peakRunning.Load(), int64(capN))
	require.LessOrEqual(t, peakG.Load(), int64(base+capN+2), "goroutines stay O(cap)")
}

func TestDispatchInInputOrder(t *testing.T) {
	var mu sync.Mutex
	var started []int
	items := make([]int, 200)
	for i := range items {
		items[i] = i
	}
	_, err := durable.FanOut(context.Background(), "f", items, func(_ context.Context, i int) (int, error) {
		mu.Lock()
		started = append(started, i)
		mu.Unlock()
		return i, nil
	}, durable.WithMaxConcurrency(1))
	require.NoError(t, err)
	require.Equal(t, items, started)
}

func TestResultsInInputOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		items := []int{5, 1, 4, 2, 3}
		out, err := durable.FanOut(context.Background(), "f", items, func(ctx context.Context, d int) (int, error) {
			time.Sleep(time.Duration(d) * time.Second)
			return d * 10, nil
		})
		require.NoError(t, err)
		require.Equal(t, []int{50, 10, 40, 20, 30}, out)
	})
}

func TestGroup(t *testing.T) {
	t.Run("heterogeneous", func(t *testing.T) {
		g := durable.NewGroup(context.Background(), "g")
		a := durable.Go(g, "a", func(context.Context) (string, error) { return "x", nil })
		b := durable.Go(g, "b", func(context.Context) ([]int, error) { return []int{1}, nil })
		_, err := a.Get()
		require.ErrorContains(t, err, "before Group.Wait")
		require.NoError(t, g.Wait())
		av, err := a.Get()
		require.NoError(t, err)
		require.Equal(t, "x", av)
		bv, err := b.Get()
		require.NoError(t, err)
		require.Equal(t, []int{1}, bv)
		late := durable.Go(g, "c", func(context.Context) (int, error) { return 1, nil })
		_, err = late.Get()
		require.ErrorContains(t, err, "after Wait")
	})
	t.Run("fail fast", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			errBoom := errors.New("boom")
			g := durable.NewGroup(context.Background(), "g", durable.WithMaxConcurrency(2))
			var queuedRan atomic.Bool
			slow := durable.Go(g, "slow", func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
			durable.Go(g, "bad", func(context.Context) (string, error) { time.Sleep(time.Second); return "", errBoom })
			queued := durable.Go(g, "queued", func(context.Context) (bool, error) { queuedRan.Store(true); return true, nil })
			err := g.Wait()
			var be *durable.BranchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, "bad", be.Name)
			require.Equal(t, 1, be.Index)
			require.ErrorIs(t, err, errBoom)
			require.False(t, queuedRan.Load(), "a queued branch never starts after a failure")
			_, err = queued.Get()
			require.ErrorIs(t, err, errBoom)
			_, err = slow.Get()
			require.ErrorIs(t, err, errBoom)
		})
	})
	t.Run("cap and order", func(t *testing.T) {
		g := durable.NewGroup(context.Background(), "g", durable.WithMaxConcurrency(1))
		var mu sync.Mutex
		var order []int
		for i := range 20 {
			durable.Go(g, fmt.Sprint(i), func(context.Context) (int, error) {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				return i, nil
			})
		}
		require.NoError(t, g.Wait())
		require.Len(t, order, 20)
		for i, v := range order {
			require.Equal(t, i, v)
		}
	})
	t.Run("duplicate and bad input", func(t *testing.T) {
		g := durable.NewGroup(context.Background(), "g")
		durable.Go(g, "a", func(context.Context) (int, error) { return 1, nil })
		durable.Go(g, "a", func(context.Context) (int, error) { return 2, nil })
		require.ErrorIs(t, g.Wait(), durable.ErrDuplicateName)

		g = durable.NewGroup(context.Background(), "g", durable.WithMaxConcurrency(0))
		f := durable.Go(g, "a", func(context.Context) (int, error) { t.Error("ran"); return 1, nil })
		require.ErrorContains(t, g.Wait(), "WithMaxConcurrency(0)")
		_, err := f.Get()
		require.Error(t, err)

		g = durable.NewGroup(context.Background(), "g")
		durable.Go[int](g, "nil", nil)
		require.ErrorContains(t, g.Wait(), "nil Fn")
	})
	t.Run("panic and caller cancellation", func(t *testing.T) {
		g := durable.NewGroup(context.Background(), "g")
		durable.Go(g, "p", func(context.Context) (int, error) { panic("oops") })
		var pe *durable.PanicError
		require.ErrorAs(t, g.Wait(), &pe)

		ctx, cancel := context.WithCancel(context.Background())
		g = durable.NewGroup(ctx, "g")
		durable.Go(g, "wait", func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
		cancel()
		err := g.Wait()
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorAs(t, err, new(*durable.BranchError), "the caller's error, not a branch's echo of it")
	})
}

func TestStatusAndReasonStrings(t *testing.T) {
	want := map[fmt.Stringer]string{
		durable.StatusSucceeded:                "SUCCEEDED",
		durable.StatusFailed:                   "FAILED",
		durable.StatusCancelled:                "CANCELLED",
		durable.StatusNotStarted:               "NOT_STARTED",
		durable.ReasonAllCompleted:             "ALL_COMPLETED",
		durable.ReasonMinSuccessfulReached:     "MIN_SUCCESSFUL_REACHED",
		durable.ReasonFailureToleranceExceeded: "FAILURE_TOLERANCE_EXCEEDED",
		durable.ReasonTimedOut:                 "TIMED_OUT",
		durable.Status(0):                      "Status(0)",
		durable.Reason(9):                      "Reason(9)",
	}
	for v, s := range want {
		assert.Equal(t, s, v.String())
	}
}

func TestErrorsAreAPI(t *testing.T) {
	require.ErrorIs(t, durable.ErrTimeout, context.DeadlineExceeded)
	require.NotErrorIs(t, context.DeadlineExceeded, durable.ErrTimeout)
	inner := errors.New("inner")
	be := &durable.BranchError{Index: 2, Name: "n", Err: inner}
	require.ErrorIs(t, be, inner)
	require.Equal(t, `durable: branch 2 ("n"): inner`, be.Error())
	require.Nil(t, durable.Permanent(nil))
	p := durable.Permanent(inner)
	require.ErrorIs(t, p, inner)
	require.Equal(t, "inner", p.Error())
	require.Same(t, p, durable.Permanent(p), "Permanent is idempotent")
}

// A worker recovers a panic and goes on with the next branch: on a cap of 1
// every branch after a panicking one still runs, in order.
func TestPanicsDoNotStopTheWorker(t *testing.T) {
	var ran []int
	var steps []durable.Step[int]
	for i := range 5 {
		steps = append(steps, durable.NewStep(fmt.Sprint("s", i), func(context.Context) (int, error) {
			ran = append(ran, i) // cap 1: one branch at a time
			if i%2 == 1 {
				panic(fmt.Sprint("boom ", i))
			}
			return i, nil
		}))
	}
	res, err := durable.Settle(context.Background(), "s", steps, durable.WithMaxConcurrency(1))
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 2, 3, 4}, ran)
	for i, it := range res.Items {
		if i%2 == 0 {
			require.Equal(t, durable.StatusSucceeded, it.Status, "s%d", i)
			require.Equal(t, i, it.Value)
			continue
		}
		require.Equal(t, durable.StatusFailed, it.Status, "s%d", i)
		var pe *durable.PanicError
		require.ErrorAs(t, it.Err, &pe)
		require.Equal(t, fmt.Sprint("boom ", i), pe.Value)
		require.Contains(t, string(pe.Stack), "core_test.go")
	}
}
