package durable_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// panicNil panics with a nil value: under GODEBUG=panicnil=1, recover
// returns nil for it.
func panicNil[T any](ran *atomic.Int32) func(context.Context) (T, error) {
	return func(context.Context) (T, error) {
		ran.Add(1)
		panic(nil)
	}
}

// A branch that panics with nil fails, under GODEBUG=panicnil=1 too, where
// recover cannot tell it from a normal return: it is never taken for a
// success, never run twice, and a Settle does not loop. The test runs itself
// in a child process with that setting.
func TestPanicNilIsAFailure(t *testing.T) {
	if os.Getenv("DURABLE_PANICNIL_CHILD") == "" {
		// A Settle that loops on the panic never ends: bound the child.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPanicNilIsAFailure$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "DURABLE_PANICNIL_CHILD=1", "GODEBUG=panicnil=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "--- PASS: TestPanicNilIsAFailure")
		return
	}
	func() {
		defer func() { require.Nil(t, recover(), "the child runs with panicnil=1") }()
		panic(nil)
	}()
	for _, journaled := range []bool{false, true} {
		ctx := context.Background()
		if journaled {
			ctx = durable.WithJournal(ctx, journal.NewMemory(), "e")
		}
		var ran atomic.Int32
		var pe *durable.PanicError
		_, err := durable.Parallel(ctx, "p", []durable.Step[int]{durable.NewStep("a", panicNil[int](&ran))})
		require.ErrorAs(t, err, &pe, "journaled=%v", journaled)
		_, err = durable.FanOut(ctx, "f", []int{1, 2, 3}, func(ctx context.Context, i int) (int, error) {
			if i == 2 {
				return panicNil[int](&ran)(ctx)
			}
			return i, nil
		}, durable.WithMaxConcurrency(1))
		require.ErrorAs(t, err, &pe, "journaled=%v", journaled)
		res, err := durable.Settle(ctx, "s", []durable.Step[int]{
			durable.NewStep("a", panicNil[int](&ran)),
			durable.NewStep("b", func(context.Context) (int, error) { return 2, nil }),
		}, durable.WithMaxConcurrency(1))
		require.NoError(t, err)
		require.Equal(t, durable.StatusFailed, res.Items[0].Status)
		require.ErrorAs(t, res.Items[0].Err, &pe)
		g := durable.NewGroup(ctx, "g")
		durable.Go(g, "a", panicNil[string](&ran))
		require.ErrorAs(t, g.Wait(), &pe)
		require.Equal(t, int32(4), ran.Load(), "journaled=%v: each panicking branch ran once", journaled)
	}
}

// panickyJournal panics in Get, Put or Scan.
type panickyJournal struct {
	*scanMemory
	get, put, scan bool
	value          any
}

func (j *panickyJournal) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if j.get {
		panic(j.value)
	}
	return j.scanMemory.Get(ctx, key)
}

func (j *panickyJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if j.put && key != "e/p/!h" {
		panic(j.value)
	}
	return j.scanMemory.Put(ctx, key, value)
}

func (j *panickyJournal) Scan(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	if j.scan {
		panic(j.value)
	}
	return j.scanMemory.Scan(ctx, prefix, fn)
}

// A journal that panics, on a worker goroutine or the caller's, fails the
// call with an error wrapping a *PanicError; nothing is reported stored and
// the process goes on.
func TestJournalPanicIsAnError(t *testing.T) {
	steps := []durable.Step[int]{
		durable.NewStep("a", func(context.Context) (int, error) { return 1, nil }),
		durable.NewStep("b", func(context.Context) (int, error) { return 2, nil }),
	}
	for _, tc := range []struct {
		name string
		j    *panickyJournal
	}{
		{"Put", &panickyJournal{put: true, value: "disk on fire"}},
		{"PutNil", &panickyJournal{put: true}},
		{"Get", &panickyJournal{get: true, value: errors.New("network gone")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.j.scanMemory = newScanMemory()
			ctx := durable.WithJournal(context.Background(), tc.j, "e")
			_, err := durable.Parallel(ctx, "p", steps, durable.WithMaxConcurrency(1))
			var pe *durable.PanicError
			require.ErrorAs(t, err, &pe)
			require.ErrorContains(t, err, "the journal panicked")
			res, err := durable.Settle(ctx, "s", steps)
			require.Error(t, err)
			require.Nil(t, res)
			g := durable.NewGroup(ctx, "g")
			durable.Go(g, "a", steps[0].Fn)
			require.ErrorAs(t, g.Wait(), &pe)
			require.Empty(t, tc.j.scanMemory.Keys("e/p/a"))
		})
	}
	t.Run("Scan", func(t *testing.T) {
		j := &panickyJournal{scanMemory: newScanMemory(), value: "scan"}
		_, err := durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p", steps)
		require.NoError(t, err)
		j.scan = true
		_, err = durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p", steps)
		var pe *durable.PanicError
		require.ErrorAs(t, err, &pe)
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
