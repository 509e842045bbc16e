package durable

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/durable-go/durable/internal/record"
	"github.com/durable-go/durable/journal"
)

// scope is where a durable call checkpoints: a journal and a key prefix. The root
// scope is the execution; every branch of a journaled combinator, and every
// Step.Run, opens a child scope under its own key.
type scope struct {
	base string    // the scope's key; keys in it are base + "/" + name
	env  *scopeEnv // shared with the scopes of sibling branches

	mu   sync.Mutex
	seen map[string]int // occurrences of each name used in this scope
}

// scopeEnv is what the scopes of one call's branches share, kept apart so
// that a branch's scope stays small: one is made for every branch.
type scopeEnv struct {
	j     journal.Journal
	codec Codec // inherited by what runs in the scope; nil: encoding/json
	// caller bounds the checkpoints written in the scope: the context of the
	// outermost call, which the decisions of the combinators between it and
	// the scope do not cancel. nil in the execution's own scope: the context
	// a call is given.
	caller context.Context
}

type scopeKey struct{}

// WithJournal returns a context whose durable scope is execution executionID in
// j. Combinators called with it, and steps run inside their branches, checkpoint
// there; a later call with the same journal and executionID replays what
// finished. A nil j returns a context with no journal: plain in-process
// concurrency. An empty executionID is reported as an error by the first
// combinator or step that uses the context.
//
// The context also counts the names used in it, so that a name used twice in a
// row (a poll loop) gets distinct keys: poll, poll#2. Build a fresh context with
// WithJournal for each run of an execution — a retry that reused the first
// run's context would ask for poll#2 where the journal holds poll.
func WithJournal(ctx context.Context, j journal.Journal, executionID string) context.Context {
	if j == nil {
		return context.WithValue(ctx, scopeKey{}, (*scope)(nil))
	}
	return context.WithValue(ctx, scopeKey{}, &scope{base: record.Escape(executionID), env: &scopeEnv{j: j}})
}

func scopeOf(ctx context.Context) *scope {
	s, _ := ctx.Value(scopeKey{}).(*scope)
	return s
}

var errNoExecution = errors.New("durable: WithJournal was given an empty execution ID")

// key returns the key of the next use of name in this scope, with an
// occurrence suffix from its second use on.
func (s *scope) key(name string) (string, error) {
	seg, err := s.claim(name)
	return s.base + "/" + seg, err
}

// claim returns the key segment for the next use of name in this scope: the
// escaped name, with an occurrence suffix from its second use on.
func (s *scope) claim(name string) (string, error) {
	if s.base == "" {
		return "", errNoExecution
	}
	s.mu.Lock()
	if s.seen == nil {
		s.seen = make(map[string]int)
	}
	s.seen[name]++
	k := s.seen[name]
	s.mu.Unlock()
	seg := record.Escape(name)
	if k > 1 {
		seg += "#" + strconv.Itoa(k)
	}
	return seg, nil
}

// childEnv is the environment of the child scopes opened by a call given
// parent, whose branches use codec.
func (s *scope) childEnv(parent context.Context, codec Codec) *scopeEnv {
	caller := s.writeContext(parent)
	if codec == s.env.codec && caller == s.env.caller {
		return s.env
	}
	return &scopeEnv{j: s.env.j, codec: codec, caller: caller}
}

// childContext returns ctx carrying the child scope under key, in one
// allocation: a branch's context is made for every branch of a journaled
// batch.
func childContext(ctx context.Context, key string, env *scopeEnv) context.Context {
	c := &scopeContext{Context: ctx}
	c.s.base = key
	c.s.env = env
	return c
}

// writeContext is the context that checkpoints in the scope are written with,
// for a call given ctx: the outermost caller's, so that a step that finished
// is checkpointed whatever its siblings' batch decided since.
func (s *scope) writeContext(ctx context.Context) context.Context {
	if s.env.caller != nil {
		return s.env.caller
	}
	return ctx
}

// codec is the codec inherited in the scope; nil: encoding/json.
func (s *scope) codec() Codec { return s.env.codec }

// journal is the scope's journal.
func (s *scope) journal() journal.Journal { return s.env.j }

// scopeContext is a context.Context carrying a scope, like the one
// context.WithValue(ctx, scopeKey{}, s) would return.
type scopeContext struct {
	context.Context
	s scope
}

