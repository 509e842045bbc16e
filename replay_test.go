package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// The tests in this file check the replay rules of the design, one rule per
// test: each runs an execution, runs it again with a fresh context on the same
// journal and execution ID, and counts how many times each step's function ran.

// runCounter counts the runs of each step function, by name.
type runCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func newRunCounter() *runCounter { return &runCounter{n: make(map[string]int)} }

func (c *runCounter) add(name string) {
	c.mu.Lock()
	c.n[name]++
	c.mu.Unlock()
}

func (c *runCounter) of(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

func (c *runCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	sum := 0
	for _, k := range c.n {
		sum += k
	}
	return sum
}

// pause waits d, or until ctx ends, and then returns ctx's error.
func pause(ctx context.Context, d time.Duration) error {
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
	}
	return ctx.Err()
}

// counted is a step that counts its runs in c, waits d (giving up when its
// context ends) and returns v, err.
func counted[T any](c *runCounter, name string, d time.Duration, v T, err error) durable.Step[T] {
	return durable.NewStep(name, func(ctx context.Context) (T, error) {
		c.add(name)
		if cerr := pause(ctx, d); cerr != nil {
			var zero T
			return zero, cerr
		}
		return v, err
	})
}

// journalKinds are the two restore paths of the engine: one Get per key, and a
// bulk Scan.
var journalKinds = []struct {
	name string
	new  func() journal.Journal
}{
	{"Memory", func() journal.Journal { return journal.NewMemory() }},
	{"Scanner", func() journal.Journal { return newScanMemory() }},
}

func forEachJournal(t *testing.T, f func(t *testing.T, newJournal func() journal.Journal)) {
	for _, k := range journalKinds {
		t.Run(k.name, func(t *testing.T) { f(t, k.new) })
	}
}

// itemView is an Item without Replayed and with its error as a message, to
// compare a run with its replay.
type itemView[T any] struct {
	Index  int
	Name   string
	Status durable.Status
	Value  T
	Err    string
}

func viewItems[T any](r *durable.BatchResult[T]) []itemView[T] {
	views := make([]itemView[T], len(r.Items))
	for i, it := range r.Items {
		views[i] = itemView[T]{Index: it.Index, Name: it.Name, Status: it.Status, Value: it.Value}
		if it.Err != nil {
			views[i].Err = it.Err.Error()
		}
	}
	return views
}

func replayedFlags[T any](r *durable.BatchResult[T]) []bool {
	flags := make([]bool, len(r.Items))
	for i, it := range r.Items {
		flags[i] = it.Replayed
	}
	return flags
}

func itemStatuses[T any](r *durable.BatchResult[T]) []durable.Status {
	s := make([]durable.Status, len(r.Items))
	for i, it := range r.Items {
		s[i] = it.Status
	}
	return s
}

func itemNames[T any](items []durable.Item[T]) []string {
	var s []string
	for _, it := range items {
		s = append(s, it.Name)
	}
	return s
}

// typeNamer is what a replayed permanent failure implements.
type typeNamer interface{ TypeName() string }

// A journaled success is returned on the next run without running Fn, from
// every combinator and from Step.Run.
func TestReplayJournaledSuccessSkipsFn(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		j := newJournal()
		c := newRunCounter()
		run := func(string) context.Context { return durable.WithJournal(t.Context(), j, "exec") }
		steps := func(tag string) []durable.Step[string] {
			return []durable.Step[string]{
				counted(c, "a", 0, "a-"+tag, nil),
				counted(c, "b", 0, "b-"+tag, nil),
				counted(c, "c", 0, "c-"+tag, nil),
			}
		}

		t.Run("Step.Run", func(t *testing.T) {
			step := func(tag string) durable.Step[string] { return counted(c, "one", 0, "one-"+tag, nil) }
			v, err := step("1").Run(run("1"))
			require.NoError(t, err)
			require.Equal(t, "one-1", v)
			v, err = step("2").Run(run("2"))
			require.NoError(t, err)
			require.Equal(t, "one-1", v)
			require.Equal(t, 1, c.of("one"))

			v, err = step("3").Run(durable.WithJournal(t.Context(), j, "another execution"))
			require.NoError(t, err)
			require.Equal(t, "one-3", v, "another execution ID replays nothing")
			require.Equal(t, 2, c.of("one"))
		})

		t.Run("Settle", func(t *testing.T) {
			before := c.total()
			r1, err := durable.Settle(run("1"), "settle", steps("1"))
			require.NoError(t, err)
			require.Equal(t, []string{"a-1", "b-1", "c-1"}, r1.Values())
			require.Equal(t, []bool{false, false, false}, replayedFlags(r1))
			require.Equal(t, before+3, c.total())

			r2, err := durable.Settle(run("2"), "settle", steps("2"))
			require.NoError(t, err)
			require.Equal(t, viewItems(r1), viewItems(r2))
			require.Equal(t, r1.Reason, r2.Reason)
			require.Equal(t, []bool{true, true, true}, replayedFlags(r2))
			require.Equal(t, before+3, c.total(), "the replay ran a step")
		})

		t.Run("Parallel", func(t *testing.T) {
			before := c.total()
			v1, err := durable.Parallel(run("1"), "parallel", steps("1"))
			require.NoError(t, err)
			v2, err := durable.Parallel(run("2"), "parallel", steps("2"))
			require.NoError(t, err)
			require.Equal(t, []string{"a-1", "b-1", "c-1"}, v1)
			require.Equal(t, v1, v2)
			require.Equal(t, before+3, c.total())
		})

		t.Run("ParallelNamed", func(t *testing.T) {
			before := c.total()
			v1, err := durable.ParallelNamed(run("1"), "named", steps("1"))
			require.NoError(t, err)
			v2, err := durable.ParallelNamed(run("2"), "named", steps("2"))
			require.NoError(t, err)
			require.Equal(t, map[string]string{"a": "a-1", "b": "b-1", "c": "c-1"}, v2)
			require.Equal(t, v1, v2)
			require.Equal(t, before+3, c.total())
		})

		t.Run("FanOut", func(t *testing.T) {
			var ran atomic.Int32
			fn := func(tag string) func(context.Context, int) (string, error) {
				return func(_ context.Context, item int) (string, error) {
					ran.Add(1)
					return fmt.Sprintf("%d-%s", item, tag), nil
				}
			}
			v1, err := durable.FanOut(run("1"), "fan", []int{5, 6, 7}, fn("1"))
			require.NoError(t, err)
			v2, err := durable.FanOut(run("2"), "fan", []int{5, 6, 7}, fn("2"))
			require.NoError(t, err)
			require.Equal(t, []string{"5-1", "6-1", "7-1"}, v2)
			require.Equal(t, v1, v2)
			require.EqualValues(t, 3, ran.Load())
		})

		t.Run("Group", func(t *testing.T) {
			runGroup := func(tag string) (string, int, error) {
				g := durable.NewGroup(run(tag), "group")
				fs := durable.Go(g, "s", func(context.Context) (string, error) { c.add("gs"); return "s-" + tag, nil })
				fi := durable.Go(g, "i", func(context.Context) (int, error) {
					c.add("gi")
					n, _ := strconv.Atoi(tag)
					return n, nil
				})
				if err := g.Wait(); err != nil {
					return "", 0, err
				}
				s, err := fs.Get()
				if err != nil {
					return "", 0, err
				}
				i, err := fi.Get()
				return s, i, err
			}
			s, i, err := runGroup("1")
			require.NoError(t, err)
			require.Equal(t, "s-1", s)
			require.Equal(t, 1, i)
			s, i, err = runGroup("2")
			require.NoError(t, err)
			require.Equal(t, "s-1", s)
			require.Equal(t, 1, i)
			require.Equal(t, 1, c.of("gs"))
			require.Equal(t, 1, c.of("gi"))
		})
	})
}

// payload has parts that JSON changes (an unexported field, a monotonic clock
// reading, a time zone) and parts it must keep exactly (a map, floats).
type payload struct {
	Scores map[string][]float64
	Ratio  float64
	At     time.Time
	Count  *int
	None   map[string]int
}

