package durable

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The engine runs every combinator. A batch is n branches, a completion rule, an
// optional cap and deadline, and optionally a journal scope.
//
// Workers: the caller starts min(cap, n) goroutines, each claiming the next
// undispatched index. When a branch finishes, its worker counts the outcome
// under the batch's mutex, evaluates the rule and, unless the batch has decided,
// claims the next index — so the rule is always evaluated before anything else
// is dispatched, and goroutines stay at most cap. The caller waits for every
// worker before it returns.
//
// Indices are claimed from one atomic word, the next index with a stop bit that
// is set when the batch decides, so a claim and a decision are ordered. That
// lets the fail-fast combinators without a journal, whose successes decide
// nothing and whose statuses nobody sees, record a success and claim the next
// branch without taking the mutex: only failures do.
//
// With a journal, each branch whose outcome is journaled (a success, a permanent
// failure) takes a sequence number when it finishes, is checkpointed, and is
// counted in sequence order: a reorder buffer holds the ones whose checkpoint
// came back early, so that a resumed run, which counts restored branches by
// their journaled sequence, reaches the decision the first run would have. A
// worker whose outcome waits in the buffer exits, and whoever counts it later
// dispatches a branch in its place.
// Outcomes that are not journaled (plain failures, journal errors) are counted
// at once: no resumed run will see them.
type batch[T any] struct {
	kind     string // "Parallel", "Settle", ...: for messages
	name     string
	n        int
	nameOf   func(i int) string
	fn       func(ctx context.Context, i int) (T, error)
	digestOf func(i int) string // FanOut by index: the digest journaled with item i
	rule     rule
	limit    int
	cfg      *config

	parent context.Context // the caller's
	ctx    context.Context // the branches': parent, plus the deadline and cancel
	cancel context.CancelCauseFunc
	start  time.Time

	// journal
	sc       *scope
	prefix   string
	restored map[string]*record // restored branch records by key segment

	wg   sync.WaitGroup
	fast bool            // successes are recorded without the mutex
	done <-chan struct{} // b.ctx.Done()
	seq  atomic.Uint64   // the next completion sequence number; journal only

	// Every branch of a fast batch adds to claim: it has a cache line of its
	// own, so that the fields read beside it do not bounce between cores.
	_     [64]byte
	claim atomic.Uint64 // the next index to dispatch, | stopBit once decided
	_     [56]byte

	mu        sync.Mutex
	values    []T
	status    []uint8 // a Status, 0 before dispatch, or statusRunning
	errs      map[int]error
	replayed  []bool
	succeeded int
	failed    int
	decided   bool
	reason    Reason
	decider   int   // the branch whose outcome decided, or -1
	abort     error // ends the call with an error instead of a result
	countNext uint64
	ready     map[uint64]outcomeOf[T]
	owed      int     // counted outcomes whose workers left: branches to dispatch for them
	head      *record // the journaled head, when it was there before this run
}

type outcomeOf[T any] struct {
	i    int
	v    T
	err  error
	skip bool // counted already: the checkpoint failed
}

// statusRunning marks a dispatched branch; statuses are final once counted.
const statusRunning = 255

// stopBit in batch.claim stops dispatching.
const stopBit = 1 << 63

// errDecided is the cause given to branches cancelled because the batch
// completed.
var errDecided = errors.New("durable: batch completed")

var errGoexit = errors.New("durable: branch called runtime.Goexit")

func (b *batch[T]) init(ctx context.Context) error {
	b.values = make([]T, b.n)
	b.status = make([]uint8, b.n)
	b.decider = -1
	b.start = time.Now()
	b.sc = scopeOf(ctx)
	if b.sc != nil {
		b.replayed = make([]bool, b.n)
		b.ready = make(map[uint64]outcomeOf[T])
	}
	return nil
}

