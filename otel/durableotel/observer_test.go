package durableotel_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/otel/durableotel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// A Parallel whose branch runs a Settle whose branch runs a step: each span
// is the child of the one around it.
func TestNestedSpans(t *testing.T) {
	r := newRig(t)
	ctx, end := r.root(t.Context())
	_, err := durable.Parallel(ctx, "pipeline", []durable.Step[int]{
		durable.NewStep("a", func(ctx context.Context) (int, error) {
			res, err := durable.Settle(ctx, "orders", []durable.Step[int]{
				durable.NewStep("x", func(ctx context.Context) (int, error) {
					return durable.NewStep("charge", func(context.Context) (int, error) { return 7, nil }).Run(ctx)
				}),
				step("y", 2),
			}, durable.WithMaxConcurrency(2))
			if err != nil {
				return 0, err
			}
			return res.SuccessCount(), nil
		}),
		step("b", 1),
	})
	require.NoError(t, err)
	end()

	root := r.one("test")
	parallel := r.one("Parallel pipeline")
	a, b := r.one("branch a"), r.one("branch b")
	settle := r.one("Settle orders")
	x, y := r.one("branch x"), r.one("branch y")
	charge := r.one("step charge")
	require.Len(t, r.ended(), 8, r.tree())

	requireChild(t, root, parallel)
	requireChild(t, parallel, a)
	requireChild(t, parallel, b)
	requireChild(t, a, settle)
	requireChild(t, settle, x)
	requireChild(t, settle, y)
	requireChild(t, x, charge)
	for _, s := range r.ended()[:7] { // the test's own span ends last
		require.Equal(t, trace.SpanKindInternal, s.SpanKind(), s.Name())
		require.Equal(t, codes.Unset, s.Status().Code, s.Name())
		require.Equal(t, "github.com/durable-go/durable/otel/durableotel", s.InstrumentationScope().Name)
	}

	pa := attrs(parallel)
	require.Equal(t, "Parallel", pa["durable.combinator"].AsString())
	require.Equal(t, "pipeline", pa["durable.key"].AsString())
	require.Equal(t, "pipeline", pa["durable.name"].AsString())
	require.Equal(t, int64(2), pa["durable.branches"].AsInt64())
	require.Equal(t, "tolerated failures 0", pa["durable.policy"].AsString())
	require.False(t, pa["durable.resumed"].AsBool())
	require.Equal(t, "ALL_COMPLETED", pa["durable.reason"].AsString())
	require.Equal(t, int64(2), pa["durable.succeeded"].AsInt64())
	require.Equal(t, int64(0), pa["durable.failed"].AsInt64())
	require.False(t, pa["durable.replayed"].AsBool())
	require.NotContains(t, pa, attribute.Key("durable.execution"), "no journal, no execution")
	require.NotContains(t, pa, attribute.Key("durable.limit"))
	require.NotContains(t, pa, attribute.Key("durable.index"))

	sa := attrs(settle)
	require.Equal(t, int64(2), sa["durable.limit"].AsInt64())
	require.Equal(t, "all completed", sa["durable.policy"].AsString())

	aa := attrs(a)
	require.Equal(t, "Parallel", aa["durable.combinator"].AsString())
	require.Equal(t, "pipeline/a", aa["durable.key"].AsString())
	require.Equal(t, int64(0), aa["durable.index"].AsInt64())
	require.Equal(t, "SUCCEEDED", aa["durable.status"].AsString())
	require.False(t, aa["durable.replayed"].AsBool())
	require.Equal(t, int64(1), aa["durable.attempt"].AsInt64())
	require.Equal(t, int64(1), attrs(b)["durable.index"].AsInt64())

	ca := attrs(charge)
	require.Equal(t, "Step", ca["durable.combinator"].AsString())
	require.Equal(t, "charge", ca["durable.key"].AsString())
	require.NotContains(t, ca, attribute.Key("durable.index"))
	require.Equal(t, "SUCCEEDED", ca["durable.status"].AsString())

	rm := r.collect()
	require.Equal(t, int64(2), sum(t, rm, "durable.branches", combinator("Parallel"), status("SUCCEEDED"), replayed(false)))
	require.Equal(t, int64(2), sum(t, rm, "durable.branches", combinator("Settle"), status("SUCCEEDED"), replayed(false)))
	require.Equal(t, int64(1), sum(t, rm, "durable.branches", combinator("Step"), status("SUCCEEDED"), replayed(false)))
	require.Equal(t, uint64(2), count(t, rm, "durable.branch.duration", combinator("Parallel"), status("SUCCEEDED")))
	require.Equal(t, int64(1), sum(t, rm, "durable.batches", combinator("Parallel"), reason("ALL_COMPLETED")))
	require.Equal(t, int64(1), sum(t, rm, "durable.batches", combinator("Settle"), reason("ALL_COMPLETED")))
}

