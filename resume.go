package durable

// The journal side of the engine: opening a journaled batch, restoring its
// branches in their original completion order, and journaling or replaying the
// decision of a final combinator.

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// open prepares a journaled batch: it journals the head (start time and branch
// set), or checks the journaled one, and returns the journaled decision of a
// final combinator, if any. Restored branches are counted, in their original
// completion order.
func (b *batch[T]) open(ctx context.Context, final bool) (*record, error) {
	key, err := b.sc.key(b.name)
	if err != nil {
		return nil, err
	}
	b.prefix = key + "/"
	headKey := b.prefix + "!h"
	head, err := b.sc.get(ctx, headKey)
	if err != nil {
		return nil, err
	}
	if head == nil {
		var mine bool
		// Branches named by index need no names in the head: the count says it all.
		head, mine, err = b.sc.put(ctx, headKey, newHead(b.start, b.n, b.headNames()))
		if err != nil {
			return nil, err
		}
		if mine {
			return nil, nil // a fresh batch: nothing to restore
		}
	}
	if err := checkKind(headKey, head, kindHead); err != nil {
		return nil, err
	}
	if d := diffHead(head, b.n, b.headNames()); d != "" {
		return nil, fmt.Errorf("%w: %s %q: %s", ErrNondeterministic, b.kind, b.name, d)
	}
	b.start = time.Unix(0, head.start)
	b.head = head
	if err := b.loadRestored(ctx); err != nil {
		return nil, err
	}
	if final {
		key := b.prefix + "!d"
		dec, ok := b.restored["!d"]
		if b.restored == nil {
			dec, err = b.sc.get(ctx, key)
			if err != nil {
				return nil, err
			}
			ok = dec != nil
		}
		if ok {
			if err := checkKind(key, dec, kindDecision); err != nil {
				return nil, err
			}
			return dec, nil
		}
	}
	return nil, b.restore(ctx)
}

// loadRestored loads every branch record in one call when the journal can scan.
func (b *batch[T]) loadRestored(ctx context.Context) error {
	s, ok := b.sc.j.(interface {
		Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error
	})
	if !ok {
		return nil
	}
	b.restored = make(map[string]*record)
	err := s.Scan(ctx, b.prefix, func(key string, value []byte) error {
		seg := key[len(b.prefix):]
		if strings.IndexByte(seg, '/') >= 0 || seg == "!h" {
			return nil // a nested step's record, or the head
		}
		// A success keeps a slice of what it decodes, and value may be reused
		// by the journal once fn returns: keep a copy.
		r, err := decodeRecord(slices.Clone(value))
		if err != nil {
			return fmt.Errorf("durable: journal key %q: %w", key, err)
		}
		b.restored[seg] = r
		return nil
	})
	if err != nil {
		return fmt.Errorf("durable: journal scan %q: %w", b.prefix, err)
	}
	return nil
}

// record returns the journaled record of branch i, or nil.
func (b *batch[T]) record(ctx context.Context, i int) (string, *record, error) {
	seg := escapeName(b.nameOf(i))
	key := b.prefix + seg
	if b.restored != nil {
		return key, b.restored[seg], nil
	}
	r, err := b.sc.get(ctx, key)
	return key, r, err
}

// restore counts the journaled outcomes of the branches, in sequence order.
func (b *batch[T]) restore(ctx context.Context) error {
	type found struct {
		seq uint64
		i   int
		v   T
		err error
	}
	var all []found
	for i := range b.n {
		key, r, err := b.record(ctx, i)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		v, ferr, err := outcome[T](key, r)
		if err != nil {
			return err
		}
		if b.digestOf != nil {
			if d := b.digestOf(i); r.itemDigest != string(d[:]) {
				return fmt.Errorf("%w: %s %q: journal key %q holds the result of another item at index %d",
					ErrNondeterministic, b.kind, b.name, key, i)
			}
		}
		all = append(all, found{seq: r.seq, i: i, v: v, err: ferr})
	}
	slices.SortFunc(all, func(x, y found) int {
		if x.seq != y.seq {
			if x.seq < y.seq {
				return -1
			}
			return 1
		}
		return x.i - y.i
	})
	b.restored = nil
	for _, f := range all {
		b.count(f.i, f.v, f.err, nil, true)
		if f.seq >= b.seq.Load() {
			b.seq.Store(f.seq + 1)
		}
	}
	b.countNext = b.seq.Load()
	return nil
}

// decision is the journal record of a completed batch. It lists the branches
// in the order of the journaled head, the order replay maps from: a resumed run
// may list them in another.
func (b *batch[T]) decision() (*record, error) {
	at, err := b.reorder()
	if err != nil {
		return nil, err
	}
	r := &record{kind: kindDecision, reason: b.reason, winner: -1, statuses: make([]Status, b.n)}
	for j := range b.n {
		i := at(j)
		r.statuses[j] = b.finalStatus(i)
		if i == b.decider {
			r.winner = j
		}
		if r.statuses[j] == StatusFailed {
			err := b.errs[i]
			r.failures = append(r.failures, failureRec{index: j, typeName: typeName(err), msg: err.Error()})
		}
	}
	return r, nil
}

// commit journals the decision of a completed final batch. If another run
// decided first, the batch takes that decision.
func (b *batch[T]) commit(ctx context.Context) error {
	if b.sc == nil || b.abort != nil {
		return nil
	}
	if b.reason == ReasonTimedOut && b.kind != "Settle" {
		return nil // Race and Any return an error: not final
	}
	dec, err := b.decision()
	if err != nil {
		return err
	}
	stored, mine, err := b.sc.put(ctx, b.prefix+"!d", dec)
	if err != nil || mine {
		return err
	}
	return b.replay(ctx, stored)
}

