package durable

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/bits"
	"reflect"
	"strconv"

	"github.com/durable-go/durable/internal/record"
)

// Parallel runs steps concurrently and returns their values in input order.
//
// It is all-successful and fail-fast: the first branch to fail cancels the
// context of the others, and Parallel returns that failure as a *[BranchError]
// — the cause, never the cancellation errors of its siblings — once every
// running branch has returned. A panic in a branch is its failure, as a
// *[PanicError]. If ctx ends first, the running branches are cancelled and
// Parallel returns ctx's cause; after a [WithTimeout] deadline it returns an error
// matching [ErrTimeout] and [context.DeadlineExceeded]. Parallel never returns
// before every branch it started has returned, so a branch that ignores its
// context delays the return.
//
// With [WithMaxConcurrency](n), at most n branches run at once, on n worker
// goroutines (with a journal, a worker whose checkpoint must wait for an
// earlier one hands its slot over as it exits, so for a moment up to 2n may be
// alive), dispatched in input order. Step names must be non-empty and
// unique ([ErrDuplicateName]); bad input is reported before any branch runs.
//
// With a journal (see [WithJournal]) each success is checkpointed before it is
// counted, and a later run of the execution returns it without running the step
// again. Parallel records no decision: after a failure, the next run replays the
// successes and runs the rest.
//
// Without a journal it costs one goroutine per branch (per worker under a cap)
// and no encoding, about what errgroup costs.
func Parallel[T any](ctx context.Context, name string, steps []Step[T], opts ...Option) ([]T, error) {
	b, err := stepBatch(ctx, "Parallel", name, steps, opts)
	if err != nil || b == nil {
		return emptyOr[[]T](err, []T{})
	}
	if err := b.exec(ctx, failFast, false); err != nil {
		return nil, err
	}
	if err := b.failFastErr(); err != nil {
		return nil, err
	}
	return b.values, nil
}

// FanOut calls fn for every item concurrently and returns the values in input
// order. It is [Parallel] over the items: fail-fast, with the same rules for
// errors, panics, cancellation, caps and cost.
//
// Branches are named by index ("0", "1", ...) unless [WithKey] names them by
// item. Named by index, a journaled success also stores a digest of its item, and
// a resumed run whose item at that index changed fails with [ErrNondeterministic]
// instead of replaying another item's value. The digest is taken before the
// branch runs (fn may change its item) and covers all of the item's data —
// exported or not, through pointers, slices and maps — never an address: chan,
// func and unsafe.Pointer fields are not data. Named by key, the items may come
// in another order on the next run; keys must be unique and non-empty.
//
// With a cap, a FanOut of any length runs on O(cap) goroutines (cap without a
// journal; with one, a worker hands its slot over as it exits); memory is
// the result slice plus a byte of status per item. With a journal and names by
// index, each success also costs a digest of its item: tens of nanoseconds
// for a string or an integer, a reflect walk of its data otherwise.
func FanOut[I, T any](ctx context.Context, name string, items []I, fn func(ctx context.Context, item I) (T, error), opts ...Option) ([]T, error) {
	b, err := itemBatch(ctx, "FanOut", name, items, fn, opts)
	if err != nil || b == nil {
		return emptyOr[[]T](err, []T{})
	}
	if err := b.exec(ctx, failFast, false); err != nil {
		return nil, err
	}
	if err := b.failFastErr(); err != nil {
		return nil, err
	}
	return b.values, nil
}

// itemBatch validates items, fn and options and returns the batch of a
// combinator over items (FanOut, SettleEach), or nil for an empty list.
func itemBatch[I, T any](ctx context.Context, kind, name string, items []I, fn func(ctx context.Context, item I) (T, error), opts []Option) (*batch[T], error) {
	cfg := newConfig(opts)
	if fn == nil {
		cfg.errs = append(cfg.errs, fmt.Errorf("durable: %s with a nil fn", kind))
	}
	b := &batch[T]{
		kind: kind, name: name, n: len(items), cfg: &cfg,
		fn: func(ctx context.Context, i int) (T, error) { return fn(ctx, items[i]) },
	}
	if cfg.key != nil {
		key, ok := cfg.key.(func(I) string)
		if !ok {
			cfg.errs = append(cfg.errs, fmt.Errorf("durable: WithKey's function takes %v, %s's items are %v",
				reflect.TypeOf(cfg.key).In(0), kind, reflect.TypeFor[I]()))
		} else {
			names := make([]string, len(items))
			for i, it := range items {
				names[i] = key(it)
			}
			if err := checkNames(len(names), func(i int) string { return names[i] }); err != nil {
				cfg.errs = append(cfg.errs, err)
			}
			b.nameOf = func(i int) string { return names[i] }
		}
		cfg.key = nil
	} else {
		b.nameOf = strconv.Itoa
		b.digestOf = func(i int) [16]byte { return itemDigest(items[i]) }
		b.digestV1Of = func(i int) [16]byte { return itemDigestV1(items[i]) }
	}
	if err := b.validate(ctx); err != nil || len(items) == 0 {
		return nil, err
	}
	return b, nil
}