func TestFailedBranch(t *testing.T) {
	r := newRig(t)
	ctx, end := r.root(t.Context())
	boom := errors.New("boom")
	_, err := durable.Parallel(ctx, "p", []durable.Step[int]{
		durable.NewStep("bad", func(context.Context) (int, error) { return 0, boom }),
	})
	require.ErrorIs(t, err, boom)
	res, err := durable.Settle(ctx, "s", []durable.Step[int]{
		durable.NewStep("bad", func(context.Context) (int, error) { return 0, boom }),
		step("good", 1),
	})
	require.NoError(t, err)
	require.Equal(t, 1, res.FailureCount())
	end()

	parallel := r.one("Parallel p")
	bad := r.named("branch bad")
	require.Len(t, bad, 2)
	for _, s := range bad {
		require.Equal(t, codes.Error, s.Status().Code)
		require.Equal(t, "boom", s.Status().Description)
		require.Equal(t, "FAILED", attrs(s)["durable.status"].AsString())
		ex := events(s, "exception")
		require.Len(t, ex, 1)
		require.Equal(t, "boom", eventAttrs(ex[0])["exception.message"].AsString())
	}

	// Parallel failed fast: its span says why (its status: TestFailedBatch).
	pa := attrs(parallel)
	require.Equal(t, "FAILURE_TOLERANCE_EXCEEDED", pa["durable.reason"].AsString())
	require.Equal(t, int64(1), pa["durable.failed"].AsInt64())

	// Settle did not: its span did not fail; the count says what did.
	settle := r.one("Settle s")
	require.Equal(t, codes.Unset, settle.Status().Code)
	sa := attrs(settle)
	require.Equal(t, int64(1), sa["durable.failed"].AsInt64())
	require.Equal(t, int64(1), sa["durable.succeeded"].AsInt64())
	require.NotContains(t, sa, attribute.Key("error.type"))

	rm := r.collect()
	require.Equal(t, int64(1), sum(t, rm, "durable.branches", combinator("Parallel"), status("FAILED"), replayed(false)))
	require.Equal(t, int64(1), sum(t, rm, "durable.branches", combinator("Settle"), status("FAILED"), replayed(false)))
	require.Equal(t, int64(1), sum(t, rm, "durable.branches", combinator("Settle"), status("SUCCEEDED"), replayed(false)))
	require.Equal(t, uint64(1), count(t, rm, "durable.branch.duration", combinator("Parallel"), status("FAILED")))
	require.Equal(t, int64(1), sum(t, rm, "durable.batches", combinator("Settle"), reason("ALL_COMPLETED")))
}

