package durable_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// gobCodec is a Codec built on encoding/gob.
type gobCodec struct{}

func (gobCodec) Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	err := gob.NewEncoder(&b).Encode(v)
	return b.Bytes(), err
}

func (gobCodec) Unmarshal(data []byte, v any) error {
	return gob.NewDecoder(bytes.NewReader(data)).Decode(v)
}

// cents has only an unexported field: encoding/json would drop it.
type cents struct{ n int64 }

// centsCodec is a hand-written Codec for cents.
type centsCodec struct{}

func (centsCodec) Marshal(v any) ([]byte, error) {
	c, ok := v.(cents)
	if !ok {
		return nil, fmt.Errorf("centsCodec: cannot encode %T", v)
	}
	return strconv.AppendInt(nil, c.n, 10), nil
}

func (centsCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*cents)
	if !ok {
		return fmt.Errorf("centsCodec: cannot decode into %T", v)
	}
	n, err := strconv.ParseInt(string(data), 10, 64)
	p.n = n
	return err
}

// brokenCodec encodes but never decodes.
type brokenCodec struct{ gobCodec }

func (brokenCodec) Unmarshal([]byte, any) error { return errors.New("brokenCodec: no") }

func TestCustomCodecsRoundTripWhatJSONCannot(t *testing.T) {
	j := journal.NewMemory()
	ran := 0
	run := func() ([]complex128, cents) {
		ctx := durable.WithJournal(context.Background(), j, "e")
		vs, err := durable.FanOut(ctx, "roots", []float64{1, 4}, func(_ context.Context, x float64) (complex128, error) {
			ran++
			return complex(x, -x), nil
		}, durable.WithCodec(gobCodec{}), durable.WithMaxConcurrency(1))
		require.NoError(t, err)
		c, err := durable.NewStep("price", func(context.Context) (cents, error) {
			ran++
			return cents{1999}, nil
		}, durable.WithCodec(centsCodec{})).Run(ctx)
		require.NoError(t, err)
		return vs, c
	}
	vs, c := run()
	require.Equal(t, []complex128{complex(1, -1), complex(4, -4)}, vs)
	require.Equal(t, cents{1999}, c)
	require.Equal(t, 3, ran)
	vs, c = run()
	require.Equal(t, []complex128{complex(1, -1), complex(4, -4)}, vs, "replayed")
	require.Equal(t, cents{1999}, c, "replayed")
	require.Equal(t, 3, ran, "nothing ran again")

	// The default codec refuses complex results before anything runs or is stored.
	j2 := journal.NewMemory()
	_, err := durable.FanOut(durable.WithJournal(context.Background(), j2, "e"), "roots", []float64{1},
		func(context.Context, float64) (complex128, error) { t.Fatal("ran"); return 0, nil })
	require.Error(t, err)
	require.ErrorContains(t, err, "complex128")
	_, ok, _ := j2.Get(context.Background(), "e/roots/!h")
	require.False(t, ok, "nothing stored")
}

// A combinator's codec is inherited by what its branches run, unless a step
// names its own; a step's own wins over the combinator's.
func TestCodecIsInheritedAndAStepsOwnWins(t *testing.T) {
	j := journal.NewMemory()
	ctx := durable.WithJournal(context.Background(), j, "e")
	out, err := durable.Parallel(ctx, "p", []durable.Step[string]{
		durable.NewStep("nested", func(ctx context.Context) (string, error) {
			// Inherits gob from Parallel: complex128 is fine.
			z, err := durable.NewStep("z", func(context.Context) (complex128, error) { return 2i, nil }).Run(ctx)
			return fmt.Sprint(z), err
		}),
		durable.NewStep("own", func(ctx context.Context) (string, error) {
			c, err := durable.NewStep("c", func(context.Context) (cents, error) { return cents{5}, nil },
				durable.WithCodec(centsCodec{})).Run(ctx)
			return fmt.Sprint(c.n), err
		}),
	}, durable.WithCodec(gobCodec{}))
	require.NoError(t, err)
	require.Equal(t, []string{"(0+2i)", "5"}, out)

	// Every step names its own codec: the default is never used, and a type
	// JSON cannot hold is fine.
	_, err = durable.Parallel(ctx, "own", []durable.Step[complex128]{
		durable.NewStep("a", func(context.Context) (complex128, error) { return 1i, nil }, durable.WithCodec(gobCodec{})),
	})
	require.NoError(t, err)
	// One step on the default codec: refused before anything runs.
	_, err = durable.Parallel(ctx, "mixed", []durable.Step[complex128]{
		durable.NewStep("a", func(context.Context) (complex128, error) { return 1i, nil }, durable.WithCodec(gobCodec{})),
		durable.NewStep("b", func(context.Context) (complex128, error) { t.Fatal("ran"); return 0, nil }),
	})
	require.ErrorContains(t, err, "complex128")
}

