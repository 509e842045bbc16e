package durable

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/durable-go/durable/journal"
)

// scope is where a durable call checkpoints: a journal and a key prefix. The root
// scope is the execution; every branch of a journaled combinator, and every
// Step.Run, opens a child scope under its own key.
type scope struct {
	j    journal.Journal
	base string // the scope's key; keys in it are base + "/" + name

	mu   sync.Mutex
	seen map[string]int // occurrences of each name used in this scope
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
	return context.WithValue(ctx, scopeKey{}, &scope{j: j, base: escapeName(executionID)})
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
	seg := escapeName(name)
	if k > 1 {
		seg += "#" + strconv.Itoa(k)
	}
	return seg, nil
}

// childContext returns ctx carrying the child scope under key, in one
// allocation: a branch's context is made for every branch of a journaled batch.
func (s *scope) childContext(ctx context.Context, key string) context.Context {
	c := &scopeContext{Context: ctx}
	c.s.j = s.j
	c.s.base = key
	return c
}

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

func (s *scope) get(ctx context.Context, key string) (*record, error) {
	b, ok, err := s.j.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("durable: journal get %q: %w", key, err)
	}
	if !ok {
		return nil, nil
	}
	r, err := decodeRecord(b)
	if err != nil {
		return nil, fmt.Errorf("durable: journal key %q: %w", key, err)
	}
	return r, nil
}

// put stores r under key and returns the record the key holds afterwards, and
// whether it is r itself.
func (s *scope) put(ctx context.Context, key string, r *record) (*record, bool, error) {
	b := r.encode()
	stored, err := s.j.Put(ctx, key, b)
	if err != nil {
		return nil, false, fmt.Errorf("durable: journal put %q: %w", key, err)
	}
	if string(stored) == string(b) {
		return r, true, nil
	}
	got, err := decodeRecord(stored)
	if err != nil {
		return nil, false, fmt.Errorf("durable: journal key %q: %w", key, err)
	}
	return got, false, nil
}

// checkKind reports a record of the wrong kind under key.
func checkKind(key string, r *record, kinds ...byte) error {
	for _, k := range kinds {
		if r.kind == k {
			return nil
		}
	}
	return fmt.Errorf("durable: journal key %q: %w: a %q record where %q was expected", key, errCorrupt, r.kind, kinds)
}

// outcome turns a branch record into its result.
func outcome[T any](key string, r *record) (T, error, error) {
	var zero T
	if err := checkKind(key, r, kindSuccess, kindFailure); err != nil {
		return zero, nil, err
	}
	if r.kind == kindFailure {
		return zero, Permanent(&replayedError{typeName: r.typeName, msg: r.msg}), nil
	}
	v, err := decodeValue[T](key, r.value)
	return v, nil, err
}