// run executes the batch. The final state is read with the lock released, after
// every worker has returned.
func (b *batch[T]) run(parent context.Context) {
	b.parent = parent
	cctx, cancel := context.WithCancelCause(parent)
	b.ctx, b.cancel = cctx, cancel
	defer cancel(errDecided)
	if b.cfg.timeout > 0 {
		dctx, dcancel := context.WithDeadlineCause(cctx, b.start.Add(b.cfg.timeout), ErrTimeout)
		defer dcancel()
		b.ctx = dctx
	}
	b.done = b.ctx.Done()
	b.fast = b.sc == nil && b.rule == failFast && b.kind != "Settle"
	// No watcher goroutine: an ended context is noticed by the next claim or
	// count, and once more below. Branches see it through their own contexts.
	b.mu.Lock()
	b.checkDone()
	b.mu.Unlock()

	workers := b.n
	if b.limit > 0 && b.limit < workers {
		workers = b.limit
	}
	for range workers {
		i := b.claimNext()
		if i < 0 {
			break
		}
		b.wg.Add(1)
		go b.work(i)
	}
	b.wg.Wait()
	if b.fast && !b.decided && b.claim.Load()&^stopBit >= uint64(b.n) {
		// Every branch was dispatched and none failed (a failure decides):
		// the ones the mutex did not see succeeded on the fast path.
		b.succeeded = b.n
		b.decide(ReasonAllCompleted, -1)
	}
	b.checkDone()
}

// claimNext claims the next branch to dispatch, or returns -1, taking the
// mutex only when it must.
func (b *batch[T]) claimNext() int {
	if !b.fast {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.claimLocked()
	}
	select {
	case <-b.done:
		// Dispatch nothing more, but decide nothing either: the successes
		// recorded so far may be every branch, and a context that ended after
		// the last one changes nothing. run decides once the workers are gone.
		return -1
	default:
	}
	return b.claimIndex()
}

// claimIndex takes the next index from b.claim, or returns -1 once the batch has
// decided or every index is taken.
func (b *batch[T]) claimIndex() int {
	c := b.claim.Add(1) - 1
	if c&stopBit != 0 || c >= uint64(b.n) {
		return -1
	}
	return int(c)
}

// decide completes the batch. Called with b.mu held.
func (b *batch[T]) decide(reason Reason, decider int) {
	b.decided = true
	b.reason = reason
	b.decider = decider
	b.claim.Or(stopBit)
}

// checkDone decides the batch when its context ended for a reason of its own:
// the caller's context, or the deadline. Called with b.mu held.
func (b *batch[T]) checkDone() {
	if b.decided || b.ctx == nil || b.ctx.Err() == nil {
		return
	}
	b.decide(ReasonTimedOut, -1)
	if b.parent.Err() != nil {
		b.reason = 0
		b.abort = context.Cause(b.parent)
	}
}

// claimLocked returns the next index to dispatch, skipping restored branches,
// or -1. Called with b.mu held.
func (b *batch[T]) claimLocked() int {
	b.checkDone()
	for {
		i := b.claimIndex()
		if i < 0 {
			return -1
		}
		if b.status[i] == 0 {
			b.status[i] = statusRunning
			return i
		}
	}
}

// dispatchOwed starts a worker for each counted outcome whose worker left.
// Called with b.mu held.
func (b *batch[T]) dispatchOwed() {
	for ; b.owed > 0; b.owed-- {
		i := b.claimLocked()
		if i < 0 {
			b.owed = 0
			return
		}
		b.wg.Add(1)
		go b.work(i)
	}
}

// work runs branch i, then every branch it claims after it.
func (b *batch[T]) work(i int) {
	defer func() {
		if i >= 0 { // the branch, or its checkpoint, called runtime.Goexit
			b.mu.Lock()
			if s := b.status[i]; s == 0 || s == statusRunning { // step counts a checkpoint's
				var zero T
				b.count(i, zero, errGoexit, nil, false)
			}
			next := b.claimLocked()
			b.mu.Unlock()
			if next >= 0 {
				b.wg.Add(1)
				go b.work(next)
			}
		}
		b.wg.Done()
	}()
	for i >= 0 {
		i = b.step(i)
	}
}

