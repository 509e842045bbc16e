package durable

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/durable-go/durable/internal/record"
)

// RetryPolicy says how a failed step is tried again. See [WithRetry].
type RetryPolicy struct {
	MaxAttempts int              // attempts in all, the first included; 0 or 1: no retry
	Backoff     time.Duration    // wait before the second attempt
	MaxBackoff  time.Duration    // cap on one wait; 0: no cap
	Multiplier  float64          // growth of the wait per attempt; 0: 2
	Jitter      float64          // 0..1: the wait varies by up to this fraction
	Retryable   func(error) bool // nil: every failure but a Permanent one
}

// WithRetry runs a failed attempt of a step again, up to p.MaxAttempts
// attempts in all. Given to [NewStep] it applies to that step; given to a
// combinator, to each of its branches (a step's own policy wins).
//
// The wait before attempt n+1 is Backoff × Multiplier^(n-1), at most
// MaxBackoff, varied by up to ±Jitter of itself by a fraction drawn from the
// step's key and n: the same on every run, so a resumed run waits what the
// first would have. A failure marked [Permanent] is never retried, nor one
// Retryable says no to; a panic is a failure like any other.
//
// Retries are durable. With a journal, each failed attempt is journaled with
// its number, its error and the instant the next attempt may start, so a
// process that dies during a wait resumes with the same count and waits only
// what is left: a step never runs more than MaxAttempts attempts across
// crashes, beyond the one attempt that may have been running when a process
// died. When the attempts run out, the step fails with an error that says how
// many ran and wraps the last failure (errors.Is and errors.As reach it); that
// failure is final, as a Permanent one: journaled and replayed, never run
// again. A failure that is not retried (Permanent, or refused by Retryable) is
// what it would be without a policy.
//
// Waits end at once when the step's context ends (the caller's, the batch's
// decision or deadline): the step then fails with its last failure. They use
// the time package's timers, so they run in fake time under testing/synctest.
//
// MaxAttempts, Backoff and MaxBackoff must not be negative, MaxBackoff not
// below Backoff when set, Multiplier 0 or at least 1, Jitter within [0, 1]:
// other values are an error reported before anything runs.
func WithRetry(p RetryPolicy) Option {
	return optionFunc(func(c *config) {
		if err := p.check(); err != nil {
			c.errs = append(c.errs, err)
			return
		}
		c.retry = &p
	})
}

// WithStepTimeout gives each attempt of a step its own deadline, d after the
// attempt starts: its context is a child of the branch's, so the earlier of
// the two deadlines wins. An attempt still running at its deadline fails with
// an error matching [context.DeadlineExceeded], whatever it returns, and is
// retried under [WithRetry]. d must be positive.
func WithStepTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.errs = append(c.errs, fmt.Errorf("durable: WithStepTimeout(%v): must be positive", d))
			return
		}
		c.stepTimeout = d
	})
}

func (p *RetryPolicy) check() error {
	switch {
	case p.MaxAttempts < 0:
		return fmt.Errorf("durable: RetryPolicy.MaxAttempts %d: must not be negative", p.MaxAttempts)
	case p.Backoff < 0:
		return fmt.Errorf("durable: RetryPolicy.Backoff %v: must not be negative", p.Backoff)
	case p.MaxBackoff < 0:
		return fmt.Errorf("durable: RetryPolicy.MaxBackoff %v: must not be negative", p.MaxBackoff)
	case p.MaxBackoff > 0 && p.MaxBackoff < p.Backoff:
		return fmt.Errorf("durable: RetryPolicy.MaxBackoff %v is below Backoff %v", p.MaxBackoff, p.Backoff)
	case p.Multiplier != 0 && !(p.Multiplier >= 1) || math.IsInf(p.Multiplier, 0):
		return fmt.Errorf("durable: RetryPolicy.Multiplier %v: must be 0 (for 2) or at least 1", p.Multiplier)
	case !(p.Jitter >= 0 && p.Jitter <= 1):
		return fmt.Errorf("durable: RetryPolicy.Jitter %v: must be within [0, 1]", p.Jitter)
	}
	return nil
}

// attempts is how a step's attempts run: its retry policy and step timeout.
type attempts struct {
	retry   RetryPolicy // MaxAttempts ≥ 1, Multiplier ≥ 1
	timeout time.Duration
}

