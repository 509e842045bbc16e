package durable

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/durable-go/durable/internal/record"
)

// Step is a named unit of work. The name is its identity in the journal: stable
// across runs, unique among its siblings.
type Step[T any] struct {
	Name string
	Fn   func(ctx context.Context) (T, error)

	cfg *config // the options given to NewStep, or nil
}

// NewStep returns a Step with the given name and function. The options that
// apply to a step — [WithCodec], for one — apply to this one, and win over a
// combinator's; the others are an error reported when the step runs, or by the
// combinator it is given to, before anything runs.
func NewStep[T any](name string, fn func(ctx context.Context) (T, error), opts ...Option) Step[T] {
	s := Step[T]{Name: name, Fn: fn}
	if len(opts) > 0 {
		cfg := newConfig(opts)
		cfg.checkStepOptions()
		s.cfg = &cfg
	}
	return s
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
// under the step's key, with the step's codec unless they name their own.
//
// Run does not recover panics: a panic in Fn propagates to the caller, as in a
// plain call. Combinators do recover them, and so does a step with a
// [WithRetry] or [WithStepTimeout] policy: a panic is then a failed attempt,
// as a *[PanicError].
func (s Step[T]) Run(ctx context.Context) (T, error) {
	var zero T
	if err := checkStep(s.Name, s.Fn); err != nil {
		return zero, err
	}
	if s.cfg != nil {
		if err := s.cfg.err(); err != nil {
			return zero, fmt.Errorf("step %q: %w", s.Name, err)
		}
	}
	if ctx == nil {
		return zero, fmt.Errorf("durable: step %q: nil context", s.Name)
	}
	sc := scopeOf(ctx)
	a := attemptsOf(s.cfg, nil)
	if sc == nil {
		o := newBranchObserver(observerOf(ctx), "Step", s.Name, -1, "", record.Escape(s.Name))
		if o == nil && a == nil {
			return s.Fn(ctx)
		}
		if o != nil {
			ctx = o.begin(ctx)
		}
		var v T
		var err error
		if a == nil {
			v, err = s.Fn(ctx)
		} else {
			v, err, _ = runAttempts(ctx, a, nil, s.Name, func(ctx context.Context) context.Context { return ctx }, s.Fn, o.onRetry(ctx))
		}
		if o != nil {
			o.end(ctx, err)
		}
		return v, err
	}
	codec := s.cfg.codecOr(sc.codec())
	if err := checkEncodable[T](codec); err != nil {
		return zero, fmt.Errorf("step %q: %w", s.Name, err)
	}
	key, err := sc.key(s.Name)
	if err != nil {
		return zero, err
	}
	o := newBranchObserver(observerOf(ctx), "Step", s.Name, -1, key, "")
	if r, err := sc.get(ctx, key); err != nil || r != nil {
		if err != nil {
			return zero, err
		}
		v, ferr, err := outcome[T](key, r, codec)
		if err != nil {
			return zero, err
		}
		if o != nil {
			o.replayed(ctx, ferr, time.Duration(r.Ran))
		}
		return v, ferr
	}
	start := now()
	env := sc.childEnv(ctx, codec)
	if o != nil {
		ctx = o.begin(ctx)
	}
	var v T
	if a == nil {
		v, err = s.Fn(childContext(ctx, key, env))
	} else {
		j := &attemptJournal{sc: sc, ctx: sc.writeContext(ctx), key: key, resumed: true, clock: now}
		var jerr error
		v, err, jerr = runAttempts(ctx, a, j, key, func(ctx context.Context) context.Context { return childContext(ctx, key, env) }, s.Fn, o.onRetry(ctx))
		if jerr != nil {
			return zero, jerr
		}
	}
	v, err, jerr := checkpoint(sc.writeContext(ctx), sc, key, 0, "", start, now(), codec, v, err)
	if o != nil {
		o.end(ctx, errors.Join(err, jerr))
	}
	if jerr != nil {
		return zero, jerr
	}
	return v, err
}

// now is the wall clock in Unix nanoseconds: records carry when a branch
// finished and, by the same clock, how long it ran.
func now() int64 { return time.Now().UnixNano() }

// clock reads the wall clock as a start time plus the monotonic time since:
// one clock read instead of time.Now's two, for every branch of a batch.
type clock struct {
	at   time.Time // with a monotonic reading
	wall int64     // at, in Unix nanoseconds
}

func (c *clock) now() int64 { return c.wall + int64(time.Since(c.at)) }

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
// journaled. A value that the codec cannot give back is not stored: it is the
// branch's failure. jerr reports a journal failure: then no success is
// reported.
func checkpoint[T any](ctx context.Context, sc *scope, key string, seq uint64, itemDigest string, start, finished int64, c Codec, v T, err error) (T, error, error) {
	if err != nil {
		return checkpointFailure[T](ctx, sc, key, seq, itemDigest, start, finished, c, err)
	}
	rec, v, err := successRecord(key, seq, itemDigest, start, finished, c, v)
	if err != nil {
		var zero T
		return zero, err, nil
	}
	stored, jerr := sc.env.j.Put(ctx, key, rec)
	return storedSuccess(ctx, key, itemDigest, c, rec, stored, jerr, v)
}

// successRecord is the record of a success: v encoded by c, with the value
// the caller gets; or the branch's failure when c would not give v back.
//
// Every journaled success takes the path from successRecord to the journal's
// Put, on a worker's young stack: the record is built in one buffer, and
// whatever is rare is done elsewhere, to keep the frames small; a stack that
// grows costs more than a Put into memory. The worker calls the pieces of
// checkpoint itself, so that Put runs one frame up.
func successRecord[T any](key string, seq uint64, itemDigest string, start, finished int64, c Codec, v T) ([]byte, T, error) {
	b := record.AppendSuccessHead(make([]byte, 0, 64), seq, itemDigest, finished, max(finished-start, 0), codecName(c))
	// Scalars first, without appendValue's frame. Their encoding reads back
	// as they are: no decode.
	scalar := false
	if c == nil {
		b, scalar = appendScalarJSON(b, v)
	}
	if !scalar {
		var err error
		if b, v, err = encodeFresh(key, b, v, c); err != nil {
			return nil, v, err
		}
	}
	record.Seal(b, key)
	return b, v, nil
}

// storedSuccess is the outcome of the Put of a success's record rec, which
// returned stored and jerr: v, or the outcome another writer stored first, or
// the journal's error. Put is called directly, not through journalPut, whose
// frame would grow a worker's young stack: a worker recovers a panic in Put
// as it exits, a Group branch as it counts its outcome, and Step.Run leaves
// it to its caller, on whose goroutine it runs.
func storedSuccess[T any](ctx context.Context, key, itemDigest string, c Codec, rec, stored []byte, jerr error, v T) (T, error, error) {
	if jerr != nil {
		var zero T
		return zero, nil, journalCallError(ctx, "put", key, jerr)
	}
	if string(stored) != string(rec) {
		return lostSuccess[T](key, itemDigest, c, stored)
	}
	return v, nil, nil
}

// checkpointFailure is checkpoint for a failure.
func checkpointFailure[T any](ctx context.Context, sc *scope, key string, seq uint64, itemDigest string, start, finished int64, c Codec, err error) (T, error, error) {
	var zero T
	if !permanent(err) {
		return zero, err, nil
	}
	rec := &record.Record{
		Kind: record.KindFailure, Seq: seq, ItemDigest: strings.Clone(itemDigest),
		Finished: finished, Ran: max(finished-start, 0), Err: journalError(err),
	}
	stored, mine, jerr := sc.put(ctx, key, rec)
	if jerr != nil {
		return zero, nil, jerr
	}
	if mine && stored.Kind == record.KindFailure {
		return zero, err, nil // the live error itself, with its type
	}
	return otherWritersOutcome[T](key, itemDigest, c, stored)
}

// lostSuccess is the outcome of a success whose write lost to another writer's.
//
//go:noinline
func lostSuccess[T any](key, itemDigest string, c Codec, stored []byte) (T, error, error) {
	r, err := record.Decode(key, stored)
	if err != nil {
		var zero T
		return zero, nil, err
	}
	return otherWritersOutcome[T](key, itemDigest, c, r)
}

//go:noinline
func encodeError(key string, err error) error {
	return fmt.Errorf("durable: encode the result of %q: %w", key, err)
}

//go:noinline
func valueError(key string, err error) error {
	return fmt.Errorf("%w (the result of %q was not stored)", err, key)
}

//go:noinline
func undecodableError[T any](key string, err error) error {
	return fmt.Errorf("durable: the result of %q, of type %v, was encoded but does not decode, so it was not stored: %w",
		key, reflect.TypeFor[T](), err)
}

// otherWritersOutcome is the outcome another writer stored under key first.
func otherWritersOutcome[T any](key, itemDigest string, c Codec, stored *record.Record) (T, error, error) {
	if stored.ItemDigest != itemDigest {
		var zero T
		return zero, nil, fmt.Errorf("durable: journal key %q: %w: it holds the result of another item", key, ErrNondeterministic)
	}
	return outcome[T](key, stored, c)
}
