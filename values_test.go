package durable_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// money loses its unexported field through encoding/json.
type money struct{ cents int }

// withError has a field encoding/json cannot decode into.
type withError struct {
	Name string
	Err  error
}

// A value that encoding/json would change fails its branch with an error
// naming the type and the field; without a journal nothing is encoded and
// the value comes back as it is.
func TestLossyValueFailsItsBranch(t *testing.T) {
	step := durable.NewStep("price", func(context.Context) (money, error) { return money{1999}, nil })
	v, err := step.Run(context.Background())
	require.NoError(t, err)
	require.Equal(t, money{1999}, v)

	j := journal.NewMemory()
	ctx := durable.WithJournal(context.Background(), j, "e")
	_, err = step.Run(ctx)
	require.ErrorContains(t, err, "durable_test.money")
	require.ErrorContains(t, err, "cents")
	require.ErrorContains(t, err, "WithCodec")
	_, ok, _ := j.Get(context.Background(), "e/price")
	require.False(t, ok, "never stored")

	// Zero, the field loses nothing.
	zero := durable.NewStep("free", func(context.Context) (money, error) { return money{}, nil })
	v, err = zero.Run(ctx)
	require.NoError(t, err)
	require.Equal(t, money{}, v)

	res, err := durable.Settle(ctx, "s", []durable.Step[money]{step, zero})
	require.NoError(t, err)
	require.Equal(t, durable.StatusFailed, res.Items[0].Status)
	require.ErrorContains(t, res.Items[0].Err, "cents")
	require.Equal(t, durable.StatusSucceeded, res.Items[1].Status)

	// Invalid UTF-8 would come back as U+FFFD.
	_, err = durable.NewStep("bytes", func(context.Context) (string, error) { return "a\xff", nil }).Run(ctx)
	require.ErrorContains(t, err, "UTF-8")
}

// A type that can never round-trip fails the call before any branch runs or
// anything is stored.
func TestUnencodableTypeFailsBeforeAnythingRuns(t *testing.T) {
	j := journal.NewMemory()
	ctx := durable.WithJournal(context.Background(), j, "e")
	fn := func(context.Context) (withError, error) { t.Error("ran"); return withError{}, nil }
	_, err := durable.Parallel(ctx, "p", []durable.Step[withError]{durable.NewStep("a", fn)})
	require.ErrorContains(t, err, "durable_test.withError")
	require.ErrorContains(t, err, "Err")
	_, err = durable.NewStep("s", fn).Run(ctx)
	require.ErrorContains(t, err, "durable_test.withError")
	g := durable.NewGroup(ctx, "g")
	durable.Go(g, "a", fn)
	require.ErrorContains(t, g.Wait(), "durable_test.withError")
	_, err = durable.FanOut(ctx, "f", []int{1}, func(context.Context, int) (func(), error) { return nil, nil })
	require.ErrorContains(t, err, "func")
	for _, k := range []string{"e/p/!h", "e/s", "e/f/!h"} {
		_, ok, _ := j.Get(context.Background(), k)
		require.False(t, ok, k)
	}
}

// Types whose own marshalers say how they round-trip are trusted.
func TestTrustedMarshalersPass(t *testing.T) {
	ctx := durable.WithJournal(context.Background(), journal.NewMemory(), "e")
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	v, err := durable.NewStep("t", func(context.Context) (time.Time, error) { return now, nil }).Run(ctx)
	require.NoError(t, err)
	require.True(t, now.Equal(v))
}

// propValue is one of the random values of TestJournaledValuesReplayExactly.
type propInner struct {
	N    int
	S    string
	F    float64
	hide int
}

type propOuter struct {
	Inner  propInner
	Ptr    *propInner
	List   []propInner
	Map    map[string]int
	When   time.Time
	Bytes  []byte
	Secret string `json:"-"`
}

// Property: whatever a journaled branch returns equals what its replay
// returns, and a value that would lose data is refused and never stored.
func TestJournaledValuesReplayExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	str := func() string {
		if r.IntN(8) == 0 {
			return "bad\xfe"
		}
		return strconv.Itoa(r.IntN(1000)) + "é"
	}
	inner := func() propInner {
		in := propInner{N: r.IntN(100), S: str(), F: r.Float64()}
		if r.IntN(6) == 0 {
			in.hide = 1 + r.IntN(9)
		}
		return in
	}
	refused, stored := 0, 0
	for i := range 400 {
		v := propOuter{Inner: inner(), Map: map[string]int{}, When: time.Unix(int64(r.IntN(1e9)), 0).UTC()}
		if r.IntN(2) == 0 {
			p := inner()
			v.Ptr = &p
		}
		for range r.IntN(3) {
			v.List = append(v.List, inner())
			v.Map[str()] = r.IntN(5)
		}
		if r.IntN(3) == 0 {
			v.Bytes = []byte{0, 255, byte(i)}
		}
		if r.IntN(8) == 0 {
			v.Secret = "x"
		}
		j := journal.NewMemory()
		run := func() (propOuter, error) {
			return durable.NewStep("v", func(context.Context) (propOuter, error) { return v, nil }).Run(
				durable.WithJournal(context.Background(), j, "e"))
		}
		live, err := run()
		_, ok, _ := j.Get(context.Background(), "e/v")
		if err != nil {
			require.False(t, ok, "value %d: refused (%v) but stored", i, err)
			refused++
			continue
		}
		require.True(t, ok)
		stored++
		replay, err := run()
		require.NoError(t, err)
		require.True(t, reflect.DeepEqual(live, replay), "value %d: live %+v, replay %+v", i, live, replay)
		// Nothing was lost: the live value is the one returned.
		require.True(t, reflect.DeepEqual(v.Inner, live.Inner) && v.Secret == "" && v.Inner.hide == 0,
			"value %d: %+v came back as %+v", i, v, live)
	}
	require.NotZero(t, refused)
	require.NotZero(t, stored)
	t.Logf("%d stored and replayed, %d refused", stored, refused)
}
