package durable_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// cutJournal stores the first k-1 writes and fails every Put from the k-th on,
// as a process that dies before its k-th write.
type cutJournal struct {
	journal.Journal
	mu     sync.Mutex
	k, n   int
	failed bool
}

var errCut = errors.New("cut: the process died")

func (c *cutJournal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	c.mu.Lock()
	c.n++
	cut := c.k > 0 && c.n >= c.k
	c.failed = c.failed || cut
	c.mu.Unlock()
	if cut {
		return nil, errCut
	}
	return c.Journal.Put(ctx, key, value)
}

// A crash at any write of a retried batch, then a resume: every step runs at
// most MaxAttempts attempts, plus one for each crash that may have cut an
// attempt short, and the result is the crash-free run's.
func TestRetryCrashAtEveryWrite(t *testing.T) {
	const maxAttempts = 4
	policy := durable.WithRetry(durable.RetryPolicy{MaxAttempts: maxAttempts, Backoff: time.Second})
	run := func(j journal.Journal, attempts map[string]int, mu *sync.Mutex) ([]int, error) {
		step := func(name string, fails, v int) durable.Step[int] {
			return durable.NewStep(name, func(context.Context) (int, error) {
				mu.Lock()
				attempts[name]++
				n := attempts[name]
				mu.Unlock()
				if n <= fails {
					return 0, errFlaky
				}
				return v, nil
			})
		}
		return durable.Parallel(durable.WithJournal(context.Background(), j, "e"), "p", []durable.Step[int]{
			step("a", 2, 1), step("b", 3, 2), step("c", 0, 3),
		}, policy, durable.WithMaxConcurrency(2))
	}
	var writes int
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		c := &cutJournal{Journal: journal.NewMemory()}
		vs, err := run(c, map[string]int{}, &mu)
		require.NoError(t, err)
		require.Equal(t, []int{1, 2, 3}, vs)
		writes = c.n
	})
	for k := 1; k <= writes; k++ {
		synctest.Test(t, func(t *testing.T) {
			var mu sync.Mutex
			attempts := map[string]int{}
			mem := journal.NewMemory()
			c := &cutJournal{Journal: mem, k: k}
			_, err := run(c, attempts, &mu)
			require.ErrorIs(t, err, errCut, "cut at write %d", k)
			vs, err := run(mem, attempts, &mu)
			require.NoError(t, err, "cut at write %d", k)
			require.Equal(t, []int{1, 2, 3}, vs, "cut at write %d", k)
			for name, n := range attempts {
				require.LessOrEqual(t, n, maxAttempts+1, "cut at write %d: %s ran %d attempts", k, name, n)
			}
		})
	}
}

// A process that dies during a wait resumes with the same attempt count and
// waits only what was left of it.
func TestRetryResumesTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := journal.NewMemory()
		l := newAttemptLog()
		step := durable.NewStep("s", failing(l, 3, errFlaky, 5), durable.WithRetry(durable.RetryPolicy{MaxAttempts: 4, Backoff: time.Second}))
		// Attempts at 0, 1 s, 3 s; the wait before the fourth ends at 7 s.
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(5*time.Second, cancel)
		_, err := step.Run(durable.WithJournal(ctx, j, "e"))
		require.Error(t, err)
		require.Len(t, l.times(), 3)
		v, err := step.Run(durable.WithJournal(context.Background(), j, "e"))
		require.NoError(t, err)
		require.Equal(t, 5, v)
		require.Equal(t, []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}, l.times())
	})
}
