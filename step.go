package durable

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Step is a named unit of work. The name is its identity in the journal: stable
// across runs, unique among its siblings.
type Step[T any] struct {
	Name string
	Fn   func(ctx context.Context) (T, error)
}

// NewStep returns a Step with the given name and function.
func NewStep[T any](name string, fn func(ctx context.Context) (T, error)) Step[T] {
	return Step[T]{Name: name, Fn: fn}
}

// Run executes the step durably in the scope carried by ctx: it returns the
// journaled outcome when there is one, else runs Fn and checkpoints the outcome.
//
// With no journal in ctx, Run is a plain call of Fn. With one, a success is
// stored before Run returns it, and the value returned is the one decoded from
// what was stored; a failure marked with [Permanent] is stored too, and any other
// failure is not, so the next run runs Fn again. Calling Run again with the same
// name in the same scope gives the step the key name#2, then name#3: sequential
// repeats are deterministic, concurrent ones in one scope are not and need
// distinct names. Combinators and steps that Fn calls with its ctx checkpoint
// under the step's key.
//
// Run does not recover panics: a panic in Fn propagates to the caller, as in a
// plain call. Combinators do recover them.
func (s Step[T]) Run(ctx context.Context) (T, error) {
	var zero T
	if err := checkStep(s.Name, s.Fn); err != nil {
		return zero, err
	}
	if ctx == nil {
		return zero, fmt.Errorf("durable: step %q: nil context", s.Name)
	}
	sc := scopeOf(ctx)
	if sc == nil {
		return s.Fn(ctx)
	}
	key, err := sc.key(s.Name)
	if err != nil {
		return zero, err
	}
	if r, err := sc.get(ctx, key); err != nil || r != nil {
		if err != nil {
			return zero, err
		}
		v, ferr, err := outcome[T](key, r)
		if err != nil {
			return zero, err
		}
		return v, ferr
	}
	v, err := s.Fn(sc.childContext(ctx, key))
	v, err, jerr := checkpoint(ctx, sc, key, 0, "", v, err)
	if jerr != nil {
		return zero, jerr
	}
	return v, err
}

func checkStep[T any](name string, fn func(context.Context) (T, error)) error {
	if name == "" {
		return errors.New("durable: step with an empty name")
	}
	if fn == nil {
		return fmt.Errorf("durable: step %q has a nil Fn", name)
	}
	return nil
}

// checkpoint journals a finished branch's outcome under key and returns the
// outcome the caller must see: for a success, the value decoded from what the
// journal holds (another writer's, if it won); for a permanent failure, the
// failure, or the success another writer stored first. Plain failures are not
// journaled. jerr reports a journal failure: then no success is reported.
func checkpoint[T any](ctx context.Context, sc *scope, key string, seq uint64, itemDigest string, v T, err error) (T, error, error) {
	if err != nil {
		return checkpointFailure[T](ctx, sc, key, seq, itemDigest, err)
	}
	// Every journaled success takes this path, on a worker's young stack: the
	// record is built in one buffer, and whatever is rare is done elsewhere,
	// to keep the frame small.
	var zero T
	b := appendSuccessHead(make([]byte, 0, 48), seq, itemDigest)
	head := len(b)
	b, merr := appendValue(b, v)
	if merr != nil {
		return zero, encodeError(key, merr), nil
	}
	stored, jerr := sc.j.Put(ctx, key, b)
	if jerr != nil {
		return zero, nil, putError(key, jerr)
	}
	if string(stored) != string(b) {
		return lostSuccess[T](key, itemDigest, stored)
	}
	v, jerr = decodeStored(key, b[head:], v)
	return v, nil, jerr
}

// checkpointFailure is checkpoint for a failure.
func checkpointFailure[T any](ctx context.Context, sc *scope, key string, seq uint64, itemDigest string, err error) (T, error, error) {
	var zero T
	if !permanent(err) {
		return zero, err, nil
	}
	rec := &record{kind: kindFailure, seq: seq, itemDigest: strings.Clone(itemDigest), typeName: typeName(err), msg: err.Error()}
	stored, mine, jerr := sc.put(ctx, key, rec)
	if jerr != nil {
		return zero, nil, jerr
	}
	if mine && stored.kind == kindFailure {
		return zero, err, nil // the live error itself, with its type
	}
	return storedOutcome[T](key, itemDigest, stored)
}

// lostSuccess is the outcome of a success whose write lost to another writer's.
//
//go:noinline
func lostSuccess[T any](key, itemDigest string, stored []byte) (T, error, error) {
	r, err := decodeRecord(stored)
	if err != nil {
		var zero T
		return zero, nil, fmt.Errorf("durable: journal key %q: %w", key, err)
	}
	return storedOutcome[T](key, itemDigest, r)
}

//go:noinline
func encodeError(key string, err error) error {
	return fmt.Errorf("durable: encode the result of %q: %w", key, err)
}

//go:noinline
func putError(key string, err error) error {
	return fmt.Errorf("durable: journal put %q: %w", key, err)
}

// storedOutcome is the outcome another writer stored under key first.
func storedOutcome[T any](key, itemDigest string, stored *record) (T, error, error) {
	if stored.itemDigest != itemDigest {
		var zero T
		return zero, nil, fmt.Errorf("durable: journal key %q: %w: it holds the result of another item", key, ErrNondeterministic)
	}
	return outcome[T](key, stored)
}
