package durable_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// spanKey carries the id of the recorder's span in a context.
type spanKey struct{}

// recorder is an Observer that keeps every event, with the span it opened
// (start events) or ended in (other events) and that span's parent.
type recorder struct {
	mu     sync.Mutex
	next   int
	events []recorded
}

type recorded struct {
	durable.Event
	span, parent int
}

func (r *recorder) Observe(ctx context.Context, e durable.Event) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, _ := ctx.Value(spanKey{}).(int)
	rec := recorded{Event: e, span: cur}
	if e.Kind == durable.EventBatchStart || e.Kind == durable.EventBranchStart {
		r.next++
		rec.span, rec.parent = r.next, cur
		ctx = context.WithValue(ctx, spanKey{}, r.next)
	}
	r.events = append(r.events, rec)
	return ctx
}

// lines renders the events of kinds, one line each, sorted so that the
// concurrent order of branches does not matter.
func (r *recorder) lines(kinds ...durable.EventKind) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if len(kinds) > 0 && !slices.Contains(kinds, e.Kind) {
			continue
		}
		s := fmt.Sprintf("%s %s %s %s", e.Kind, e.Combinator, e.Path, e.Name)
		switch e.Kind {
		case durable.EventBatchStart:
			s += fmt.Sprintf(" branches=%d resumed=%v", e.Branches, e.Resumed)
		case durable.EventBatchEnd:
			s += fmt.Sprintf(" reason=%v ok=%d failed=%d cancelled=%d notstarted=%d replayed=%v err=%v", e.Reason, e.Succeeded, e.Failed, e.Cancelled, e.NotStarted, e.Replayed, e.Err != nil)
		case durable.EventBranchEnd:
			s += fmt.Sprintf(" %v replayed=%v attempt=%d", e.Status, e.Replayed, e.Attempt)
		case durable.EventRetry:
			s += fmt.Sprintf(" attempt=%d wait=%v", e.Attempt, e.Wait)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func TestObserverEventsOfASettle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := journal.NewMemory()
		steps := []durable.Step[int]{
			durable.NewStep("a", func(context.Context) (int, error) { time.Sleep(time.Second); return 1, nil }),
			durable.NewStep("b", func(context.Context) (int, error) { return 0, errors.New("no") }),
			durable.NewStep("c", func(ctx context.Context) (int, error) { return 0, pause(ctx, time.Hour) }),
		}
		run := func() *recorder {
			r := &recorder{}
			ctx := durable.WithObserver(durable.WithJournal(context.Background(), j, "exec"), r)
			_, err := durable.Settle(ctx, "s", steps, durable.WithCompletion(durable.FirstSuccessful()))
			require.NoError(t, err)
			return r
		}
		r := run()
		require.Equal(t, []string{
			"BATCH_END Settle exec/s s reason=MIN_SUCCESSFUL_REACHED ok=1 failed=1 cancelled=1 notstarted=0 replayed=false err=false",
			"BATCH_START Settle exec/s s branches=3 resumed=false",
			"BRANCH_END Settle exec/s/a a SUCCEEDED replayed=false attempt=1",
			"BRANCH_END Settle exec/s/b b FAILED replayed=false attempt=1",
			"BRANCH_END Settle exec/s/c c FAILED replayed=false attempt=1",
			"BRANCH_START Settle exec/s/a a",
			"BRANCH_START Settle exec/s/b b",
			"BRANCH_START Settle exec/s/c c",
			"CHECKPOINT Settle exec/s/a a",
		}, r.lines())
		// Every branch ends in the span its start opened, under the batch's.
		ev := r.all()
		require.Equal(t, durable.EventBatchStart, ev[0].Kind)
		require.Equal(t, durable.EventBatchEnd, ev[len(ev)-1].Kind)
		spans := map[string]int{}
		for _, e := range ev {
			switch e.Kind {
			case durable.EventBranchStart:
				require.Equal(t, ev[0].span, e.parent)
				spans[e.Name] = e.span
			case durable.EventBranchEnd, durable.EventCheckpoint:
				require.Equal(t, spans[e.Name], e.span, "%s ends in its own span", e.Name)
			case durable.EventBatchEnd:
				require.Equal(t, ev[0].span, e.span)
			}
		}

		// The replay: the decision, and its restored branches, nothing ran.
		r = run()
		require.Equal(t, []string{
			"BATCH_END Settle exec/s s reason=MIN_SUCCESSFUL_REACHED ok=1 failed=1 cancelled=1 notstarted=0 replayed=true err=false",
			"BATCH_START Settle exec/s s branches=3 resumed=true",
			"BRANCH_END Settle exec/s/a a SUCCEEDED replayed=true attempt=0",
			"BRANCH_END Settle exec/s/b b FAILED replayed=true attempt=0",
			"DECISION_REPLAYED Settle exec/s s",
		}, r.lines())
	})
}