func emptyOr[R any](err error, empty R) (R, error) {
	if err != nil {
		var zero R
		return zero, err
	}
	return empty, nil
}

// stepBatch validates steps and options and returns the batch, or nil for an
// empty list.
func stepBatch[T any](ctx context.Context, kind, name string, steps []Step[T], opts []Option) (*batch[T], error) {
	cfg := newConfig(opts)
	var codecs []Codec
	var perStep []*attempts
	for i, s := range steps {
		if err := checkStep(s.Name, s.Fn); err != nil {
			cfg.errs = append(cfg.errs, err)
			break
		}
		if s.cfg == nil {
			continue
		}
		if err := s.cfg.err(); err != nil {
			cfg.errs = append(cfg.errs, fmt.Errorf("step %q: %w", s.Name, err))
			break
		}
		if s.cfg.codec != nil {
			if codecs == nil {
				codecs = make([]Codec, len(steps))
			}
			codecs[i] = s.cfg.codec
		}
		if s.cfg.retry != nil || s.cfg.stepTimeout != 0 {
			if perStep == nil {
				perStep = make([]*attempts, len(steps))
			}
		}
	}
	if perStep != nil {
		for i, s := range steps {
			perStep[i] = attemptsOf(s.cfg, &cfg)
		}
	}
	nameOf := func(i int) string { return steps[i].Name }
	if err := checkNames(len(steps), nameOf); err != nil {
		cfg.errs = append(cfg.errs, err)
	}
	b := &batch[T]{
		kind: kind, name: name, n: len(steps), cfg: &cfg, nameOf: nameOf, codecs: codecs, attemptsAll: perStep,
		fn: func(ctx context.Context, i int) (T, error) { return steps[i].Fn(ctx) },
	}
	if err := b.validate(ctx); err != nil || len(steps) == 0 {
		return nil, err
	}
	return b, nil
}

// validate reports bad input; kind-specific checks are added by the caller.
func (b *batch[T]) validate(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("durable: %s %q: nil context", b.kind, b.name)
	}
	if b.name == "" {
		b.cfg.errs = append(b.cfg.errs, errors.New("durable: a combinator with an empty name"))
	}
	if b.cfg.completion && !b.settles() {
		b.cfg.errs = append(b.cfg.errs, fmt.Errorf("durable: WithCompletion applies to Settle and SettleEach, not %s", b.kind))
	}
	if b.cfg.key != nil {
		b.cfg.errs = append(b.cfg.errs, fmt.Errorf("durable: WithKey applies to FanOut and SettleEach, not %s", b.kind))
	}
	if sc := scopeOf(ctx); sc != nil && sc.base == "" {
		b.cfg.errs = append(b.cfg.errs, errNoExecution)
	}
	if err := b.cfg.err(); err != nil {
		return fmt.Errorf("%s %q: %w", b.kind, b.name, err)
	}
	return nil
}

// checkNames reports empty or duplicate names.
func checkNames(n int, nameOf func(int) string) error {
	if n < 2 {
		if n == 1 && nameOf(0) == "" {
			return errors.New("durable: step with an empty name")
		}
		return nil
	}
	if n <= 16 { // no map for a handful of names
		for i := range n {
			s := nameOf(i)
			if s == "" {
				return fmt.Errorf("durable: branch %d has an empty name", i)
			}
			for j := range i {
				if nameOf(j) == s {
					return fmt.Errorf("%w: branches %d and %d are both %q", ErrDuplicateName, j, i, s)
				}
			}
		}
		return nil
	}
	size := 2 << bits.Len(uint(n)) // a power of two > 2n
	if uint(n) < 1<<31 {
		return uniqueNames(make([]uint32, size), n, nameOf, ^uint64(0))
	}
	return uniqueNames(make([]uint64, size), n, nameOf, ^uint64(0))
}

