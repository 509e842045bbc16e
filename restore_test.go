package durable

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/internal/record"
	"github.com/durable-go/durable/journal"
)

// A batch named by index finds a branch's entry by its key segment: the index
// in decimal exactly as key writes it.
func TestDecimalIndex(t *testing.T) {
	for seg, want := range map[string]int{
		"0": 0, "7": 7, "99": 99,
		"100": -1, "007": -1, "00": -1, "-1": -1, "+1": -1, "": -1, "1x": -1, " 1": -1, "!h": -1, "!d": -1,
		"1/!a1": -1, "99999999999999999999999": -1,
	} {
		if got := decimalIndex(seg, 100); got != want {
			t.Errorf("decimalIndex(%q, 100) = %d, want %d", seg, got, want)
		}
	}
	for i := range 1000 {
		var b batch[int]
		b.prefix, b.digestOf = "e/x/", func(int) [16]byte { return [16]byte{} }
		if got := decimalIndex(strings.TrimPrefix(b.key(i), b.prefix), 1000); got != i {
			t.Fatalf("key %q: index %d", b.key(i), got)
		}
	}
}

// Entries under a batch's prefix that are no branch's are checked and
// ignored: a resumed run restores exactly the branches, and reports a damaged
// entry, naming its key.
func TestRestoreIgnoresEntriesOfNoBranch(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run("named="+strconv.FormatBool(named), func(t *testing.T) {
			j := journal.NewMemory()
			var ran atomic.Int32
			run := func() ([]int, error) {
				items := []int{10, 11, 12, 13, 14}
				var opts []Option
				if named {
					opts = append(opts, WithKey(func(i int) string { return "k" + strconv.Itoa(i) }))
				}
				return FanOut(WithJournal(context.Background(), j, "e"), "items", items, func(_ context.Context, i int) (int, error) {
					ran.Add(1)
					return i * i, nil
				}, opts...)
			}
			want, err := run()
			require.NoError(t, err)
			for _, seg := range []string{"007", "03", "5", "05", "x", "k99", "K10", "!z"} {
				key := "e/items/" + seg
				_, err := j.Put(context.Background(), key, (&record.Record{Kind: record.KindSuccess, Value: []byte("1")}).Encode(key))
				require.NoError(t, err)
			}
			got, err := run()
			require.NoError(t, err)
			require.Equal(t, want, got)
			require.EqualValues(t, 5, ran.Load(), "the resumed run ran a branch again")

			bad := (&record.Record{Kind: record.KindSuccess, Value: []byte("1")}).Encode("e/items/elsewhere")
			_, err = j.Put(context.Background(), "e/items/0009", bad)
			require.NoError(t, err)
			_, err = run()
			require.True(t, errors.Is(err, ErrCorrupt), "%v", err)
			require.ErrorContains(t, err, `"e/items/0009"`)
			require.EqualValues(t, 5, ran.Load())
		})
	}
}

// Resuming a completed batch from a journal that scans reads each branch's
// record without a record, a key or a copy of its own: what it allocates per
// branch is a small constant, whatever the batch's size. A regression here
// is what made reruns slow.
func TestRestoreAllocatesLittlePerBranch(t *testing.T) {
	type pair struct{ I, Sq int }
	for _, n := range []int{1000, 4000} {
		j := journal.NewMemory()
		items := make([]int, n)
		for i := range items {
			items[i] = i
		}
		run := func() {
			res, err := FanOut(WithJournal(context.Background(), j, "e"), "items", items, func(_ context.Context, i int) (pair, error) {
				return pair{i, i * i}, nil
			})
			require.NoError(t, err)
			require.Equal(t, pair{n - 1, (n - 1) * (n - 1)}, res[n-1])
		}
		run()
		perBranch := testing.AllocsPerRun(5, run) / float64(n)
		t.Logf("n=%d: %.2f allocations per branch", n, perBranch)
		if perBranch > 2 {
			t.Errorf("n=%d: %.2f allocations per restored branch", n, perBranch)
		}
	}
}