func newPayload() payload {
	n := 42
	return payload{
		Scores: map[string][]float64{"a": {0.1 + 0.2, 1e-300}, "b": {}},
		Ratio:  2.0 / 3.0,
		At:     time.Now(), // with a monotonic reading, in time.Local
		Count:  &n,
	}
}

func roundTrip[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out T
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// With a journal, the live value is the one decoded from what was stored, so a
// run and its replay see identical values.
func TestReplayLiveValueIsTheDecodedValue(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		j := newJournal()
		ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
		var orig payload
		var ran atomic.Int32
		step := durable.NewStep("p", func(context.Context) (payload, error) {
			ran.Add(1)
			orig = newPayload()
			return orig, nil
		})

		live, err := step.Run(ctx())
		require.NoError(t, err)
		require.Equal(t, roundTrip(t, orig), live, "the live value is not the decoded one")
		require.NotEqual(t, orig, live) // the test would prove nothing otherwise
		replay, err := step.Run(ctx())
		require.NoError(t, err)
		require.Equal(t, live, replay)
		require.True(t, live.At.Equal(replay.At))

		r1, err := durable.Settle(ctx(), "settle", []durable.Step[payload]{step})
		require.NoError(t, err)
		r2, err := durable.Settle(ctx(), "settle", []durable.Step[payload]{step})
		require.NoError(t, err)
		require.Equal(t, roundTrip(t, orig), r1.Items[0].Value)
		require.Equal(t, r1.Items[0].Value, r2.Items[0].Value)

		v1, err := durable.Race(ctx(), "race", []durable.Step[payload]{step})
		require.NoError(t, err)
		v2, err := durable.Race(ctx(), "race", []durable.Step[payload]{step})
		require.NoError(t, err)
		require.Equal(t, roundTrip(t, orig), v1)
		require.Equal(t, v1, v2)
		require.EqualValues(t, 3, ran.Load())

		// Without a journal nothing is encoded.
		plain, err := step.Run(t.Context())
		require.NoError(t, err)
		require.Equal(t, orig, plain)
	})
}

// A plain failure is not journaled: the next run runs the step again.
func TestReplayPlainFailureRunsAgain(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		j := newJournal()
		ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
		c := newRunCounter()
		boom := errors.New("boom")

		_, err := counted(c, "s", 0, 0, boom).Run(ctx())
		require.ErrorIs(t, err, boom)
		v, err := counted(c, "s", 0, 7, nil).Run(ctx())
		require.NoError(t, err)
		require.Equal(t, 7, v)
		require.Equal(t, 2, c.of("s"))
		v, err = counted(c, "s", 0, 8, nil).Run(ctx())
		require.NoError(t, err)
		require.Equal(t, 7, v, "the success of the second run is final")
		require.Equal(t, 2, c.of("s"))

		_, err = durable.Parallel(ctx(), "p", []durable.Step[int]{counted(c, "x", 0, 0, boom)})
		require.ErrorIs(t, err, boom)
		got, err := durable.Parallel(ctx(), "p", []durable.Step[int]{counted(c, "x", 0, 3, nil)})
		require.NoError(t, err)
		require.Equal(t, []int{3}, got)
		require.Equal(t, 2, c.of("x"))
	})
}

func permanentPathError() error {
	return durable.Permanent(&fs.PathError{Op: "open", Path: "/etc/missing.conf", Err: fs.ErrNotExist})
}

// A failure wrapped with Permanent is journaled and replayed without running
// the step: same message, same type name.
func TestReplayPermanentFailureIsReplayed(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		j := newJournal()
		ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
		c := newRunCounter()
		step := durable.NewStep("open", func(context.Context) (int, error) {
			c.add("open")
			return 0, permanentPathError()
		})

		_, live := step.Run(ctx())
		require.Error(t, live)
		require.ErrorIs(t, live, fs.ErrNotExist, "the live error is the original")
		_, replayed := step.Run(ctx())
		require.Error(t, replayed)
		require.Equal(t, 1, c.of("open"), "a permanent failure ran again")
		require.Equal(t, live.Error(), replayed.Error())
		var tn typeNamer
		require.ErrorAs(t, replayed, &tn)
		require.Equal(t, "*fs.PathError", tn.TypeName())

		// In a fail-fast combinator: the replayed failure fails it again, and
		// nothing runs.
		steps := []durable.Step[int]{counted(c, "ok", 0, 1, nil), step}
		_, live = durable.Parallel(ctx(), "p", steps)
		var be *durable.BranchError
		require.ErrorAs(t, live, &be)
		require.Equal(t, "open", be.Name)
		runs := c.total()
		_, replayed = durable.Parallel(ctx(), "p", steps)
		require.ErrorAs(t, replayed, &be)
		require.Equal(t, 1, be.Index)
		require.Equal(t, "open", be.Name)
		require.Equal(t, live.Error(), replayed.Error())
		require.ErrorAs(t, replayed, &tn)
		require.Equal(t, "*fs.PathError", tn.TypeName())
		require.Equal(t, runs, c.total(), "the replay of a permanently failed Parallel ran a step")
	})
}

// Permanent's documentation promises that the replayed error's dynamic type
// implements TypeName, not only something it wraps.
func TestReplayPermanentErrorDynamicTypeHasTypeName(t *testing.T) {
	j := journal.NewMemory()
	step := durable.NewStep("open", func(context.Context) (int, error) { return 0, permanentPathError() })
	_, err := step.Run(durable.WithJournal(t.Context(), j, "exec"))
	require.Error(t, err)
	_, err = step.Run(durable.WithJournal(t.Context(), j, "exec"))
	require.Error(t, err)
	tn, ok := err.(typeNamer)
	require.True(t, ok, "Step.Run returned a replayed permanent failure of type %T, without a TypeName method", err)
	require.Equal(t, "*fs.PathError", tn.TypeName())
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

// A completed Settle is final: the next run returns the same statuses, reason,
// values and failures without running anything.
func TestReplayCompletedSettleIsFinal(t *testing.T) {
	t.Run("AllCompleted", func(t *testing.T) {
		forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
			j := newJournal()
			c := newRunCounter()
			ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
			r1, err := durable.Settle(ctx(), "s", []durable.Step[int]{
				counted(c, "a", 0, 1, nil),
				counted(c, "b", 0, 0, errors.New("b failed")),
				counted(c, "c", 0, 3, nil),
				counted(c, "d", 0, 0, permanentPathError()),
			})
			require.NoError(t, err)
			require.Equal(t, durable.ReasonAllCompleted, r1.Reason)
			require.Equal(t, []durable.Status{durable.StatusSucceeded, durable.StatusFailed, durable.StatusSucceeded, durable.StatusFailed}, itemStatuses(r1))

			// Now every step would succeed with other values: nothing may run.
			r2, err := durable.Settle(ctx(), "s", []durable.Step[int]{
				counted(c, "a", 0, 10, nil),
				counted(c, "b", 0, 20, nil),
				counted(c, "c", 0, 30, nil),
				counted(c, "d", 0, 40, nil),
			})
			require.NoError(t, err)
			require.Equal(t, 4, c.total(), "the replay of a completed Settle ran a step")
			require.Equal(t, r1.Reason, r2.Reason)
			require.Equal(t, viewItems(r1), viewItems(r2))
			require.Equal(t, []bool{true, true, true, true}, replayedFlags(r2))
			require.Equal(t, "b failed", r2.Items[1].Err.Error())
			var tn typeNamer
			require.ErrorAs(t, r2.Items[3].Err, &tn)
			require.Equal(t, "*fs.PathError", tn.TypeName())
			var be *durable.BranchError
			require.ErrorAs(t, r2.Err(), &be)
			require.Equal(t, "b", be.Name)
		})
	})
	t.Run("EarlyDecision", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := newScanMemory()
			c := newRunCounter()
			ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
			opts := []durable.Option{durable.WithMaxConcurrency(2), durable.WithCompletion(durable.MinSuccessful(1))}
			r1, err := durable.Settle(ctx(), "s", []durable.Step[int]{
				counted(c, "a", 2*time.Second, 1, nil),
				counted(c, "b", time.Second, 2, nil),
				counted(c, "c", time.Second, 3, nil),
				counted(c, "d", time.Second, 4, nil),
			}, opts...)
			require.NoError(t, err)
			require.Equal(t, durable.ReasonMinSuccessfulReached, r1.Reason)
			require.Equal(t, []durable.Status{durable.StatusCancelled, durable.StatusSucceeded, durable.StatusNotStarted, durable.StatusNotStarted}, itemStatuses(r1))
			require.Equal(t, 2, c.total())

			// The delays are swapped: "a" would win now. Nothing may run.
			start := time.Now()
			r2, err := durable.Settle(ctx(), "s", []durable.Step[int]{
				counted(c, "a", 0, 10, nil),
				counted(c, "b", time.Hour, 20, nil),
				counted(c, "c", 0, 30, nil),
				counted(c, "d", 0, 40, nil),
			}, opts...)
			require.NoError(t, err)
			require.Zero(t, time.Since(start))
			require.Equal(t, 2, c.total(), "the replay of a completed Settle ran a step")
			require.Equal(t, r1.Reason, r2.Reason)
			require.Equal(t, viewItems(r1), viewItems(r2))
		})
	})
}