// uniqueNames is checkNames for many names. It uses an open-addressing set of
// name hashes in one table, linear probing, rather than a Go map: the map's
// lookups, inserts and growth were 15-25% of Parallel's CPU time over
// 100,000 no-op steps, and a table of uint32 stays in cache (1 MiB for
// 100,000 names). The table's length is a power of two above 2n, so it is at
// most half full. A slot holds a name's hash with its low bits (the ones a
// slot position is taken from) replaced by the name's index + 1, 0 being a
// free slot. When the rest of the hash matches, the names themselves are
// compared: a hash collision costs one comparison and the probe goes on. Only
// the first index of a name is ever stored, so a duplicate is reported
// against it.
//
// hashBits masks the hash: all ones, except in tests, which force collisions.
func uniqueNames[S uint32 | uint64](table []S, n int, nameOf func(int) string, hashBits uint64) error {
	low := S(len(table) - 1) // holds any index + 1
	seed := maphash.MakeSeed()
	for i := range n {
		s := nameOf(i)
		if s == "" {
			return fmt.Errorf("durable: branch %d has an empty name", i)
		}
		h := S(maphash.String(seed, s) & hashBits)
		for p := h & low; ; p = (p + 1) & low {
			e := table[p]
			if e == 0 {
				table[p] = h&^low | S(i+1)
				break
			}
			if e&^low == h&^low {
				if j := int(e&low) - 1; nameOf(j) == s {
					return fmt.Errorf("%w: branches %d and %d are both %q", ErrDuplicateName, j, i, s)
				}
			}
		}
	}
	return nil
}

// exec runs a validated batch under r; with a journal it opens the batch first
// and, for a final combinator, replays a journaled decision or commits a new
// one. A non-nil error ends the call: the caller's context, the journal,
// nondeterminism.
func (b *batch[T]) exec(ctx context.Context, r rule, final bool) error {
	b.rule = r
	b.final = final
	b.limit = b.cfg.limit
	if b.attemptsAll == nil {
		b.attempts = attemptsOf(nil, b.cfg)
	}
	b.retries = b.attempts != nil || b.attemptsAll != nil
	b.init(ctx)
	if b.obs == nil {
		return b.execJournal(ctx)
	}
	err := b.execJournal(ctx)
	b.observeEnd(err)
	return err
}

// execJournal is exec once the batch is set up: with a journal it opens the
// batch first and, for a final combinator, replays a journaled decision.
func (b *batch[T]) execJournal(ctx context.Context) error {
	var dec *record.Record
	if b.sc != nil {
		if ctx.Err() != nil { // before the journal is asked anything
			return context.Cause(ctx)
		}
		if err := b.checkCodecs(); err != nil {
			return err
		}
		var err error
		if dec, err = b.open(ctx, b.final); err != nil {
			return err
		}
		if b.pending != nil { // restored branches decided
			b.mu.Lock()
			b.unlock()
		}
	}
	if b.obs != nil {
		ctx = b.observeStart(ctx)
	}
	if dec != nil {
		return b.replay(ctx, dec)
	}
	if !b.decided { // restored branches may have decided
		b.run(ctx)
	}
	if b.abort != nil {
		return b.abort
	}
	if b.adopted != nil {
		return b.replay(ctx, b.adopted)
	}
	return nil
}

// checkCodecs reports, before anything is journaled, a result type that a
// branch's codec can never give back.
func (b *batch[T]) checkCodecs() error {
	json := b.codec == nil
	if b.codecs != nil {
		json = false
		for i := range b.n {
			if b.codecOf(i) == nil {
				json = true
				break
			}
		}
	}
	if !json {
		return nil
	}
	if err := checkEncodable[T](nil); err != nil {
		return fmt.Errorf("%s %q: %w", b.kind, b.name, err)
	}
	return nil
}

// failFastErr is the result error of an all-successful batch.
func (b *batch[T]) failFastErr() error {
	switch {
	case b.reason == ReasonTimedOut:
		return b.timeoutErr()
	case b.reason == ReasonFailureToleranceExceeded:
		return b.branchErr(b.decider)
	}
	return nil
}
