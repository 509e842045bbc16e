package durable_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// reusingScanner is a journal whose Scan hands fn a buffer it reuses for the
// next row and scribbles over once fn returns, as database drivers do with
// their raw row bytes (sql.RawBytes): the journal.Scanner contract lets it.
type reusingScanner struct{ *scanMemory }

func (m reusingScanner) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	buf := make([]byte, 0, 512)
	return m.scanMemory.Scan(ctx, prefix, func(key string, value []byte) error {
		buf = append(buf[:0], value...)
		err := fn(key, buf)
		clear(buf[:cap(buf)])
		return err
	})
}

var _ journal.Scanner = reusingScanner{}

// A restore through Scan keeps the values it needs: a backend may reuse the
// bytes it passed once fn has returned.
func TestScanValuesAreNotRetained(t *testing.T) {
	j := reusingScanner{newScanMemory()}
	c := newRunCounter()
	steps := func(tag string, failC bool) []durable.Step[string] {
		var errC error
		if failC {
			errC = errors.New("c failed")
		}
		return []durable.Step[string]{
			counted(c, "a", 0, "a-value-"+tag, nil),
			counted(c, "b", 0, "b-longer-value-"+tag, nil),
			counted(c, "c", 0, "c-"+tag, errC),
		}
	}
	_, err := durable.Parallel(durable.WithJournal(t.Context(), j, "exec"), "p", steps("1", true), durable.WithMaxConcurrency(1))
	require.Error(t, err)

	got, err := durable.Parallel(durable.WithJournal(t.Context(), j, "exec"), "p", steps("2", false))
	require.NoError(t, err)
	require.Equal(t, []string{"a-value-1", "b-longer-value-1", "c-2"}, got)
	require.Equal(t, 1, c.of("a"))
	require.Equal(t, 1, c.of("b"))

	// A completed Settle replays its decision and its successes from a scan too.
	r1, err := durable.Settle(durable.WithJournal(t.Context(), j, "exec"), "s", steps("1", true))
	require.NoError(t, err)
	r2, err := durable.Settle(durable.WithJournal(t.Context(), j, "exec"), "s", steps("2", false))
	require.NoError(t, err)
	require.Equal(t, viewItems(r1), viewItems(r2))
}