// A resumed Parallel reports its restored branches as replayed, without a
// start, and the rest as run.
func TestObserverResumedBatch(t *testing.T) {
	j := journal.NewMemory()
	fail := true
	steps := []durable.Step[int]{
		durable.NewStep("a", func(context.Context) (int, error) { return 1, nil }),
		durable.NewStep("b", func(context.Context) (int, error) {
			if fail {
				return 0, errors.New("flaky")
			}
			return 2, nil
		}),
	}
	_, err := durable.Parallel(durable.WithJournal(context.Background(), j, "exec"), "p", steps, durable.WithMaxConcurrency(1))
	require.Error(t, err)
	fail = false
	r := &recorder{}
	_, err = durable.Parallel(durable.WithObserver(durable.WithJournal(context.Background(), j, "exec"), r), "p", steps)
	require.NoError(t, err)
	require.Equal(t, []string{
		"BATCH_END Parallel exec/p p reason=ALL_COMPLETED ok=2 failed=0 cancelled=0 notstarted=0 replayed=false err=false",
		"BATCH_START Parallel exec/p p branches=2 resumed=true",
		"BRANCH_END Parallel exec/p/a a SUCCEEDED replayed=true attempt=0",
		"BRANCH_END Parallel exec/p/b b SUCCEEDED replayed=false attempt=1",
		"BRANCH_START Parallel exec/p/b b",
		"CHECKPOINT Parallel exec/p/b b",
	}, r.lines())
}

// Nested combinators and steps report under the span of the branch that runs
// them; retries, panics, timeouts and Groups report too, with and without a
// journal.
func TestObserverNestedRetriesPanicsTimeouts(t *testing.T) {
	for _, journaled := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			r := &recorder{}
			ctx := durable.WithObserver(context.Background(), r)
			if journaled {
				ctx = durable.WithJournal(ctx, journal.NewMemory(), "exec")
			}
			tries := 0
			_, err := durable.Parallel(ctx, "outer", []durable.Step[string]{
				durable.NewStep("nest", func(ctx context.Context) (string, error) {
					res, err := durable.Settle(ctx, "inner", []durable.Step[string]{
						durable.NewStep("step", func(ctx context.Context) (string, error) {
							return durable.NewStep("leaf", func(context.Context) (string, error) {
								tries++
								if tries < 3 {
									return "", errFlaky
								}
								return "ok", nil
							}, durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, Backoff: time.Second})).Run(ctx)
						}),
					})
					if err != nil {
						return "", err
					}
					return res.Values()[0], nil
				}),
				durable.NewStep("panics", func(context.Context) (string, error) {
					time.Sleep(10 * time.Second) // after the retries
					panic("boom")
				}),
			})
			var pe *durable.PanicError
			require.ErrorAs(t, err, &pe)

			g := durable.NewGroup(ctx, "g", durable.WithTimeout(time.Second))
			durable.Go(g, "slow", func(ctx context.Context) (int, error) { return 0, pause(ctx, time.Hour) })
			require.ErrorIs(t, g.Wait(), durable.ErrTimeout)

			ev := r.all()
			byName := map[string]recorded{}
			for _, e := range ev {
				if e.Kind == durable.EventBatchStart || e.Kind == durable.EventBranchStart {
					byName[e.Kind.String()+" "+e.Name] = e
				}
			}
			// The tree: outer ⊃ branch nest ⊃ inner ⊃ branch step ⊃ step leaf.
			require.Equal(t, byName["BATCH_START outer"].span, byName["BRANCH_START nest"].parent)
			require.Equal(t, byName["BRANCH_START nest"].span, byName["BATCH_START inner"].parent)
			require.Equal(t, byName["BATCH_START inner"].span, byName["BRANCH_START step"].parent)
			require.Equal(t, byName["BRANCH_START step"].span, byName["BRANCH_START leaf"].parent)
			require.Equal(t, "Step", byName["BRANCH_START leaf"].Combinator)

			lines := strings.Join(r.lines(durable.EventRetry, durable.EventBranchEnd, durable.EventBatchEnd), "\n")
			require.Contains(t, lines, "RETRY Step")
			require.Contains(t, lines, "attempt=1 wait=1s")
			require.Contains(t, lines, "attempt=2 wait=2s")
			require.Contains(t, lines, "leaf SUCCEEDED replayed=false attempt=3")
			require.Contains(t, lines, "panics FAILED")
			require.Regexp(t, `BATCH_END Parallel \S*outer outer reason=FAILURE_TOLERANCE_EXCEEDED ok=1 failed=1 cancelled=0 notstarted=0 replayed=false err=true`, lines)
			require.Contains(t, lines, "BRANCH_END Group")
			require.Regexp(t, `BATCH_END Group \S+ g reason=Reason\(0\).* err=true`, lines)
		})
	}
}