// A completed Race is final: the next run returns the journaled winner, even
// when another branch would win now.
func TestReplayCompletedRaceIsFinal(t *testing.T) {
	t.Run("Success", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := journal.NewMemory()
			c := newRunCounter()
			ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
			v, err := durable.Race(ctx(), "race", []durable.Step[string]{
				counted(c, "a", time.Second, "a-1", nil),
				counted(c, "b", 2*time.Second, "b-1", nil),
			})
			require.NoError(t, err)
			require.Equal(t, "a-1", v)
			require.Equal(t, 2, c.total())

			start := time.Now()
			v, err = durable.Race(ctx(), "race", []durable.Step[string]{
				counted(c, "a", 2*time.Second, "a-2", nil),
				counted(c, "b", time.Second, "b-2", nil),
			})
			require.NoError(t, err)
			require.Equal(t, "a-1", v, "the replayed Race has another winner")
			require.Zero(t, time.Since(start))
			require.Equal(t, 2, c.total(), "the replay of a completed Race ran a step")
		})
	})
	t.Run("Failure", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := newScanMemory()
			c := newRunCounter()
			ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
			_, err1 := durable.Race(ctx(), "race", []durable.Step[string]{
				counted(c, "a", 2*time.Second, "a-1", nil),
				counted(c, "b", time.Second, "", errors.New("b lost the race by failing")),
			})
			var be *durable.BranchError
			require.ErrorAs(t, err1, &be)
			require.Equal(t, "b", be.Name)

			v, err2 := durable.Race(ctx(), "race", []durable.Step[string]{
				counted(c, "a", 0, "a-2", nil),
				counted(c, "b", time.Second, "b-2", nil),
			})
			require.Empty(t, v)
			require.ErrorAs(t, err2, &be)
			require.Equal(t, 1, be.Index)
			require.Equal(t, "b", be.Name)
			require.Equal(t, err1.Error(), err2.Error())
			require.Equal(t, 2, c.total(), "the replay of a completed Race ran a step")
		})
	})
}

// A completed Any is final, whether it found a success or every branch failed.
func TestReplayCompletedAnyIsFinal(t *testing.T) {
	t.Run("Success", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := newScanMemory()
			c := newRunCounter()
			ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
			v, err := durable.Any(ctx(), "any", []durable.Step[string]{
				counted(c, "a", time.Second, "", errors.New("a failed")),
				counted(c, "b", 2*time.Second, "b-1", nil),
				counted(c, "c", 3*time.Second, "c-1", nil),
			})
			require.NoError(t, err)
			require.Equal(t, "b-1", v)

			v, err = durable.Any(ctx(), "any", []durable.Step[string]{
				counted(c, "a", 0, "a-2", nil),
				counted(c, "b", 3*time.Second, "b-2", nil),
				counted(c, "c", time.Second, "c-2", nil),
			})
			require.NoError(t, err)
			require.Equal(t, "b-1", v)
			require.Equal(t, 3, c.total(), "the replay of a completed Any ran a step")
		})
	})
	t.Run("AllFailed", func(t *testing.T) {
		forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
			j := newJournal()
			c := newRunCounter()
			ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
			_, err1 := durable.Any(ctx(), "any", []durable.Step[int]{
				counted(c, "a", 0, 0, errors.New("a failed")),
				counted(c, "b", 0, 0, errors.New("b failed")),
			})
			require.Error(t, err1)
			_, err2 := durable.Any(ctx(), "any", []durable.Step[int]{
				counted(c, "a", 0, 1, nil),
				counted(c, "b", 0, 2, nil),
			})
			require.Error(t, err2)
			require.Equal(t, err1.Error(), err2.Error())
			require.Equal(t, 2, c.total(), "the replay of a completed Any ran a step")
		})
	})
}

// A Parallel that failed is not final: the next run replays its successes and
// runs only the rest.
func TestReplayFailedParallelResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, kind := range journalKinds {
			j := kind.new()
			c := newRunCounter()
			ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
			_, err := durable.Parallel(ctx(), "p", []durable.Step[string]{
				counted(c, "a", time.Second, "a-1", nil),
				counted(c, "b", time.Second, "b-1", nil),
				counted(c, "c", 2*time.Second, "", errors.New("c failed")),
				counted(c, "d", 3*time.Second, "d-1", nil), // cancelled by c's failure
			})
			var be *durable.BranchError
			require.ErrorAs(t, err, &be, kind.name)
			require.Equal(t, "c", be.Name, kind.name)

			got, err := durable.Parallel(ctx(), "p", []durable.Step[string]{
				counted(c, "a", time.Second, "a-2", nil),
				counted(c, "b", time.Second, "b-2", nil),
				counted(c, "c", time.Second, "c-2", nil),
				counted(c, "d", time.Second, "d-2", nil),
			})
			require.NoError(t, err, kind.name)
			require.Equal(t, []string{"a-1", "b-1", "c-2", "d-2"}, got, kind.name)
			require.Equal(t, 1, c.of("a"), kind.name)
			require.Equal(t, 1, c.of("b"), kind.name)
			require.Equal(t, 2, c.of("c"), kind.name)
			require.Equal(t, 2, c.of("d"), kind.name)

			// FanOut: the same, by index.
			var ran [4]atomic.Int32
			fn := func(run int) func(context.Context, int) (int, error) {
				return func(ctx context.Context, item int) (int, error) {
					ran[item].Add(1)
					if err := pause(ctx, time.Duration(item)*time.Second); err != nil {
						return 0, err
					}
					if run == 1 && item == 2 {
						return 0, errors.New("2 failed")
					}
					return item*10 + run, nil
				}
			}
			_, err = durable.FanOut(ctx(), "fan", []int{0, 1, 2, 3}, fn(1))
			require.Error(t, err, kind.name)
			vals, err := durable.FanOut(ctx(), "fan", []int{0, 1, 2, 3}, fn(2))
			require.NoError(t, err, kind.name)
			require.Equal(t, []int{1, 11, 22, 32}, vals, kind.name)
			for i, want := range []int32{1, 1, 2, 2} {
				require.Equal(t, want, ran[i].Load(), "%s: item %d", kind.name, i)
			}
		}
	})
}