// A second run over the same journal replays every branch: their spans are
// marked, have no length, and sit under their batch's span.
func TestReplayedBranches(t *testing.T) {
	r := newRig(t)
	j := journal.NewMemory()
	var ran atomic.Int32
	steps := []durable.Step[string]{}
	for _, name := range []string{"a", "b", "c"} {
		steps = append(steps, durable.NewStep(name, func(context.Context) (string, error) {
			ran.Add(1)
			return name, nil
		}))
	}
	for range 2 {
		ctx, end := r.root(durable.WithJournal(t.Context(), j, "exec"))
		_, err := durable.Parallel(ctx, "p", steps)
		require.NoError(t, err)
		end()
	}
	require.Equal(t, int32(3), ran.Load(), "the second run ran nothing")

	batches := r.named("Parallel p")
	require.Len(t, batches, 2)
	first, second := batches[0], batches[1]
	require.False(t, attrs(first)["durable.resumed"].AsBool())
	require.True(t, attrs(second)["durable.resumed"].AsBool())
	require.Equal(t, "exec", attrs(second)["durable.execution"].AsString())
	require.Equal(t, "exec/p", attrs(second)["durable.key"].AsString())

	for _, name := range []string{"a", "b", "c"} {
		spans := r.named("branch " + name)
		require.Len(t, spans, 2, r.tree())
		ran, rep := spans[0], spans[1]
		requireChild(t, first, ran)
		requireChild(t, second, rep)

		ra := attrs(ran)
		require.False(t, ra["durable.replayed"].AsBool())
		require.Equal(t, "exec", ra["durable.execution"].AsString())
		require.Equal(t, "exec/p/"+name, ra["durable.key"].AsString())
		cp := events(ran, "checkpoint")
		require.Len(t, cp, 1, "the run's checkpoint")
		require.Positive(t, eventAttrs(cp[0])["durable.bytes"].AsInt64())
		require.Contains(t, eventAttrs(cp[0]), attribute.Key("durable.duration"))

		pa := attrs(rep)
		require.True(t, pa["durable.replayed"].AsBool())
		require.Equal(t, "SUCCEEDED", pa["durable.status"].AsString())
		require.Equal(t, "exec/p/"+name, pa["durable.key"].AsString())
		require.NotContains(t, pa, attribute.Key("durable.attempt"))
		require.Contains(t, pa, attribute.Key("durable.original_duration"))
		require.Equal(t, rep.StartTime(), rep.EndTime(), "a replayed branch did not run")
		require.Empty(t, events(rep, "checkpoint"))
	}

	rm := r.collect()
	require.Equal(t, int64(3), sum(t, rm, "durable.branches", combinator("Parallel"), status("SUCCEEDED"), replayed(false)))
	require.Equal(t, int64(3), sum(t, rm, "durable.branches", combinator("Parallel"), status("SUCCEEDED"), replayed(true)))
	require.Equal(t, uint64(3), count(t, rm, "durable.branch.duration", combinator("Parallel"), status("SUCCEEDED")),
		"replayed branches are not measured")
	require.Equal(t, uint64(3), count(t, rm, "durable.checkpoint.duration", combinator("Parallel")))
	require.Equal(t, int64(2), sum(t, rm, "durable.batches", combinator("Parallel"), reason("ALL_COMPLETED")))
}

// A completed Settle run again returns its journaled decision.
func TestReplayedDecision(t *testing.T) {
	r := newRig(t)
	j := journal.NewMemory()
	boom := durable.Permanent(errors.New("boom"))
	steps := []durable.Step[int]{
		step("ok", 1),
		durable.NewStep("bad", func(context.Context) (int, error) { return 0, boom }),
	}
	for range 2 {
		ctx, end := r.root(durable.WithJournal(t.Context(), j, "exec"))
		res, err := durable.Settle(ctx, "s", steps)
		require.NoError(t, err)
		require.Equal(t, 1, res.FailureCount())
		end()
	}
	settles := r.named("Settle s")
	require.Len(t, settles, 2)
	require.Empty(t, events(settles[0], "decision_replayed"))
	require.Len(t, events(settles[1], "decision_replayed"), 1)
	require.False(t, attrs(settles[0])["durable.replayed"].AsBool())
	require.True(t, attrs(settles[1])["durable.replayed"].AsBool())
	require.Equal(t, "ALL_COMPLETED", attrs(settles[1])["durable.reason"].AsString())
	require.Equal(t, int64(1), attrs(settles[1])["durable.failed"].AsInt64())

	for _, name := range []string{"ok", "bad"} {
		spans := r.named("branch " + name)
		require.Len(t, spans, 2, "each branch reported once per run:\n%s", r.tree())
		requireChild(t, settles[0], spans[0])
		requireChild(t, settles[1], spans[1])
		require.False(t, attrs(spans[0])["durable.replayed"].AsBool())
		require.True(t, attrs(spans[1])["durable.replayed"].AsBool())
	}
	bad := r.named("branch bad")[1]
	require.Equal(t, codes.Error, bad.Status().Code, "a replayed failure is a failure")
	require.Equal(t, "boom", bad.Status().Description)

	rm := r.collect()
	require.Equal(t, int64(1), sum(t, rm, "durable.branches", combinator("Settle"), status("FAILED"), replayed(true)))
	require.Equal(t, int64(1), sum(t, rm, "durable.branches", combinator("Settle"), status("SUCCEEDED"), replayed(true)))
	require.Equal(t, int64(2), sum(t, rm, "durable.batches", combinator("Settle"), reason("ALL_COMPLETED")))
}