// Changing the codec between runs is a clear error, never garbage.
func TestCodecChangeBetweenRunsIsAnError(t *testing.T) {
	j := journal.NewMemory()
	steps := []durable.Step[[]int]{durable.NewStep("a", func(context.Context) ([]int, error) { return []int{1, 2}, nil })}
	_, err := durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p", steps, durable.WithCodec(gobCodec{}))
	require.NoError(t, err)
	_, err = durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p", steps)
	require.ErrorIs(t, err, durable.ErrNondeterministic)
	require.ErrorContains(t, err, "durable_test.gobCodec")
	require.ErrorContains(t, err, "encoding/json")
	require.ErrorContains(t, err, `"e/p/a"`)
}

// A value the codec cannot decode is never stored: the branch fails with a
// plain, retryable error, and the next run runs it again.
func TestUndecodableValueIsNotStored(t *testing.T) {
	j := journal.NewMemory()
	ran := 0
	step := durable.NewStep("a", func(context.Context) (int, error) { ran++; return 1, nil })
	_, err := durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p",
		[]durable.Step[int]{step}, durable.WithCodec(brokenCodec{}))
	require.ErrorContains(t, err, "does not decode, so it was not stored")
	require.NotErrorIs(t, err, durable.ErrCorrupt)
	require.False(t, durable.IsPermanent(err))
	_, ok, _ := j.Get(context.Background(), "e/p/a")
	require.False(t, ok)
	vs, err := durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p",
		[]durable.Step[int]{step}, durable.WithCodec(gobCodec{}))
	require.NoError(t, err, "not wedged: the next run runs it")
	require.Equal(t, []int{1}, vs)
	require.Equal(t, 2, ran)
}

func TestCodecOptionErrors(t *testing.T) {
	ctx := durable.WithJournal(context.Background(), journal.NewMemory(), "e")
	_, err := durable.Parallel(ctx, "p", []durable.Step[int]{
		durable.NewStep("a", func(context.Context) (int, error) { return 1, nil }),
	}, durable.WithCodec(nil))
	require.ErrorContains(t, err, "WithCodec(nil)")
	s := durable.NewStep("a", func(context.Context) (int, error) { t.Fatal("ran"); return 1, nil }, durable.WithMaxConcurrency(2))
	_, err = s.Run(ctx)
	require.ErrorContains(t, err, "not to NewStep")
	_, err = durable.Parallel(ctx, "q", []durable.Step[int]{s})
	require.ErrorContains(t, err, "not to NewStep")
}

// The head records a combinator's kind and policy: another kind or policy
// under the same name is nondeterministic, saying what differs.
func TestKindAndPolicyChangesAreNondeterministic(t *testing.T) {
	j := journal.NewMemory()
	steps := []durable.Step[int]{durable.NewStep("a", func(context.Context) (int, error) { return 1, nil })}
	ctx := func() context.Context { return durable.WithJournal(context.Background(), j, "e") }
	_, err := durable.Settle(ctx(), "b", steps)
	require.NoError(t, err)
	_, err = durable.Race(ctx(), "b", steps)
	require.ErrorIs(t, err, durable.ErrNondeterministic)
	require.ErrorContains(t, err, "the journal holds a Settle under this name, the code asks for a Race")
	_, err = durable.Settle(ctx(), "b", steps, durable.WithCompletion(durable.FirstSuccessful()))
	require.ErrorIs(t, err, durable.ErrNondeterministic)
	require.ErrorContains(t, err, `"all completed"`)
	require.ErrorContains(t, err, `"min successful 1"`)
	res, err := durable.Settle(ctx(), "b", steps)
	require.NoError(t, err)
	require.True(t, res.Items[0].Replayed)

	g := durable.NewGroup(ctx(), "b")
	require.ErrorIs(t, g.Wait(), durable.ErrNondeterministic)
}

// The item digest is taken before the branch runs: a function that changes
// its item does not make an identical resume fail.
func TestItemChangedByItsBranchResumes(t *testing.T) {
	j := journal.NewMemory()
	items := func() [][]int { return [][]int{{3, 1, 2}, {9, 8}} }
	fail := true
	fn := func(_ context.Context, xs []int) (int, error) {
		slices.Sort(xs)
		if xs[0] == 8 && fail {
			return 0, errors.New("flaky")
		}
		return xs[0], nil
	}
	_, err := durable.FanOut(durable.WithJournal(context.Background(), j, "e"), "f", items(), fn, durable.WithMaxConcurrency(1))
	require.Error(t, err)
	fail = false
	vs, err := durable.FanOut(durable.WithJournal(context.Background(), j, "e"), "f", items(), fn, durable.WithMaxConcurrency(1))
	require.NoError(t, err)
	require.Equal(t, []int{1, 8}, vs)
	_, err = durable.FanOut(durable.WithJournal(context.Background(), j, "e"), "f", [][]int{{4}, {9, 8}}, fn)
	require.ErrorIs(t, err, durable.ErrNondeterministic, "other data fails closed")
}
