package durable_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// recordingJournal keeps the keys written, in order, for tests that look at
// records or at the order of writes.
type recordingJournal struct {
	*scanMemory
	mu   sync.Mutex
	keys []string
}

func newRecordingJournal() *recordingJournal { return &recordingJournal{scanMemory: newScanMemory()} }

func (r *recordingJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	r.mu.Lock()
	r.keys = append(r.keys, key)
	r.mu.Unlock()
	return r.scanMemory.Put(ctx, key, value)
}

// order is the keys written so far, in order.
func (r *recordingJournal) order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.keys)
}

// journalRecords runs a few journaled combinators and returns every record they
// wrote, as seeds for the fuzzer and cases for the round trip.
func journalRecords(t testing.TB) map[string][]byte {
	j := newRecordingJournal()
	ctx := durable.WithJournal(context.Background(), j, "exec/1")
	steps := []durable.Step[map[string]int]{
		durable.NewStep("a/b", func(context.Context) (map[string]int, error) { return map[string]int{"x": 1}, nil }),
		durable.NewStep("bad!", func(context.Context) (map[string]int, error) {
			return nil, durable.Permanent(errors.New("no such user"))
		}),
		durable.NewStep("plain", func(context.Context) (map[string]int, error) { return nil, errors.New("flaky") }),
	}
	_, err := durable.Settle(ctx, "settle#1", steps)
	require.NoError(t, err)
	_, _ = durable.Race(ctx, "race", steps[:1])
	_, _ = durable.FanOut(ctx, "fan", []string{"p", "q"}, func(_ context.Context, s string) (string, error) { return s + s, nil })
	out := map[string][]byte{}
	for _, k := range j.keys {
		v, ok, err := j.Get(context.Background(), k)
		require.NoError(t, err)
		require.True(t, ok)
		out[k] = v
	}
	return out
}

func TestRecordsRoundTrip(t *testing.T) {
	recs := journalRecords(t)
	var keys []string
	for k := range recs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	require.Equal(t, []string{
		"exec%2F1/fan/!h", "exec%2F1/fan/0", "exec%2F1/fan/1",
		"exec%2F1/race/!d", "exec%2F1/race/!h", "exec%2F1/race/a%2Fb",
		"exec%2F1/settle%231/!d", "exec%2F1/settle%231/!h", "exec%2F1/settle%231/a%2Fb", "exec%2F1/settle%231/bad%21",
	}, keys, "keys are escaped paths; the plain failure is not journaled")
	for k, v := range recs {
		re, err := durable.DecodeRecord(k, v)
		require.NoError(t, err, k)
		require.Equal(t, v, re, "%s: decode then encode gives the same bytes", k)
	}
}

func TestCorruptRecordsAreErrors(t *testing.T) {
	recs := journalRecords(t)
	for k, v := range recs {
		for cut := range len(v) {
			_, err := durable.DecodeRecord(k, v[:cut])
			require.ErrorIs(t, err, durable.ErrCorrupt, "%s: a record cut to %d of %d bytes", k, cut, len(v))
		}
		bad := append([]byte{9}, v[1:]...)
		_, err := durable.DecodeRecord(k, bad)
		require.ErrorContains(t, err, "unknown record version 9", k)
		_, err = durable.DecodeRecord(k+"x", v)
		require.ErrorContains(t, err, "checksum mismatch", k)
	}
}

func FuzzRecordDecode(f *testing.F) {
	for _, v := range journalRecords(f) {
		f.Add(v)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 'd', 3, 0, 200, 200, 200, 200, 200, 200, 200, 200, 200, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		re, err := durable.DecodeRecord("k", b)
		if err != nil {
			return
		}
		re2, err := durable.DecodeRecord("k", re)
		if err != nil {
			t.Fatalf("a re-encoded record does not decode: %v\nfirst: %x\nagain: %x", err, b, re)
		}
		if !bytes.Equal(re, re2) {
			t.Fatalf("decode→encode→decode→encode differs:\n%x\n%x", re, re2)
		}
	})
}

func TestKeyEscapingIsUnambiguous(t *testing.T) {
	names := []string{"a", "a/b", "a%2Fb", "a#2", "!h", "!d", "%", "%25", "a/", "/a", "#", "!"}
	seen := map[string]string{}
	for _, n := range names {
		e := durable.EscapeName(n)
		require.NotContains(t, e, "/", n)
		require.NotContains(t, e, "#", n)
		require.False(t, strings.HasPrefix(e, "!"), n)
		if prev, dup := seen[e]; dup {
			t.Fatalf("%q and %q escape to the same %q", prev, n, e)
		}
		seen[e] = n
	}
}

func TestCorruptJournalEntryNamesTheKey(t *testing.T) {
	j := journal.NewMemory()
	ran := 0
	steps := []durable.Step[int]{durable.NewStep("s", func(context.Context) (int, error) { ran++; return 1, nil })}
	// The head is journaled on first start; plant garbage where the branch's
	// outcome goes, after the head.
	ctx := durable.WithJournal(context.Background(), j, "e")
	_, err := j.Put(context.Background(), "e/p/!h", nil)
	require.NoError(t, err)
	_, err = durable.Parallel(ctx, "p", steps)
	require.ErrorContains(t, err, `"e/p/!h"`)
	require.ErrorIs(t, err, durable.ErrCorrupt)

	j = journal.NewMemory()
	_, err = durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p", steps)
	require.NoError(t, err)
	require.Equal(t, 1, ran)
	j2 := journal.NewMemory()
	for _, k := range []string{"e/p/!h"} {
		v, _, _ := j.Get(context.Background(), k)
		_, _ = j2.Put(context.Background(), k, v)
	}
	_, _ = j2.Put(context.Background(), "e/p/s", []byte{1, 's', 0, 0, '{'})
	_, err = durable.Parallel(durable.WithJournal(context.Background(), j2, "e"), "p", steps)
	require.ErrorContains(t, err, `"e/p/s"`)
	require.Equal(t, 1, ran, "a corrupt entry is an error, never a silent re-run")
}

func TestItemDigestV1IsTheDigestOfTheJSON(t *testing.T) {
	items := []any{"", "a", "order-17", "héllo", "<tag>", `q"`, "a\\b", "\n", "&", "\x7f",
		0, -5, 1 << 40, int64(1 << 62), int32(-7), uint64(1 << 63), 3.5, true, []int{1}, struct{ A string }{"x"}}
	for _, v := range items {
		data, err := json.Marshal(v)
		require.NoError(t, err)
		h := fnv.New128a()
		h.Write(data)
		require.Equal(t, string(h.Sum(nil)), durable.ItemDigestV1(v), "%#v", v)
	}
}
