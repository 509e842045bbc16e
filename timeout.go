package durable

import (
	"fmt"
	"time"
)

// WithTimeout gives a combinator a deadline d after it first started — first
// ever: with a journal, the start time is journaled with the combinator's head,
// so a resumed run keeps the original deadline, and a run resumed after it
// passed times out at once.
//
// When the deadline passes, the running branches' contexts are cancelled with
// cause [ErrTimeout] and nothing more is dispatched. [Settle] then returns the
// partial result with [ReasonTimedOut] and a nil error: finished items keep their
// outcome, running ones are Cancelled, the rest NotStarted; an outcome that
// arrives after the deadline is not counted. Every other combinator returns an
// error matching both ErrTimeout and [context.DeadlineExceeded]. In both cases
// the call returns only after the running branches have returned. d must be
// positive.
//
// A branch that ignores its context and succeeds after the deadline is not
// counted by that call, but its checkpoint is stored; a later run of a
// combinator that returned an error restores it like any other success.
func WithTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("durable: WithTimeout(%v): must be positive", d))
			return
		}
		c.timeout = d
	})
}
