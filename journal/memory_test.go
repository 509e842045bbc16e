package journal_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/journaltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryConformance(t *testing.T) {
	journaltest.Run(t, func() journal.Journal { return journal.NewMemory() })
}

// Puts racing with deletions of their execution leave the listed count equal
// to the entries the journal holds.
func TestMemoryDeleteWhilePutting(t *testing.T) {
	ctx := context.Background()
	m := journal.NewMemory()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 300 {
				k := fmt.Sprintf("exec/%d/%d", w, i)
				if _, err := m.Put(ctx, k, []byte(k)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if _, err := m.DeleteExecution(ctx, "exec"); err != nil {
				t.Error(err)
				return
			}
			if _, err := m.DeleteOlder(ctx, time.Now()); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()

	held := 0
	require.NoError(t, m.Scan(ctx, "exec/", func(string, []byte) error { held++; return nil }))
	list, err := m.Executions(ctx, "", 10)
	require.NoError(t, err)
	if held == 0 {
		require.Empty(t, list)
		return
	}
	require.Len(t, list, 1)
	require.Equal(t, "exec", list[0].ID)
	require.Equal(t, int64(held), list[0].Entries)
	n, err := m.DeleteExecution(ctx, "exec")
	require.NoError(t, err)
	require.Equal(t, int64(held), n)
}