// Nested combinators and steps checkpoint under their branch, so a branch that
// failed half-way replays its finished sub-steps on the next run.
func TestReplayNestedCombinatorsResumeInsideABranch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, kind := range journalKinds {
			j := kind.new()
			c := newRunCounter()
			attempt := 0
			sub := func(name string, d time.Duration, base int, failOnFirst bool) durable.Step[int] {
				return durable.NewStep(name, func(ctx context.Context) (int, error) {
					c.add(name)
					if err := pause(ctx, d); err != nil {
						return 0, err
					}
					if failOnFirst && attempt == 1 {
						return 0, errors.New(name + " failed")
					}
					return base + attempt, nil
				})
			}
			outer := func() ([]string, error) {
				ctx := durable.WithJournal(t.Context(), j, "exec")
				return durable.Parallel(ctx, "outer", []durable.Step[string]{
					counted(c, "x", 0, fmt.Sprintf("x-%d", attempt), nil),
					durable.NewStep("y", func(ctx context.Context) (string, error) {
						c.add("y")
						prep, err := sub("prep", 0, 100, false).Run(ctx)
						if err != nil {
							return "", err
						}
						inner, err := durable.Parallel(ctx, "inner", []durable.Step[int]{
							sub("s1", time.Second, 10, false),
							sub("s2", time.Second, 20, false),
							sub("s3", 2*time.Second, 30, true),
							sub("s4", 3*time.Second, 40, false),
						})
						if err != nil {
							return "", err
						}
						return fmt.Sprint(prep, inner), nil
					}),
					durable.NewStep("z", func(ctx context.Context) (string, error) {
						c.add("z")
						a, err := sub("fetch", 0, 50, false).Run(ctx)
						if err != nil {
							return "", err
						}
						// Cancelled at 2s by y's failure, if it has not failed itself.
						b, err := sub("store", 3*time.Second, 60, true).Run(ctx)
						if err != nil {
							return "", err
						}
						return fmt.Sprint(a, b), nil
					}),
				})
			}

			attempt = 1
			_, err := outer()
			require.Error(t, err, kind.name)
			attempt = 2
			got, err := outer()
			require.NoError(t, err, kind.name)
			require.Equal(t, []string{"x-1", "101 [11 21 32 42]", "51 62"}, got, kind.name)
			for name, want := range map[string]int{
				"x": 1, "y": 2, "prep": 1, "s1": 1, "s2": 1, "s3": 2, "s4": 2,
				"z": 2, "fetch": 1, "store": 2,
			} {
				require.Equal(t, want, c.of(name), "%s: runs of %q", kind.name, name)
			}
		}
	})
}

// Asking a combinator for other branches than the journal holds fails with
// ErrNondeterministic, saying what differs; so does a FanOut by index whose item
// at a journaled index changed.
func TestReplayNondeterminism(t *testing.T) {
	t.Run("NamesChanged", func(t *testing.T) {
		forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
			j := newJournal()
			c := newRunCounter()
			ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
			_, err := durable.Parallel(ctx(), "p", []durable.Step[int]{
				counted(c, "alpha", 0, 1, nil), counted(c, "beta", 0, 2, nil), counted(c, "gamma", 0, 3, nil),
			})
			require.NoError(t, err)
			_, err = durable.Parallel(ctx(), "p", []durable.Step[int]{
				counted(c, "alpha", 0, 1, nil), counted(c, "beta", 0, 2, nil), counted(c, "delta", 0, 3, nil),
			})
			require.ErrorIs(t, err, durable.ErrNondeterministic)
			require.Contains(t, err.Error(), `"gamma"`)
			require.Contains(t, err.Error(), `"delta"`)
			require.Equal(t, 3, c.total())

			// A different count, in a final combinator that completed.
			_, err = durable.Settle(ctx(), "s", []durable.Step[int]{counted(c, "one", 0, 1, nil), counted(c, "two", 0, 2, nil)})
			require.NoError(t, err)
			_, err = durable.Settle(ctx(), "s", []durable.Step[int]{counted(c, "one", 0, 1, nil)})
			require.ErrorIs(t, err, durable.ErrNondeterministic)
			require.Contains(t, err.Error(), `"two"`)
			require.Equal(t, 5, c.total())
		})
	})
	t.Run("FanOutItemChanged", func(t *testing.T) {
		forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
			j := newJournal()
			ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
			var ran atomic.Int32
			double := func(_ context.Context, item int) (int, error) { ran.Add(1); return 2 * item, nil }
			got, err := durable.FanOut(ctx(), "fan", []int{10, 20, 30}, double)
			require.NoError(t, err)
			require.Equal(t, []int{20, 40, 60}, got)
			_, err = durable.FanOut(ctx(), "fan", []int{10, 21, 30}, double)
			require.ErrorIs(t, err, durable.ErrNondeterministic)
			require.Contains(t, err.Error(), "index 1")
			require.EqualValues(t, 3, ran.Load())
		})
	})
}

// FanOut with WithKey names branches by item, so a resumed run may get the items
// in another order (FanOut's and WithKey's documentation, and the design: only a
// different *set* of names is nondeterministic).
func TestReplayFanOutWithKeyAllowsReorderedItems(t *testing.T) {
	forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
		j := newJournal()
		ctx := func() context.Context { return durable.WithJournal(t.Context(), j, "exec") }
		var ran atomic.Int32
		upper := func(_ context.Context, item string) (string, error) {
			ran.Add(1)
			if item == "c" && ran.Load() <= 3 {
				return "", errors.New("c failed the first time")
			}
			return strings.ToUpper(item), nil
		}
		key := durable.WithKey(func(s string) string { return s })
		_, err := durable.FanOut(ctx(), "fan", []string{"a", "b", "c"}, upper, key, durable.WithMaxConcurrency(1))
		require.Error(t, err)
		got, err := durable.FanOut(ctx(), "fan", []string{"c", "a", "b"}, upper, key)
		require.NoError(t, err)
		require.Equal(t, []string{"C", "A", "B"}, got)
		require.EqualValues(t, 4, ran.Load(), "only c runs again")
		got, err = durable.FanOut(ctx(), "fan", []string{"b", "c", "a"}, upper, key)
		require.NoError(t, err)
		require.Equal(t, []string{"B", "C", "A"}, got)
		require.EqualValues(t, 4, ran.Load())
	})
}

// Only a different *set* of branch names is nondeterministic, so the same steps
// may come in another order on a resumed run. Parallel restores branches by
// name and resumes correctly; a final combinator's journaled decision must then
// be read by name too (or the call must fail with ErrNondeterministic): never
// give one branch another's value or status.
func TestReplayReorderedStepsKeepTheDecision(t *testing.T) {
	// lateStep succeeds with v after d, ignoring cancellation, so that it is
	// journaled even when it lost.
	lateStep := func(c *runCounter, name string, d time.Duration, v string) durable.Step[string] {
		return durable.NewStep(name, func(context.Context) (string, error) {
			c.add(name)
			time.Sleep(d)
			return v, nil
		})
	}
	t.Run("Parallel", func(t *testing.T) {
		j := newScanMemory()
		c := newRunCounter()
		_, err := durable.Parallel(durable.WithJournal(t.Context(), j, "exec"), "p", []durable.Step[string]{
			counted(c, "a", 0, "a-1", nil), counted(c, "b", 0, "", errors.New("b failed")),
		}, durable.WithMaxConcurrency(1))
		require.Error(t, err)
		got, err := durable.Parallel(durable.WithJournal(t.Context(), j, "exec"), "p", []durable.Step[string]{
			counted(c, "b", 0, "b-2", nil), counted(c, "a", 0, "a-2", nil),
		})
		require.NoError(t, err)
		require.Equal(t, []string{"b-2", "a-1"}, got)
		require.Equal(t, 1, c.of("a"))
	})
	t.Run("Race", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := journal.NewMemory()
			c := newRunCounter()
			v, err := durable.Race(durable.WithJournal(t.Context(), j, "exec"), "r", []durable.Step[string]{
				lateStep(c, "a", time.Second, "a-1"), lateStep(c, "b", 2*time.Second, "b-1"),
			})
			require.NoError(t, err)
			require.Equal(t, "a-1", v)

			v, err = durable.Race(durable.WithJournal(t.Context(), j, "exec"), "r", []durable.Step[string]{
				lateStep(c, "b", time.Second, "b-2"), lateStep(c, "a", 2*time.Second, "a-2"),
			})
			if err != nil {
				require.ErrorIs(t, err, durable.ErrNondeterministic)
			} else {
				require.Equal(t, "a-1", v, "the replayed Race returned another branch's value as the winner")
			}
			require.Equal(t, 2, c.total())
		})
	})
	t.Run("Settle", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := journal.NewMemory()
			c := newRunCounter()
			first := durable.WithCompletion(durable.FirstSuccessful())
			r1, err := durable.Settle(durable.WithJournal(t.Context(), j, "exec"), "s", []durable.Step[string]{
				lateStep(c, "a", time.Second, "a-1"), lateStep(c, "b", 2*time.Second, "b-1"),
			}, first)
			require.NoError(t, err)
			require.Equal(t, []string{"a"}, itemNames(r1.Succeeded()))
			require.Equal(t, []string{"b"}, itemNames(r1.Cancelled()))

			r2, err := durable.Settle(durable.WithJournal(t.Context(), j, "exec"), "s", []durable.Step[string]{
				lateStep(c, "b", time.Second, "b-2"), lateStep(c, "a", 2*time.Second, "a-2"),
			}, first)
			if err != nil {
				require.ErrorIs(t, err, durable.ErrNondeterministic)
			} else {
				require.Equal(t, []string{"a"}, itemNames(r2.Succeeded()), "the replayed decision gave a's status to b")
				require.Equal(t, []string{"a-1"}, r2.Values())
				require.Equal(t, []string{"b"}, itemNames(r2.Cancelled()))
			}
			require.Equal(t, 2, c.total())
		})
	})
}

