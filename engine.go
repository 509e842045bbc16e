package durable

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durable-go/durable/internal/record"
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
// worker whose outcome waits in the buffer blocks; whoever counts its outcome
// claims the worker's next branch at that moment and hands it over, so the
// worker, and the stack it has grown, goes on.
// Outcomes that are not journaled (plain failures, journal errors) are counted
// at once: no resumed run will see them.
type batch[T any] struct {
	kind     string // "Parallel", "Settle", ...: for messages
	name     string
	n        int
	nameOf   func(i int) string
	fn       func(ctx context.Context, i int) (T, error)
	digestOf func(i int) [16]byte // FanOut by index: the digest journaled with item i
	// digestV1Of is the digest version 1 records hold for item i.
	digestV1Of func(i int) [16]byte
	rule       rule
	limit      int
	cfg        *config
	final      bool // a Settle, Race or Any: its decision is journaled

	parent   context.Context // the caller's
	writeCtx context.Context // what checkpoints are written with: sc.writeContext(parent)
	ctx      context.Context // the branches': parent, plus the deadline and cancel
	cancel   context.CancelCauseFunc
	start    time.Time
	clock    clock // reads the time for branch records

	// journal
	sc       *scope
	prefix   string
	restored *restoredSet    // what one scan of the batch's prefix read, or nil
	codec    Codec           // the branches' codec; nil: encoding/json
	codecs   []Codec         // per branch, when some step names its own
	env      *scopeEnv       // the branches' scopes', with b.codec
	obs      Observer        // nil: no events
	obsCtx   context.Context // the context the Observer gave the batch
	// attemptsRun: attempts run by each branch that was retried, for the
	// Observer.
	attemptsRun      sync.Map
	decisionReplayed bool // the decision came from the journal
	// restoredRan: how long each restored branch ran, as journaled, -1 for
	// the others; kept for an Observer only.
	restoredRan []int64
	// attempts: the branches' retry policy and step timeout, or nil;
	// attemptsAll, per branch, when some step has options of its own.
	attempts    *attempts
	attemptsAll []*attempts
	retries     bool // some branch has attempts

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
	decider   int            // the branch whose outcome decided, or -1
	abort     error          // ends the call with an error instead of a result
	countNext uint64         // the sequence number counted next
	ring      []slotOf[T]    // the reorder buffer: outcomes by sequence number mod len
	wakeq     []chan<- int   // waiting workers whose outcomes drain counted
	head      *record.Record // the journaled head, when it was there before this run
	pending   *record.Record // the decision to journal, by whoever unlocks next
	// decidedInRestore: restored branches decided; restore takes the decision.
	decidedInRestore bool
	adopted          *record.Record // another run's decision, whose write won over this one's
}

// slotOf holds a checkpointed outcome until the outcomes before it are counted.
type slotOf[T any] struct {
	seq  uint64
	i    int
	v    T
	err  error
	full bool
	skip bool       // nothing to count: the checkpoint failed, or never returned
	wake chan<- int // the worker waiting for its next branch, if any
}

// worker is the state of one worker goroutine, read by its deferred exit when
// the goroutine ends early (runtime.Goexit).
type worker struct {
	i             int    // the branch it runs, or -1 once it has none
	seq           uint64 // the sequence number of the outcome it is checkpointing
	checkpointing bool
	wake          chan int    // made the first time it waits
	panicked      *PanicError // the panic of branch i, without a journal
	// digest: item i's digest, in a batch named by index with a journal,
	// taken before the branch runs (fn may change the item) and here, a
	// frame up from stepJournaled, where a deep digest has room on a young
	// stack.
	digest [16]byte
}

// statusRunning marks a dispatched branch; statuses are final once counted.
const statusRunning = 255

// stopBit in batch.claim stops dispatching.
const stopBit = 1 << 63

// errDecided is the cause given to branches cancelled because the batch
// completed.
var errDecided = ErrBatchCompleted

var errGoexit = errors.New("durable: branch called runtime.Goexit")