// replay sets the batch's final state from a journaled decision.
func (b *batch[T]) replay(ctx context.Context, dec *record) error {
	key := b.prefix + "!d"
	if err := checkKind(key, dec, kindDecision); err != nil {
		return err
	}
	if len(dec.statuses) != b.n {
		return fmt.Errorf("durable: journal key %q: %w: %d statuses for %d branches", key, errCorrupt, len(dec.statuses), b.n)
	}
	// The decision lists branches in the order of the run that made it; the
	// code may now list the same set in another order.
	at, err := b.reorder()
	if err != nil {
		return err
	}
	b.errs = nil
	b.succeeded, b.failed = 0, 0
	for _, f := range dec.failures {
		b.setErr(at(f.index), &replayedError{typeName: f.typeName, msg: f.msg})
	}
	// A branch whose Fn ran in this process (another worker's decision won
	// the write) is not replayed, whatever the decision says of it.
	ranHere := make([]bool, b.n)
	for i := range b.n {
		ranHere[i] = b.status[i] != 0 && !b.replayed[i]
	}
	for j, s := range dec.statuses {
		i := at(j)
		b.status[i] = uint8(s)
		b.replayed[i] = !ranHere[i]
		var zero T
		b.values[i] = zero
		switch s {
		case StatusSucceeded:
			k, r, err := b.record(ctx, i)
			if err != nil {
				return err
			}
			if r == nil {
				return fmt.Errorf("durable: journal key %q: %w: the decision counts it a success but it holds nothing", k, errCorrupt)
			}
			v, ferr, err := outcome[T](k, r)
			if err == nil && ferr != nil {
				err = fmt.Errorf("durable: journal key %q: %w: the decision counts it a success but it holds a failure", k, errCorrupt)
			}
			if err != nil {
				return err
			}
			b.values[i] = v
			b.succeeded++
		case StatusFailed:
			if b.errs[i] == nil {
				return fmt.Errorf("durable: journal key %q: %w: no error for failed branch %d", key, errCorrupt, i)
			}
			b.failed++
		}
	}
	b.decided = true
	b.reason = dec.reason
	b.decider = -1
	if dec.winner >= 0 {
		b.decider = at(dec.winner)
	}
	// Only a deadline decides without a branch; otherwise the branch counted
	// last decided, with its own outcome (Race and Any return it).
	if dec.reason != ReasonTimedOut {
		ok := b.decider >= 0
		if ok {
			switch s := Status(b.status[b.decider]); dec.reason {
			case ReasonMinSuccessfulReached:
				ok = s == StatusSucceeded
			case ReasonFailureToleranceExceeded:
				ok = s == StatusFailed
			default:
				ok = s == StatusSucceeded || s == StatusFailed
			}
		}
		if !ok {
			return fmt.Errorf("durable: journal key %q: %w: no finished branch decided it", key, errCorrupt)
		}
	}
	return nil
}

// headNames names the branches in the head, or is nil for a batch named by
// index, whose head holds only the count.
func (b *batch[T]) headNames() func(int) string {
	if b.digestOf != nil {
		return nil
	}
	return b.nameOf
}

// reorder maps a branch's index in the journaled head to its index now.
func (b *batch[T]) reorder() (func(int) int, error) {
	if b.head == nil || b.digestOf != nil || b.head.order == orderDigest(b.n, b.nameOf) {
		return func(j int) int { return j }, nil
	}
	if len(b.head.names) != b.n {
		return nil, fmt.Errorf("%w: %s %q: the branches come in another order than when the decision was journaled, and there are too many to map it",
			ErrNondeterministic, b.kind, b.name)
	}
	now := make(map[string]int, b.n)
	for i := range b.n {
		now[b.nameOf(i)] = i
	}
	perm := make([]int, b.n)
	for j, name := range b.head.names {
		perm[j] = now[name] // the sets are equal: diffHead checked
	}
	return func(j int) int { return perm[j] }, nil
}

// itemDigest identifies a FanOut item, so that a resumed run notices an item
// that changed at a journaled index.
//
// The digest is the 128-bit FNV-1a hash (see hash/fnv) of the item's JSON
// encoding (of its %#v form if it has none), 16 bytes big-endian. Strings and
// integers, the common items of a fan-out, skip the encoder: they hash their JSON
// text, built directly. It guards against mistakes, not adversaries, so it uses
// a hash cheap enough for every branch.
func itemDigest[I any](item I) [16]byte {
	var buf [64]byte
	data, ok := appendScalarJSON(buf[:0], item)
	if !ok {
		var err error
		data, err = encodeValue(item) // a panicking MarshalJSON is an error too
		if err != nil {
			data = fmt.Appendf(nil, "%#v", item)
		}
	}
	var sum [16]byte
	hi, lo := fnv128a(data)
	binary.BigEndian.PutUint64(sum[:8], hi)
	binary.BigEndian.PutUint64(sum[8:], lo)
	return sum
}

// fnv128a is hash/fnv's New128a, without the allocations of a hash.Hash.
func fnv128a(data []byte) (hi, lo uint64) {
	const primeLower, primeShift = 0x13b, 24 // the prime is 2^88 + 0x13b
	hi, lo = 0x6c62272e07bb0142, 0x62b821756295c58d
	for _, c := range data {
		lo ^= uint64(c)
		h, l := bits.Mul64(primeLower, lo)
		h += lo<<primeShift + primeLower*hi
		hi, lo = h, l
	}
	return hi, lo
}
