package durable

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/durable-go/durable/internal/record"
)

// The events a batch reports to its Observer. None of this runs without one:
// the engine checks b.obs first.

// event is an event of the batch itself.
func (b *batch[T]) event(kind EventKind) Event {
	e := Event{Kind: kind, Combinator: b.kind, Name: b.name, Index: -1, Path: record.Escape(b.name)}
	if b.sc != nil {
		e.Path = strings.TrimSuffix(b.prefix, "/")
		e.Execution = executionOf(e.Path)
	}
	return e
}

// branchEvent is an event of branch i, whose key is key ("" without a
// journal).
func (b *batch[T]) branchEvent(kind EventKind, i int, key string) Event {
	e := Event{Kind: kind, Combinator: b.kind, Name: b.nameOf(i), Index: i, Path: key}
	if key == "" {
		e.Path = record.Escape(b.name) + "/" + record.Escape(e.Name)
	} else {
		e.Execution = executionOf(key)
	}
	return e
}

// observeStart reports the batch's start, then the branches restored from
// the journal, and returns the context the branches run with.
func (b *batch[T]) observeStart(ctx context.Context) context.Context {
	e := b.event(EventBatchStart)
	e.Branches, e.Limit, e.Policy, e.Resumed = b.n, b.limit, b.rule.String(), b.head != nil
	ctx = observe(ctx, b.obs, e)
	b.obsCtx = ctx
	for i, ran := range b.restoredRan {
		if ran >= 0 {
			b.observeReplayed(i, time.Duration(ran))
		}
	}
	return ctx
}

// observeReplayed reports branch i, restored from the journal: it did not run.
func (b *batch[T]) observeReplayed(i int, ran time.Duration) {
	key := ""
	if b.sc != nil {
		key = b.key(i)
	}
	e := b.branchEvent(EventBranchEnd, i, key)
	e.Status, e.Replayed, e.Duration = Status(b.status[i]), true, ran
	if e.Status == StatusFailed {
		e.Err = b.errs[i]
	}
	observe(b.obsCtx, b.obs, e)
}

// observeEnd reports the batch's end; err is what the call returns.
func (b *batch[T]) observeEnd(err error) {
	if b.obsCtx == nil { // ended before it started: bad input, the journal
		b.obsCtx = b.parent
	}
	if err == nil && !b.settles() && b.decided {
		// What the combinator returns besides a result.
		switch {
		case b.kind == "Any" && b.reason != ReasonMinSuccessfulReached:
			err = b.anyErr()
		case b.reason == ReasonTimedOut:
			err = b.timeoutErr()
		case b.reason == ReasonFailureToleranceExceeded && b.decider >= 0:
			err = b.branchErr(b.decider)
		}
	}
	e := b.event(EventBatchEnd)
	e.Err, e.Replayed = err, b.decisionReplayed
	e.Duration = time.Since(b.clock.at)
	if err == nil || b.decided {
		e.Reason = b.reason
	}
	if b.status != nil && b.decided && b.abort == nil {
		for i := range b.n {
			switch b.finalStatus(i) {
			case StatusSucceeded:
				e.Succeeded++
			case StatusFailed:
				e.Failed++
			case StatusCancelled:
				e.Cancelled++
			case StatusNotStarted:
				e.NotStarted++
			}
		}
	}
	observe(b.obsCtx, b.obs, e)
}

// observeBranchStart reports that branch i is about to run, and returns the
// context it runs with.
func (b *batch[T]) observeBranchStart(i int, key string) context.Context {
	return observe(b.ctx, b.obs, b.branchEvent(EventBranchStart, i, key))
}

// observeBranchEnd reports branch i's own outcome: err, after it ran from
// start (Unix nanoseconds).
func (b *batch[T]) observeBranchEnd(ctx context.Context, i int, key string, err error, start int64) {
	e := b.branchEvent(EventBranchEnd, i, key)
	e.Status, e.Err = StatusSucceeded, err
	if err != nil {
		e.Status = StatusFailed
	}
	e.Duration = time.Duration(b.clock.now() - start)
	e.Attempt = 1
	if n, ok := b.attemptsRun.Load(i); ok {
		e.Attempt = n.(int)
	}
	observe(ctx, b.obs, e)
}

// observeCheckpointedEnd is observeBranchEnd for a branch whose outcome was
// checkpointed: err, or the checkpoint's failure jerr. Not inlined: the
// journaled path's frame stays small.
//
//go:noinline
func (b *batch[T]) observeCheckpointedEnd(ctx context.Context, i int, key string, err, jerr error, start int64) {
	b.observeBranchEnd(ctx, i, key, errors.Join(err, jerr), start)
}

// observeCheckpoint reports branch i's checkpoint of size bytes, written from
// since (Unix nanoseconds) to now.
func (b *batch[T]) observeCheckpoint(ctx context.Context, i int, key string, size int, since int64) {
	e := b.branchEvent(EventCheckpoint, i, key)
	e.Bytes, e.Duration = size, time.Duration(b.clock.now()-since)
	observe(ctx, b.obs, e)
}

// retryObserver is the onRetry of branch i's attempts, or nil without an
// Observer.
func (b *batch[T]) retryObserver(ctx context.Context, i int, key string) func(int, time.Duration, error) {
	if b.obs == nil {
		return nil
	}
	if b.sc == nil {
		key = ""
	}
	return func(n int, wait time.Duration, err error) {
		b.attemptsRun.Store(i, n+1)
		e := b.branchEvent(EventRetry, i, key)
		e.Attempt, e.Wait, e.Err = n, wait, err
		observe(ctx, b.obs, e)
	}
}

// stepObserved runs branch i of a batch without a journal, reporting its
// start and end; a panic is its failure.
//
//go:noinline
func (b *batch[T]) stepObserved(i int) (T, error) {
	start := b.clock.now()
	ctx := b.observeBranchStart(i, "")
	var v T
	var err error
	if a := b.attemptsOf(i); a == nil || !b.retries {
		v, err = b.call(ctx, i)
	} else {
		v, err = b.retriedPlain(ctx, i, nil)
	}
	b.observeBranchEnd(ctx, i, "", err, start)
	return v, err
}

// observeDecision reports a decision replayed from the journal, and the
// branches whose outcome it restored.
func (b *batch[T]) observeDecision() {
	if b.obs == nil || b.obsCtx == nil {
		return
	}
	observe(b.obsCtx, b.obs, b.event(EventDecisionReplayed))
	for i := range b.n {
		if b.replayed[i] {
			b.observeReplayed(i, 0)
		}
	}
}