// A step that fails twice under WithRetry: two retry events, then success on
// the third attempt. Fake time: the waits take none.
func TestRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		ctx, end := r.root(t.Context())
		policy := durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, Backoff: time.Second})
		flaky := func(name string) func(context.Context) (int, error) {
			n := 0
			return func(context.Context) (int, error) {
				if n++; n < 3 {
					return 0, errors.New(name + " flaked")
				}
				return n, nil
			}
		}
		v, err := durable.NewStep("alone", flaky("alone"), policy).Run(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, v)
		_, err = durable.Parallel(ctx, "p", []durable.Step[int]{durable.NewStep("branch", flaky("branch"))}, policy)
		require.NoError(t, err)
		g := durable.NewGroup(ctx, "g", policy)
		durable.Go(g, "member", flaky("member"))
		require.NoError(t, g.Wait())
		end()

		for _, name := range []string{"step alone", "branch branch", "branch member"} {
			s := r.one(name)
			retries := events(s, "retry")
			require.Len(t, retries, 2, name)
			for i, e := range retries {
				ea := eventAttrs(e)
				require.Equal(t, int64(i+1), ea["durable.attempt"].AsInt64(), name)
				require.Equal(t, float64(i+1), ea["durable.wait"].AsFloat64(), "%s: seconds: 1s, then 2s", name)
				require.Contains(t, ea["exception.message"].AsString(), "flaked")
			}
			require.Equal(t, int64(3), attrs(s)["durable.attempt"].AsInt64(), name)
			require.Equal(t, "SUCCEEDED", attrs(s)["durable.status"].AsString(), name)
			require.Equal(t, 3*time.Second, s.EndTime().Sub(s.StartTime()), "%s: the waits, in fake time", name)
		}
		rm := r.collect()
		for _, c := range []string{"Step", "Parallel", "Group"} {
			require.Equal(t, int64(2), sum(t, rm, "durable.retries", combinator(c)), c)
		}
	})
}

func TestGroup(t *testing.T) {
	r := newRig(t)
	j := journal.NewMemory()
	var ran atomic.Int32
	run := func() error {
		ctx, end := r.root(durable.WithJournal(t.Context(), j, "exec"))
		defer end()
		g := durable.NewGroup(ctx, "checkout", durable.WithMaxConcurrency(1))
		fr := durable.Go(g, "reserve", func(context.Context) (string, error) { ran.Add(1); return "r1", nil })
		fp := durable.Go(g, "pay", func(context.Context) (int, error) { ran.Add(1); return 42, nil })
		if err := g.Wait(); err != nil {
			return err
		}
		_, err1 := fr.Get()
		_, err2 := fp.Get()
		return errors.Join(err1, err2)
	}
	require.NoError(t, run())
	require.NoError(t, run())
	require.Equal(t, int32(2), ran.Load())

	groups := r.named("Group checkout")
	require.Len(t, groups, 2)
	for i, g := range groups {
		ga := attrs(g)
		require.Equal(t, "Group", ga["durable.combinator"].AsString())
		require.Equal(t, "exec/checkout", ga["durable.key"].AsString())
		require.Equal(t, int64(2), ga["durable.branches"].AsInt64(), "known at the end")
		require.Equal(t, int64(1), ga["durable.limit"].AsInt64())
		require.Equal(t, "ALL_COMPLETED", ga["durable.reason"].AsString())
		require.Equal(t, int64(2), ga["durable.succeeded"].AsInt64())
		require.Equal(t, i == 1, ga["durable.resumed"].AsBool())
	}
	for idx, name := range []string{"reserve", "pay"} {
		spans := r.named("branch " + name)
		require.Len(t, spans, 2, r.tree())
		for i, s := range spans {
			requireChild(t, groups[i], s)
			sa := attrs(s)
			require.Equal(t, int64(idx), sa["durable.index"].AsInt64())
			require.Equal(t, "exec/checkout/"+name, sa["durable.key"].AsString())
			require.Equal(t, i == 1, sa["durable.replayed"].AsBool())
		}
	}
	rm := r.collect()
	require.Equal(t, int64(2), sum(t, rm, "durable.branches", combinator("Group"), status("SUCCEEDED"), replayed(false)))
	require.Equal(t, int64(2), sum(t, rm, "durable.branches", combinator("Group"), status("SUCCEEDED"), replayed(true)))
	require.Equal(t, int64(2), sum(t, rm, "durable.batches", combinator("Group"), reason("ALL_COMPLETED")))
}

