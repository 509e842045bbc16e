package durable_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// v1Point is the struct value the version 1 fixture holds.
type v1Point struct{ X, Y int }

// loadV1Fixture is a journal holding testdata/journal-v1.json: execution
// "order-7" as record format version 1 left it (see runV1Program).
func loadV1Fixture(t *testing.T) *journal.Memory {
	t.Helper()
	data, err := os.ReadFile("testdata/journal-v1.json")
	require.NoError(t, err)
	var entries []struct{ Key, Value string }
	require.NoError(t, json.Unmarshal(data, &entries))
	j := journal.NewMemory()
	for _, e := range entries {
		v, err := base64.StdEncoding.DecodeString(e.Value)
		require.NoError(t, err)
		_, err = j.Put(context.Background(), e.Key, v)
		require.NoError(t, err)
	}
	return j
}

// runV1Program is the program that wrote the fixture, every step succeeding
// now. On the run that wrote it, prices' c and lengths' item "ccc" failed
// plainly, notify's y failed permanently and z plainly (a final decision).
func runV1Program(t *testing.T, ctx context.Context, ran *atomic.Int32) (prices []int, notify *durable.BatchResult[v1Point], lengths []int, race string, charge v1Point, name string) {
	t.Helper()
	count := func() { ran.Add(1) }
	var err error
	prices, err = durable.Parallel(ctx, "prices", []durable.Step[int]{
		durable.NewStep("a", func(context.Context) (int, error) { count(); return 10, nil }),
		durable.NewStep("b", func(context.Context) (int, error) { count(); return 20, nil }),
		durable.NewStep("c", func(context.Context) (int, error) { count(); return 30, nil }),
	}, durable.WithMaxConcurrency(3))
	require.NoError(t, err)
	notify, err = durable.Settle(ctx, "notify", []durable.Step[v1Point]{
		durable.NewStep("x", func(context.Context) (v1Point, error) { count(); return v1Point{1, 2}, nil }),
		durable.NewStep("y", func(context.Context) (v1Point, error) { count(); return v1Point{}, nil }),
		durable.NewStep("z", func(context.Context) (v1Point, error) { count(); return v1Point{}, nil }),
	}, durable.WithMaxConcurrency(1))
	require.NoError(t, err)
	lengths, err = durable.FanOut(ctx, "lengths", []string{"a", "bb", "ccc"}, func(_ context.Context, s string) (int, error) {
		count()
		return len(s), nil
	}, durable.WithMaxConcurrency(1))
	require.NoError(t, err)
	race, err = durable.Race(ctx, "fastest", []durable.Step[string]{
		durable.NewStep("only", func(context.Context) (string, error) { count(); return "lost", nil }),
	})
	require.NoError(t, err)
	charge, err = durable.NewStep("charge", func(ctx context.Context) (v1Point, error) {
		count()
		n, err := durable.NewStep("inner", func(context.Context) (int, error) { count(); return 5, nil }).Run(ctx)
		return v1Point{n, 6}, err
	}).Run(ctx)
	require.NoError(t, err)
	g := durable.NewGroup(ctx, "mixed")
	f := durable.Go(g, "name", func(context.Context) (string, error) { count(); return "bob", nil })
	require.NoError(t, g.Wait())
	name, err = f.Get()
	require.NoError(t, err)
	return
}

// A journal written with record format version 1 resumes: its successes,
// permanent failures and decisions replay, what failed plainly runs, and what
// this run adds is written in version 2.
func TestVersion1JournalResumes(t *testing.T) {
	j := loadV1Fixture(t)
	var ran atomic.Int32
	prices, notify, lengths, race, charge, name := runV1Program(t, durable.WithJournal(context.Background(), j, "order-7"), &ran)
	require.Equal(t, []int{10, 20, 30}, prices)
	require.Equal(t, []int{1, 2, 3}, lengths)
	require.Equal(t, "won", race, "the journaled winner")
	require.Equal(t, v1Point{5, 6}, charge)
	require.Equal(t, "ann", name)
	require.Equal(t, int32(2), ran.Load(), "only prices' c and lengths' ccc ran")

	require.Equal(t, durable.ReasonAllCompleted, notify.Reason)
	require.Equal(t, []durable.Status{durable.StatusSucceeded, durable.StatusFailed, durable.StatusFailed},
		[]durable.Status{notify.Items[0].Status, notify.Items[1].Status, notify.Items[2].Status})
	require.Equal(t, v1Point{1, 2}, notify.Items[0].Value)
	require.EqualError(t, notify.Items[1].Err, "card declined")
	require.EqualError(t, notify.Items[2].Err, "flaky")
	var tn interface{ TypeName() string }
	require.True(t, errors.As(notify.Items[1].Err, &tn))
	require.Equal(t, "*errors.errorString", tn.TypeName())

	// What this run wrote is version 2; a third run replays everything.
	v, ok, err := j.Get(context.Background(), "order-7/prices/c")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, byte(2), v[0])
	ran.Store(0)
	prices, _, lengths, _, _, _ = runV1Program(t, durable.WithJournal(context.Background(), j, "order-7"), &ran)
	require.Equal(t, []int{10, 20, 30}, prices)
	require.Equal(t, []int{1, 2, 3}, lengths)
	require.Zero(t, ran.Load())
}