// attemptsOf is the attempts of a step whose own options are own (nil: none)
// in a combinator whose options are c (nil: none), or nil when neither has a
// retry policy or a step timeout: the step is called once, as it is.
func attemptsOf(own, c *config) *attempts {
	var retry *RetryPolicy
	var timeout time.Duration
	for _, cfg := range []*config{c, own} { // the step's own win
		if cfg == nil {
			continue
		}
		if cfg.retry != nil {
			retry = cfg.retry
		}
		if cfg.stepTimeout != 0 {
			timeout = cfg.stepTimeout
		}
	}
	if retry == nil && timeout == 0 {
		return nil
	}
	a := &attempts{retry: RetryPolicy{MaxAttempts: 1}, timeout: timeout}
	if retry != nil {
		a.retry = *retry
		a.retry.MaxAttempts = max(a.retry.MaxAttempts, 1)
		if a.retry.Multiplier == 0 {
			a.retry.Multiplier = 2
		}
	}
	return a
}

// retryable reports whether the policy retries err, attempts left.
func (a *attempts) retryable(err error) bool {
	if permanent(err) {
		return false
	}
	return a.retry.Retryable == nil || a.retry.Retryable(err)
}

// backoff is the wait after failed attempt n of the step with key key.
func (a *attempts) backoff(key string, n int) time.Duration {
	p := &a.retry
	w := float64(p.Backoff) * math.Pow(p.Multiplier, float64(n-1))
	if p.Jitter > 0 {
		// A fraction in [-1, 1) drawn from the key and n: the same on every
		// run. FNV's high bits barely depend on the input's last bytes, where
		// keys of siblings and n differ: the hash is mixed first.
		h := newFNV()
		h.bytes([]byte(key + "\x00" + strconv.Itoa(n)))
		u := float64(h.mixed().hi>>11)/(1<<53)*2 - 1
		w += w * p.Jitter * u
	}
	if p.MaxBackoff > 0 && w > float64(p.MaxBackoff) {
		w = float64(p.MaxBackoff)
	}
	if w >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(w)
}

// stepTimeoutError is the cause of an attempt's context at its deadline.
type stepTimeoutError struct{ d time.Duration }

func (e *stepTimeoutError) Error() string {
	return fmt.Sprintf("durable: the attempt's deadline of %v passed (WithStepTimeout)", e.d)
}

