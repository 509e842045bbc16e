package durable_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

type record struct {
	ID    string
	Delay time.Duration
	Bad   bool
}

func parseRecord(ctx context.Context, r record) (int, error) {
	if err := pause(ctx, r.Delay); err != nil {
		return 0, err
	}
	if r.Bad {
		return 0, fmt.Errorf("record %s: bad", r.ID)
	}
	return len(r.ID), nil
}

// Property: SettleEach over items decides exactly as Settle over the same
// work as steps — statuses, reason, values, errors — under random policies,
// caps and timings.
func TestSettleEachIsSettleOverItems(t *testing.T) {
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 7))
		n := 1 + rng.IntN(12)
		items := make([]record, n)
		for i := range items {
			items[i] = record{ID: "r" + strconv.Itoa(i), Delay: time.Duration(1 + rng.IntN(20_000_000)), Bad: rng.IntN(4) == 0} // ns: no two outcomes at one instant
		}
		opts := []durable.Option{}
		switch rng.IntN(4) {
		case 0:
			opts = append(opts, durable.WithCompletion(durable.ToleratedFailures(rng.IntN(3))))
		case 1:
			opts = append(opts, durable.WithCompletion(durable.MinSuccessful(1+rng.IntN(n))))
		case 2:
			opts = append(opts, durable.WithCompletion(durable.ToleratedFailureRatio(rng.Float64())))
		}
		if rng.IntN(2) == 0 {
			opts = append(opts, durable.WithMaxConcurrency(1+rng.IntN(4)))
		}
		if rng.IntN(3) == 0 {
			opts = append(opts, durable.WithTimeout(time.Duration(5_000_000+rng.IntN(30_000_000))))
		}
		var each, settle *durable.BatchResult[int]
		synctest.Test(t, func(t *testing.T) {
			var err error
			each, err = durable.SettleEach(context.Background(), "s", items, parseRecord, opts...)
			require.NoError(t, err)
		})
		synctest.Test(t, func(t *testing.T) {
			steps := make([]durable.Step[int], n)
			for i, it := range items {
				steps[i] = durable.NewStep(strconv.Itoa(i), func(ctx context.Context) (int, error) { return parseRecord(ctx, it) })
			}
			var err error
			settle, err = durable.Settle(context.Background(), "s", steps, opts...)
			require.NoError(t, err)
		})
		require.Equal(t, settle.Reason, each.Reason, "seed %d", seed)
		require.Equal(t, viewItems(settle), viewItems(each), "seed %d", seed)
	}
}

// SettleEach names and digests its branches as FanOut does: by index, with a
// digest of the item, or by WithKey; a completed SettleEach is final.
func TestSettleEachJournal(t *testing.T) {
	j := journal.NewMemory()
	items := []record{{ID: "a"}, {ID: "bad", Bad: true}, {ID: "ccc"}}
	var ran atomic.Int32
	fn := func(ctx context.Context, r record) (int, error) { ran.Add(1); return parseRecord(ctx, r) }
	tolerant := durable.WithCompletion(durable.ToleratedFailureRatio(0.5))
	res, err := durable.SettleEach(durable.WithJournal(context.Background(), j, "e"), "parse", items, fn, tolerant)
	require.NoError(t, err)
	require.Equal(t, durable.ReasonAllCompleted, res.Reason)
	require.Equal(t, []int{1, 3}, res.Values())
	require.Equal(t, "1", res.Items[1].Name)
	again, err := durable.SettleEach(durable.WithJournal(context.Background(), j, "e"), "parse", items, fn, tolerant)
	require.NoError(t, err)
	require.Equal(t, viewItems(res), viewItems(again))
	require.EqualValues(t, 3, ran.Load(), "final: nothing ran again")

	// Named by key.
	res, err = durable.SettleEach(durable.WithJournal(context.Background(), j, "e"), "q", items, fn, durable.WithKey(func(r record) string { return r.ID }))
	require.NoError(t, err)
	require.Equal(t, "bad", res.Items[1].Name)
	_, err = durable.SettleEach(durable.WithJournal(context.Background(), journal.NewMemory(), "e"), "k", items, fn, durable.WithKey(func(r record) string { return "same" }))
	require.ErrorIs(t, err, durable.ErrDuplicateName)
}