// An Observer that panics loses its event, never the batch.
type panickyObserver struct{}

func (panickyObserver) Observe(context.Context, durable.Event) context.Context { panic("observer bug") }

func TestObserverPanicIsDropped(t *testing.T) {
	ctx := durable.WithObserver(context.Background(), panickyObserver{})
	vs, err := durable.FanOut(ctx, "f", []int{1, 2, 3}, func(_ context.Context, x int) (int, error) { return x * 2, nil })
	require.NoError(t, err)
	require.Equal(t, []int{2, 4, 6}, vs)
	// nil removes the observer.
	r := &recorder{}
	ctx = durable.WithObserver(durable.WithObserver(context.Background(), r), nil)
	_, err = durable.FanOut(ctx, "f", []int{1}, func(_ context.Context, x int) (int, error) { return x, nil })
	require.NoError(t, err)
	require.Empty(t, r.all())
}

// The log/slog observer writes the documented records and attributes, and
// nothing below the handler's level.
func TestLogObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
		ctx := durable.WithObserver(durable.WithJournal(context.Background(), journal.NewMemory(), "exec-1"), durable.LogObserver(l))
		_, err := durable.Settle(ctx, "orders", []durable.Step[int]{
			durable.NewStep("ok", func(context.Context) (int, error) { return 1, nil }),
			durable.NewStep("bad", func(context.Context) (int, error) { return 0, errors.New("declined") }),
			durable.NewStep("flaky", func(context.Context) (int, error) { return 0, errFlaky },
				durable.WithRetry(durable.RetryPolicy{MaxAttempts: 2, Backoff: time.Millisecond})),
		})
		require.NoError(t, err)
		var recs []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &m), line)
			recs = append(recs, m)
		}
		var msgs []string
		for _, m := range recs {
			msgs = append(msgs, fmt.Sprint(m["level"], " ", m["msg"], " ", m["path"]))
			require.Equal(t, "exec-1", m["execution"])
		}
		slices.Sort(msgs)
		require.Equal(t, []string{
			"INFO durable: batch completed exec-1/orders",
			"WARN durable: attempt failed, retrying exec-1/orders/flaky",
			"WARN durable: branch failed exec-1/orders/bad",
			"WARN durable: branch failed exec-1/orders/flaky",
		}, msgs, "no Debug records at level Info")
		for _, m := range recs {
			switch m["msg"] {
			case "durable: batch completed":
				require.Equal(t, "ALL_COMPLETED", m["reason"])
				require.EqualValues(t, 1, m["succeeded"])
				require.EqualValues(t, 2, m["failed"])
			case "durable: branch failed":
				require.Equal(t, "FAILED", m["status"])
				require.Equal(t, false, m["replayed"])
				require.NotEmpty(t, m["err"])
				require.Contains(t, m, "duration")
				require.Contains(t, m, "attempt")
			}
		}
	})
}

// Progress reports a long fan-out at most once an interval, and once at the
// end, with counts that add up.
func TestProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var snaps []durable.ProgressSnapshot
		var mu sync.Mutex
		p := durable.Progress(time.Second, func(s durable.ProgressSnapshot) {
			mu.Lock()
			snaps = append(snaps, s)
			mu.Unlock()
		})
		items := make([]int, 100)
		_, err := durable.FanOut(durable.WithObserver(context.Background(), p), "big", items,
			func(context.Context, int) (int, error) { time.Sleep(100 * time.Millisecond); return 1, nil },
			durable.WithMaxConcurrency(2))
		require.NoError(t, err)
		mu.Lock()
		defer mu.Unlock()
		last := snaps[len(snaps)-1]
		require.True(t, last.Done)
		require.Equal(t, 100, last.Total)
		require.Equal(t, 100, last.Succeeded)
		require.Equal(t, 0, last.Running)
		require.Equal(t, 5*time.Second, last.Elapsed)
		require.InDelta(t, 20, last.Rate, 0.01)
		require.InDelta(t, 5, len(snaps), 1, "about one a second, plus the last")
		mid := snaps[1]
		require.False(t, mid.Done)
		require.Equal(t, 100, mid.Total)
		require.Positive(t, mid.Remaining)
	})
}
