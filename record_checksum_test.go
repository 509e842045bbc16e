package durable_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
)

// checksumProgram is a journaled program of every kind of record: heads,
// successes, a permanent failure, a decision and a nested step. It returns a
// fingerprint of its result.
func checksumProgram(ctx context.Context, ran *atomic.Int32) (string, error) {
	count := func() { ran.Add(1) }
	vs, err := durable.Parallel(ctx, "p", []durable.Step[string]{
		durable.NewStep("a", func(ctx context.Context) (string, error) {
			count()
			n, err := durable.NewStep("inner", func(context.Context) (int, error) { count(); return 7, nil }).Run(ctx)
			return "a" + strconv.Itoa(n), err
		}),
		durable.NewStep("b", func(context.Context) (string, error) { count(); return "bee", nil }),
	})
	if err != nil {
		return "", err
	}
	res, err := durable.Settle(ctx, "s", []durable.Step[[]int]{
		durable.NewStep("x", func(context.Context) ([]int, error) { count(); return []int{1, 2}, nil }),
		durable.NewStep("y", func(context.Context) ([]int, error) { count(); return nil, durable.Permanent(errors.New("no")) }),
	})
	if err != nil {
		return "", err
	}
	return strings.Join(vs, ",") + "|" + res.Reason.String() + strconv.Itoa(res.SuccessCount()), nil
}

// Every single-bit flip of a stored value, or of the part of a key below its
// batch, is an error matching ErrCorrupt that names the key: never a wrong
// value, never a re-run of committed work.
func TestEveryBitFlipIsDetectedOnResume(t *testing.T) {
	src := newScanMemory()
	var ran atomic.Int32
	want, err := checksumProgram(durable.WithJournal(context.Background(), src, "e"), &ran)
	require.NoError(t, err)
	keys := src.Keys("")
	require.Len(t, keys, 8)

	copyWith := func(key, newKey string, value []byte) *scanMemory {
		dst := newScanMemory()
		for _, k := range keys {
			v, _, _ := src.Get(context.Background(), k)
			if k == key {
				k, v = newKey, value
			}
			_, err := dst.Put(context.Background(), k, v)
			require.NoError(t, err)
		}
		return dst
	}
	check := func(j *scanMemory, what, key string) {
		t.Helper()
		ran.Store(0)
		got, err := checksumProgram(durable.WithJournal(context.Background(), j, "e"), &ran)
		if err == nil {
			require.Equal(t, want, got, "%s: a wrong value", what)
			t.Fatalf("%s: not detected (ran %d)", what, ran.Load())
		}
		require.ErrorIs(t, err, durable.ErrCorrupt, what)
		require.ErrorContains(t, err, strconv.Quote(key), what)
	}
	flips := 0
	for _, k := range keys {
		if k == "e/p/!h" || k == "e/s/!h" {
			// Heads are read by key: a flipped key is a missing head, and the
			// batch starts afresh (see below).
		} else {
			// A flip in the key below "e/p/" or "e/s/".
			first := len("e/p/")
			for bit := 8 * first; bit < 8*len(k); bit++ {
				kb := []byte(k)
				kb[bit/8] ^= 1 << (bit % 8)
				if _, taken, _ := src.Get(context.Background(), string(kb)); taken {
					continue // "e/s/y" to "e/s/x": two entries under one key cannot be stored
				}
				v, _, _ := src.Get(context.Background(), k)
				check(copyWith(k, string(kb), v), "key "+k+" bit "+strconv.Itoa(bit), string(kb))
				flips++
			}
		}
		v, _, _ := src.Get(context.Background(), k)
		for bit := range 8 * len(v) {
			vb := bytes.Clone(v)
			vb[bit/8] ^= 1 << (bit % 8)
			check(copyWith(k, k, vb), "value of "+k+" bit "+strconv.Itoa(bit), k)
			flips++
		}
	}
	t.Logf("%d single-bit flips, every one detected", flips)
}