// FanOut's branches are named after their items: their spans are named after
// the batch.
func TestFanOutItems(t *testing.T) {
	r := newRig(t)
	ctx, end := r.root(t.Context())
	items := make([]int, 50)
	_, err := durable.FanOut(ctx, "resize", items, func(context.Context, int) (int, error) { return 0, nil },
		durable.WithMaxConcurrency(4))
	require.NoError(t, err)
	_, err = durable.SettleEach(ctx, "notify", []string{"ann", "bob"},
		func(context.Context, string) (int, error) { return 0, nil }, durable.WithKey(func(s string) string { return s }))
	require.NoError(t, err)
	end()

	fan := r.one("FanOut resize")
	seen := map[string]bool{}
	for _, s := range r.named("item resize") {
		requireChild(t, fan, s)
		seen[attrs(s)["durable.name"].AsString()] = true
	}
	require.Len(t, seen, 50)
	require.True(t, seen["0"] && seen["49"])

	each := r.one("SettleEach notify")
	notified := r.named("item notify")
	require.Len(t, notified, 2)
	for _, s := range notified {
		requireChild(t, each, s)
		require.Equal(t, "notify/"+attrs(s)["durable.name"].AsString(), attrs(s)["durable.key"].AsString())
	}
	rm := r.collect()
	require.Equal(t, int64(50), sum(t, rm, "durable.branches", combinator("FanOut"), status("SUCCEEDED"), replayed(false)))
}

// A step run again in a fresh context is replayed under its caller's span.
func TestReplayedStep(t *testing.T) {
	r := newRig(t)
	j := journal.NewMemory()
	s := step("charge", 7)
	for range 2 {
		ctx, end := r.root(durable.WithJournal(t.Context(), j, "exec"))
		v, err := s.Run(ctx)
		require.NoError(t, err)
		require.Equal(t, 7, v)
		end()
	}
	roots, steps := r.named("test"), r.named("step charge")
	require.Len(t, steps, 2)
	requireChild(t, roots[0], steps[0])
	requireChild(t, roots[1], steps[1])
	require.False(t, attrs(steps[0])["durable.replayed"].AsBool())
	require.True(t, attrs(steps[1])["durable.replayed"].AsBool())
	require.Equal(t, "exec/charge", attrs(steps[1])["durable.key"].AsString())
}

// A batch that fails before it starts (here: a nondeterministic execution)
// reports its end alone, with the caller's context: it gets a span of its
// own, and the caller's span is left to end when it ends.
func TestBatchEndWithoutStart(t *testing.T) {
	r := newRig(t)
	j := journal.NewMemory()
	again := errors.New("again")
	run := func(names ...string) error {
		ctx, end := r.root(durable.WithJournal(t.Context(), j, "exec"))
		defer end()
		_, err := durable.Parallel(ctx, "outer", []durable.Step[int]{
			durable.NewStep("o", func(ctx context.Context) (int, error) {
				var steps []durable.Step[int]
				for _, n := range names {
					steps = append(steps, step(n, 1))
				}
				if _, err := durable.Parallel(ctx, "inner", steps); err != nil {
					return 0, err
				}
				return 0, again // not journaled: the next run runs o again
			}),
		})
		return err
	}
	require.ErrorIs(t, run("a", "b"), again)
	r.spans.Reset()
	err := run("a", "c")
	require.ErrorIs(t, err, durable.ErrNondeterministic)

	o := r.one("branch o")
	inner := r.one("Parallel inner")
	requireChild(t, o, inner)
	require.Equal(t, codes.Error, inner.Status().Code)
	require.Equal(t, "nondeterministic", attrs(inner)["error.type"].AsString())
	require.NotContains(t, attrs(inner), attribute.Key("durable.reason"))
	// Had the inner batch's end ended the branch's span, the branch's own
	// end could not have set its status.
	require.Equal(t, "FAILED", attrs(o)["durable.status"].AsString())
	require.False(t, o.EndTime().Before(inner.EndTime()))

	rm := r.collect()
	require.Equal(t, int64(1), sum(t, rm, "durable.batches", combinator("Parallel"), reason("ERROR"),
		attribute.String("error.type", "nondeterministic")))
}

