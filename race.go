package durable

import (
	"context"
	"errors"
	"fmt"
)

// Race runs steps concurrently and returns the outcome of the first to finish,
// success or failure; a failure comes back as a *[BranchError]. The branches
// still running are then cancelled, and Race returns once they have returned (it
// waits for the losers); branches not yet dispatched when the winner finished —
// under a cap, or because the winner was that quick — never start. A panic is
// its branch's outcome, as a *[PanicError].
//
// With a journal, a completed Race is final: the winner is journaled, and a
// later run returns the same winner's outcome without running anything, even if
// another branch would finish first now. Two workers racing on one execution
// both return the winner that was journaled first.
//
// An empty list of steps is an error: there is no winner. After a [WithTimeout]
// deadline Race returns an error matching [ErrTimeout]. Cost: Parallel's; with a
// journal, plus one decision record.
func Race[T any](ctx context.Context, name string, steps []Step[T], opts ...Option) (T, error) {
	var zero T
	b, err := winnerBatch(ctx, "Race", name, steps, opts)
	if err != nil {
		return zero, err
	}
	if err := b.exec(ctx, rule{maxFailures: -1, firstDone: true}, true); err != nil {
		return zero, err
	}
	if b.reason == ReasonTimedOut {
		return zero, b.timeoutErr()
	}
	w := b.decider
	if Status(b.status[w]) == StatusFailed {
		return zero, b.branchErr(w)
	}
	return b.values[w], nil
}

// Any runs steps concurrently and returns the value of the first to succeed;
// the others are then cancelled, and Any returns once they have returned.
// Failures are tolerated until every branch has failed: then Any returns all
// their errors, each a *[BranchError], joined with [errors.Join] in input order,
// so errors.Is reaches each one. A panic is its branch's failure.
//
// With a journal, a completed Any is final, as [Race] is: the winner, or the set
// of failures, is journaled and replayed. An empty list of steps is an error.
// After a [WithTimeout] deadline Any returns an error matching [ErrTimeout],
// joined with the failures seen before it.
// Cost: Race's.
func Any[T any](ctx context.Context, name string, steps []Step[T], opts ...Option) (T, error) {
	var zero T
	b, err := winnerBatch(ctx, "Any", name, steps, opts)
	if err != nil {
		return zero, err
	}
	if err := b.exec(ctx, rule{maxFailures: -1, minSuccess: 1}, true); err != nil {
		return zero, err
	}
	if b.reason == ReasonMinSuccessfulReached {
		return b.values[b.decider], nil
	}
	return zero, b.anyErr()
}

// anyErr is the error of an Any that found no success: every failure joined,
// and the timeout first when the deadline passed.
func (b *batch[T]) anyErr() error {
	errs := make([]error, 0, b.n)
	for i := range b.n {
		if Status(b.status[i]) == StatusFailed {
			errs = append(errs, b.branchErr(i))
		}
	}
	if b.reason == ReasonTimedOut {
		// The failures seen before the deadline, joined with it.
		return errors.Join(append([]error{b.timeoutErr()}, errs...)...)
	}
	return fmt.Errorf("durable: Any %q: all %d branches failed: %w", b.name, b.n, errors.Join(errs...))
}

func winnerBatch[T any](ctx context.Context, kind, name string, steps []Step[T], opts []Option) (*batch[T], error) {
	b, err := stepBatch(ctx, kind, name, steps, opts)
	if err == nil && b == nil {
		err = fmt.Errorf("durable: %s %q: no steps, so no winner", kind, name)
	}
	return b, err
}
