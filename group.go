package durable

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/durable-go/durable/internal/record"
)

// Group runs branches of different result types: [Go] starts each one and
// returns a typed [Future], and [Group.Wait] waits for all of them. A Group is
// all-successful and fail-fast, like [Parallel]: the first failure cancels the
// group's context, branches not yet started never start, and Wait returns that
// failure as a *[BranchError]. A panic is its branch's failure, as a
// *[PanicError].
//
// With [WithMaxConcurrency](n) at most n branches run at once; Go never blocks,
// it queues the branch, and queued branches start in the order Go was called.
// [WithTimeout] gives the group a deadline; Wait then returns an error matching
// [ErrTimeout]. WithCompletion and WithKey do not apply to a Group.
//
// With a journal, each branch is checkpointed under its name, and a later run
// returns a journaled success from Go's Future without running the branch. A
// Group journals its start time but, unlike the other combinators, not its set of
// branches, which is only known as Go is called: a branch is matched to the
// journal by name alone.
//
// Wait must be called once all branches have been started: it is what releases
// the group's context. A Group must not be copied. Cost: a goroutine per running
// branch, a Future per branch; with a journal, one Get per branch at Go (to
// replay) and one Put per success.
type Group struct {
	name     string
	parent   context.Context
	ctx      context.Context
	cancel   context.CancelCauseFunc
	limit    int
	sc       *scope
	codec    Codec           // the branches'; nil: encoding/json
	attempts *attempts       // the branches' retry policy and step timeout, or nil
	obs      Observer        // nil: no events
	obsCtx   context.Context // the context the Observer gave the group
	obsEvent Event           // the group's fields of its events
	started  time.Time
	resumed  bool      // the journal held the group's head: a later run
	env      *scopeEnv // the branches' scopes'
	prefix   string
	wg       sync.WaitGroup

	timeoutErr error

	mu      sync.Mutex
	err     error // the group's failure, once it has one
	names   map[string]int
	n       int
	running int // workers running branches
	lookups int // Go calls looking their branch up in the journal
	queue   []groupJob
	waited  bool // Wait was called: Go is refused
	done    bool // Wait returned: the Futures and the group's error are final
}

type groupJob struct {
	run  func()
	skip func(err error)
}

// NewGroup returns a Group whose branches run with a context derived from ctx.
// Bad options are reported by Wait, and by every Future, without running
// anything.
func NewGroup(ctx context.Context, name string, opts ...Option) *Group {
	g := &Group{name: name, parent: ctx, names: make(map[string]int)}
	cfg := newConfig(opts)
	b := batch[struct{}]{kind: "Group", name: name, cfg: &cfg}
	if err := b.validate(ctx); err != nil {
		g.err = err
		return g
	}
	g.limit = b.cfg.limit
	g.attempts = attemptsOf(nil, &cfg)
	start := time.Now()
	if sc := scopeOf(ctx); sc != nil {
		g.sc = sc
		g.codec = cfg.codecOr(sc.codec())
		g.env = sc.childEnv(ctx, g.codec)
		if err := g.open(ctx, &start); err != nil {
			g.err = err
			return g
		}
	}
	if g.obs = observerOf(ctx); g.obs != nil {
		e := Event{Kind: EventBatchStart, Combinator: "Group", Name: name, Index: -1, Path: record.Escape(name), Branches: -1,
			Limit: g.limit, Policy: failFast.String(), Resumed: g.resumed}
		if g.sc != nil {
			e.Path = strings.TrimSuffix(g.prefix, "/")
			e.Execution = executionOf(e.Path)
		}
		g.started = time.Now()
		g.obsEvent = e
		ctx = observe(ctx, g.obs, e)
		g.obsCtx = ctx
	}
	cctx, cancel := context.WithCancelCause(ctx)
	g.ctx, g.cancel = cctx, cancel
	if d := b.cfg.timeout; d > 0 {
		dctx, dcancel := context.WithDeadlineCause(cctx, start.Add(d), ErrTimeout)
		g.ctx = dctx
		g.cancel = func(cause error) { cancel(cause); dcancel() }
		g.timeoutErr = fmt.Errorf("durable: Group %q: deadline of %v passed: %w", name, d, ErrTimeout)
	}
	return g
}

