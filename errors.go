package durable

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/durable-go/durable/internal/record"
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

// ErrCorrupt reports a journal entry that fails its checksum or does not
// decode. The error's message names the entry's key. A corrupt entry is never
// taken for a missing one: the step it holds does not run again.
var ErrCorrupt = record.ErrCorrupt

// ErrBatchCompleted is the cause of a branch's cancellation when its batch
// completed without it — a failure elsewhere in a fail-fast batch, a policy
// met, a winner found: context.Cause of the branch's context returns it.
var ErrBatchCompleted = errors.New("durable: batch completed")

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
// A replayed error is not the original value, but it keeps what callers test:
// [IsPermanent] holds for it, errors.Is holds for every sentinel registered
// with [RegisterErrors] that the original matched, and its dynamic type
// implements
//
//	interface{ TypeName() string }
//
// reporting the original's type as fmt's %T printed it — of the innermost
// error that is not a plain wrapper (fmt.Errorf's %w, Permanent).
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

// IsPermanent reports whether err, or an error it wraps, was marked with
// [Permanent], live or replayed from the journal.
func IsPermanent(err error) bool { return permanent(err) }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// TypeName reports the type of the error passed to Permanent, or of the original
// of a replayed one.
func (e *permanentError) TypeName() string { return typeName(e) }

// permanent reports whether err was marked with Permanent. Not inlined: the
// journaled path calls it, and its frame stays small.
//
//go:noinline
func permanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// RegisterErrors declares sentinel errors that failures are tested against
// with errors.Is, so that a failure replayed from the journal matches them as
// the live one did:
//
//	var ErrCardDeclined = errors.New("card declined")
//
//	func init() { durable.RegisterErrors(ErrCardDeclined) }
//
// When a failure is journaled (a [Permanent] one, or a failed branch in the
// decision of a Settle, Race or Any), the registered sentinels it matches are
// journaled with it, by their type and message; on replay errors.Is(err,
// sentinel) holds for each of them that is registered then. Two registered
// sentinels with the same type and message are indistinguishable. Register
// sentinels at initialization; RegisterErrors is safe for concurrent use, and
// registering one twice, or a nil error, does nothing.
func RegisterErrors(errs ...error) {
	sentinelsMu.Lock()
	defer sentinelsMu.Unlock()
	for _, err := range errs {
		if err == nil {
			continue
		}
		id := sentinelID(err)
		if !slices.Contains(sentinels[id], err) {
			sentinels[id] = append(sentinels[id], err)
			sentinelList = append(sentinelList, err)
		}
	}
}

var (
	sentinelsMu  sync.RWMutex
	sentinels    = map[string][]error{} // by sentinelID
	sentinelList []error                // in registration order
)

func sentinelID(err error) string { return fmt.Sprintf("%T:%s", err, err.Error()) }

// permanentID, among the sentinels journaled with a failure, marks one that was
// Permanent: a failed branch replayed from a decision is as permanent as it was
// live. No sentinelID ("%T:message") starts with '!'.
const permanentID = "!permanent"

// journalError is err as journaled.
func journalError(err error) record.Error {
	e := record.Error{TypeName: typeName(err), Message: err.Error()}
	var r *replayedError
	if errors.As(err, &r) {
		e.Sentinels = slices.Clip(r.ids) // appended to below: never into r's
	}
	if permanent(err) && !slices.Contains(e.Sentinels, permanentID) {
		e.Sentinels = append(e.Sentinels, permanentID)
	}
	sentinelsMu.RLock()
	for _, s := range sentinelList {
		if errors.Is(err, s) {
			if id := sentinelID(s); !slices.Contains(e.Sentinels, id) {
				e.Sentinels = append(e.Sentinels, id)
			}
		}
	}
	sentinelsMu.RUnlock()
	return e
}

// replayedError is a failure restored from the journal.
type replayedError struct {
	typeName string
	msg      string
	ids      []string // the registered sentinels the original matched
}

// replayed is the failure journaled as e.
func replayed(e record.Error) *replayedError {
	return &replayedError{typeName: e.TypeName, msg: e.Message, ids: e.Sentinels}
}

// replayedFailure is the failure journaled as e, Permanent again if it was.
func replayedFailure(e record.Error) error {
	if slices.Contains(e.Sentinels, permanentID) {
		return Permanent(replayed(e))
	}
	return replayed(e)
}

func (e *replayedError) Error() string    { return e.msg }
func (e *replayedError) TypeName() string { return e.typeName }

// Is reports whether target is a registered sentinel that the original
// matched.
func (e *replayedError) Is(target error) bool {
	if len(e.ids) == 0 || target == nil {
		return false
	}
	id := sentinelID(target)
	if !slices.Contains(e.ids, id) {
		return false
	}
	sentinelsMu.RLock()
	defer sentinelsMu.RUnlock()
	return slices.Contains(sentinels[id], target)
}

// typeName is the name journaled for err's type: %T of the innermost error that
// is not a plain wrapper (Permanent, fmt.Errorf with %w). A replayed error
// keeps its original's.
func typeName(err error) string {
	for {
		switch e := err.(type) {
		case *permanentError:
			err = e.err
			continue
		case *replayedError:
			return e.typeName
		}
		name := fmt.Sprintf("%T", err)
		switch name {
		case "*fmt.wrapError":
			if u := errors.Unwrap(err); u != nil {
				err = u
				continue
			}
		case "*fmt.wrapErrors":
			if us := err.(interface{ Unwrap() []error }).Unwrap(); len(us) > 0 {
				err = us[0]
				continue
			}
		}
		return name
	}
}
