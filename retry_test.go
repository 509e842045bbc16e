package durable_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

var errFlaky = errors.New("flaky")

// attemptLog records when each attempt started, relative to start.
type attemptLog struct {
	mu    sync.Mutex
	start time.Time
	at    []time.Duration
}

func newAttemptLog() *attemptLog { return &attemptLog{start: time.Now()} }

func (l *attemptLog) add() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.at = append(l.at, time.Since(l.start))
	return len(l.at)
}

func (l *attemptLog) times() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.at...)
}

// failing fails its first n attempts with err, then returns v.
func failing(l *attemptLog, n int, err error, v int) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		if l.add() <= n {
			return 0, err
		}
		return v, nil
	}
}

func TestRetryBackoffSequence(t *testing.T) {
	for _, journaled := range []bool{false, true} {
		for _, tc := range []struct {
			name   string
			policy durable.RetryPolicy
			want   []time.Duration
		}{
			{"exponential", durable.RetryPolicy{MaxAttempts: 4, Backoff: time.Second}, []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}},
			{"capped", durable.RetryPolicy{MaxAttempts: 4, Backoff: time.Second, MaxBackoff: 1500 * time.Millisecond}, []time.Duration{0, time.Second, 2500 * time.Millisecond, 4 * time.Second}},
			{"multiplier", durable.RetryPolicy{MaxAttempts: 3, Backoff: time.Second, Multiplier: 3}, []time.Duration{0, time.Second, 4 * time.Second}},
		} {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				if journaled {
					ctx = durable.WithJournal(ctx, journal.NewMemory(), "e")
				}
				l := newAttemptLog()
				v, err := durable.NewStep("s", failing(l, len(tc.want)-1, errFlaky, 7), durable.WithRetry(tc.policy)).Run(ctx)
				require.NoError(t, err)
				require.Equal(t, 7, v)
				require.Equal(t, tc.want, l.times(), "%s journaled=%v", tc.name, journaled)
			})
		}
	}
}

// Jitter varies each wait by up to its fraction, the same way on every run.
func TestRetryJitterIsDeterministic(t *testing.T) {
	policy := durable.RetryPolicy{MaxAttempts: 5, Backoff: time.Second, Jitter: 0.5}
	var runs [][]time.Duration
	for range 2 {
		synctest.Test(t, func(t *testing.T) {
			l := newAttemptLog()
			_, err := durable.NewStep("s", failing(l, 4, errFlaky, 1), durable.WithRetry(policy)).Run(context.Background())
			require.NoError(t, err)
			runs = append(runs, l.times())
		})
	}
	require.Equal(t, runs[0], runs[1])
	plain := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	varied := false
	for k := 1; k < len(runs[0]); k++ {
		wait := runs[0][k] - runs[0][k-1]
		require.GreaterOrEqual(t, wait, plain[k-1]/2)
		require.LessOrEqual(t, wait, plain[k-1]*3/2)
		varied = varied || wait != plain[k-1]
	}
	require.True(t, varied)
}

// Jitter varies a wait "by a fraction drawn from the step's key and n": the
// successive waits of one step, and the waits of sibling steps that fail
// together, fall apart by a fair part of the backoff, not by nanoseconds.
func TestRetryJitterVariesByKeyAndAttempt(t *testing.T) {
	const siblings = 20
	policy := durable.RetryPolicy{MaxAttempts: 4, Backoff: time.Second, Multiplier: 1, Jitter: 1}
	synctest.Test(t, func(t *testing.T) {
		logs := make([]*attemptLog, siblings)
		steps := make([]durable.Step[int], siblings)
		for i := range steps {
			logs[i] = newAttemptLog()
			steps[i] = durable.NewStep("b"+strconv.Itoa(i), failing(logs[i], 3, errFlaky, i))
		}
		ctx := durable.WithJournal(context.Background(), journal.NewMemory(), "e")
		_, err := durable.Parallel(ctx, "p", steps, durable.WithRetry(policy))
		require.NoError(t, err)
		spread := func(ds []time.Duration) time.Duration { return slices.Max(ds) - slices.Min(ds) }
		var firsts []time.Duration
		varied := 0
		for i, l := range logs {
			at := l.times()
			require.Len(t, at, 4, "step b%d", i)
			waits := []time.Duration{at[1] - at[0], at[2] - at[1], at[3] - at[2]}
			firsts = append(firsts, waits[0])
			if spread(waits) > 10*time.Millisecond {
				varied++
			}
		}
		// Each wait is drawn from (0, 2s).
		require.Greater(t, spread(firsts), 500*time.Millisecond, "the first waits of %d siblings: %v", siblings, firsts)
		require.GreaterOrEqual(t, varied, siblings*3/4, "steps whose three waits differ by more than 10ms")
	})
}

