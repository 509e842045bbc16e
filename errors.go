package durable

import (
	"context"
	"errors"
	"fmt"
)

// ErrTimeout reports that a combinator's [WithTimeout] deadline passed. Errors
// that match it also match [context.DeadlineExceeded].
var ErrTimeout error = timeoutError{}

// ErrNondeterministic reports that the code asked a combinator for another set of
// branches than the journal holds for it, or that a FanOut item at a journaled
// index changed. The error's message says what differs.
var ErrNondeterministic = errors.New("durable: nondeterministic execution")

// ErrDuplicateName reports that two sibling steps share a name.
var ErrDuplicateName = errors.New("durable: duplicate step name")

type timeoutError struct{}

func (timeoutError) Error() string { return "durable: timeout" }

// Is makes ErrTimeout match context.DeadlineExceeded.
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// BranchError is the failure of one branch of a combinator. Index is the
// branch's position in the input and Name its step name.
type BranchError struct {
	Index int
	Name  string
	Err   error
}

func (e *BranchError) Error() string {
	return fmt.Sprintf("durable: branch %d (%q): %v", e.Index, e.Name, e.Err)
}

// Unwrap returns the branch's own error.
func (e *BranchError) Unwrap() error { return e.Err }

// PanicError is a panic recovered in a branch. It becomes the branch's failure.
type PanicError struct {
	Value any    // the value passed to panic
	Stack []byte // the stack of the panicking goroutine, from runtime/debug.Stack
}

func (e *PanicError) Error() string { return fmt.Sprintf("durable: panic: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is and errors.As
// see through the panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Permanent marks err as a final failure. A plain failure is retried by the next
// run of an execution; a permanent one is journaled and replayed: the next run
// returns an error with the same message and type name, without running the step.
// Permanent(nil) is nil.
//
// A replayed error is not the original value: errors.Is against the original
// sentinel does not hold. Its dynamic type implements
//
//	interface{ TypeName() string }
//
// reporting the original's type, as fmt's %T printed it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	var p *permanentError
	if errors.As(err, &p) {
		return err
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// TypeName reports the type of the error passed to Permanent, or of the original
// of a replayed one.
func (e *permanentError) TypeName() string { return typeName(e) }

// permanent reports whether err was marked with Permanent.
func permanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// replayedError is a failure restored from the journal.
type replayedError struct {
	typeName string
	msg      string
}

func (e *replayedError) Error() string    { return e.msg }
func (e *replayedError) TypeName() string { return e.typeName }

// typeName is the name journaled for err's type. For a permanent error it is the
// type of the error passed to Permanent; a replayed error keeps its original.
func typeName(err error) string {
	if p, ok := err.(*permanentError); ok {
		err = p.err
	}
	if r, ok := err.(*replayedError); ok {
		return r.typeName
	}
	return fmt.Sprintf("%T", err)
}
