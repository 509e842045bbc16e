package durable

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
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
