package durable

import (
	"errors"
	"fmt"
	"math/big"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// An Option configures a combinator. Invalid values are reported as errors by the
// combinator, before any branch runs.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config holds every option; its zero value is the default.
type config struct {
	limit       int           // 0: unlimited
	timeout     time.Duration // 0: none
	completions []Completion
	completion  bool // WithCompletion was given
	key         any  // func(I) string, from WithKey
	codec       Codec
	retry       *RetryPolicy
	stepTimeout time.Duration
	errs        []error
}

func newConfig(opts []Option) config {
	var c config
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	return c
}

func (c *config) err() error { return errors.Join(c.errs...) }

// checkStepOptions reports the options given to NewStep that apply to
// combinators only.
func (c *config) checkStepOptions() {
	if c.limit != 0 || c.timeout != 0 || c.completion || c.key != nil {
		c.errs = append(c.errs, errors.New("durable: WithMaxConcurrency, WithTimeout, WithCompletion and WithKey apply to combinators, not to NewStep"))
	}
}

// codecOr is the codec c names, or inherited when it names none. c may be nil.
func (c *config) codecOr(inherited Codec) Codec {
	if c != nil && c.codec != nil {
		return c.codec
	}
	return inherited
}

// WithMaxConcurrency keeps at most n branches running at once; the others wait
// their turn in input order. n must be at least 1. The default is unlimited.
func WithMaxConcurrency(n int) Option {
	return optionFunc(func(c *config) {
		if n < 1 {
			c.errs = append(c.errs, fmt.Errorf("durable: WithMaxConcurrency(%d): must be at least 1", n))
			return
		}
		c.limit = n
	})
}

// WithCompletion sets the completion policy of [Settle]. When several criteria are
// given, whichever is met first decides. Other combinators have a fixed policy and
// reject this option.
func WithCompletion(c ...Completion) Option {
	return optionFunc(func(cfg *config) {
		cfg.completion = true
		cfg.completions = append(cfg.completions, c...)
		// Thresholds do not depend on the number of branches: check them here,
		// so that they are reported for an empty list of steps too.
		if _, err := settleRule(c, 0); err != nil {
			cfg.errs = append(cfg.errs, err)
		}
	})
}

// WithKey names FanOut's branches by item instead of by index: key(item) becomes
// the branch's step name, its identity in the journal, which makes a resumed run
// independent of the items' order. Keys must be unique and non-empty. I must be
// FanOut's item type; another type is reported as an error.
func WithKey[I any](key func(item I) string) Option {
	return optionFunc(func(c *config) {
		if key == nil {
			c.errs = append(c.errs, errors.New("durable: WithKey(nil)"))
			return
		}
		c.key = key
	})
}

// Completion is one criterion of a completion policy, built by [AllCompleted],
// [AllSuccessful], [FirstSuccessful], [MinSuccessful], [ToleratedFailures] and
// [ToleratedFailureRatio].
type Completion struct {
	kind  completionKind
	n     int
	ratio float64
	name  string              // CompleteWhen
	fn    func(Tally) Verdict // CompleteWhen
}

type completionKind uint8

const (
	completeAll completionKind = iota + 1
	completeMin
	completeTolerated
	completeRatio
	completeRule
)

// AllCompleted runs every branch: the batch completes when all have finished. It
// is Settle's default.
func AllCompleted() Completion { return Completion{kind: completeAll} }

// AllSuccessful completes the batch at the first failure. It is
// ToleratedFailures(0).
func AllSuccessful() Completion { return ToleratedFailures(0) }

// FirstSuccessful completes the batch at the first success. It is
// MinSuccessful(1).
func FirstSuccessful() Completion { return MinSuccessful(1) }

// MinSuccessful completes the batch as soon as n branches have succeeded. n must
// be at least 1. A minimum above the number of branches is allowed and runs every
// branch; on its own, a minimum tolerates any number of failures.
func MinSuccessful(n int) Completion { return Completion{kind: completeMin, n: n} }

// ToleratedFailures completes the batch as soon as more than n branches have
// failed. n must not be negative.
func ToleratedFailures(n int) Completion { return Completion{kind: completeTolerated, n: n} }

// ToleratedFailureRatio completes the batch as soon as failures divided by the
// number of branches is strictly more than r, with r in [0, 1]. The comparison is
// exact on the decimal value of r: 11 failures of 20 do not exceed 0.55.
func ToleratedFailureRatio(r float64) Completion { return Completion{kind: completeRatio, ratio: r} }

// CompleteWhen is a completion criterion of the caller's own: rule is called
// each time a branch's outcome is counted, with the counts so far, and ends the
// batch by returning [VerdictMet] (the batch completes with [ReasonRuleMet]) or
// [VerdictFailed] ([ReasonRuleFailed]); [VerdictContinue] goes on. It is
// evaluated as the built-in criteria are, after them, in the order given: each
// time a branch is counted and before anything else is dispatched, and on a
// resumed run over the restored outcomes in their original order, so it must
// depend on the Tally alone. A quorum write that needs 3 of 5:
//
//	durable.CompleteWhen("quorum", func(t durable.Tally) durable.Verdict {
//		switch {
//		case t.Succeeded >= 3:
//			return durable.VerdictMet
//		case t.Total-t.Failed < 3:
//			return durable.VerdictFailed // 3 can no longer succeed
//		}
//		return durable.VerdictContinue
//	})
//
// name identifies the rule in the journal: a later run that asks for another
// rule under the combinator's name fails with [ErrNondeterministic]. A rule
// that panics, or returns another Verdict, ends the call with an error. name
// must not be empty, nor rule nil.
func CompleteWhen(name string, rule func(Tally) Verdict) Completion {
	return Completion{kind: completeRule, name: name, fn: rule}
}

// Tally is what a [CompleteWhen] rule sees: the branches counted so far, and
// how many there are in all. Running and not-started branches are not in it:
// they depend on timing, and a rule must decide the same way on a resumed run.
type Tally struct {
	Succeeded int
	Failed    int
	Total     int
}

// Verdict is a [CompleteWhen] rule's answer.
type Verdict int

const (
	VerdictContinue Verdict = iota // not decided: go on
	VerdictMet                     // complete the batch: ReasonRuleMet
	VerdictFailed                  // complete the batch: ReasonRuleFailed
)

// rule is a completion policy resolved against a batch of total branches.
type rule struct {
	maxFailures int          // failures beyond this exceed the tolerance; -1: unlimited
	minSuccess  int          // 0: none
	firstDone   bool         // Race: the first finished branch decides
	custom      []Completion // CompleteWhen rules, evaluated after the others
}

// decide evaluates the policy after a branch finished. err reports a custom
// rule that panicked or answered nonsense.
func (r *rule) decide(succeeded, failed, total int) (Reason, bool, error) {
	switch {
	case r.firstDone && succeeded+failed > 0:
		if failed > 0 {
			return ReasonFailureToleranceExceeded, true, nil
		}
		return ReasonMinSuccessfulReached, true, nil
	case r.maxFailures >= 0 && failed > r.maxFailures:
		return ReasonFailureToleranceExceeded, true, nil
	case r.minSuccess > 0 && succeeded >= r.minSuccess:
		return ReasonMinSuccessfulReached, true, nil
	}
	for _, c := range r.custom {
		switch v, err := c.call(Tally{Succeeded: succeeded, Failed: failed, Total: total}); {
		case err != nil:
			return 0, false, err
		case v == VerdictMet:
			return ReasonRuleMet, true, nil
		case v == VerdictFailed:
			return ReasonRuleFailed, true, nil
		}
	}
	if succeeded+failed == total {
		return ReasonAllCompleted, true, nil
	}
	return 0, false, nil
}

// call runs a CompleteWhen rule, turning a panic into an error.
func (c Completion) call(t Tally) (v Verdict, err error) {
	normal := false
	defer func() {
		if !normal {
			err = fmt.Errorf("durable: completion rule %q panicked: %w", c.name, &PanicError{Value: recover(), Stack: debug.Stack()})
		}
	}()
	v = c.fn(t)
	normal = true
	if v < VerdictContinue || v > VerdictFailed {
		return v, fmt.Errorf("durable: completion rule %q returned Verdict(%d)", c.name, int(v))
	}
	return v, nil
}

// isFailFast reports the all-successful rule of Parallel, FanOut and Group.
func (r *rule) isFailFast() bool {
	return r.maxFailures == 0 && r.minSuccess == 0 && !r.firstDone && len(r.custom) == 0
}

// String describes the rule; the description is journaled in the head of a
// combinator, and compared on resume.
func (r rule) String() string {
	if r.firstDone {
		return "first to finish"
	}
	var parts []string
	if r.minSuccess > 0 {
		parts = append(parts, "min successful "+strconv.Itoa(r.minSuccess))
	}
	if r.maxFailures >= 0 {
		parts = append(parts, "tolerated failures "+strconv.Itoa(r.maxFailures))
	}
	for _, c := range r.custom {
		parts = append(parts, "rule "+strconv.Quote(c.name))
	}
	if len(parts) == 0 {
		return "all completed"
	}
	return strings.Join(parts, ", ")
}

var (
	failFast  = rule{maxFailures: 0}
	settleAll = rule{maxFailures: -1}
)

// settleRule resolves completions for a batch of total branches.
func settleRule(cs []Completion, total int) (rule, error) {
	r := settleAll
	for _, c := range cs {
		switch c.kind {
		case completeAll:
		case completeMin:
			if c.n < 1 {
				return r, fmt.Errorf("durable: MinSuccessful(%d): must be at least 1", c.n)
			}
			if r.minSuccess == 0 || c.n < r.minSuccess {
				r.minSuccess = c.n
			}
		case completeTolerated:
			if c.n < 0 {
				return r, fmt.Errorf("durable: ToleratedFailures(%d): must not be negative", c.n)
			}
			r.maxFailures = tighter(r.maxFailures, c.n)
		case completeRatio:
			m, err := ratioLimit(c.ratio, total)
			if err != nil {
				return r, err
			}
			r.maxFailures = tighter(r.maxFailures, m)
		case completeRule:
			if c.name == "" || c.fn == nil {
				return r, fmt.Errorf("durable: CompleteWhen(%q, %p): needs a name and a rule", c.name, c.fn)
			}
			r.custom = append(r.custom, c)
		default:
			return r, errors.New("durable: zero Completion: build one with AllCompleted, MinSuccessful, ...")
		}
	}
	return r, nil
}

func tighter(cur, n int) int {
	if cur < 0 || n < cur {
		return n
	}
	return cur
}

// ratioLimit is the largest failure count whose share of total does not exceed r,
// computed exactly on r's shortest decimal form.
func ratioLimit(r float64, total int) (int, error) {
	if !(r >= 0 && r <= 1) { // also rejects NaN
		return 0, fmt.Errorf("durable: ToleratedFailureRatio(%v): must be within [0, 1]", r)
	}
	q, ok := new(big.Rat).SetString(strconv.FormatFloat(r, 'g', -1, 64))
	if !ok {
		return 0, fmt.Errorf("durable: ToleratedFailureRatio(%v): not a number", r)
	}
	// floor(r * total)
	n := new(big.Int).Mul(q.Num(), big.NewInt(int64(total)))
	n.Quo(n, q.Denom())
	return int(n.Int64()), nil
}