// open journals the group's head, or reads its start time.
func (g *Group) open(ctx context.Context, start *time.Time) error {
	key, err := g.sc.key(g.name)
	if err != nil {
		return err
	}
	g.prefix = key + "/"
	key = g.prefix + "!h"
	head, err := g.sc.get(ctx, key)
	g.resumed = head != nil
	if err == nil && head == nil {
		head, _, err = g.sc.put(ctx, key, record.NewHead(start.UnixNano(), "Group", failFast.String(), 0, nil))
	}
	if err != nil {
		return err
	}
	if err := checkKind(key, head, record.KindHead); err != nil {
		return err
	}
	if d := record.DiffHead(head, "Group", failFast.String(), 0, nil); d != "" {
		return fmt.Errorf("%w: Group %q: %s", ErrNondeterministic, g.name, d)
	}
	*start = time.Unix(0, head.Start)
	return nil
}

// checkDone fails the group when its context ended for a reason of its own: the
// caller's context or the deadline. Called with g.mu held.
func (g *Group) checkDone() {
	if g.err != nil || g.ctx == nil || g.ctx.Err() == nil {
		return
	}
	if g.parent.Err() != nil {
		g.failLocked(context.Cause(g.parent))
	} else if g.timeoutErr != nil {
		g.failLocked(g.timeoutErr)
	}
}

// failLocked records the group's failure and cancels its branches.
func (g *Group) failLocked(err error) {
	if g.err != nil {
		return
	}
	g.err = err
	if g.cancel != nil {
		g.cancel(errDecided)
	}
	for _, j := range g.queue {
		j.skip(err)
	}
	g.queue = nil
}

// Future is the result of one branch of a [Group].
type Future[T any] struct {
	g   *Group
	v   T
	err error
	ok  bool // the branch succeeded
}

// Get returns the branch's value, or its failure. After a failure of another
// branch, or the deadline, a branch that had not finished reports the group's
// error. Get is valid after [Group.Wait] returns; before, it returns an error.
func (f *Future[T]) Get() (T, error) {
	f.g.mu.Lock()
	done := f.g.done
	f.g.mu.Unlock()
	var zero T
	switch {
	case !done:
		return zero, errors.New("durable: Future.Get called before Group.Wait returned")
	case f.ok:
		return f.v, nil
	}
	return zero, f.err
}

// Go starts fn as a branch of g named name, or queues it under the group's cap,
// and returns its Future. The name must be non-empty and unique in the group; a
// bad name or a nil fn fails the group ([ErrDuplicateName] for a repeated name).
//
// With a journal, Go first looks the branch up: a journaled success is the
// Future's value whatever became of the group (a failure or a deadline since),
// and a journaled permanent failure fails the group; only a branch with nothing
// journaled runs, and only while the group has not failed.
//
// As with errgroup, a running branch may call Go, also while Wait waits: Wait
// then waits for the new branch too. Go called once Wait has returned, or after
// Wait was called when no branch is running, fails with an error and starts
// nothing.
func Go[T any](g *Group, name string, fn func(ctx context.Context) (T, error)) *Future[T] {
	f := &Future[T]{g: g}
	g.mu.Lock()
	defer g.mu.Unlock()
	i := g.n
	g.n++
	if g.done || g.waited && g.running == 0 && g.lookups == 0 {
		f.err = fmt.Errorf("durable: Group %q: Go(%q) called after Wait", g.name, name)
		return f
	}
	if g.ctx == nil { // NewGroup failed
		f.err = g.err
		return f
	}
	bad := checkStep(name, fn)
	if bad == nil && g.sc != nil {
		bad = checkEncodable[T](g.codec)
	}
	if j, dup := g.names[name]; dup && bad == nil {
		bad = fmt.Errorf("%w: branches %d and %d are both %q", ErrDuplicateName, j, i, name)
	}
	if bad != nil {
		f.err = &BranchError{Index: i, Name: name, Err: bad}
		g.failLocked(f.err)
		return f
	}
	g.names[name] = i

	var key string
	if g.sc != nil {
		// Look for a journaled outcome first, whatever the group's state,
		// and without holding the lock, so that other branches can finish
		// meanwhile; the WaitGroup keeps Wait waiting.
		key = g.prefix + record.Escape(name)
		g.wg.Add(1)
		g.lookups++
		g.mu.Unlock()
		r, err := g.sc.get(g.parent, key)
		g.mu.Lock()
		g.lookups--
		g.wg.Done()
		if err != nil || r != nil {
			var v T
			var ferr error
			if err == nil {
				v, ferr, err = outcome[T](key, r, g.codec)
			}
			switch {
			case err != nil:
				f.err = &BranchError{Index: i, Name: name, Err: err}
				g.failLocked(f.err)
			case ferr != nil:
				f.err = &BranchError{Index: i, Name: name, Err: ferr}
				g.failLocked(f.err)
			default:
				f.v, f.ok = v, true
			}
			if o := newBranchObserver(g.obs, "Group", name, i, key, ""); o != nil && err == nil {
				o.replayed(g.obsCtx, ferr, time.Duration(r.Ran))
			}
			return f
		}
	}
	g.checkDone()
	if g.err != nil {
		f.err = g.err
		return f
	}

	job := groupJob{
		skip: func(err error) { f.err = err },
		run: func() {
			// Deferred, so that a branch that calls runtime.Goexit, which
			// skips the assignment below, fails.
			var v T
			err := errGoexit
			defer func() {
				// fn's panics are recovered by callGroup; one here came
				// from the journal or a codec, in checkpoint.
				if r := recover(); r != nil {
					err = fmt.Errorf("durable: journal put: %w", journalPanic(r))
				}
				g.mu.Lock()
				defer g.mu.Unlock()
				g.checkDone()
				switch {
				case g.err != nil:
					f.err = g.err
				case err != nil:
					f.err = &BranchError{Index: i, Name: name, Err: err}
					g.failLocked(f.err)
				default:
					f.v, f.ok = v, true
				}
			}()
			base := g.ctx
			o := newBranchObserver(g.obs, "Group", name, i, key, record.Escape(g.name)+"/"+record.Escape(name))
			if o != nil {
				base = o.begin(base)
			}
			ctx := base
			if g.sc != nil {
				ctx = childContext(ctx, key, g.env)
			}
			start := now()
			var fv T
			var ferr error
			if g.attempts == nil {
				fv, ferr = callGroup(ctx, fn)
			} else {
				var jerr error
				if fv, ferr, jerr = retriedGroup(g, base, key, name, fn, o.onRetry(base)); jerr != nil {
					err = jerr
					return
				}
			}
			if g.sc != nil {
				var jerr error
				fv, ferr, jerr = checkpoint(g.sc.writeContext(g.parent), g.sc, key, 0, "", start, now(), g.codec, fv, ferr)
				if jerr != nil {
					ferr = jerr
				}
			}
			if o != nil {
				o.end(base, ferr)
			}
			v, err = fv, ferr
		},
	}
	if g.limit > 0 && g.running >= g.limit {
		g.queue = append(g.queue, job)
		return f
	}
	g.running++
	g.wg.Add(1)
	go g.work(job)
	return f
}