func (b *batch[T]) init(ctx context.Context) error {
	b.values = make([]T, b.n)
	b.status = make([]uint8, b.n)
	b.decider = -1
	b.start = time.Now()
	b.clock = clock{at: b.start, wall: b.start.UnixNano()}
	b.parent = ctx
	b.obs = observerOf(ctx)
	b.sc = scopeOf(ctx)
	if b.sc != nil {
		b.writeCtx = b.sc.writeContext(ctx)
		b.replayed = make([]bool, b.n)
		b.codec = b.cfg.codecOr(b.sc.codec())
		b.env = b.sc.childEnv(ctx, b.codec)
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
	b.fast = b.sc == nil && b.rule.isFailFast() && !b.settles() && b.obs == nil
	if b.final && b.sc != nil && b.cfg.timeout > 0 {
		// A journaled decision is made, and journaled, when the deadline
		// passes, not when a branch next finishes: a crash in between must
		// not lose it.
		fired := make(chan struct{})
		stop := context.AfterFunc(b.ctx, func() {
			defer close(fired)
			b.mu.Lock()
			b.checkDone()
			b.unlock()
		})
		defer func() {
			if !stop() {
				<-fired
			}
		}()
	}
	// No watcher goroutine: an ended context is noticed by the next claim or
	// count, and once more below. Branches see it through their own contexts.
	b.mu.Lock()
	b.checkDone()
	b.unlock()

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
	if b.sc != nil && b.cfg.timeout > 0 {
		// Undecided now, every branch has been counted but those restored as
		// finished after the deadline (restore marks them running): this run
		// may have come before the deadline, on a clock behind the one that
		// stored them. To this run they run until the deadline: decide when
		// it passes, as the run that stored them did, not with no reason at
		// all. Under the lock: the deadline's AfterFunc may be deciding.
		b.mu.Lock()
		undecided := !b.decided
		b.mu.Unlock()
		if undecided {
			<-b.done
			b.mu.Lock()
			b.checkDone()
			b.unlock()
		}
	}
	b.checkDone()
}

// settles reports a Settle or a SettleEach: a batch that returns a result
// whatever became of its branches.
func (b *batch[T]) settles() bool { return b.kind == "Settle" || b.kind == "SettleEach" }

// claimNext claims a branch for a new worker, or returns -1. It claims
// without the mutex, except for a final journaled batch: the claim word orders
// a claim with every decision, and the statuses it writes are read once every
// worker has returned, or never (a fast batch writes none).
func (b *batch[T]) claimNext() int {
	for {
		select {
		case <-b.done:
			// Dispatch nothing more. A fast batch decides nothing either:
			// the successes recorded so far may be every branch, and a
			// context that ended after the last one changes nothing. run
			// decides once the workers are gone.
			if !b.fast {
				b.mu.Lock()
				b.checkDone()
				b.unlock()
			}
			return -1
		default:
		}
		if b.fast {
			return b.claimIndex()
		}
		if b.final && b.sc != nil {
			// Under the mutex, so that a decision, journaled when it is
			// made, sees every branch dispatched before it as running.
			b.mu.Lock()
			i := b.claimLocked()
			b.unlock()
			return i
		}
		i := b.claimIndex()
		if i < 0 {
			return i
		}
		if b.status[i] == 0 { // else restored
			b.status[i] = statusRunning
			return i
		}
	}
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

// decide completes the batch; a reason of 0 ends it with b.abort instead. A
// final batch journals its decision at once, before it waits for the branches
// still running: what they return after it is Cancelled, on this run and on
// every resume. The decision is taken now, and written by unlock, as soon as
// the lock is released: a journal call never holds the lock. Called with b.mu
// held.
func (b *batch[T]) decide(reason Reason, decider int) {
	b.decided = true
	b.reason = reason
	b.decider = decider
	b.claim.Or(stopBit)
	if reason != 0 && b.final && b.sc != nil && (reason != ReasonTimedOut || b.settles()) {
		if b.ctx == nil {
			// Restoring: the branches restored after this one are
			// Cancelled, which restore tells once it has counted them all.
			b.decidedInRestore = true
			return
		}
		b.takeDecision()
	}
}

// takeDecision takes the decision to journal from the batch's statuses, final
// now. Called with b.mu held, or while restoring.
func (b *batch[T]) takeDecision() {
	dec, err := b.decision()
	if err != nil {
		b.abort = err
		return
	}
	b.pending = dec
}

// unlock releases b.mu, then journals the decision taken under it, if any.
func (b *batch[T]) unlock() {
	dec := b.pending
	b.pending = nil
	b.mu.Unlock()
	if dec != nil {
		b.journalDecision(dec)
	}
}

// checkDone decides the batch when its context ended for a reason of its own:
// the caller's context, or the deadline. Called with b.mu held.
func (b *batch[T]) checkDone() {
	if b.decided || b.ctx == nil || b.ctx.Err() == nil {
		return
	}
	if b.parent.Err() != nil {
		b.abort = context.Cause(b.parent)
		b.decide(0, -1)
		return
	}
	b.decide(ReasonTimedOut, -1)
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

// wake hands each worker whose outcome drain counted its next branch, claimed
// now, in sequence order. Called with b.mu held.
func (b *batch[T]) wake() {
	for k, c := range b.wakeq {
		c <- b.claimLocked()
		b.wakeq[k] = nil
	}
	b.wakeq = b.wakeq[:0]
}

// work runs branch i, then every branch it claims after it.
func (b *batch[T]) work(i int) {
	w := worker{i: i}
	defer b.exit(&w)
	if b.sc != nil {
		for w.i >= 0 {
			if b.digestOf != nil {
				w.digest = b.digestOf(w.i)
			}
			w.i = b.stepJournaled(&w, w.i)
		}
		return
	}
	b.workPlain(&w)
}

// workPlain is work without a journal: its own frame, so that work's stays
// small for the journaled path's young stack.
//
//go:noinline
func (b *batch[T]) workPlain(w *worker) {
	for w.i >= 0 {
		b.steps(w)
		if p := w.panicked; p != nil {
			w.panicked = nil
			var v T
			var err error = p
			if b.retries && b.attemptsOf(w.i) != nil {
				// A panic is a failed attempt like any other.
				v, err = b.retriedPlain(b.ctx, w.i, &firstAttempt{err: p})
			}
			w.i = b.countNow(w.i, v, err)
		}
	}
}

// exit ends a worker. When the worker's branch, or its checkpoint, called
// runtime.Goexit, the branch counts as failed and a new worker takes the
// goroutine's place.
func (b *batch[T]) exit(w *worker) {
	if w.i >= 0 {
		var jerr error
		if w.checkpointing {
			// The checkpoint did not return: the journal, or a codec,
			// panicked (recovered here rather than around every Put, whose
			// frame would grow a young stack) or called runtime.Goexit.
			if r := recover(); r != nil {
				jerr = fmt.Errorf("durable: journal put: %w", journalPanic(r))
			}
		}
		b.mu.Lock()
		if w.checkpointing {
			// Give the sequence number up, so that the outcomes after it are
			// not held forever.
			b.park(slotOf[T]{seq: w.seq, skip: true})
			b.drain()
		}
		if s := b.status[w.i]; s == 0 || s == statusRunning {
			var zero T
			if jerr != nil {
				b.count(w.i, zero, nil, jerr, false)
			} else {
				b.count(w.i, zero, errGoexit, nil, false)
			}
		}
		b.wake()
		next := b.claimLocked()
		b.unlock()
		if next >= 0 {
			b.wg.Add(1)
			go b.work(next)
		}
	}
	b.wg.Done()
}

// steps runs branches without a journal, from w.i on, until none is left or
// one panics, and leaves a panic in w.panicked. It recovers a panic once per
// panic rather than deferring a recover for every branch: under a cap, a
// no-op branch is only tens of nanoseconds. A panic is told from a normal
// return by a flag, not by recover's value, which is nil for panic(nil) under
// GODEBUG=panicnil=1; a branch that calls runtime.Goexit never returns here,
// and exit counts it.
func (b *batch[T]) steps(w *worker) {
	normal := false
	defer func() {
		if !normal {
			w.panicked = &PanicError{Value: recover(), Stack: debug.Stack()}
		}
	}()
	for w.i >= 0 {
		var v T
		var err error
		if b.obs != nil {
			v, err = b.stepObserved(w.i)
		} else if !b.retries {
			v, err = b.fn(b.ctx, w.i)
		} else if a := b.attemptsOf(w.i); a == nil {
			v, err = b.fn(b.ctx, w.i)
		} else if a.timeout != 0 {
			v, err = b.retriedPlain(b.ctx, w.i, nil)
		} else if v, err = b.fn(b.ctx, w.i); err != nil {
			v, err = b.retriedPlain(b.ctx, w.i, &firstAttempt{err: err})
		}
		if b.fast && err == nil {
			select {
			case <-b.done: // count it under the mutex: it may be too late
			default:
				// No status: nobody reads a fail-fast batch's statuses, and
				// bytes written side by side by every worker would share
				// cache lines.
				b.values[w.i] = v
				w.i = b.claimIndex() // done was just checked
				continue
			}
		}
		w.i = b.countNow(w.i, v, err)
	}
	normal = true
}

// countNow counts branch i's outcome and claims the next branch.
func (b *batch[T]) countNow(i int, v T, err error) int {
	b.mu.Lock()
	b.count(i, v, err, nil, false)
	next := b.claimLocked()
	b.unlock()
	return next
}

// stepJournaled runs branch i of a journaled batch, checkpoints its outcome and
// returns the next branch this worker should run, or -1. Every function on the
// path from the worker's start to the journal's Put keeps a small frame: a
// worker starts with a small stack, and growing it costs more than a Put into
// memory.
func (b *batch[T]) stepJournaled(w *worker, i int) int {
	key := b.key(i)
	var digest string // does not escape: no allocation
	if b.digestOf != nil {
		digest = string(w.digest[:])
	}
	codec := b.codecOf(i)
	start := b.clock.now()
	ctx := b.ctx
	if b.obs != nil {
		ctx = b.observeBranchStart(i, key)
	}
	v, err, jerr := b.runBranch(ctx, i, key, codec, start)
	if jerr != nil {
		return b.journalFailed(i, jerr)
	}
	if err != nil && !permanent(err) {
		if b.obs != nil {
			b.observeBranchEnd(ctx, i, key, err, start)
		}
		return b.countNow(i, v, err)
	}
	// The outcomes after seq are counted once seq is. If the checkpoint never
	// returns (runtime.Goexit in the journal or in a JSON method), exit gives
	// seq up.
	seq := b.seq.Add(1) - 1
	w.seq, w.checkpointing = seq, true
	finished := b.clock.now()
	if err == nil {
		// checkpoint, in pieces, so that Put runs one frame up.
		var rec []byte
		if rec, v, err = successRecord(key, seq, digest, start, finished, codec, v); err == nil {
			var put int64
			if b.obs != nil {
				put = b.clock.now()
			}
			stored, perr := b.sc.env.j.Put(b.writeCtx, key, rec)
			if b.obs != nil {
				b.observeCheckpoint(ctx, i, key, len(rec), put)
			}
			v, err, jerr = storedSuccess(b.writeCtx, key, digest, codec, rec, stored, perr, v)
		}
	} else {
		v, err, jerr = checkpoint(b.writeCtx, b.sc, key, seq, digest, start, finished, codec, v, err)
	}
	w.checkpointing = false
	if b.obs != nil {
		b.observeCheckpointedEnd(ctx, i, key, err, jerr, start)
	}
	if jerr != nil {
		return b.checkpointFailed(i, seq, jerr)
	}
	return b.checkpointed(w, slotOf[T]{seq: seq, i: i, v: v, err: err})
}

// runBranch runs branch i with its attempts, in a scope under key, from ctx:
// the batch's context, or the one an Observer returned for the branch.
func (b *batch[T]) runBranch(ctx context.Context, i int, key string, codec Codec, start int64) (T, error, error) {
	var a *attempts
	if b.retries {
		a = b.attemptsOf(i)
	}
	if a == nil || a.timeout == 0 && b.head == nil {
		// Attempt 1 on the plain path: in a fresh batch no attempt can be
		// journaled yet.
		v, err := b.call(childContext(ctx, key, b.envOf(i, codec)), i)
		if a != nil && err != nil {
			return b.retried(ctx, i, key, codec, a, &firstAttempt{start: start, err: err})
		}
		return v, err, nil
	}
	return b.retried(ctx, i, key, codec, a, nil)
}

// attemptsOf is branch i's attempts, or nil.
func (b *batch[T]) attemptsOf(i int) *attempts {
	if b.attemptsAll != nil {
		return b.attemptsAll[i]
	}
	return b.attempts
}

// retried runs branch i under its attempts a, from ctx, journaling its failed
// attempts; after first, when its first attempt ran already.
//
//go:noinline
func (b *batch[T]) retried(ctx context.Context, i int, key string, codec Codec, a *attempts, first *firstAttempt) (T, error, error) {
	env := b.envOf(i, codec)
	j := &attemptJournal{sc: b.sc, ctx: b.writeCtx, key: key, resumed: b.head != nil, clock: b.clock.now}
	return runAttemptsFrom(ctx, a, j, key,
		func(ctx context.Context) context.Context { return childContext(ctx, key, env) },
		func(ctx context.Context) (T, error) { return b.fn(ctx, i) }, first, b.retryObserver(ctx, i, key))
}

// retriedPlain runs branch i of a batch without a journal under its attempts,
// from ctx: from the second attempt, after first, when first is not nil.
//
//go:noinline
func (b *batch[T]) retriedPlain(ctx context.Context, i int, first *firstAttempt) (T, error) {
	v, err, _ := runAttemptsFrom(ctx, b.attemptsOf(i), nil, b.nameOf(i),
		func(ctx context.Context) context.Context { return ctx },
		func(ctx context.Context) (T, error) { return b.fn(ctx, i) }, first, b.retryObserver(ctx, i, b.nameOf(i)))
	return v, err
}

// journalFailed counts branch i, whose journal failed with jerr before its
// checkpoint: the batch ends with the error. It returns -1.
//
//go:noinline
func (b *batch[T]) journalFailed(i int, jerr error) int {
	var zero T
	b.mu.Lock()
	b.count(i, zero, nil, jerr, false)
	b.wake()
	b.unlock()
	return -1
}

// checkpointFailed counts branch i, whose checkpoint failed with jerr: the
// batch ends with the error. It returns -1: nothing more to run.
//
//go:noinline
func (b *batch[T]) checkpointFailed(i int, seq uint64, jerr error) int {
	var zero T
	b.mu.Lock()
	b.count(i, zero, nil, jerr, false)
	b.park(slotOf[T]{seq: seq, skip: true})
	b.drain()
	b.wake()
	b.unlock()
	return -1
}

// checkpointed counts a checkpointed outcome in sequence order and returns
// the worker's next branch: claimed now if the outcome was next in sequence,
// else claimed by whoever counts it, while this worker waits, unless there is
// nothing left to claim.
func (b *batch[T]) checkpointed(w *worker, o slotOf[T]) int {
	b.mu.Lock()
	if o.seq != b.countNext {
		if b.claim.Load() >= uint64(b.n) { // stopped, or every branch claimed
			b.park(o) // nothing to hand this worker: it leaves
			b.unlock()
			return -1
		}
		if w.wake == nil {
			w.wake = make(chan int, 1)
		}
		o.wake = w.wake
		b.park(o)
		b.unlock()
		return <-w.wake
	}
	b.countNext++
	b.count(o.i, o.v, o.err, nil, false)
	b.drain()
	next := b.claimLocked() // this worker's own first, as if it had counted alone
	b.wake()
	b.unlock()
	return next
}

// envOf is the scope environment of branch i, whose codec is codec.
func (b *batch[T]) envOf(i int, codec Codec) *scopeEnv {
	if codec == b.codec {
		return b.env
	}
	return b.sc.childEnv(b.parent, codec) // a step with a codec of its own
}

// codecOf is the codec of branch i.
func (b *batch[T]) codecOf(i int) Codec {
	if b.codecs != nil && b.codecs[i] != nil {
		return b.codecs[i]
	}
	return b.codec
}

// key is the journal key of branch i.
func (b *batch[T]) key(i int) string {
	if b.digestOf == nil {
		return b.prefix + record.Escape(b.nameOf(i))
	}
	// Named by index: one allocation.
	var buf [64]byte
	return string(appendInt(append(buf[:0], b.prefix...), int64(i)))
}

// call runs the branch function, turning a panic into a *PanicError: panic(nil)
// too, which recover reports as nil under GODEBUG=panicnil=1. A Goexit sets
// err as well, but never returns it.
func (b *batch[T]) call(ctx context.Context, i int) (v T, err error) {
	normal := false
	defer func() {
		if !normal {
			err = &PanicError{Value: recover(), Stack: debug.Stack()}
		}
	}()
	v, err = b.fn(ctx, i)
	normal = true
	return v, err
}

// park puts o in the reorder buffer. Called with b.mu held.
//
// The buffer holds outcomes whose sequence numbers lie in [countNext,
// countNext+len(ring)), at most one per worker, so that each has a slot of its
// own; it grows when one would not.
func (b *batch[T]) park(o slotOf[T]) {
	o.full = true
	if d := o.seq - b.countNext; d >= uint64(len(b.ring)) {
		size := max(16, 2*len(b.ring))
		for uint64(size) <= d {
			size *= 2
		}
		ring := make([]slotOf[T], size)
		for _, s := range b.ring {
			if s.full {
				ring[s.seq&uint64(size-1)] = s
			}
		}
		b.ring = ring
	}
	b.ring[o.seq&uint64(len(b.ring)-1)] = o
}

// drain counts the parked outcomes that are next in sequence, and queues their
// waiting workers for wake. Called with b.mu held.
func (b *batch[T]) drain() {
	for len(b.ring) > 0 {
		s := &b.ring[b.countNext&uint64(len(b.ring)-1)]
		if !s.full {
			return
		}
		o := *s
		*s = slotOf[T]{}
		b.countNext++
		if !o.skip {
			b.count(o.i, o.v, o.err, nil, false)
		}
		if o.wake != nil {
			b.wakeq = append(b.wakeq, o.wake)
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
	reason, ok, rerr := b.rule.decide(b.succeeded, b.failed, b.n)
	if rerr != nil {
		b.abort = rerr
		b.decide(0, -1)
		b.cancelRest()
		return
	}
	if ok {
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