// An entry of no branch under the batch's prefix is decoded, not only
// checksummed: one that does not decode is reported, naming its key, in
// record format v2 (checksum sound, body not) and v1 (no checksum).
func TestRestoreReportsAnUndecodableEntryOfNoBranch(t *testing.T) {
	for _, named := range []bool{false, true} {
		for _, v1 := range []bool{false, true} {
			t.Run("named="+strconv.FormatBool(named)+"/v1="+strconv.FormatBool(v1), func(t *testing.T) {
				j := journal.NewMemory()
				run := func() ([]int, error) {
					var opts []Option
					if named {
						opts = append(opts, WithKey(func(i int) string { return "k" + strconv.Itoa(i) }))
					}
					return FanOut(WithJournal(context.Background(), j, "e"), "items", []int{10, 11, 12},
						func(_ context.Context, i int) (int, error) { return i * i, nil }, opts...)
				}
				_, err := run()
				require.NoError(t, err)
				key := "e/items/stray"
				bad := []byte{record.Version1, 'z', 1, 2, 3} // an unknown kind, no checksum
				if !v1 {
					bad = append(record.Begin(nil, record.KindDecision), 0, 99, 0, 0, 0) // reason 99
					record.Seal(bad, key)
				}
				_, err = j.Put(context.Background(), key, bad)
				require.NoError(t, err)
				_, err = run()
				require.True(t, errors.Is(err, ErrCorrupt), "%v", err)
				require.ErrorContains(t, err, strconv.Quote(key))
			})
		}
	}
}

// A journal whose Scan visits a key twice (none of durable's does) restores
// the branch once, from the last visit, whatever the batch's size.
func TestRestoreOfAKeyVisitedTwice(t *testing.T) {
	j := twiceScanner{journal.NewMemory()}
	items := make([]int, 300)
	for i := range items {
		items[i] = i
	}
	var ran atomic.Int32
	run := func() ([]int, error) {
		return FanOut(WithJournal(context.Background(), j, "e"), "items", items, func(_ context.Context, i int) (int, error) {
			ran.Add(1)
			return -i, nil
		})
	}
	want, err := run()
	require.NoError(t, err)
	got, err := run()
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.EqualValues(t, len(items), ran.Load())
}

// twiceScanner's Scan visits every entry twice.
type twiceScanner struct{ *journal.Memory }

func (s twiceScanner) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	for range 2 {
		if err := s.Memory.Scan(ctx, prefix, fn); err != nil {
			return err
		}
	}
	return nil
}

// Another worker may journal a batch's head after this one found none, and its
// branches' entries before this one's scan for orphans; a scan that is no
// snapshot can then see the entries and not the head. They are no orphans:
// the batch resumes from the other worker's head.
func TestOrphanCheckLooksForTheHeadAgain(t *testing.T) {
	mem := journal.NewMemory()
	items := []int{1, 2, 3}
	var ran atomic.Int32
	run := func(j journal.Journal) ([]int, error) {
		return FanOut(WithJournal(context.Background(), j, "e"), "items", items, func(_ context.Context, i int) (int, error) {
			ran.Add(1)
			return 10 * i, nil
		})
	}
	want, err := run(mem)
	require.NoError(t, err)
	// This worker looks before the other's head was written, and its scan
	// visits the head's part of the journal before the head is there.
	late := &lateHead{Memory: mem, head: "e/items/!h"}
	got, err := run(late)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.EqualValues(t, len(items), ran.Load(), "the branches ran again")
	require.True(t, late.hidden[0] && late.hidden[1], "the head was not hidden from the first Get and Scan")
}

// lateHead hides the key head from the first Get and the first Scan.
type lateHead struct {
	*journal.Memory
	head   string
	hidden [2]bool
}

func (j *lateHead) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if key == j.head && !j.hidden[0] {
		j.hidden[0] = true
		return nil, false, nil
	}
	return j.Memory.Get(ctx, key)
}

func (j *lateHead) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	hide := !j.hidden[1]
	j.hidden[1] = true
	return j.Memory.Scan(ctx, prefix, func(key string, value []byte) error {
		if hide && key == j.head {
			return nil
		}
		return fn(key, value)
	})
}