// keyOf returns the one stored key that ends in suffix.
func keyOf(t *testing.T, keys []string, suffix string) string {
	t.Helper()
	var found []string
	for _, k := range keys {
		if strings.HasSuffix(k, suffix) {
			found = append(found, k)
		}
	}
	require.Len(t, found, 1, "keys ending in %q among %q", suffix, keys)
	return found[0]
}

// The journal failing: a value the caller has seen was stored first, and a
// journal that cannot be read or holds garbage gives an error, never a rerun.
func TestReplayJournalFaults(t *testing.T) {
	t.Run("PutFails", func(t *testing.T) {
		forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
			f := newFaultJournal(newJournal())
			c := newRunCounter()
			onB := func(k string) bool { return strings.HasSuffix(k, "/b") }
			f.failPuts(errInjected, onB)
			steps := func(tag string) []durable.Step[string] {
				return []durable.Step[string]{
					counted(c, "a", 0, "a-"+tag, nil),
					counted(c, "b", 0, "b-"+tag, nil),
					counted(c, "c", 0, "c-"+tag, nil),
				}
			}
			// One at a time, so that a is stored before b fails.
			vals, err := durable.Parallel(f.in(t.Context(), "exec"), "p", steps("1"), durable.WithMaxConcurrency(1))
			require.ErrorIs(t, err, errInjected)
			require.Nil(t, vals)
			var be *durable.BranchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, "b", be.Name)

			res, err := durable.Settle(f.in(t.Context(), "exec"), "s", steps("1"))
			require.ErrorIs(t, err, errInjected)
			require.Nil(t, res, "Settle reported a result though a checkpoint failed")

			named, err := durable.ParallelNamed(f.in(t.Context(), "exec"), "n", steps("1"))
			require.ErrorIs(t, err, errInjected)
			require.Nil(t, named)

			v, err := counted(c, "b", 0, "b-1", nil).Run(f.in(t.Context(), "exec"))
			require.ErrorIs(t, err, errInjected)
			require.Empty(t, v)

			g := durable.NewGroup(f.in(t.Context(), "exec"), "g")
			fb := durable.Go(g, "b", func(context.Context) (string, error) { return "b-1", nil })
			require.ErrorIs(t, g.Wait(), errInjected)
			v, err = fb.Get()
			require.ErrorIs(t, err, errInjected)
			require.Empty(t, v)

			// Once the journal works, only b runs again.
			f.clear()
			before := c.of("a")
			vals, err = durable.Parallel(f.in(t.Context(), "exec"), "p", steps("2"))
			require.NoError(t, err)
			require.Equal(t, []string{"a-1", "b-2", "c-2"}, vals)
			require.Equal(t, before, c.of("a"))

			// A Put failing on the combinator's head: nothing runs.
			f.failPuts(errInjected, nil)
			before = c.total()
			_, err = durable.Parallel(f.in(t.Context(), "exec"), "fresh", steps("3"))
			require.ErrorIs(t, err, errInjected)
			require.Equal(t, before, c.total())
		})
	})
	t.Run("GetFails", func(t *testing.T) {
		forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
			f := newFaultJournal(newJournal())
			c := newRunCounter()
			steps := []durable.Step[int]{counted(c, "a", 0, 1, nil), counted(c, "b", 0, 2, nil)}
			_, err := durable.Settle(f.in(t.Context(), "exec"), "s", steps)
			require.NoError(t, err)
			_, err = steps[0].Run(f.in(t.Context(), "exec"))
			require.NoError(t, err)
			require.Equal(t, 3, c.total())

			// Every read fails.
			f.failGets(errInjected, nil)
			_, err = durable.Settle(f.in(t.Context(), "exec"), "s", steps)
			require.ErrorIs(t, err, errInjected)
			_, err = durable.Parallel(f.in(t.Context(), "exec"), "p", steps)
			require.ErrorIs(t, err, errInjected)
			_, err = steps[0].Run(f.in(t.Context(), "exec"))
			require.ErrorIs(t, err, errInjected)
			require.Equal(t, 3, c.total())

			// Only the reads of branch records (or the scan that loads them) fail.
			f.failGets(errInjected, func(k string) bool { return !strings.HasSuffix(k, "/!h") })
			_, err = durable.Settle(f.in(t.Context(), "exec"), "s", steps)
			require.ErrorIs(t, err, errInjected)
			require.Equal(t, 3, c.total())
		})
	})
	t.Run("CorruptRecord", func(t *testing.T) {
		src := newScanMemory()
		c := newRunCounter()
		steps := func(tag string) []durable.Step[string] {
			return []durable.Step[string]{counted(c, "a", 0, "a-"+tag, nil), counted(c, "b", 0, "b-"+tag, nil)}
		}
		_, err := durable.Parallel(durable.WithJournal(t.Context(), src, "exec"), "p", steps("1"))
		require.NoError(t, err)
		_, err = durable.Settle(durable.WithJournal(t.Context(), src, "exec"), "s", steps("1"))
		require.NoError(t, err)
		keys := src.Keys("exec/")
		require.Equal(t, 4, c.total())

		for _, target := range []struct {
			name, suffix string
			run          func(ctx context.Context) error
		}{
			{"ParallelBranch", "p/b", func(ctx context.Context) error {
				_, err := durable.Parallel(ctx, "p", steps("2"))
				return err
			}},
			{"ParallelHead", "p/!h", func(ctx context.Context) error {
				_, err := durable.Parallel(ctx, "p", steps("2"))
				return err
			}},
			{"SettleBranch", "s/a", func(ctx context.Context) error {
				_, err := durable.Settle(ctx, "s", steps("2"))
				return err
			}},
			{"SettleDecision", "s/!d", func(ctx context.Context) error {
				_, err := durable.Settle(ctx, "s", steps("2"))
				return err
			}},
		} {
			key := keyOf(t, keys, target.suffix)
			good, ok, err := src.Get(t.Context(), key)
			require.NoError(t, err)
			require.True(t, ok)
			for _, bad := range []struct {
				name  string
				value []byte
			}{
				{"Garbage", []byte("\xffnot a record")},
				{"Truncated", good[:len(good)/2]},
				{"Empty", []byte{}},
			} {
				t.Run(target.name+"/"+bad.name, func(t *testing.T) {
					dst := copyJournal(t, src, map[string][]byte{key: bad.value})
					for _, j := range []journal.Journal{dst, newFaultJournal(dst.Memory).journal()} {
						before := c.total()
						err := target.run(durable.WithJournal(t.Context(), j, "exec"))
						require.Error(t, err)
						require.Contains(t, err.Error(), strconv.Quote(key))
						require.Equal(t, before, c.total(), "a corrupt record made a step run again")
					}
				})
			}
		}
	})
	t.Run("ValueOfAnotherType", func(t *testing.T) {
		forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
			j := newJournal()
			c := newRunCounter()
			_, err := counted(c, "n", 0, 7, nil).Run(durable.WithJournal(t.Context(), j, "exec"))
			require.NoError(t, err)
			_, err = counted(c, "n", 0, "seven", nil).Run(durable.WithJournal(t.Context(), j, "exec"))
			require.Error(t, err)
			require.Contains(t, err.Error(), `"exec/n"`)
			require.Equal(t, 1, c.of("n"))
		})
	})
	t.Run("DroppedWrite", func(t *testing.T) {
		// A journal that loses a write it acknowledged breaks its contract; the
		// engine trusts the acknowledgement, so the step simply runs again.
		forEachJournal(t, func(t *testing.T, newJournal func() journal.Journal) {
			f := newFaultJournal(newJournal())
			c := newRunCounter()
			f.dropPuts(func(k string) bool { return strings.HasSuffix(k, "/b") })
			steps := func(tag string) []durable.Step[string] {
				return []durable.Step[string]{counted(c, "a", 0, "a-"+tag, nil), counted(c, "b", 0, "b-"+tag, nil)}
			}
			got, err := durable.Parallel(f.in(t.Context(), "exec"), "p", steps("1"))
			require.NoError(t, err)
			require.Equal(t, []string{"a-1", "b-1"}, got)
			f.clear()
			got, err = durable.Parallel(f.in(t.Context(), "exec"), "p", steps("2"))
			require.NoError(t, err)
			require.Equal(t, []string{"a-1", "b-2"}, got)
			require.Equal(t, 1, c.of("a"))
			require.Equal(t, 2, c.of("b"))
		})
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

// Several workers running one execution on one journal at once agree on every
// value: the first write wins and every worker returns it.
func TestReplayConcurrentWorkersAgree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type outcome struct {
			Step     int64
			Parallel []int64
			Named    map[string]int64
			FanOut   []int64
			Settle   []itemView[int64]
			Reason   durable.Reason
			Race     int64
			Any      int64
			Group    int64
		}
		f := newFaultJournal(newScanMemory())
		f.setLatency(time.Millisecond, nil)
		random := func(ctx context.Context) (int64, error) {
			if err := pause(ctx, time.Duration(rand.N(4))*time.Millisecond); err != nil {
				return 0, err
			}
			return rand.Int64(), nil
		}
		steps := func(n int) []durable.Step[int64] {
			s := make([]durable.Step[int64], n)
			for i := range s {
				s[i] = durable.NewStep(fmt.Sprintf("s%d", i), random)
			}
			return s
		}
		worker := func() (o outcome, err error) {
			ctx := f.in(t.Context(), "shared")
			if o.Step, err = durable.NewStep("one", random).Run(ctx); err != nil {
				return o, err
			}
			if o.Parallel, err = durable.Parallel(ctx, "p", steps(6), durable.WithMaxConcurrency(3)); err != nil {
				return o, err
			}
			if o.Named, err = durable.ParallelNamed(ctx, "n", steps(4)); err != nil {
				return o, err
			}
			if o.FanOut, err = durable.FanOut(ctx, "f", []int{1, 2, 3, 4, 5}, func(ctx context.Context, _ int) (int64, error) {
				return random(ctx)
			}); err != nil {
				return o, err
			}
			res, err := durable.Settle(ctx, "s", steps(6), durable.WithCompletion(durable.MinSuccessful(3)))
			if err != nil {
				return o, err
			}
			o.Settle, o.Reason = viewItems(res), res.Reason
			if o.Race, err = durable.Race(ctx, "r", steps(4)); err != nil {
				return o, err
			}
			if o.Any, err = durable.Any(ctx, "a", steps(4)); err != nil {
				return o, err
			}
			g := durable.NewGroup(ctx, "g")
			fut := durable.Go(g, "x", random)
			if err := g.Wait(); err != nil {
				return o, err
			}
			o.Group, err = fut.Get()
			return o, err
		}

		const workers = 6
		results := make([]outcome, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() { results[w], errs[w] = worker() })
		}
		wg.Wait()
		for w := range workers {
			require.NoError(t, errs[w], "worker %d", w)
			require.Equal(t, results[0], results[w], "worker %d disagrees with worker 0", w)
		}
		require.Equal(t, durable.ReasonMinSuccessfulReached, results[0].Reason)
		require.Len(t, results[0].Parallel, 6)

		again, err := worker()
		require.NoError(t, err)
		require.Equal(t, results[0], again, "a later run disagrees with the workers")
	})
}