// String describes the context as context.WithValue's does, without reading
// the scope, which a step in another goroutine may be changing.
func (c *scopeContext) String() string {
	name := fmt.Sprintf("%T", c.Context)
	if s, ok := c.Context.(fmt.Stringer); ok {
		name = s.String()
	}
	return name + ".WithValue(durable.scopeKey, *durable.scope)"
}

func (c *scopeContext) Value(key any) any {
	if key == (scopeKey{}) {
		return &c.s
	}
	return c.Context.Value(key)
}

func (s *scope) get(ctx context.Context, key string) (*record.Record, error) {
	b, ok, err := journalGet(ctx, s.env.j, key)
	if err != nil {
		return nil, journalCallError(ctx, "get", key, err)
	}
	if !ok {
		return nil, nil
	}
	return record.Decode(key, b)
}

// put stores r under key and returns the record the key holds afterwards, and
// whether it is r itself.
func (s *scope) put(ctx context.Context, key string, r *record.Record) (*record.Record, bool, error) {
	b := r.Encode(key)
	stored, err := journalPut(ctx, s.env.j, key, b)
	if err != nil {
		return nil, false, journalCallError(ctx, "put", key, err)
	}
	if string(stored) == string(b) {
		return r, true, nil
	}
	got, err := record.Decode(key, stored)
	if err != nil {
		return nil, false, err
	}
	return got, false, nil
}

// checkKind reports a record of the wrong kind under key.
func checkKind(key string, r *record.Record, kinds ...byte) error {
	for _, k := range kinds {
		if r.Kind == k {
			return nil
		}
	}
	return fmt.Errorf("durable: journal key %q: %w: a %q record where %q was expected", key, ErrCorrupt, r.Kind, kinds)
}

// outcome turns a branch record into its result; c is the codec the code
// reads it with.
func outcome[T any](key string, r *record.Record, c Codec) (T, error, error) {
	var zero T
	if err := checkKind(key, r, record.KindSuccess, record.KindFailure); err != nil {
		return zero, nil, err
	}
	if r.Kind == record.KindFailure {
		return zero, Permanent(replayed(r.Err)), nil
	}
	v, err := successValue[T](key, r.Codec, r.Value, c)
	return v, nil, err
}

// successValue decodes the value of a success stored under key, written by
// the codec named stored (codecName's), with c, the codec the code reads it
// with.
func successValue[T any, S string | []byte](key string, stored S, value []byte, c Codec) (T, error) {
	var zero T
	if name := codecName(c); string(stored) != name {
		return zero, fmt.Errorf("durable: journal key %q: %w: the value was written by %s, the code reads it with %s",
			key, ErrNondeterministic, describeCodec(string(stored)), describeCodec(name))
	}
	v, err := decodeWith[T](value, c)
	if err != nil {
		return zero, fmt.Errorf("durable: journal key %q: %w: its value does not decode into %v: %v", key, ErrCorrupt, reflect.TypeFor[T](), err)
	}
	return v, nil
}

func describeCodec(name string) string {
	if name == "" {
		return "the default codec (encoding/json)"
	}
	return "codec " + name
}

// journalCallError is the error of a journal call that failed with err. When the
// call failed because ctx ended, it is ctx's cause, which callers test with
// errors.Is.
//
//go:noinline
func journalCallError(ctx context.Context, op, key string, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = context.Cause(ctx)
	}
	return fmt.Errorf("durable: journal %s %q: %w", op, key, err)
}

// journalGet is j.Get, with a panic in it returned as an error: it may run on
// a worker's goroutine, beyond the caller's reach.
func journalGet(ctx context.Context, j journal.Journal, key string) (b []byte, ok bool, err error) {
	normal := false
	defer func() {
		if !normal {
			err = journalPanic(recover())
		}
	}()
	b, ok, err = j.Get(ctx, key)
	normal = true
	return b, ok, err
}

// journalPut is j.Put, with a panic in it returned as an error.
func journalPut(ctx context.Context, j journal.Journal, key string, value []byte) (stored []byte, err error) {
	normal := false
	defer func() {
		if !normal {
			err = journalPanic(recover())
		}
	}()
	stored, err = j.Put(ctx, key, value)
	normal = true
	return stored, err
}

// journalPanic is the error of a journal call that panicked with v. A
// journal call that did not return normally and left nothing to recover
// (panic(nil) under GODEBUG=panicnil=1) panicked too; one that called
// runtime.Goexit does not reach the caller.
func journalPanic(v any) error {
	return fmt.Errorf("the journal panicked: %w", &PanicError{Value: v, Stack: debug.Stack()})
}