// A Permanent failure, or one the predicate refuses, is not retried and is
// what it would be without a policy; attempts that run out fail with an error
// that counts them and wraps the last failure, final like a Permanent one.
func TestRetryStopsAndExhausts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newAttemptLog()
		errNo := errors.New("declined")
		_, err := durable.NewStep("p", failing(l, 9, durable.Permanent(errNo), 0),
			durable.WithRetry(durable.RetryPolicy{MaxAttempts: 5, Backoff: time.Second})).Run(context.Background())
		require.ErrorIs(t, err, errNo)
		require.Len(t, l.times(), 1)

		l = newAttemptLog()
		_, err = durable.NewStep("q", failing(l, 9, errNo, 0), durable.WithRetry(durable.RetryPolicy{
			MaxAttempts: 5, Backoff: time.Second, Retryable: func(err error) bool { return !errors.Is(err, errNo) },
		})).Run(context.Background())
		require.Equal(t, errNo, err)
		require.False(t, durable.IsPermanent(err))
		require.Len(t, l.times(), 1)

		j := journal.NewMemory()
		l = newAttemptLog()
		step := durable.NewStep("r", failing(l, 9, errFlaky, 0), durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, Backoff: time.Second}))
		_, err = step.Run(durable.WithJournal(context.Background(), j, "e"))
		require.ErrorIs(t, err, errFlaky)
		require.ErrorContains(t, err, "3 attempts failed")
		require.True(t, durable.IsPermanent(err))
		require.Len(t, l.times(), 3)
		// Final: the next run replays the failure.
		_, err = step.Run(durable.WithJournal(context.Background(), j, "e"))
		require.ErrorContains(t, err, "3 attempts failed")
		require.Len(t, l.times(), 3)
	})
}

// Each attempt gets its own deadline; an attempt past it is a retryable
// failure matching context.DeadlineExceeded, whatever it returned.
func TestStepTimeoutPerAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newAttemptLog()
		slow := func(ctx context.Context) (int, error) {
			n := l.add()
			if n < 3 {
				time.Sleep(2 * time.Second) // ignores its context
				return n, nil
			}
			return n, nil
		}
		v, err := durable.NewStep("s", slow, durable.WithStepTimeout(time.Second),
			durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, Backoff: time.Second})).Run(context.Background())
		require.NoError(t, err)
		require.Equal(t, 3, v)
		require.Equal(t, []time.Duration{0, 3 * time.Second, 7 * time.Second}, l.times(), "2 s late, 1 s wait, 2 s late, 2 s wait")

		_, err = durable.NewStep("t", func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		}, durable.WithStepTimeout(time.Second)).Run(context.Background())
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, "WithStepTimeout")

		// The combinator's earlier deadline wins.
		start := time.Now()
		_, err = durable.Parallel(context.Background(), "p", []durable.Step[int]{
			durable.NewStep("a", func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() }),
		}, durable.WithTimeout(500*time.Millisecond), durable.WithStepTimeout(time.Hour))
		require.ErrorIs(t, err, durable.ErrTimeout)
		require.Equal(t, 500*time.Millisecond, time.Since(start))
	})
}