// retriedGroup runs fn under the group's attempts, from ctx, journaling its
// failed attempts under key when the group has a journal. jerr reports a
// journal failure.
func retriedGroup[T any](g *Group, ctx context.Context, key, name string, fn func(context.Context) (T, error), onRetry func(int, time.Duration, error)) (T, error, error) {
	scoped := func(ctx context.Context) context.Context { return ctx }
	var j *attemptJournal
	if g.sc != nil {
		j = &attemptJournal{sc: g.sc, ctx: g.sc.writeContext(g.parent), key: key, resumed: g.resumed, clock: now}
		scoped = func(ctx context.Context) context.Context { return childContext(ctx, key, g.env) }
	}
	return runAttempts(ctx, g.attempts, j, name, scoped, fn, onRetry)
}

// work runs job, then the queued jobs, one at a time.
func (g *Group) work(job groupJob) {
	defer g.wg.Done()
	for {
		job.run()
		g.mu.Lock()
		g.checkDone()
		if len(g.queue) == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		job = g.queue[0]
		g.queue[0] = groupJob{}
		g.queue = g.queue[1:]
		g.mu.Unlock()
	}
}

// callGroup runs fn, turning a panic into a *PanicError, as batch.call does.
func callGroup[T any](ctx context.Context, fn func(context.Context) (T, error)) (v T, err error) {
	normal := false
	defer func() {
		if !normal {
			err = &PanicError{Value: recover(), Stack: debug.Stack()}
		}
	}()
	v, err = fn(ctx)
	normal = true
	return v, err
}

// Wait waits for every branch started with Go and returns the group's first
// failure as a *[BranchError], the caller context's cause if it ended first, a
// timeout error, or nil when every branch succeeded. A later call returns the
// same.
func (g *Group) Wait() error {
	g.mu.Lock()
	g.waited = true
	g.mu.Unlock()
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done { // a later Wait returns the same
		// No checkDone here: a deadline or a cancellation that came after
		// every branch had finished changes nothing, as with errgroup.
		if g.cancel != nil {
			g.cancel(errDecided)
		}
		g.done = true
		if g.obs != nil {
			e := g.obsEvent
			e.Kind, e.Err, e.Duration, e.Branches = EventBatchEnd, g.err, time.Since(g.started), g.n
			if g.err == nil {
				e.Reason, e.Succeeded = ReasonAllCompleted, g.n
			}
			observe(g.obsCtx, g.obs, e)
		}
	}
	return g.err
}
