package main_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// The executions the tests fill journals with, by their IDs.
const (
	demoID    = "orders-2025-06-01" // examples/resume's
	nestedID  = "tenant/7#nightly"  // escaped in the journal: tenant%2F7%23nightly
	damagedID = "damaged"
)

var errQuota = errors.New("quota exceeded")

func init() { durable.RegisterErrors(errQuota) }

// runNested runs an execution with combinators nested in branches: a
// Parallel whose branches run a Settle and a Step.Run, a FanOut, and a step
// retried twice before it succeeds; then a Group and a step on their own.
// Every run of it journals the same tree.
func runNested(t *testing.T, j journal.Journal) {
	t.Helper()
	ctx := durable.WithJournal(context.Background(), j, nestedID)
	var flaky atomic.Int32
	steps := []durable.Step[string]{
		durable.NewStep("reports", func(ctx context.Context) (string, error) {
			region := func(name string, rows int, err error) durable.Step[int] {
				return durable.NewStep(name, func(context.Context) (int, error) { return rows, err })
			}
			res, err := durable.Settle(ctx, "regions", []durable.Step[int]{
				region("eu", 1200, nil),
				region("us", 3400, nil),
				region("apac", 0, durable.Permanent(fmt.Errorf("apac: %w", errQuota))),
			}, durable.WithMaxConcurrency(1)) // the last to finish, which decides, is apac
			if err != nil {
				return "", err
			}
			summary, err := durable.NewStep("summarize", func(context.Context) (string, error) {
				return fmt.Sprintf("%d rows from %d regions", res.Values()[0]+res.Values()[1], res.SuccessCount()), nil
			}).Run(ctx)
			return summary, err
		}),
		durable.NewStep("thumbnails", func(ctx context.Context) (string, error) {
			sizes, err := durable.FanOut(ctx, "resize", []string{"cat.png", "dog.png", "owl.png"},
				func(_ context.Context, name string) (int, error) { return len(name) * 100, nil })
			return fmt.Sprint(sizes), err
		}),
		durable.NewStep("flaky", func(context.Context) (string, error) {
			if n := flaky.Add(1); n < 3 {
				return "", fmt.Errorf("connection reset (try %d)", n)
			}
			return "ok on the third try", nil
		}, durable.WithRetry(durable.RetryPolicy{MaxAttempts: 4, Backoff: time.Millisecond})),
	}
	_, err := durable.Parallel(ctx, "nightly", steps)
	require.NoError(t, err)

	g := durable.NewGroup(ctx, "extras")
	durable.Go(g, "config", func(context.Context) (map[string]bool, error) { return map[string]bool{"dry": false}, nil })
	durable.Go(g, "note", func(context.Context) (string, error) { return strings.Repeat("a long note ", 10), nil })
	require.NoError(t, g.Wait())

	_, err = durable.NewStep("publish", func(context.Context) (bool, error) { return true, nil }).Run(ctx)
	require.NoError(t, err)
}

// runDamaged runs an execution with branches that journaled nothing (a
// Parallel that failed, capped at one branch at a time so that the tree is
// always the same), then damages it: garbage under one key, and a valid
// record under a key it was not written for.
func runDamaged(t *testing.T, j journal.Journal) {
	t.Helper()
	ctx := durable.WithJournal(context.Background(), j, damagedID)
	res, err := durable.Settle(ctx, "work", []durable.Step[string]{
		durable.NewStep("a", func(context.Context) (string, error) { return "A", nil }),
		durable.NewStep("b", func(context.Context) (string, error) { return "B", nil }),
		durable.NewStep("c", func(context.Context) (string, error) { return "C", nil }),
	}, durable.WithMaxConcurrency(1)) // c decides
	require.NoError(t, err)
	require.Equal(t, 3, res.SuccessCount())

	_, err = durable.Parallel(ctx, "later", []durable.Step[string]{
		durable.NewStep("first", func(context.Context) (string, error) { return "done", nil }),
		durable.NewStep("second", func(context.Context) (string, error) { return "", errors.New("upstream unavailable") }),
		durable.NewStep("third", func(ctx context.Context) (string, error) { <-ctx.Done(); return "", ctx.Err() }),
	}, durable.WithMaxConcurrency(1))
	require.Error(t, err)

	_, err = j.Put(ctx, damagedID+"/work/c/check", []byte("\x02garbage, not a record"))
	require.NoError(t, err)
	a, ok, err := j.Get(ctx, damagedID+"/work/a")
	require.NoError(t, err)
	require.True(t, ok)
	_, err = j.Put(ctx, damagedID+"/work/b/copy", a)
	require.NoError(t, err)
}

// copyEntries copies every entry of from into to, byte for byte.
func copyEntries(t *testing.T, from journal.Scanner, to journal.Journal) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, from.Scan(ctx, "", func(key string, value []byte) error {
		_, err := to.Put(ctx, key, value)
		return err
	}))
}