// A cancelled caller stops a wait at once.
func TestRetryWaitHonoursTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(1500*time.Millisecond, cancel)
		l := newAttemptLog()
		start := time.Now()
		_, err := durable.NewStep("s", failing(l, 9, errFlaky, 0),
			durable.WithRetry(durable.RetryPolicy{MaxAttempts: 5, Backoff: time.Hour})).Run(ctx)
		require.ErrorIs(t, err, errFlaky)
		require.Equal(t, 1500*time.Millisecond, time.Since(start))
		require.Len(t, l.times(), 1)
	})
}

// Combinator branches take the combinator's policy unless a step has its
// own; panics are retried like failures; Group branches and FanOut items too.
func TestRetryInCombinators(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		policy := durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, Backoff: time.Second})
		for _, journaled := range []bool{false, true} {
			ctx := context.Background()
			if journaled {
				ctx = durable.WithJournal(ctx, journal.NewMemory(), "e")
			}
			la, lb := newAttemptLog(), newAttemptLog()
			var panics atomic.Int32
			vs, err := durable.Parallel(ctx, "p", []durable.Step[int]{
				durable.NewStep("a", failing(la, 2, errFlaky, 1)),
				durable.NewStep("b", func(context.Context) (int, error) {
					if lb.add() == 1 {
						panics.Add(1)
						panic("boom")
					}
					return 2, nil
				}, durable.WithRetry(durable.RetryPolicy{MaxAttempts: 2, Backoff: 10 * time.Second})),
			}, policy)
			require.NoError(t, err)
			require.Equal(t, []int{1, 2}, vs)
			require.Equal(t, []time.Duration{0, time.Second, 3 * time.Second}, la.times())
			require.Equal(t, []time.Duration{0, 10 * time.Second}, lb.times(), "the step's own policy wins")

			lf := newAttemptLog()
			out, err := durable.FanOut(ctx, "f", []int{5}, func(ctx context.Context, x int) (int, error) {
				return failing(lf, 1, errFlaky, x)(ctx)
			}, policy)
			require.NoError(t, err)
			require.Equal(t, []int{5}, out)

			lg := newAttemptLog()
			g := durable.NewGroup(ctx, "g", policy)
			f := durable.Go(g, "x", failing(lg, 2, errFlaky, 9))
			require.NoError(t, g.Wait())
			v, err := f.Get()
			require.NoError(t, err)
			require.Equal(t, 9, v)
			require.Len(t, lg.times(), 3)
		}
	})
}

func TestRetryBadInput(t *testing.T) {
	ok := func(context.Context) (int, error) { t.Error("ran"); return 0, nil }
	for _, tc := range []struct {
		opt  durable.Option
		want string
	}{
		{durable.WithRetry(durable.RetryPolicy{MaxAttempts: -1}), "MaxAttempts"},
		{durable.WithRetry(durable.RetryPolicy{Backoff: -1}), "Backoff"},
		{durable.WithRetry(durable.RetryPolicy{Backoff: time.Second, MaxBackoff: time.Millisecond}), "MaxBackoff"},
		{durable.WithRetry(durable.RetryPolicy{Multiplier: 0.5}), "Multiplier"},
		{durable.WithRetry(durable.RetryPolicy{Jitter: 1.5}), "Jitter"},
		{durable.WithStepTimeout(0), "WithStepTimeout"},
		{durable.WithCompletion(durable.CompleteWhen("r", nil)), "CompleteWhen"},
		{durable.WithCompletion(durable.CompleteWhen("", func(durable.Tally) durable.Verdict { return 0 })), "CompleteWhen"},
	} {
		_, err := durable.Settle(context.Background(), "s", []durable.Step[int]{durable.NewStep("a", ok)}, tc.opt)
		require.ErrorContains(t, err, tc.want)
		_, err = durable.NewStep("a", ok, tc.opt).Run(context.Background())
		if tc.want != "CompleteWhen" {
			require.ErrorContains(t, err, tc.want)
		}
	}
}