// Many branches reporting at once, under -race.
func TestConcurrent(t *testing.T) {
	r := newRig(t)
	ctx, end := r.root(t.Context())
	items := make([]int, 200)
	_, err := durable.FanOut(ctx, "many", items, func(ctx context.Context, i int) (int, error) {
		return durable.NewStep("inner", func(context.Context) (int, error) { return i, nil }).Run(ctx)
	})
	require.NoError(t, err)
	end()
	require.Len(t, r.named("item many"), 200)
	require.Len(t, r.named("step inner"), 200)
	points, total := sums(t, r.collect(), "durable.branches")
	assert.Equal(t, 2, points, "FanOut and Step")
	assert.Equal(t, int64(400), total)
}

func TestNewOptions(t *testing.T) {
	_, err := durableotel.New(durableotel.WithTracerProvider(nil))
	require.Error(t, err)
	_, err = durableotel.New(durableotel.WithMeterProvider(nil))
	require.Error(t, err)
	_, err = durableotel.New(nil)
	require.Error(t, err)
	obs, err := durableotel.New() // the global providers: no-ops
	require.NoError(t, err)
	_, err = durable.Parallel(durable.WithObserver(t.Context(), obs), "p", []durable.Step[int]{step("a", 1)})
	require.NoError(t, err)
}

// A combinator that returns a branch's failure: its span failed, with the
// error recorded.
func TestFailedBatch(t *testing.T) {
	boom := errors.New("boom")
	bad := func(context.Context) (int, error) { return 0, boom }
	steps := []durable.Step[int]{durable.NewStep("bad", bad)}
	for _, tc := range []struct {
		combinator string
		run        func(ctx context.Context) error
	}{
		{"Group", func(ctx context.Context) error {
			g := durable.NewGroup(ctx, "b")
			durable.Go(g, "bad", bad)
			return g.Wait()
		}},
		{"Parallel", func(ctx context.Context) error { _, err := durable.Parallel(ctx, "b", steps); return err }},
		{"FanOut", func(ctx context.Context) error {
			_, err := durable.FanOut(ctx, "b", []int{1}, func(ctx context.Context, _ int) (int, error) { return bad(ctx) })
			return err
		}},
		{"Race", func(ctx context.Context) error { _, err := durable.Race(ctx, "b", steps); return err }},
		{"Any", func(ctx context.Context) error { _, err := durable.Any(ctx, "b", steps); return err }},
	} {
		t.Run(tc.combinator, func(t *testing.T) {
			r := newRig(t)
			ctx, end := r.root(t.Context())
			require.ErrorIs(t, tc.run(ctx), boom)
			end()
			s := r.one(tc.combinator + " b")
			require.Equal(t, codes.Error, s.Status().Code)
			require.Contains(t, s.Status().Description, "boom")
			require.Len(t, events(s, "exception"), 1)
			sa := attrs(s)
			require.Equal(t, "branch", sa["error.type"].AsString())
			why := "ERROR"
			if v, ok := sa["durable.reason"]; ok {
				why = v.AsString()
			}
			require.Equal(t, int64(1), sum(t, r.collect(), "durable.batches", combinator(tc.combinator), reason(why),
				attribute.String("error.type", "branch")))
		})
	}
}

// A Settle whose deadline passes returns its partial result: no error, the
// reason says why.
func TestSettleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		ctx, end := r.root(t.Context())
		res, err := durable.Settle(ctx, "s", []durable.Step[int]{
			step("quick", 1),
			durable.NewStep("slow", func(ctx context.Context) (int, error) {
				<-ctx.Done()
				return 0, context.Cause(ctx)
			}),
		}, durable.WithTimeout(time.Minute))
		require.NoError(t, err)
		require.Equal(t, durable.ReasonTimedOut, res.Reason)
		end()

		s := r.one("Settle s")
		require.Equal(t, codes.Unset, s.Status().Code)
		require.Equal(t, time.Minute, s.EndTime().Sub(s.StartTime()))
		sa := attrs(s)
		require.Equal(t, "TIMED_OUT", sa["durable.reason"].AsString())
		require.Equal(t, int64(1), sa["durable.succeeded"].AsInt64())
		require.Equal(t, int64(1), sa["durable.cancelled"].AsInt64())
		require.Equal(t, int64(1), sum(t, r.collect(), "durable.batches", combinator("Settle"), reason("TIMED_OUT")))
	})
}