// WithTimeout's deadline is counted from the combinator's first start ever: a run
// resumed after it passed times out at once, keeping the journaled items.
func TestReplayTimeoutIsDurable(t *testing.T) {
	delays := []time.Duration{time.Second, 3 * time.Second, 6 * time.Second, 8 * time.Second, 20 * time.Second}
	steps := func(c *runCounter, tag string) []durable.Step[string] {
		s := make([]durable.Step[string], len(delays))
		for i, d := range delays {
			name := fmt.Sprintf("s%d", i)
			s[i] = counted(c, name, d, name+"-"+tag, nil)
		}
		return s
	}
	// firstRun runs Settle with a 10s timeout and cancels it at 4s.
	firstRun := func(t *testing.T, j journal.Journal, c *runCounter) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		timer := time.AfterFunc(4*time.Second, cancel)
		defer timer.Stop()
		start := time.Now()
		_, err := durable.Settle(durable.WithJournal(ctx, j, "exec"), "s", steps(c, "1"), durable.WithTimeout(10*time.Second))
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, 4*time.Second, time.Since(start))
		require.Equal(t, 5, c.total())
	}

	t.Run("ResumedAfterTheDeadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			for _, kind := range journalKinds {
				j := kind.new()
				c := newRunCounter()
				start := time.Now()
				firstRun(t, j, c)
				time.Sleep(12*time.Second - time.Since(start))

				before := time.Now()
				res, err := durable.Settle(durable.WithJournal(t.Context(), j, "exec"), "s", steps(c, "2"), durable.WithTimeout(10*time.Second))
				require.NoError(t, err, kind.name)
				require.Zero(t, time.Since(before), "%s: the resumed Settle waited", kind.name)
				require.Equal(t, durable.ReasonTimedOut, res.Reason, kind.name)
				require.Equal(t, 5, c.total(), "%s: a step ran after the deadline", kind.name)
				require.Equal(t, []string{"s0-1", "s1-1"}, res.Values(), kind.name)
				for i, it := range res.Items {
					if i < 2 {
						require.Equal(t, durable.StatusSucceeded, it.Status, "%s: item %d", kind.name, i)
						require.True(t, it.Replayed, "%s: item %d", kind.name, i)
						continue
					}
					require.Contains(t, []durable.Status{durable.StatusNotStarted, durable.StatusCancelled}, it.Status, "%s: item %d", kind.name, i)
				}

				// The timed-out Settle completed: it is final.
				res2, err := durable.Settle(durable.WithJournal(t.Context(), j, "exec"), "s", steps(c, "3"), durable.WithTimeout(10*time.Second))
				require.NoError(t, err, kind.name)
				require.Equal(t, viewItems(res), viewItems(res2), kind.name)
				require.Equal(t, durable.ReasonTimedOut, res2.Reason, kind.name)
				require.Equal(t, 5, c.total(), kind.name)
			}
		})
	})
	t.Run("ResumedBeforeTheDeadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := newScanMemory()
			c := newRunCounter()
			start := time.Now()
			firstRun(t, j, c)
			time.Sleep(7*time.Second - time.Since(start))

			// Resumed at 7s: the deadline is still at 10s, not 17s. s2 (6s)
			// and the later ones cannot finish by then.
			res, err := durable.Settle(durable.WithJournal(t.Context(), j, "exec"), "s", steps(c, "2"), durable.WithTimeout(10*time.Second))
			require.NoError(t, err)
			require.Equal(t, 10*time.Second, time.Since(start))
			require.Equal(t, durable.ReasonTimedOut, res.Reason)
			require.Equal(t, []string{"s0-1", "s1-1"}, res.Values())
			require.Equal(t, 1, c.of("s0"))
			require.Equal(t, 1, c.of("s1"))
			require.Equal(t, 2, c.of("s2"))
			require.Equal(t, []durable.Status{durable.StatusSucceeded, durable.StatusSucceeded,
				durable.StatusCancelled, durable.StatusCancelled, durable.StatusCancelled}, itemStatuses(res))
			require.Equal(t, []bool{true, true, false, false, false}, replayedFlags(res))
		})
	})
	t.Run("Parallel", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			j := journal.NewMemory()
			c := newRunCounter()
			ctx, cancel := context.WithCancel(t.Context())
			timer := time.AfterFunc(4*time.Second, cancel)
			defer timer.Stop()
			_, err := durable.Parallel(durable.WithJournal(ctx, j, "exec"), "p", steps(c, "1"), durable.WithTimeout(10*time.Second))
			require.ErrorIs(t, err, context.Canceled)
			time.Sleep(8 * time.Second)

			before := time.Now()
			_, err = durable.Parallel(durable.WithJournal(t.Context(), j, "exec"), "p", steps(c, "2"), durable.WithTimeout(10*time.Second))
			require.ErrorIs(t, err, durable.ErrTimeout)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Zero(t, time.Since(before))
			require.Equal(t, 5, c.total())
		})
	})
}