// step runs branch i and returns the next index this worker should run.
func (b *batch[T]) step(i int) int {
	ctx := b.ctx
	var key string
	if b.sc != nil {
		key = b.prefix + escapeName(b.nameOf(i))
		ctx = b.sc.childContext(ctx, key)
	}
	v, err := b.call(ctx, i)
	if b.fast && err == nil {
		select {
		case <-b.done: // count it under the mutex: it may be too late
		default:
			// No status: nobody reads a fail-fast batch's statuses, and bytes
			// written side by side by every worker would share cache lines.
			b.values[i] = v
			return b.claimIndex() // done was just checked
		}
	}
	if b.sc == nil || err != nil && !permanent(err) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.count(i, v, err, nil, false)
		return b.claimLocked()
	}
	seq := b.seq.Add(1) - 1
	// The outcomes after seq are counted once seq is. If the checkpoint never
	// returns here (runtime.Goexit in the journal or in a JSON method), seq is
	// given up so that they are not held forever, and branch i is counted
	// failed before anything is dispatched for them; work then dispatches in
	// this worker's place.
	returned := false
	defer func() {
		if !returned {
			var zero T
			b.mu.Lock()
			b.ready[seq] = outcomeOf[T]{skip: true}
			b.drain()
			b.count(i, zero, errGoexit, nil, false)
			b.dispatchOwed()
			b.mu.Unlock()
		}
	}()
	var digest string
	if b.digestOf != nil {
		digest = b.digestOf(i)
	}
	v, err, jerr := checkpoint(b.parent, b.sc, key, seq, digest, v, err)
	returned = true
	b.mu.Lock()
	defer b.mu.Unlock()
	if jerr != nil {
		b.count(i, v, nil, jerr, false)
		b.ready[seq] = outcomeOf[T]{skip: true}
		b.drain()
		b.dispatchOwed()
		return -1 // the batch has decided
	}
	if seq == b.countNext { // next in sequence: no need to park it
		b.countNext++
		b.count(i, v, err, nil, false)
		b.owed++
	} else {
		b.ready[seq] = outcomeOf[T]{i: i, v: v, err: err}
	}
	b.drain()
	next := -1
	if b.countNext > seq { // counted: this worker dispatches in its own place
		b.owed--
		next = b.claimLocked()
	} // else it leaves, and whoever counts its outcome dispatches for it
	b.dispatchOwed()
	return next
}

// call runs the branch function, turning a panic into a *PanicError.
func (b *batch[T]) call(ctx context.Context, i int) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	return b.fn(ctx, i)
}

// drain counts the checkpointed outcomes that are next in sequence. Called with
// b.mu held.
func (b *batch[T]) drain() {
	for {
		o, ok := b.ready[b.countNext]
		if !ok {
			return
		}
		delete(b.ready, b.countNext)
		b.countNext++
		if !o.skip {
			b.count(o.i, o.v, o.err, nil, false)
			b.owed++
		}
	}
}

// count records branch i's outcome and evaluates the rule. Called with b.mu held.
func (b *batch[T]) count(i int, v T, err, jerr error, replayed bool) {
	// The deadline or the caller may have ended the batch before this outcome
	// was counted; the branch most likely saw its context end.
	b.checkDone()
	if b.replayed != nil {
		b.replayed[i] = replayed
	}
	if b.decided {
		b.status[i] = uint8(StatusCancelled)
		return
	}
	switch {
	case jerr != nil:
		b.status[i] = uint8(StatusFailed)
		b.setErr(i, jerr)
		b.decide(0, -1)
		b.abort = &BranchError{Index: i, Name: b.nameOf(i), Err: jerr}
		b.cancelRest()
		return
	case err != nil:
		b.status[i] = uint8(StatusFailed)
		b.setErr(i, err)
		b.failed++
	default:
		b.status[i] = uint8(StatusSucceeded)
		b.values[i] = v
		b.succeeded++
	}
	if reason, ok := b.rule.decide(b.succeeded, b.failed, b.n); ok {
		b.decide(reason, i)
		b.cancelRest()
	}
}

func (b *batch[T]) cancelRest() {
	if b.cancel != nil {
		b.cancel(errDecided)
	}
}

func (b *batch[T]) setErr(i int, err error) {
	if b.errs == nil {
		b.errs = make(map[int]error)
	}
	b.errs[i] = err
}

// finalStatus is branch i's status for the result.
func (b *batch[T]) finalStatus(i int) Status {
	switch s := b.status[i]; s {
	case 0:
		return StatusNotStarted
	case statusRunning:
		return StatusCancelled
	default:
		return Status(s)
	}
}

// branchErr is branch i's failure as a *BranchError.
func (b *batch[T]) branchErr(i int) error {
	return &BranchError{Index: i, Name: b.nameOf(i), Err: b.errs[i]}
}

// timeoutErr is the error of a non-Settle combinator whose deadline passed.
func (b *batch[T]) timeoutErr() error {
	return fmt.Errorf("durable: %s %q: deadline of %v passed: %w", b.kind, b.name, b.cfg.timeout, ErrTimeout)
}

// --- journal ---

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
		if b.digestOf != nil && r.itemDigest != b.digestOf(i) {
			return fmt.Errorf("%w: %s %q: journal key %q holds the result of another item at index %d",
				ErrNondeterministic, b.kind, b.name, key, i)
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
func itemDigest[I any](item I) string {
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
	return string(sum[:])
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
