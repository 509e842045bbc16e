package durable_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
)

// Future.Get is only valid once Wait has returned: while Wait is still waiting
// for the branch, Get reports an error, not a zero value with a nil error.
func TestFutureGetWhileWaitIsWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := durable.NewGroup(t.Context(), "g")
		release := make(chan struct{})
		f := durable.Go(g, "slow", func(context.Context) (int, error) { <-release; return 7, nil })
		done := make(chan error, 1)
		go func() { done <- g.Wait() }()
		defer func() { <-done }()
		defer close(release)
		synctest.Wait()

		v, err := f.Get()
		require.Error(t, err, "Get returned %v while the branch was still running", v)
	})
	g := durable.NewGroup(t.Context(), "g")
	f := durable.Go(g, "a", func(context.Context) (int, error) { return 7, nil })
	require.NoError(t, g.Wait())
	v, err := f.Get()
	require.NoError(t, err)
	require.Equal(t, 7, v)
}

// A branch that calls runtime.Goexit fails, as in the other combinators: Wait
// does not report success, and neither the Future nor a queued branch's Future
// reports a zero value with a nil error.
func TestGroupBranchGoexit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := durable.NewGroup(t.Context(), "g", durable.WithMaxConcurrency(1))
		var queuedRan atomic.Bool
		exit := durable.Go(g, "exit", func(context.Context) (int, error) { runtime.Goexit(); return 1, nil })
		queued := durable.Go(g, "queued", func(context.Context) (string, error) { queuedRan.Store(true); return "q", nil })
		err := g.Wait()
		var be *durable.BranchError
		require.ErrorAs(t, err, &be)
		require.Equal(t, "exit", be.Name)
		_, err = exit.Get()
		require.Error(t, err)
		_, err = queued.Get()
		require.Error(t, err)
		require.False(t, queuedRan.Load())
	})
}

// Wait called again returns what it returned the first time, whatever the
// deadline or the caller's context did in between.
func TestGroupWaitTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		g := durable.NewGroup(ctx, "g", durable.WithTimeout(time.Hour))
		f := durable.Go(g, "a", func(context.Context) (int, error) { return 1, nil })
		require.NoError(t, g.Wait())
		require.NoError(t, g.Wait(), "the second Wait reported the group's own release as a timeout")
		cancel()
		time.Sleep(2 * time.Hour)
		require.NoError(t, g.Wait())
		v, err := f.Get()
		require.NoError(t, err)
		require.Equal(t, 1, v)
	})
}

func TestGroupDeadlineAfterEveryBranchFinished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		g := durable.NewGroup(ctx, "g", durable.WithTimeout(time.Second))
		f := durable.Go(g, "quick", func(context.Context) (int, error) { return 7, nil })
		time.Sleep(2 * time.Second) // the deadline passes with nothing running
		cancel()
		require.NoError(t, g.Wait(), "nothing was running when the deadline passed")
		v, err := f.Get()
		require.NoError(t, err)
		require.Equal(t, 7, v)
	})
}