// A step name repeated sequentially in one scope gets the keys name, name#2, ...
// and each occurrence replays its own value.
func TestReplayRepeatedStepNames(t *testing.T) {
	j := newScanMemory()
	c := newRunCounter()
	poll := func(ctx context.Context, times, tag int) ([]int, error) {
		var got []int
		for k := range times {
			v, err := durable.NewStep("poll", func(context.Context) (int, error) {
				c.add("poll")
				return tag*10 + k, nil
			}).Run(ctx)
			if err != nil {
				return nil, err
			}
			got = append(got, v)
		}
		return got, nil
	}
	got, err := poll(durable.WithJournal(t.Context(), j, "exec"), 3, 1)
	require.NoError(t, err)
	require.Equal(t, []int{10, 11, 12}, got)
	require.Equal(t, []string{"exec/poll", "exec/poll#2", "exec/poll#3"}, j.Keys("exec/"))
	got, err = poll(durable.WithJournal(t.Context(), j, "exec"), 3, 2)
	require.NoError(t, err)
	require.Equal(t, []int{10, 11, 12}, got)
	require.Equal(t, 3, c.of("poll"))
	got, err = poll(durable.WithJournal(t.Context(), j, "exec"), 4, 3)
	require.NoError(t, err)
	require.Equal(t, []int{10, 11, 12, 33}, got)
	require.Equal(t, 4, c.of("poll"))

	// Inside a branch that failed after polling twice: its next run replays
	// each poll's own value.
	branch := func(tag int) []durable.Step[[]int] {
		return []durable.Step[[]int]{durable.NewStep("b", func(ctx context.Context) ([]int, error) {
			got, err := poll(ctx, 2, tag)
			if err == nil && tag == 5 {
				err = errors.New("b failed after polling")
			}
			return got, err
		})}
	}
	_, err = durable.Parallel(durable.WithJournal(t.Context(), j, "inner"), "p", branch(5))
	require.Error(t, err)
	keys := j.Keys("inner/")
	require.Len(t, keys, 3, "the head and two polls: %q", keys)
	pollKey := keyOf(t, keys, "/b/poll")
	require.Equal(t, pollKey+"#2", keyOf(t, keys, "/b/poll#2"))
	vals, err := durable.Parallel(durable.WithJournal(t.Context(), j, "inner"), "p", branch(6))
	require.NoError(t, err)
	require.Equal(t, [][]int{{50, 51}}, vals)
	require.Equal(t, 6, c.of("poll"))
}

// A resumed run counts the branches it restores in their original completion
// order, so its policy reaches the decision the first run would have reached.
func TestReplayRestoresInCompletionOrder(t *testing.T) {
	// Index order and completion order differ: s3 finishes first, then s1,
	// then s0.
	delays := []time.Duration{3 * time.Second, 2 * time.Second, 10 * time.Second, time.Second, 10 * time.Second}
	steps := func(c *runCounter, tag string, ignoreCancel bool) []durable.Step[string] {
		s := make([]durable.Step[string], len(delays))
		for i, d := range delays {
			name := fmt.Sprintf("s%d", i)
			s[i] = durable.NewStep(name, func(ctx context.Context) (string, error) {
				c.add(name)
				if ignoreCancel && i == 0 {
					time.Sleep(d)
				} else if err := pause(ctx, d); err != nil {
					return "", err
				}
				return name + "-" + tag, nil
			})
		}
		return s
	}
	minTwo := durable.WithCompletion(durable.MinSuccessful(2))
	isBranch := func(k string) bool { return !strings.HasSuffix(k, "/!h") && !strings.HasSuffix(k, "/!d") }

	// What a run without a crash decides.
	var want *durable.BatchResult[string]
	synctest.Test(t, func(t *testing.T) {
		var err error
		want, err = durable.Settle(durable.WithJournal(t.Context(), journal.NewMemory(), "exec"), "s", steps(newRunCounter(), "1", false), minTwo)
		require.NoError(t, err)
	})
	require.Equal(t, durable.ReasonMinSuccessfulReached, want.Reason)
	require.Equal(t, []string{"s1", "s3"}, itemNames(want.Succeeded()))

	t.Run("CancelledAfterTheSecondPut", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			for _, kind := range journalKinds {
				f := newFaultJournal(kind.new())
				c := newRunCounter()
				ctx, cancel := context.WithCancel(t.Context())
				var stored atomic.Int32
				f.onPut(func(k string, _ []byte) {
					if isBranch(k) && stored.Add(1) == 2 {
						cancel()
					}
				})
				_, err := durable.Settle(f.in(ctx, "exec"), "s", steps(c, "1", false), minTwo)
				require.ErrorIs(t, err, context.Canceled, kind.name)
				cancel()
				require.Len(t, f.storedKeys(), 3, "%s: the head and two branches", kind.name)

				f.clear()
				runs := c.total()
				res, err := durable.Settle(f.in(t.Context(), "exec"), "s", steps(c, "2", false), minTwo)
				require.NoError(t, err, kind.name)
				require.Equal(t, runs, c.total(), "%s: the resumed Settle ran a step", kind.name)
				require.Equal(t, want.Reason, res.Reason, kind.name)
				require.Equal(t, []string{"s1", "s3"}, itemNames(res.Succeeded()), kind.name)
				require.Equal(t, []string{"s1-1", "s3-1"}, res.Values(), kind.name)
				for _, it := range res.Succeeded() {
					require.True(t, it.Replayed, kind.name)
				}
			}
		})
	})
	t.Run("DecisionPutFails", func(t *testing.T) {
		// s0 ignores its cancellation and is journaled after the decision, so
		// three successes are journaled; counted in index order, s0 and s1
		// would decide.
		synctest.Test(t, func(t *testing.T) {
			for _, kind := range journalKinds {
				f := newFaultJournal(kind.new())
				c := newRunCounter()
				f.failPuts(errInjected, func(k string) bool { return strings.HasSuffix(k, "/!d") })
				_, err := durable.Settle(f.in(t.Context(), "exec"), "s", steps(c, "1", true), minTwo)
				require.ErrorIs(t, err, errInjected, kind.name)
				require.Len(t, f.storedKeys(), 4, "%s: the head and three branches", kind.name)

				f.clear()
				runs := c.total()
				res, err := durable.Settle(f.in(t.Context(), "exec"), "s", steps(c, "2", true), minTwo)
				require.NoError(t, err, kind.name)
				require.Equal(t, runs, c.total(), "%s: the resumed Settle ran a step", kind.name)
				require.Equal(t, want.Reason, res.Reason, kind.name)
				require.Equal(t, []string{"s1", "s3"}, itemNames(res.Succeeded()), kind.name)
				require.Equal(t, []string{"s1-1", "s3-1"}, res.Values(), kind.name)
			}
		})
	})
	t.Run("PermanentFailureAfterTheDecision", func(t *testing.T) {
		// MinSuccessful(2) or ToleratedFailures(0): s3 and s1 succeed at 1s
		// and 2s and decide; s0 fails permanently at 3s, ignoring its
		// cancellation. Counted in index order, s0's failure would decide.
		synctest.Test(t, func(t *testing.T) {
			for _, kind := range journalKinds {
				f := newFaultJournal(kind.new())
				c := newRunCounter()
				s := steps(c, "1", true)
				s[0] = durable.NewStep("s0", func(context.Context) (string, error) {
					c.add("s0")
					time.Sleep(3 * time.Second)
					return "", durable.Permanent(errors.New("s0 failed for good"))
				})
				policy := durable.WithCompletion(durable.MinSuccessful(2), durable.ToleratedFailures(0))
				f.failPuts(errInjected, func(k string) bool { return strings.HasSuffix(k, "/!d") })
				_, err := durable.Settle(f.in(t.Context(), "exec"), "s", s, policy)
				require.ErrorIs(t, err, errInjected, kind.name)
				require.Len(t, f.storedKeys(), 4, "%s: the head and three branches", kind.name)

				f.clear()
				runs := c.total()
				res, err := durable.Settle(f.in(t.Context(), "exec"), "s", steps(c, "2", true), policy)
				require.NoError(t, err, kind.name)
				require.Equal(t, runs, c.total(), "%s: the resumed Settle ran a step", kind.name)
				require.Equal(t, durable.ReasonMinSuccessfulReached, res.Reason, kind.name)
				require.Equal(t, []string{"s1", "s3"}, itemNames(res.Succeeded()), kind.name)
				require.Empty(t, res.Failed(), kind.name)
			}
		})
	})
}

