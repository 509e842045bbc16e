package durable

import (
	"context"
	"strconv"
)

// Settle runs steps concurrently under a completion policy and returns what
// became of each one. It never reports a branch's failure as its error: the
// error means the batch itself could not finish (bad input, the journal, a
// nondeterministic execution, or ctx ending, whose cause it returns).
//
// The policy is AllCompleted unless [WithCompletion] says otherwise. It is
// evaluated each time a branch finishes, before anything else is dispatched;
// when it is met, the branches still running are cancelled and Settle returns
// once they have returned, with those branches Cancelled and the undispatched
// ones NotStarted. After a [WithTimeout] deadline Settle returns the partial
// result with [ReasonTimedOut] and a nil error. A panic is its branch's failure,
// as a *[PanicError].
//
// The result has one [Item] per step, in input order. With a journal, a
// completed Settle is final: its decision (every status, the reason, the
// failures' messages) is journaled, and a later run returns the same result
// without running anything. A Settle that returned an error is not final.
//
// Cost: Parallel's, plus the result's Items (one per step) and, with a journal,
// one decision record of about a byte per branch.
func Settle[T any](ctx context.Context, name string, steps []Step[T], opts ...Option) (*BatchResult[T], error) {
	b, err := stepBatch(ctx, "Settle", name, steps, opts)
	if err != nil || b == nil {
		return emptyOr(err, &BatchResult[T]{Items: []Item[T]{}, Reason: ReasonAllCompleted})
	}
	return b.settle(ctx)
}

// SettleEach is [Settle] over items: it calls fn for every item concurrently,
// under the completion policy of [WithCompletion], and returns what became of
// each one. Branches are named and journaled as [FanOut]'s: by index, with a
// digest of each item, unless [WithKey] names them by item. Errors, policies,
// timeouts, journaling and cost are Settle's.
func SettleEach[I, T any](ctx context.Context, name string, items []I, fn func(ctx context.Context, item I) (T, error), opts ...Option) (*BatchResult[T], error) {
	b, err := itemBatch(ctx, "SettleEach", name, items, fn, opts)
	if err != nil || b == nil {
		return emptyOr(err, &BatchResult[T]{Items: []Item[T]{}, Reason: ReasonAllCompleted})
	}
	return b.settle(ctx)
}

// settle runs a Settle or SettleEach batch under its completion policy.
func (b *batch[T]) settle(ctx context.Context) (*BatchResult[T], error) {
	r, err := settleRule(b.cfg.completions, b.n)
	if err != nil {
		return nil, err
	}
	if err := b.exec(ctx, r, true); err != nil {
		return nil, err
	}
	return b.result(), nil
}

func (b *batch[T]) result() *BatchResult[T] {
	items := make([]Item[T], b.n)
	for i := range items {
		it := &items[i]
		it.Index = i
		it.Name = b.nameOf(i)
		it.Status = b.finalStatus(i)
		switch it.Status {
		case StatusSucceeded:
			it.Value = b.values[i]
		case StatusFailed:
			it.Err = b.errs[i]
		}
		if b.replayed != nil {
			it.Replayed = b.replayed[i]
		}
	}
	return &BatchResult[T]{Items: items, Reason: b.reason}
}

// BatchResult is what became of every branch of a [Settle].
type BatchResult[T any] struct {
	Items  []Item[T] // exactly one per step, in input order
	Reason Reason    // why the batch completed
}

// Item is the outcome of one branch.
type Item[T any] struct {
	Index    int    // position in the input
	Name     string // step name
	Status   Status
	Value    T     // when Succeeded
	Err      error // when Failed
	Replayed bool  // the outcome came from the journal: Fn did not run
}

// Values returns the values of the succeeded items, in input order.
func (r *BatchResult[T]) Values() []T {
	var vs []T
	for _, it := range r.Items {
		if it.Status == StatusSucceeded {
			vs = append(vs, it.Value)
		}
	}
	return vs
}