// Is makes it match context.DeadlineExceeded.
func (e *stepTimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// exhaustedError is the failure of a step whose attempts ran out.
type exhaustedError struct {
	n    int
	last error
}

func (e *exhaustedError) Error() string {
	return fmt.Sprintf("durable: %d attempts failed; the last: %v", e.n, e.last)
}

func (e *exhaustedError) Unwrap() error { return e.last }

// attemptJournal journals a step's failed attempts under its key; nil
// without a journal.
type attemptJournal struct {
	sc      *scope
	ctx     context.Context // what attempts are written with
	key     string
	resumed bool // the step may have journaled attempts: look them up
	clock   func() int64
}

// last is the step's last journaled attempt: its number, and when the next
// may start; 0 when none is journaled.
func (j *attemptJournal) last(ctx context.Context, max int) (int, int64, error) {
	n, next := 0, int64(0)
	for k := 1; k <= max; k++ {
		r, err := j.sc.get(ctx, j.key+"/"+record.AttemptSegment+strconv.Itoa(k))
		if err != nil {
			return 0, 0, err
		}
		if r == nil {
			break
		}
		if err := checkKind(j.key, r, record.KindAttempt); err != nil {
			return 0, 0, err
		}
		n, next = k, r.NextAt
	}
	return n, next, nil
}

// put journals failed attempt n, which ran from start to finished, whose
// next attempt may start at next.
func (j *attemptJournal) put(n int, start, finished, next int64, err error) error {
	rec := &record.Record{Kind: record.KindAttempt, Attempt: n, Finished: finished, Ran: max(finished-start, 0), NextAt: next, Err: journalError(err)}
	_, _, perr := j.sc.put(j.ctx, j.key+"/"+record.AttemptSegment+strconv.Itoa(n), rec)
	return perr
}

// runAttempts runs call under a until an attempt succeeds, fails for good, or
// the attempts run out, journaling each failed attempt in j when j is not
// nil. scoped turns ctx into the context of one attempt (with a journal, a
// fresh scope under the step's key, so that an attempt replays what earlier
// attempts of the step journaled inside it). A panic in call is the attempt's
// failure. jerr reports a journal failure.
func runAttempts[T any](ctx context.Context, a *attempts, j *attemptJournal, name string, scoped func(context.Context) context.Context, call func(context.Context) (T, error), onRetry func(n int, wait time.Duration, err error)) (v T, err, jerr error) {
	return runAttemptsFrom(ctx, a, j, name, scoped, call, nil, onRetry)
}

// firstAttempt is the outcome of a step's first attempt, run by the caller
// on its own fast path: a policy costs a step that succeeds at once nothing
// but its lookup.
type firstAttempt struct {
	start int64
	err   error
}

// runAttemptsFrom is runAttempts after a first attempt that failed with
// first.err, when first is not nil.
//
// onRetry, when not nil, is told of each failed attempt n that is retried
// after wait.
func runAttemptsFrom[T any](ctx context.Context, a *attempts, j *attemptJournal, name string, scoped func(context.Context) context.Context, call func(context.Context) (T, error), first *firstAttempt, onRetry func(n int, wait time.Duration, err error)) (v T, err, jerr error) {
	n0, wait := 1, time.Duration(0)
	clock := now
	key := name
	if j != nil {
		clock = j.clock
		key = j.key
	}
	if first != nil {
		// Attempt 1 failed: go on from there, as the loop below would have.
		err = first.err
		if !a.retryable(err) || ctx.Err() != nil || a.retry.MaxAttempts <= 1 {
			return v, err, nil
		}
		wait = a.backoff(key, 1)
		if onRetry != nil {
			onRetry(1, wait, err)
		}
		if j != nil {
			finished := clock()
			if jerr := j.put(1, first.start, finished, finished+int64(wait), err); jerr != nil {
				return v, nil, jerr
			}
		}
		n0 = 2
	}
	if j != nil && first == nil {
		if j.resumed && a.retry.MaxAttempts > 1 {
			n, next, gerr := j.last(ctx, a.retry.MaxAttempts)
			if gerr != nil {
				return v, nil, gerr
			}
			if n > 0 {
				n0, wait = n+1, time.Duration(next-clock())
			}
		}
	}
	last := err
	for n := n0; ; n++ {
		if wait > 0 {
			if werr := sleep(ctx, wait); werr != nil {
				if last == nil {
					last = werr
				}
				return v, last, nil
			}
		}
		start := clock()
		v, err = attempt(scoped(ctx), a.timeout, call)
		if err == nil {
			return v, nil, nil
		}
		if !a.retryable(err) || ctx.Err() != nil {
			return v, err, nil
		}
		if n >= a.retry.MaxAttempts {
			if n > 1 {
				// The attempts ran out: final, as a Permanent failure.
				err = Permanent(&exhaustedError{n: n, last: err})
			}
			return v, err, nil
		}
		last = err
		wait = a.backoff(key, n)
		if onRetry != nil {
			onRetry(n, wait, err)
		}
		if j != nil {
			finished := clock()
			if jerr := j.put(n, start, finished, finished+int64(wait), err); jerr != nil {
				return v, nil, jerr
			}
		}
	}
}

// attempt runs one attempt of call, with its own deadline when timeout is
// set, turning a panic into a *PanicError.
func attempt[T any](ctx context.Context, timeout time.Duration, call func(context.Context) (T, error)) (v T, err error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, &stepTimeoutError{timeout})
		defer cancel()
	}
	normal := false
	defer func() {
		if !normal {
			err = &PanicError{Value: recover(), Stack: debug.Stack()}
		}
	}()
	v, err = call(ctx)
	normal = true
	if timeout > 0 && errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		var e *stepTimeoutError
		if errors.As(context.Cause(ctx), &e) {
			// Late: a failure, whatever it returned.
			var zero T
			if err == nil || !errors.Is(err, context.DeadlineExceeded) {
				return zero, e
			}
			return zero, fmt.Errorf("%w: %w", e, err)
		}
	}
	return v, err
}

// sleep waits d, or until ctx ends, and returns ctx's cause then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