// A branch is counted once its checkpoint is stored, but a slow checkpoint of one
// branch must not keep the policy from counting the others: the policy is
// evaluated each time a branch finishes, before anything else is dispatched, and
// a fail-fast combinator's first failure cancels the rest.
func TestReplaySlowCheckpointDoesNotDelayTheDecision(t *testing.T) {
	slowA := func(k string) bool { return strings.HasSuffix(k, "/a") }
	t.Run("ParallelFailure", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFaultJournal(plainMemory())
			f.setLatency(10*time.Second, slowA)
			c := newRunCounter()
			_, err := durable.Parallel(f.in(t.Context(), "exec"), "p", []durable.Step[int]{
				counted(c, "a", 0, 1, nil), // done at once, checkpointed at 10s
				counted(c, "b", time.Second, 0, errors.New("b failed")),
				counted(c, "c", 0, 3, nil),
				counted(c, "d", 0, 4, nil),
			}, durable.WithMaxConcurrency(2))
			var be *durable.BranchError
			require.ErrorAs(t, err, &be)
			require.Equal(t, "b", be.Name)
			require.Zero(t, c.of("c")+c.of("d"),
				"c and d were dispatched after b failed, while a's checkpoint was being written")
		})
	})
	t.Run("SettleFirstSuccessful", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFaultJournal(plainMemory())
			f.setLatency(10*time.Second, slowA)
			c := newRunCounter()
			res, err := durable.Settle(f.in(t.Context(), "exec"), "s", []durable.Step[int]{
				counted(c, "a", 0, 1, nil), // done at once, checkpointed at 10s
				counted(c, "b", time.Second, 2, nil),
				counted(c, "c", 0, 3, nil),
				counted(c, "d", 0, 4, nil),
			}, durable.WithMaxConcurrency(2), durable.WithCompletion(durable.FirstSuccessful()))
			require.NoError(t, err)
			require.Equal(t, durable.ReasonMinSuccessfulReached, res.Reason)
			require.Zero(t, c.of("c")+c.of("d"),
				"c and d were dispatched after a and b had both succeeded, while a's checkpoint was being written")
		})
	})
}

// crashItem is an item of the crash simulation's FanOut.
type crashItem struct {
	Index int
	Word  string
}

func (it crashItem) value() string { return fmt.Sprintf("%s=%d", it.Word, it.Index*it.Index) }

var errCrash = errors.New("journal refuses writes")

// A FanOut cut off at a random point, then resumed until it succeeds: every
// branch's checkpoint is stored exactly once, a branch runs again only when its
// checkpoint was not stored by an earlier run, none is lost, and the result is
// what a run without crashes returns.
func TestReplayCrashAndResume(t *testing.T) {
	const n = 300
	items := make([]crashItem, n)
	for i := range items {
		items[i] = crashItem{Index: i, Word: fmt.Sprintf("w%03d", (i*37)%n)}
	}
	want, err := durable.FanOut(durable.WithJournal(t.Context(), journal.NewMemory(), "reference"), "fan", items,
		func(_ context.Context, it crashItem) (string, error) { return it.value(), nil }, durable.WithMaxConcurrency(8))
	require.NoError(t, err)
	for i, v := range want {
		require.Equal(t, items[i].value(), v)
	}

	const seeds = 50
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
			var inner journal.Journal = journal.NewMemory()
			if seed%2 == 1 {
				inner = newScanMemory()
			}
			f := newFaultJournal(inner)
			limit := 1 + rng.IntN(24)
			const exec = "crash"
			branchOf := func(key string) (int, bool) {
				rest, ok := strings.CutPrefix(key, exec+"/fan/")
				if !ok {
					return 0, false
				}
				i, err := strconv.Atoi(rest)
				return i, err == nil
			}

			var mu sync.Mutex
			ran := make([]int, n)      // runs of each branch, over every run
			lastRun := make([]int, n)  // the last run that ran it
			storedIn := make([]int, n) // the run that stored its checkpoint
			var storedTwice []int
			var log []string

			var got []string
			for run := 1; ; run++ {
				require.LessOrEqual(t, run, 6, "no success after 5 runs; %s", strings.Join(log, "; "))
				crash := run == 1 || (run <= 4 && rng.IntN(3) == 0)
				cancelMode := rng.IntN(2) == 0
				ctx, cancel := context.WithCancel(t.Context())
				var puts atomic.Int32
				k := int32(1 + rng.IntN(n))
				f.clear()
				f.onPut(func(key string, _ []byte) {
					i, ok := branchOf(key)
					if !ok {
						return
					}
					mu.Lock()
					if storedIn[i] != 0 {
						storedTwice = append(storedTwice, i)
					} else {
						storedIn[i] = run
					}
					mu.Unlock()
					if crash && cancelMode && puts.Add(1) == k {
						cancel()
					}
				})
				if crash && !cancelMode {
					f.failPutsAfter(rng.IntN(n+1), errCrash)
				}
				switch {
				case !crash:
					log = append(log, fmt.Sprintf("run %d: no crash", run))
				case cancelMode:
					log = append(log, fmt.Sprintf("run %d: cancel after %d stored branches", run, k))
				default:
					log = append(log, fmt.Sprintf("run %d: Puts fail after some", run))
				}
				vals, err := durable.FanOut(f.in(ctx, exec), "fan", items, func(ctx context.Context, it crashItem) (string, error) {
					mu.Lock()
					ran[it.Index]++
					lastRun[it.Index] = run
					mu.Unlock()
					if it.Index%7 == 0 {
						runtime.Gosched()
					}
					if err := ctx.Err(); err != nil {
						return "", err
					}
					return it.value(), nil
				}, durable.WithMaxConcurrency(limit))
				cancel()
				if err == nil {
					got = vals
					break
				}
				require.True(t, crash, "run %d failed without a fault: %v", run, err)
				require.True(t, errors.Is(err, context.Canceled) || errors.Is(err, errCrash), "run %d: %v", run, err)
			}

			require.Equal(t, want, got, "the resumed result differs from a run without crashes")
			require.Empty(t, storedTwice, "branches whose checkpoint was written twice")
			for i := range n {
				require.NotZero(t, storedIn[i], "branch %d was never stored (%s)", i, strings.Join(log, "; "))
				require.Equal(t, storedIn[i], lastRun[i],
					"branch %d ran in run %d, after its checkpoint was stored in run %d (%s)", i, lastRun[i], storedIn[i], strings.Join(log, "; "))
				require.LessOrEqual(t, ran[i], storedIn[i], "branch %d ran twice in one run", i)
				if storedIn[i] == 1 {
					require.Equal(t, 1, ran[i], "branch %d was stored in the first run", i)
				}
				require.Equal(t, 1, f.okPutsOf(fmt.Sprintf("%s/fan/%d", exec, i)), "branch %d", i)
			}

			// One more run replays everything.
			f.clear()
			var again atomic.Int32
			vals, err := durable.FanOut(f.in(t.Context(), exec), "fan", items, func(_ context.Context, it crashItem) (string, error) {
				again.Add(1)
				return it.value(), nil
			}, durable.WithMaxConcurrency(limit))
			require.NoError(t, err)
			require.Equal(t, want, vals)
			require.Zero(t, again.Load())
		})
	}
}