// Errors returns the errors of the failed items, in input order.
func (r *BatchResult[T]) Errors() []error {
	var errs []error
	for _, it := range r.Items {
		if it.Status == StatusFailed {
			errs = append(errs, it.Err)
		}
	}
	return errs
}

// Err returns the first failure in input order as a *[BranchError], or nil.
func (r *BatchResult[T]) Err() error {
	for _, it := range r.Items {
		if it.Status == StatusFailed {
			return &BranchError{Index: it.Index, Name: it.Name, Err: it.Err}
		}
	}
	return nil
}

func (r *BatchResult[T]) with(s Status) []Item[T] {
	var items []Item[T]
	for _, it := range r.Items {
		if it.Status == s {
			items = append(items, it)
		}
	}
	return items
}

// Succeeded returns the succeeded items, in input order.
func (r *BatchResult[T]) Succeeded() []Item[T] { return r.with(StatusSucceeded) }

// Failed returns the failed items, in input order.
func (r *BatchResult[T]) Failed() []Item[T] { return r.with(StatusFailed) }

// Cancelled returns the items that were running when the batch completed.
func (r *BatchResult[T]) Cancelled() []Item[T] { return r.with(StatusCancelled) }

// NotStarted returns the items that were never dispatched.
func (r *BatchResult[T]) NotStarted() []Item[T] { return r.with(StatusNotStarted) }

// SuccessCount returns the number of succeeded items.
func (r *BatchResult[T]) SuccessCount() int { return r.countOf(StatusSucceeded) }

// FailureCount returns the number of failed items.
func (r *BatchResult[T]) FailureCount() int { return r.countOf(StatusFailed) }

// HasFailure reports whether any item failed.
func (r *BatchResult[T]) HasFailure() bool { return r.countOf(StatusFailed) > 0 }

func (r *BatchResult[T]) countOf(s Status) int {
	n := 0
	for _, it := range r.Items {
		if it.Status == s {
			n++
		}
	}
	return n
}

// Status is what became of one branch. Every item has exactly one.
type Status int

const (
	// StatusSucceeded: the branch returned a nil error.
	StatusSucceeded Status = iota + 1
	// StatusFailed: the branch returned an error or panicked.
	StatusFailed
	// StatusCancelled: the branch was running when the batch completed, and
	// was cancelled. Its outcome, if it had one, is not counted.
	StatusCancelled
	// StatusNotStarted: the branch was never dispatched.
	StatusNotStarted
)

func (s Status) String() string {
	switch s {
	case StatusSucceeded:
		return "SUCCEEDED"
	case StatusFailed:
		return "FAILED"
	case StatusCancelled:
		return "CANCELLED"
	case StatusNotStarted:
		return "NOT_STARTED"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Reason is why a batch completed.
type Reason int

const (
	// ReasonAllCompleted: every branch finished.
	ReasonAllCompleted Reason = iota + 1
	// ReasonMinSuccessfulReached: enough branches succeeded.
	ReasonMinSuccessfulReached
	// ReasonFailureToleranceExceeded: more branches failed than tolerated.
	ReasonFailureToleranceExceeded
	// ReasonTimedOut: the WithTimeout deadline passed first.
	ReasonTimedOut
	// ReasonRuleMet: a CompleteWhen rule said the batch met its goal.
	ReasonRuleMet
	// ReasonRuleFailed: a CompleteWhen rule said the batch failed its goal.
	ReasonRuleFailed
)

func (r Reason) String() string {
	switch r {
	case ReasonAllCompleted:
		return "ALL_COMPLETED"
	case ReasonMinSuccessfulReached:
		return "MIN_SUCCESSFUL_REACHED"
	case ReasonFailureToleranceExceeded:
		return "FAILURE_TOLERANCE_EXCEEDED"
	case ReasonTimedOut:
		return "TIMED_OUT"
	case ReasonRuleMet:
		return "RULE_MET"
	case ReasonRuleFailed:
		return "RULE_FAILED"
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}