func TestSettleEachItemChangedFailsClosed(t *testing.T) {
	j := journal.NewMemory()
	fail := true
	fn := func(ctx context.Context, r record) (int, error) {
		if fail && r.ID == "b" {
			return 0, errors.New("crash")
		}
		return len(r.ID), nil
	}
	// The first run's decision is lost, as in a crash before it was written:
	// only the head and item 0's success are left.
	_, err := durable.SettleEach(durable.WithJournal(context.Background(), j, "e"), "s", []record{{ID: "a"}, {ID: "b"}}, fn)
	require.NoError(t, err)
	mem := journal.NewMemory()
	for _, k := range []string{"e/s/!h", "e/s/0"} {
		v, ok, _ := j.Get(context.Background(), k)
		require.True(t, ok, k)
		_, _ = mem.Put(context.Background(), k, v)
	}
	fail = false
	_, err = durable.SettleEach(durable.WithJournal(context.Background(), mem, "e"), "s", []record{{ID: "z"}, {ID: "b"}}, fn)
	require.ErrorIs(t, err, durable.ErrNondeterministic)
}

// A quorum rule: met at 3 of 5 successes, failed as soon as 3 can no longer
// succeed; the decision replays with the same reason and statuses.
func TestCompleteWhenQuorum(t *testing.T) {
	quorum := durable.CompleteWhen("quorum", func(t durable.Tally) durable.Verdict {
		switch {
		case t.Succeeded >= 3:
			return durable.VerdictMet
		case t.Total-t.Failed < 3:
			return durable.VerdictFailed
		}
		return durable.VerdictContinue
	})
	replica := func(i int, ok bool, d time.Duration) durable.Step[int] {
		return durable.NewStep("replica"+strconv.Itoa(i), func(ctx context.Context) (int, error) {
			if err := pause(ctx, d); err != nil {
				return 0, err
			}
			if !ok {
				return 0, errors.New("write refused")
			}
			return i, nil
		})
	}
	for _, tc := range []struct {
		name   string
		steps  []durable.Step[int]
		reason durable.Reason
		st     []durable.Status
	}{
		{"met", []durable.Step[int]{replica(0, true, 1), replica(1, false, 2), replica(2, true, 3), replica(3, true, 4), replica(4, true, 9)},
			durable.ReasonRuleMet, []durable.Status{1, 2, 1, 1, 3}},
		{"failed", []durable.Step[int]{replica(0, false, 1), replica(1, true, 2), replica(2, false, 3), replica(3, false, 4), replica(4, true, 9)},
			durable.ReasonRuleFailed, []durable.Status{2, 1, 2, 2, 3}},
	} {
		synctest.Test(t, func(t *testing.T) {
			j := journal.NewMemory()
			var results []*durable.BatchResult[int]
			for range 2 {
				res, err := durable.Settle(durable.WithJournal(context.Background(), j, "e"), "write", tc.steps,
					durable.WithCompletion(quorum), durable.WithTimeout(time.Hour))
				require.NoError(t, err)
				results = append(results, res)
			}
			for _, res := range results {
				require.Equal(t, tc.reason, res.Reason, tc.name)
				st, _ := statusesOf(res)
				require.Equal(t, tc.st, st, tc.name)
			}
			require.Equal(t, tc.reason.String(), map[durable.Reason]string{durable.ReasonRuleMet: "RULE_MET", durable.ReasonRuleFailed: "RULE_FAILED"}[tc.reason])
		})
	}
}

// A rule that panics, or answers nonsense, is an error of the call.
func TestCompleteWhenBadRules(t *testing.T) {
	steps := []durable.Step[int]{durable.NewStep("a", func(context.Context) (int, error) { return 1, nil })}
	_, err := durable.Settle(context.Background(), "s", steps, durable.WithCompletion(durable.CompleteWhen("boom", func(durable.Tally) durable.Verdict { panic("no") })))
	var pe *durable.PanicError
	require.ErrorAs(t, err, &pe)
	require.ErrorContains(t, err, `completion rule "boom" panicked`)
	_, err = durable.Settle(context.Background(), "s", steps, durable.WithCompletion(durable.CompleteWhen("odd", func(durable.Tally) durable.Verdict { return 7 })))
	require.ErrorContains(t, err, "Verdict(7)")
	// Another rule under the same name on a later run is nondeterministic.
	j := journal.NewMemory()
	cont := func(durable.Tally) durable.Verdict { return durable.VerdictContinue }
	_, err = durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", steps, durable.WithCompletion(durable.CompleteWhen("one", cont)))
	require.NoError(t, err)
	_, err = durable.Settle(durable.WithJournal(context.Background(), j, "e"), "s", steps, durable.WithCompletion(durable.CompleteWhen("two", cont)))
	require.ErrorIs(t, err, durable.ErrNondeterministic)
}
