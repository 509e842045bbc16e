package durable_test

// Deterministic simulation, in the spirit of FoundationDB's: random programs
// (simulation_gen_test.go) of nested combinators and Step.Runs run on the fake
// clock of testing/synctest, crash-free and then cut at every journal write and at
// the interesting instants, resumed until done, and checked against the promise
// of DESIGN.md: a resumed execution returns what the crash-free run would have
// returned, and nothing committed runs twice.
//
// # How a run is made faithful
//
// Every run of a program — the crash-free run, a cut one, a resume — is its own
// synctest bubble, so each starts at the same fake instant: a resume follows its
// crash with no downtime, and a journaled start time (WithTimeout) means the same
// instants in every run. Leaves, timeouts, backoffs and step timeouts take
// distinct powers of two of a unit, each with a random part of its own (see
// simClock), so nothing the program waits for happens at the same instant as
// anything else, and the crash-free run is deterministic (it is run twice; a
// program whose two runs differ would be drawn again).
//
// Replayed work takes no time, which would let a resumed run see things in
// another order than the crash-free run did, for reasons of timing alone. So the
// crash-free run is the plan: in every later run, each call, branch and leaf
// begins at the instant it began in the crash-free run, waiting if it comes
// sooner (whatever its context says: the wait stands for the work replayed), a
// leaf ends when it ended then, and a call returns when it returned then. Two
// exceptions, so that journaled deadlines are tested: a combinator whose head was
// journaled when the run began is called at once, and the call before it returns
// at once; its branches keep to the plan. A branch that never began in the
// crash-free run — dispatched sooner because restored siblings freed their slots
// under a cap — waits until its context ends and returns that context's error,
// as if it were still running (the simulation's choice of timing); only if the
// run has come apart from the plan does it wait past everything planned and go
// on, which is a deviation. A resumed run is then the crash-free run with some
// work replayed: its results are compared with the crash-free run's, exactly,
// except where the contract lets them differ (below).
//
// Functions may run under WithRetry and WithStepTimeout, given to NewStep or to
// a combinator. Each attempt of such a function is an invocation of its own,
// numbered by the engine's count (the failed attempts the journal holds, under
// "<key>/!a<n>"), and so is everything inside it: the plan is kept per
// invocation (simAt), the same in every run of a sequence. A flaky leaf of a
// retried function fails its first k attempts. A step timeout counts from when
// the engine calls an attempt, which waiting for the plan inside it cannot
// delay: so step timeouts go only to functions that run nothing nested, whose
// leaves never ignore their context, in combinators without a cap that are
// never called early; and a combinator's step timeout only to one with a single
// branch slower than it, since its branches start together.
//
// # Cuts
//
// A crash is a cut: every Put from the k-th on fails (k over every write of the
// crash-free run); or the caller's context ends at instant t (just after some of
// the instants at which something began or ended, or a deadline passed); or the
// g-th Get fails, and every later Put with it — a Get failure ends the process,
// or else a branch that turned the journal's error into its own failure could
// carry it into a Settle's journaled decision, which the contract allows; or a
// single write fails, of a top-level call's own — a step's outcome, a combinator's
// head, a branch's outcome, a decision — whose failure that call alone sees, so
// that later writes are stored (the outcomes of branches that ignored their
// context) and a batch's journaled outcomes may have gaps. After a cut the
// execution is resumed in a fresh scope (WithJournal, same journal, same
// execution ID), cut again now and then, until a run without faults ends it.
//
// # Two workers
//
// Each program is also run by two workers at once — two calls of the whole
// program in one bubble, each with WithJournal on the same journal and the
// same execution ID, both keeping to the plan — on a fresh journal, and to
// resume a run cut at a random write. Each worker's run is checked as the last
// run of its sequence, and the two must see the same decision of every Settle,
// SettleEach, Race and Any (doc.go: "several workers running one execution at
// once all see the value whose write won, and the same decision of a Settle,
// Race or Any"). An attempt is numbered by what the journal held before the
// instant the worker calls it: the other worker's twin attempt may have
// failed, and been journaled, at that same instant.
//
// # What is checked
//
//   - No leaf function (a branch's, or a Step.Run's Fn) runs in a run that began
//     with its key in the journal, nor after its key was journaled in the run
//     (by an earlier attempt of a function around it), no attempt of it runs
//     twice in one run, and no branch of a Settle, SettleEach, Race or Any runs
//     in a run that began with its decision journaled.
//   - In a run without faults, every function that returned a success or a
//     Permanent failure, or whose attempts ran out, has its outcome stored, and
//     every failed attempt that is retried has its record stored.
//   - A retried function runs attempt n only while the journal holds n-1 failed
//     attempts and n is at most MaxAttempts; across a sequence it runs at most
//     MaxAttempts attempts, plus one for each attempt cut short (see
//     checkAttempts); an attempt after the first never begins before it began in
//     the crash-free run (a resumed run waits the rest of the backoff); and no
//     attempt outlives its step timeout with its context alive.
//   - Some calls name a codec with WithCodec, of two of the simulation's own
//     (simText, and codec_test.go's gobCodec), the same in every run of a sequence: every success the
//     journal holds records the codec its function runs with — its step's own,
//     else its combinator's, else the one in scope (codec.go: "given to a
//     combinator, to each of its branches, and to everything run inside them,
//     unless they name a codec of their own") — and the values it decodes
//     compare as below.
//   - A combinator returns only once all its branch functions have returned, and
//     a run leaves no goroutine running the engine's code or a branch (the stacks
//     are compared; synctest.Test waits for the bubble, TestMain runs goleak).
//   - A Settle, SettleEach, Race or Any that returned a result returns that same
//     result in every run of the sequence that returns one (a journaled decision
//     is final), and the Replayed flag of each item says whether its function ran.
//   - The first result each Settle, SettleEach, Race and Any returned in the
//     sequence, and the last run's results — of every call, nested ones included
//     unless a branch around them returned with its context ended in either run
//     — equal the crash-free run's; in the last run, nothing began or returned
//     later than in the crash-free run, and nothing began that did not begin
//     then, except a branch that waited for its context to end.
//
// # Allowed differences
//
// Each is accepted exactly where stated, and nowhere else.
//
//   - (a) DESIGN.md, "Checkpoints and replay": "a failure is not final: it runs
//     again, unless it was wrapped with `Permanent`". Plain failures fail on every
//     run, except a flaky leaf's, which fails only in the first run of a
//     sequence. When a flaky leaf ran again in a later run and succeeded, its
//     top-level call may differ.
//   - (b) DESIGN.md: "a completed Settle, Race or Any is final: its decision ... is
//     journaled" (doc.go: "A completed Settle, SettleEach, Race or Any is final"), and "when a resumed run restores branches that finished before
//     the crash, it counts them in their original completion order, so a policy
//     reaches the same decision it would have reached then" — with engine.go's
//     "Outcomes that are not journaled (plain failures, journal errors) are counted
//     at once: no resumed run will see them." A decision that was not journaled,
//     made by a run that began with some of the batch's branches journaled, counts
//     the restored outcomes before the plain failures that the crash-free run
//     counted among them have run again, so it may be reached sooner: its reason,
//     its successes (values included) and its Permanent failures are the crash-free
//     run's, and every failure it reports is one the crash-free run reported, but a
//     branch that failed plainly, was Cancelled or was NotStarted in the crash-free
//     run may be Cancelled or NotStarted instead. The same holds for a call that
//     began with some of its branches journaled by an earlier attempt of a
//     function around it, in the same run: doc.go, "Each attempt runs in a scope
//     of its own under the step's key, so steps it runs replay what an earlier
//     attempt journaled." Only Settle and SettleEach show
//     statuses: Race's winner and Any's value and errors are compared exactly, and
//     a nested Settle's or SettleEach's result goes into its branch's value as its
//     reason and successes.
//   - (c) DESIGN.md: "a journaled success is returned without running Fn" — only a
//     journaled one: a branch or step that was running when the process died, or
//     whose checkpoint failed, runs again. Runs are counted only against the keys
//     the journal held when a run began.
//   - (d) DESIGN.md: "a combinator that returned an error is not final: the next
//     run replays its journaled successes and re-runs the rest", and WithTimeout's
//     "A branch that ignores its context and succeeds after the deadline is not
//     counted by that call, but its checkpoint is stored; a later run of a
//     combinator that returned an error restores it like any other success" (Go's:
//     "a journaled success is the Future's value whatever became of the group"). A
//     branch that returned an outcome the journal keeps after its context ended
//     was not counted by the run that ran it; when a later run restored it and its
//     combinator returned there what it did not in the crash-free run, its
//     top-level call may differ. Not for a Settle's or SettleEach's branch that
//     finished after its batch's own deadline: "Branch records carry when the branch finished, so
//     that a resumed run counts only what finished before a journaled deadline"
//     (DESIGN.md, "Records are checked").
//   - A top-level call that (a) or (d) excuses and that ran late in some run made
//     the later ones begin late: they may differ too. Top-level calls share no
//     values, only the clock.
//   - (e) DESIGN.md: a permanent failure is "journaled and replayed as the same
//     failure (its message and type name survive; `errors.Is` against the original
//     sentinel is not required)". Errors are compared by message and IsPermanent,
//     and by the outermost *BranchError's name and index and errors.Is(ErrTimeout)
//     only for a call's own error, never for what a journaled failure wraps.
//   - (f) DESIGN.md, "Retries are durable": "a step never runs more than
//     MaxAttempts attempts across crashes, beyond the one attempt that may have
//     been running when a process died". An attempt whose outcome the journal
//     does not hold afterwards — cut short by a crash, by a failed write of its
//     record, or by its context ending (retry.go: an attempt that fails once the
//     step's context has ended is not retried, and nothing of it is journaled)
//     — may run again, under the same number: each adds one to the attempts a
//     function may run in a sequence. Its outcome is the same: flaky leaves fail
//     by attempt number.
//   - (g) doc.go: "Workers running one execution at once may both run a branch
//     (its first write wins)". With two workers, a function may run after the
//     other worker journaled its outcome in the same run.
//   - Item.Replayed differs by design.
//
// # Size
//
// DURABLE_SIM_PROGRAMS=N runs N programs (default simPrograms, a fifth of them
// with -short), seeds DURABLE_SIM_BASE+1 on (default 0). DURABLE_SIM_SEED=s runs
// the program of seed s alone and logs it, with every cut. DURABLE_SIM_TIMECUTS=n
// samples n cuts by time a program (default 8). A failure prints the seed, the
// program, the runs of the failing cut and what differs.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/durable-go/durable"
	jrecord "github.com/durable-go/durable/internal/record"
	"github.com/durable-go/durable/journal"
)

const (
	simExecution = "sim"
	simPrograms  = 500
)

var (
	errSimCrash   = errors.New("sim: the process died")
	errSimJournal = errors.New("sim: journal unavailable")
)

// simError is a leaf's own failure.
type simError struct {
	leaf  int
	flaky bool
}

func (e simError) Error() string {
	if e.flaky {
		return "leaf#" + strconv.Itoa(e.leaf) + " failed (flaky)"
	}
	return "leaf#" + strconv.Itoa(e.leaf) + " failed"
}

// --- the journal ---

// simFault is what goes wrong in one run.
type simFault struct {
	put int           // the run's Puts from the put-th on fail (1-based); 0: none
	get int           // the run's get-th Get or Scan fails, and every Put after it; 0: none
	at  time.Duration // the caller's context ends at this instant; 0: never
	key string        // the Put of this key alone fails: a top-level call's own
}

func (f simFault) String() string {
	switch {
	case f.put > 0:
		return "puts fail from #" + strconv.Itoa(f.put)
	case f.get > 0:
		return "get #" + strconv.Itoa(f.get) + " fails"
	case f.at > 0:
		return "context ends at " + simDur(f.at)
	case f.key != "":
		return "the put of " + f.key + " fails"
	}
	return "no fault"
}

// simJournal wraps the journal of one sequence of runs: it injects the run's
// fault, counts the calls, and remembers every key stored.
type simJournal struct {
	inner journal.Journal

	mu     sync.Mutex
	fault  simFault
	puts   int
	gets   int
	again  int  // Puts of a key already stored: another worker's write won
	dead   bool // a Get failed: every later Put fails
	stored map[string]bool
	when   map[string]time.Time // when each key was stored, on its run's fake clock
}

func newSimJournal(scan bool) *simJournal {
	j := &simJournal{inner: journal.NewMemory(), stored: make(map[string]bool), when: make(map[string]time.Time)}
	if scan {
		j.inner = newScanMemory()
	}
	return j
}

// arm sets the fault of the next run, and resets the counts.
func (j *simJournal) arm(f simFault) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.fault, j.puts, j.gets, j.dead = f, 0, 0, false
}

func (j *simJournal) counts() (puts, gets int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.puts, j.gets
}

func (j *simJournal) snapshot() map[string]bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return maps.Clone(j.stored)
}

// holds reports whether key is in the journal now, and how many failed
// attempts of the function with key key it holds: the engine's count, in a
// run that began with the keys in before. A failed attempt is journaled before
// the backoff that follows it, so the engine's count leaves out what was
// written at this very instant: the record of another worker's attempt that
// failed at once, whose twin this worker is about to run.
func (j *simJournal) holds(key string, before map[string]bool) (stored bool, attempts int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	now := time.Now()
	for {
		k := simAttemptKey(key, attempts+1)
		if !before[k] && !(j.stored[k] && j.when[k].Before(now)) {
			break
		}
		attempts++
	}
	return j.stored[key], attempts
}

// simAttemptKey is the key of failed attempt n of the function with key key.
func simAttemptKey(key string, n int) string { return key + "/!a" + strconv.Itoa(n) }

func (j *simJournal) view() journal.Journal {
	if s, ok := j.inner.(journal.Scanner); ok {
		return simScanView{simView{j}, s}
	}
	return simView{j}
}

func (j *simJournal) getFails() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.gets++
	if j.gets == j.fault.get {
		j.dead = true
		return true
	}
	return false
}

type simView struct{ j *simJournal }

func (v simView) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if v.j.getFails() {
		return nil, false, errSimJournal
	}
	return v.j.inner.Get(ctx, key)
}

func (v simView) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	j := v.j
	j.mu.Lock()
	j.puts++
	fail := j.dead || j.fault.put > 0 && j.puts >= j.fault.put || key == j.fault.key
	j.mu.Unlock()
	if fail {
		return nil, errSimJournal
	}
	stored, err := j.inner.Put(ctx, key, value)
	if err == nil {
		j.mu.Lock()
		if j.stored[key] {
			j.again++
		}
		if !j.stored[key] {
			j.stored[key], j.when[key] = true, time.Now()
		}
		j.mu.Unlock()
	}
	return stored, err
}

type simScanView struct {
	simView
	s journal.Scanner
}

func (v simScanView) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	if v.j.getFails() {
		return errSimJournal
	}
	return v.s.Scan(ctx, prefix, fn)
}

// --- codecs ---

// simText is a codec of the simulation's own: the values its calls return,
// written as tagged text.
type simText struct{}

func (simText) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case int:
		return strconv.AppendInt([]byte("i"), int64(v), 10), nil
	case string:
		return strconv.AppendQuote([]byte("s"), v), nil
	case simValue:
		return strconv.AppendQuote(strconv.AppendInt([]byte("v"), int64(v.N), 10), v.S), nil
	case []string:
		b := strconv.AppendInt([]byte("l"), int64(len(v)), 10)
		for _, s := range v {
			b = strconv.AppendQuote(b, s)
		}
		return b, nil
	}
	return nil, fmt.Errorf("simText: cannot encode a %T", v)
}

func (simText) Unmarshal(data []byte, v any) error {
	if len(data) == 0 {
		return errors.New("simText: no data")
	}
	tag, rest := data[0], string(data[1:])
	// quoted reads the quoted strings that follow a number.
	quoted := func(n int) (int, []string, error) {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			return 0, nil, errors.New("simText: no string")
		}
		num, err := strconv.Atoi(rest[:i])
		if err != nil {
			return 0, nil, err
		}
		if n < 0 {
			n = num
		}
		var ss []string
		for q := rest[i:]; len(ss) < n; {
			p, err := strconv.QuotedPrefix(q)
			if err != nil {
				return 0, nil, err
			}
			s, _ := strconv.Unquote(p)
			ss, q = append(ss, s), q[len(p):]
		}
		return num, ss, nil
	}
	switch p := v.(type) {
	case *int:
		if tag == 'i' {
			n, err := strconv.Atoi(rest)
			*p = n
			return err
		}
	case *string:
		if tag == 's' {
			s, err := strconv.Unquote(rest)
			*p = s
			return err
		}
	case *simValue:
		if tag == 'v' {
			n, ss, err := quoted(1)
			*p = simValue{S: ss[0], N: n}
			return err
		}
	case *[]string:
		if tag == 'l' {
			_, ss, err := quoted(-1)
			*p = ss
			return err
		}
	}
	return fmt.Errorf("simText: cannot decode %q into a %T", data, v)
}

func (c simCodec) codec() durable.Codec {
	switch c {
	case simTextCodec:
		return simText{}
	case simGobCodec:
		return gobCodec{} // codec_test.go's
	}
	return nil
}

// name is what a success record says of the codec: its Go type (codec.go's
// WithCodec), "" for encoding/json.
func (c simCodec) name() string {
	if c == simNoCodec {
		return ""
	}
	return fmt.Sprintf("%T", c.codec())
}

// checkCodecs checks that every success the journal holds was written with the
// codec its function runs with.
func (j *simJournal) checkCodecs(p *simProg) []string {
	var out []string
	for _, f := range p.funcs {
		b, ok, err := j.inner.Get(context.Background(), f.key)
		if err != nil || !ok {
			continue
		}
		rec, err := jrecord.Decode(f.key, b)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s: %v", f.key, err))
		case rec.Kind == jrecord.KindSuccess && rec.Codec != f.codec.name():
			out = append(out, fmt.Sprintf("%s was written with codec %q, not %q", f.key, rec.Codec, f.codec.name()))
		}
	}
	return out
}

// --- results ---

// simResult is what a call returned, in a form that compares across runs.
type simResult struct {
	Err     *simErr
	Value   string
	Reason  durable.Reason
	Items   []simItem
	Futures []simFuture
}

// simErr is an error as compared across runs: see (e) above.
type simErr struct {
	Msg     string
	Perm    bool
	Timeout bool   // the call's own ErrTimeout, outside any *BranchError
	Branch  string // the outermost *BranchError, "name@index"
}

type simItem struct {
	Status   durable.Status
	Value    string
	Err      *simErr
	Replayed bool
}

type simFuture struct {
	Value string
	Err   *simErr
}

// simErrOf describes err; own: err is a call's own error, not a journaled one.
func simErrOf(err error, own bool) *simErr {
	if err == nil {
		return nil
	}
	e := &simErr{Msg: err.Error(), Perm: durable.IsPermanent(err)}
	if own {
		e.Timeout = simOwnTimeout(err)
		var be *durable.BranchError
		if errors.As(err, &be) {
			e.Branch = be.Name + "@" + strconv.Itoa(be.Index)
		}
	}
	return e
}

// simOwnTimeout reports whether err is, or wraps outside any *BranchError,
// ErrTimeout.
func simOwnTimeout(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := err.(*durable.BranchError); ok {
		return false
	}
	if err == durable.ErrTimeout {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		return slices.ContainsFunc(u.Unwrap(), simOwnTimeout)
	case interface{ Unwrap() error }:
		return simOwnTimeout(u.Unwrap())
	}
	return false
}

func (e *simErr) String() string {
	if e == nil {
		return "<nil>"
	}
	s := strconv.Quote(e.Msg)
	if e.Perm {
		s += " permanent"
	}
	if e.Timeout {
		s += " timeout"
	}
	if e.Branch != "" {
		s += " branch=" + e.Branch
	}
	return s
}

func (r simResult) String() string {
	var sb strings.Builder
	if r.Err != nil {
		sb.WriteString("error " + r.Err.String())
	}
	sb.WriteString(r.Value)
	if r.Reason != 0 {
		fmt.Fprintf(&sb, "%v", r.Reason)
		for i, it := range r.Items {
			fmt.Fprintf(&sb, "\n      %d %v", i, it.Status)
			switch it.Status {
			case durable.StatusSucceeded:
				fmt.Fprintf(&sb, " %q", it.Value)
			case durable.StatusFailed:
				fmt.Fprintf(&sb, " %v", it.Err)
			}
			if it.Replayed {
				sb.WriteString(" (replayed)")
			}
		}
	}
	for i, f := range r.Futures {
		fmt.Fprintf(&sb, "\n      future %d: %q %v", i, f.Value, f.Err)
	}
	return sb.String()
}

func simErrEqual(a, b *simErr) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// simSame compares two results, without the Replayed flags.
func simSame(a, b simResult) bool {
	if !simErrEqual(a.Err, b.Err) || a.Value != b.Value || a.Reason != b.Reason ||
		len(a.Items) != len(b.Items) || len(a.Futures) != len(b.Futures) {
		return false
	}
	for i := range a.Items {
		x, y := a.Items[i], b.Items[i]
		if x.Status != y.Status || x.Value != y.Value || !simErrEqual(x.Err, y.Err) {
			return false
		}
	}
	for i := range a.Futures {
		if a.Futures[i].Value != b.Futures[i].Value || !simErrEqual(a.Futures[i].Err, b.Futures[i].Err) {
			return false
		}
	}
	return true
}

// simSameDecision compares a Settle's result in the crash-free run, want, with
// one decided by a run that restored some of its branches: allowed difference (b).
func simSameDecision(want, got simResult) bool {
	if want.Err != nil || got.Err != nil || want.Reason != got.Reason || len(want.Items) != len(got.Items) {
		return false
	}
	for i := range want.Items {
		w, g := want.Items[i], got.Items[i]
		switch {
		case w.Status == durable.StatusSucceeded || g.Status == durable.StatusSucceeded:
			if w.Status != g.Status || w.Value != g.Value {
				return false
			}
		case w.Status == durable.StatusFailed && w.Err.Perm, g.Status == durable.StatusFailed:
			if w.Status != g.Status || !simErrEqual(w.Err, g.Err) {
				return false
			}
		}
	}
	return true
}

// --- a run ---

// simAt is one invocation of a node: its id, and path, the attempt numbers of
// the functions run under a policy around it, outermost first: "" outside
// them, "2" in attempt 2 of one, "2.1" in attempt 1 of one inside that.
// Attempt numbers are the engine's, read from the journal, so that an
// invocation is the same in every run of a sequence.
type simAt struct {
	id   int
	path string
}

func (a simAt) String() string {
	if a.path == "" {
		return "#" + strconv.Itoa(a.id)
	}
	return "#" + strconv.Itoa(a.id) + "@" + a.path
}

func simAtLess(a, b simAt) int {
	if a.id != b.id {
		return a.id - b.id
	}
	return strings.Compare(a.path, b.path)
}

// simOuter is the path a function's attempt was called in: path without the
// attempt's number.
func simOuter(path string) string {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return ""
	}
	return path[:i]
}

type simCtxKey struct{}

// simCtx is what a node's context says of the invocation it is in.
type simCtx struct {
	path    string
	attempt int // of the function whose body the node is in; 0 outside any
}

func simCtxOf(ctx context.Context) simCtx {
	c, _ := ctx.Value(simCtxKey{}).(simCtx)
	return c
}

// simAttempt is one invocation of a function: attempt n.
type simAttempt struct {
	f     *simFunc
	at    simAt  // the invocation of its body: its path ends with n when f.on
	outer string // the path it was called in
	n     int
	start time.Duration // when the engine called it
	ended bool          // it returned or panicked with its context ended, not by its own step timeout
	timed bool          // its own step timeout passed
	keep  string        // the key of the record its outcome leaves in the journal; "" for none
}

// simRun is one run of a program: one process's attempt at the execution.
type simRun struct {
	p      *simProg
	plan   *simRun // the crash-free run, whose instants this run keeps; nil in the first
	index  int     // the run's number in its sequence: flaky leaves fail in run 0
	others bool    // other workers run the execution at the same time
	j      *simJournal
	stored map[string]bool // the keys in the journal when the run began
	after  map[string]bool // the keys in the journal when it ended
	puts   int
	gets   int
	t0     time.Time

	mu         sync.Mutex
	begin      map[simAt]time.Duration // node → instant it began
	ended      map[simAt]time.Duration // call → instant it returned
	ran        map[simAt]int           // function → runs
	runs       map[int]int             // function id → runs, in any invocation
	ranIn      map[simAt]bool          // branch id, and the path its combinator was called in → its function ran
	results    map[simAt]simResult     // call → result
	active     map[simAt]int           // combinator → its branch functions running
	cancelled  map[simAt]bool          // branch → returned with its context ended
	restored   map[simAt]bool          // combinator → some of its branches were in the journal when it was called
	attempts   []*simAttempt           // every invocation of a function
	late       []simLate               // returned a journaled outcome after its context ended
	kept       []string                // keys of the records of outcomes (and failed attempts) the journal keeps
	healed     []*simLeaf              // flaky leaves that ran to their outcome in a run after the first
	deviations []simNote
	problems   []string
}

// simLate is a branch that returned an outcome the journal keeps after its
// context ended, when, and the path its combinator was called in.
type simLate struct {
	b    *simBranch
	at   time.Duration
	path string
}

type simNote struct {
	top  int
	what string
}

func newSimRun(p *simProg, plan *simRun, index int, j *simJournal) *simRun {
	return &simRun{
		p: p, plan: plan, index: index, j: j, stored: j.snapshot(),
		begin: make(map[simAt]time.Duration), ended: make(map[simAt]time.Duration), ran: make(map[simAt]int), runs: make(map[int]int),
		ranIn: make(map[simAt]bool), results: make(map[simAt]simResult), active: make(map[simAt]int), cancelled: make(map[simAt]bool),
		restored: make(map[simAt]bool),
	}
}

func (r *simRun) now() time.Duration { return time.Since(r.t0) }

func (r *simRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *simRun) deviate(top int, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deviations = append(r.deviations, simNote{top, fmt.Sprintf(format, args...)})
}

// arrive is where node id begins: see "How a run is made faithful". The wait for
// the planned instant ignores ctx: it stands for the work that was replayed.
func (r *simRun) arrive(ctx context.Context, id, top int) error {
	node := simAt{id, simCtxOf(ctx).path}
	if r.plan != nil {
		at, ok := r.plan.begin[node]
		now := r.now()
		switch {
		case !ok:
			timer := time.NewTimer(max(r.p.big-now, 1))
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
			}
			r.deviate(top, "node %v began, but never did in the crash-free run", node)
		case now < at:
			time.Sleep(at - now)
		case now > at:
			r.deviate(top, "node %v began at %s, in the crash-free run at %s", node, simDur(now), simDur(at))
		}
	}
	r.mu.Lock()
	r.begin[node] = r.now()
	r.mu.Unlock()
	return nil
}

// enter counts an invocation of function f, the engine's attempt of it, and
// returns the context its body runs with.
func (r *simRun) enter(ctx context.Context, f *simFunc) (context.Context, *simAttempt) {
	sc := simCtxOf(ctx)
	a := &simAttempt{f: f, at: simAt{f.id, sc.path}, outer: sc.path, n: 1, start: r.now()}
	journaled, failed := r.j.holds(f.key, r.stored)
	if f.retried() {
		a.n = failed + 1
	}
	if f.on {
		a.at.path = strings.TrimPrefix(sc.path+"."+strconv.Itoa(a.n), ".")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts = append(r.attempts, a)
	r.ran[a.at]++
	r.runs[f.id]++
	switch {
	case r.ran[a.at] > 1:
		r.problems = append(r.problems, fmt.Sprintf("function %v (%s) ran twice", a.at, f.key))
	case r.stored[f.key]:
		r.problems = append(r.problems, fmt.Sprintf("function %v ran, though %s was journaled when the run began", a.at, f.key))
	case journaled && !r.others:
		// Not with other workers: doc.go, "Workers running one execution at
		// once may both run a branch (its first write wins)".
		r.problems = append(r.problems, fmt.Sprintf("function %v ran, though %s was journaled earlier in the run", a.at, f.key))
	case a.n > f.max:
		r.problems = append(r.problems, fmt.Sprintf("function %v ran attempt %d, of MaxAttempts %d", a.at, a.n, f.max))
	}
	if f.call != nil {
		r.active[simAt{f.call.id, a.outer}]++
		r.ranIn[simAt{f.id, a.outer}] = true
	}
	return context.WithValue(ctx, simCtxKey{}, simCtx{a.at.path, a.n}), a
}

// exit records what the engine makes of attempt a, which returned err, or
// panicked if not normal: whether it is final, retried or cut short, and the
// record it leaves in the journal (retry.go's runAttemptsFrom and attempt).
func (r *simRun) exit(ctx context.Context, a *simAttempt, err error, normal bool) {
	f := a.f
	now := r.now()
	// A leaf under a step timeout never ignores its context, and nothing it
	// waits for happens at the instant its deadline passes: it returned at
	// its deadline if, and only if, the deadline is what ended it.
	a.timed = f.timeout > 0 && now >= a.start+f.timeout
	a.ended = !a.timed && ctx.Err() != nil
	final := normal && !a.timed && (err == nil || durable.IsPermanent(err))
	r.mu.Lock()
	defer r.mu.Unlock()
	if f.call != nil {
		r.active[simAt{f.call.id, a.outer}]--
	}
	if a.timed && ctx.Err() == nil {
		// DESIGN.md: "WithStepTimeout(d) gives each attempt its own deadline".
		r.problems = append(r.problems, fmt.Sprintf("function %v ran past its step timeout of %s with its context alive", a.at, simDur(f.timeout)))
	}
	switch {
	case final:
		a.keep = f.key
	case a.ended: // not retried, not journaled
	case f.retried() && a.n < f.max:
		a.keep = simAttemptKey(f.key, a.n)
	case f.retried():
		a.keep = f.key // the attempts ran out: final, as a Permanent failure
	}
	if a.keep != "" {
		r.kept = append(r.kept, a.keep)
	}
	if normal && f.branch != nil && ctx.Err() != nil {
		r.cancelled[a.at] = true
		// Allowed difference (d): an outcome that the journal keeps, returned
		// after the batch stopped counting.
		if final && a.ended {
			r.late = append(r.late, simLate{f.branch, now, a.outer})
		}
	}
}

// leaf waits its time and returns its outcome.
func (r *simRun) leaf(ctx context.Context, l *simLeaf) (string, error) {
	if err := r.arrive(ctx, l.id, l.top); err != nil {
		return "", err
	}
	sc := simCtxOf(ctx)
	r.mu.Lock()
	end := r.begin[simAt{l.id, sc.path}] + l.d
	r.mu.Unlock()
	if l.stubborn {
		time.Sleep(end - r.now())
	} else if err := pause(ctx, end-r.now()); err != nil {
		return "", err
	}
	switch l.out {
	case simFail:
		return "", simError{leaf: l.id}
	case simPermanent:
		return "", durable.Permanent(simError{leaf: l.id})
	case simPanic:
		panic(fmt.Sprintf("leaf#%d panics", l.id))
	case simFlaky:
		if r.index == 0 {
			return "", simError{leaf: l.id, flaky: true}
		}
		r.mu.Lock()
		r.healed = append(r.healed, l)
		r.mu.Unlock()
	case simFlakyK:
		if sc.attempt <= l.k {
			return "", simError{leaf: l.id, flaky: true}
		}
	}
	return "L" + strconv.Itoa(l.id), nil
}

// call makes call c and records its result; it returns what a branch makes its
// value of, or the call's error. early: see "How a run is made faithful".
func (r *simRun) call(ctx context.Context, c *simCall, early bool) (string, error) {
	at := simAt{c.id, simCtxOf(ctx).path}
	if r.callsEarly(c) {
		// A combinator whose head is journaled is called at once, without
		// waiting for the planned instant: its deadline is the journaled one,
		// and its branches keep to the plan.
		r.mu.Lock()
		r.begin[at] = r.now()
		r.mu.Unlock()
	} else if err := r.arrive(ctx, c.id, c.top); err != nil {
		return "", err
	}
	if c.kind != simStep {
		restored := slices.ContainsFunc(c.branches, func(b *simBranch) bool {
			stored, _ := r.j.holds(b.key, r.stored)
			return stored
		})
		r.mu.Lock()
		r.restored[at] = restored
		r.mu.Unlock()
	}
	var res simResult
	var digest string
	var err error
	switch c.typ {
	case simInt:
		res, digest, err = simInvoke[int](r, ctx, c)
	case simString:
		res, digest, err = simInvoke[string](r, ctx, c)
	case simStruct:
		res, digest, err = simInvoke[simValue](r, ctx, c)
	case simSlice:
		res, digest, err = simInvoke[[]string](r, ctx, c)
	}
	if r.plan != nil {
		// A call returns when it did in the crash-free run: what it replayed
		// took the time it took then. But a call followed by a combinator
		// whose head is journaled returns at once, so that the combinator is
		// called sooner than it first was, and keeps its journaled deadline.
		if end, ok := r.plan.ended[at]; ok {
			if now := r.now(); now < end && !(early && err == nil) {
				time.Sleep(end - now)
			} else if now > end {
				r.deviate(c.top, "call %v returned at %s, in the crash-free run at %s", at, simDur(now), simDur(end))
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended[at] = r.now()
	r.results[at] = res
	if n := r.active[at]; n != 0 {
		r.problems = append(r.problems, fmt.Sprintf("%s %v returned with %d branch functions running", c.kind, at, n))
	}
	return digest, err
}

// callsEarly reports whether combinator c is called at once: its head was
// journaled when the run began, and none of its branches has a step timeout,
// whose deadline counts from when the branch is dispatched.
func (r *simRun) callsEarly(c *simCall) bool {
	return c.kind != simStep && r.stored[c.key+"/!h"] && !c.stepTimeouts()
}

// early reports whether calls[k] is followed by a combinator called at once.
func (r *simRun) early(calls []*simCall, k int) bool {
	return k+1 < len(calls) && r.callsEarly(calls[k+1])
}

// simMake makes a value of type T from s.
func simMake[T any](s string) T {
	var v any
	switch any(*new(T)).(type) {
	case int:
		h := fnv.New32a()
		h.Write([]byte(s))
		v = int(h.Sum32())
	case string:
		v = s
	case simValue:
		v = simValue{S: s, N: len(s)}
	case []string:
		v = []string{s, strconv.Itoa(len(s))}
	}
	return v.(T)
}

// simBranchFn is the function of branch b.
func simBranchFn[T any](r *simRun, b *simBranch) func(context.Context) (T, error) {
	return func(ctx context.Context) (v T, err error) {
		ctx, a := r.enter(ctx, b.fn)
		normal := false
		defer func() { r.exit(ctx, a, err, normal) }()
		v, err = simBranchBody[T](r, ctx, b)
		normal = true
		return v, err
	}
}

func simBranchBody[T any](r *simRun, ctx context.Context, b *simBranch) (T, error) {
	var zero T
	if err := r.arrive(ctx, b.id, b.top); err != nil {
		return zero, err
	}
	var parts []string
	for k, c := range b.body {
		d, err := r.call(ctx, c, r.early(b.body, k))
		if err != nil {
			return zero, fmt.Errorf("%s: %w", b.name, err)
		}
		parts = append(parts, d)
	}
	s, err := r.leaf(ctx, b.leaf)
	if err != nil {
		return zero, err
	}
	return simMake[T](b.name + "(" + strings.Join(append(parts, s), " ") + ")"), nil
}

func simValueResult(v any, err error) (simResult, string, error) {
	if err != nil {
		return simResult{Err: simErrOf(err, true)}, "", err
	}
	s := fmt.Sprint(v)
	return simResult{Value: s}, s, nil
}

// simBatchResult is the result of Settle or SettleEach c, called in path,
// which returned br, err.
func simBatchResult[T any](r *simRun, c *simCall, path string, br *durable.BatchResult[T], err error) (simResult, string, error) {
	if err != nil {
		return simResult{Err: simErrOf(err, true)}, "", err
	}
	res := simResult{Reason: br.Reason}
	// What a branch makes of a nested Settle: its reason and its successes,
	// which allowed difference (b) leaves as they were.
	digest := br.Reason.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, it := range br.Items {
		item := simItem{Status: it.Status, Replayed: it.Replayed}
		switch it.Status {
		case durable.StatusSucceeded:
			item.Value = fmt.Sprint(it.Value)
			digest += " " + strconv.Itoa(i) + "=" + item.Value
		case durable.StatusFailed:
			item.Err = simErrOf(it.Err, false)
		}
		if it.Status == durable.StatusSucceeded || it.Status == durable.StatusFailed {
			if ran := r.ranIn[simAt{c.branches[i].id, path}]; it.Replayed == ran {
				r.problems = append(r.problems, fmt.Sprintf("%s #%d item %d: Replayed=%v, but its function ran=%v", c.kind, c.id, i, it.Replayed, ran))
			}
		}
		res.Items = append(res.Items, item)
	}
	return res, digest, nil
}

// simOptions are the options of a codec, a retry policy (nil: none) and a
// step timeout (0: none).
func simOptions(codec simCodec, retry *simRetry, stepTimeout time.Duration) []durable.Option {
	var opts []durable.Option
	if codec != simNoCodec {
		opts = append(opts, durable.WithCodec(codec.codec()))
	}
	if retry != nil {
		opts = append(opts, durable.WithRetry(retry.policy()))
	}
	if stepTimeout > 0 {
		opts = append(opts, durable.WithStepTimeout(stepTimeout))
	}
	return opts
}

// simInvoke makes call c with values of type T.
func simInvoke[T any](r *simRun, ctx context.Context, c *simCall) (simResult, string, error) {
	if c.kind == simStep {
		v, err := durable.NewStep(c.name, func(ctx context.Context) (v T, err error) {
			ctx, a := r.enter(ctx, c.fn)
			normal := false
			defer func() { r.exit(ctx, a, err, normal) }()
			s, err := r.leaf(ctx, c.leaf)
			normal = true
			if err != nil {
				return v, err
			}
			return simMake[T](s), nil
		}, simOptions(c.codec, c.retry, c.stepTimeout)...).Run(ctx)
		return simValueResult(v, err)
	}
	opts := simOptions(c.codec, c.retry, c.stepTimeout)
	if c.limit > 0 {
		opts = append(opts, durable.WithMaxConcurrency(c.limit))
	}
	if c.timeout > 0 {
		opts = append(opts, durable.WithTimeout(c.timeout))
	}
	if len(c.policy) > 0 {
		var cs []durable.Completion
		for _, p := range c.policy {
			cs = append(cs, p.completion())
		}
		opts = append(opts, durable.WithCompletion(cs...))
	}
	fns := make([]func(context.Context) (T, error), len(c.branches))
	steps := make([]durable.Step[T], len(c.branches))
	for i, b := range c.branches {
		fns[i] = simBranchFn[T](r, b)
		steps[i] = durable.NewStep(b.name, fns[i], simOptions(b.codec, b.retry, b.stepTimeout)...)
	}
	// FanOut's and SettleEach's items are the branches' indexes.
	items := make([]int, len(c.branches))
	for i := range items {
		items[i] = i
	}
	itemFn := func(ctx context.Context, i int) (T, error) { return fns[i](ctx) }
	if c.kind.keyed() {
		opts = append(opts, durable.WithKey(func(i int) string { return c.branches[i].name }))
	}
	switch c.kind {
	case simParallel:
		vs, err := durable.Parallel(ctx, c.name, steps, opts...)
		return simValueResult(vs, err)
	case simNamed:
		m, err := durable.ParallelNamed(ctx, c.name, steps, opts...)
		return simValueResult(m, err) // fmt prints maps sorted by key
	case simFanOut, simFanKey:
		vs, err := durable.FanOut(ctx, c.name, items, itemFn, opts...)
		return simValueResult(vs, err)
	case simRace:
		v, err := durable.Race(ctx, c.name, steps, opts...)
		return simValueResult(v, err)
	case simAny:
		v, err := durable.Any(ctx, c.name, steps, opts...)
		return simValueResult(v, err)
	case simSettle:
		br, err := durable.Settle(ctx, c.name, steps, opts...)
		return simBatchResult(r, c, simCtxOf(ctx).path, br, err)
	case simEach, simEachKey:
		br, err := durable.SettleEach(ctx, c.name, items, itemFn, opts...)
		return simBatchResult(r, c, simCtxOf(ctx).path, br, err)
	case simGroup:
		g := durable.NewGroup(ctx, c.name, opts...)
		futs := make([]*durable.Future[T], len(c.branches))
		for i, b := range c.branches {
			futs[i] = durable.Go(g, b.name, fns[i])
		}
		werr := g.Wait()
		res := simResult{Err: simErrOf(werr, true)}
		var values []string
		for _, f := range futs {
			v, err := f.Get()
			sf := simFuture{Err: simErrOf(err, true)}
			if err == nil {
				sf.Value = fmt.Sprint(v)
				values = append(values, sf.Value)
			}
			res.Futures = append(res.Futures, sf)
		}
		return res, strings.Join(values, " "), werr
	}
	panic("unreachable")
}

// --- a program, crash-free and cut ---

// simCase is one program and its crash-free run.
type simCase struct {
	p        *simProg
	cf       *simRun // the crash-free run: the plan of every later run
	instants []time.Duration
	log      []string          // what the last sequence did, for a failure's report
	foreign  map[string]string // goroutines of other tests, by simGoroutines
	// Attempts in the cut sequences: after the first (retries), cut by their
	// step timeout, and resumed by a later run from the journal's count.
	retries, timed, resumed int
	again                   int // writes of two workers at once that lost to the other's
}

// run runs the program once against j, in a bubble of its own.
func (s *simCase) run(t *testing.T, j *simJournal, plan *simRun, index int, f simFault) *simRun {
	return s.runWorkers(t, j, plan, index, f, 1)[0]
}

// runWorkers runs the program as n workers at once against j, in a bubble of
// their own: each calls WithJournal with the same execution ID, and makes
// every top-level call. It returns the run of each.
func (s *simCase) runWorkers(t *testing.T, j *simJournal, plan *simRun, index int, f simFault, n int) []*simRun {
	rs := make([]*simRun, n)
	for w := range rs {
		rs[w] = newSimRun(s.p, plan, index, j)
		rs[w].others = n > 1
	}
	r := rs[0] // what concerns the bubble is reported by the first
	j.arm(f)
	defer func() {
		// A bubble whose goroutines are all blocked for good panics here.
		if v := recover(); v != nil {
			r.problem("%v", v)
		}
		puts, gets := j.counts()
		after := j.snapshot()
		for _, r := range rs {
			r.puts, r.gets, r.after = puts, gets, after
		}
		r.problems = append(r.problems, j.checkCodecs(s.p)...)
		j.arm(simFault{})
	}()
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		goroutines := runtime.NumGoroutine()
		ctx, cancel := context.WithCancelCause(context.Background())
		var timer *time.Timer
		if f.at > 0 {
			timer = time.AfterFunc(f.at, func() { cancel(errSimCrash) })
		}
		var wg sync.WaitGroup
		for _, r := range rs {
			r.t0 = t0
			wg.Go(func() {
				jctx := durable.WithJournal(ctx, j.view(), simExecution)
				for k, c := range s.p.calls {
					_, _ = r.call(jctx, c, r.early(s.p.calls, k))
				}
			})
		}
		wg.Wait()
		if timer != nil {
			timer.Stop()
		}
		cancel(nil)
		synctest.Wait()
		if runtime.NumGoroutine() <= goroutines {
			return // none left: no need to read every stack
		}
		for id, stack := range simGoroutines() {
			if _, ok := s.foreign[id]; !ok {
				r.problem("a goroutine is left when the program returned:\n%s", stack)
			}
		}
	})
	return rs
}

// simGoroutines returns the stacks, by goroutine header ("goroutine 7 [...]"
// without its state), of the goroutines other than the caller that run the
// engine's code or a branch function.
func simGoroutines() map[string]string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	gs := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i > 0 && (strings.Contains(g, "\ngithub.com/durable-go/durable.") || strings.Contains(g, "durable_test.simBranch")) {
			id, _, _ := strings.Cut(g, " [")
			gs[id] = g
		}
	}
	return gs
}

// prepare runs the program crash-free twice, and reports whether the two runs
// agree, instant by instant.
func (s *simCase) prepare(t *testing.T) (ok bool, why string) {
	s.cf = s.run(t, newSimJournal(s.p.scan), nil, 0, simFault{})
	for _, key := range s.cf.kept {
		if !s.cf.after[key] {
			s.cf.problems = append(s.cf.problems, key+" returned an outcome the journal keeps, but it was not stored")
		}
	}
	if len(s.cf.problems) == 0 { // else reported by the caller
		again := s.run(t, newSimJournal(s.p.scan), s.cf, 0, simFault{})
		switch {
		case len(again.deviations) > 0:
			return false, again.deviations[0].what
		case !maps.Equal(s.cf.begin, again.begin), !maps.Equal(s.cf.ended, again.ended):
			return false, "instants differ"
		case !maps.EqualFunc(s.cf.results, again.results, func(a, b simResult) bool { return simSame(a, b) }):
			return false, "results differ"
		}
	}
	set := map[time.Duration]bool{}
	for node, at := range s.cf.begin {
		set[at] = true
		if l := s.p.leaves[node.id]; l != nil {
			set[at+l.d] = true
		}
		if c := s.p.callsBy[node.id]; c != nil && c.timeout > 0 {
			set[at+c.timeout] = true
		}
	}
	for _, at := range s.cf.ended {
		set[at] = true
	}
	for _, a := range s.cf.attempts {
		set[a.start] = true
		if a.f.timeout > 0 {
			set[a.start+a.f.timeout] = true
		}
	}
	s.instants = slices.Sorted(maps.Keys(set))
	return true, ""
}

// sequence runs the program from cut first until a run without faults, and returns
// what its checks found.
func (s *simCase) sequence(t *testing.T, rng *rand.Rand, first simFault) ([]string, int) {
	j := newSimJournal(s.p.scan)
	var runs []*simRun
	s.log = s.log[:0]
	for f := first; ; {
		r := s.run(t, j, s.cf, len(runs), f)
		runs = append(runs, r)
		seen := map[*simFunc]bool{}
		for _, a := range r.attempts {
			if a.n > 1 {
				s.retries++
				if !seen[a.f] && len(runs) > 1 {
					s.resumed++
				}
			}
			if a.timed {
				s.timed++
			}
			seen[a.f] = true
		}
		s.log = append(s.log, fmt.Sprintf("run %d: %v (%d puts, %d gets)", len(runs)-1, f, r.puts, r.gets))
		if f == (simFault{}) {
			break
		}
		f = simFault{}
		if len(runs) < 3 {
			switch rng.IntN(8) {
			case 0, 1:
				f.put = 1 + rng.IntN(max(1, s.cf.puts))
			case 2:
				f.at = s.cutAfter(rng.IntN(len(s.instants)))
			case 3:
				f.get = 1 + rng.IntN(max(1, s.cf.gets))
			}
		}
	}
	return s.check(runs), len(runs)
}

// workers runs the program as two workers at once, on a fresh journal and
// after a cut at a random write, and checks each worker's run as the last run
// of its sequence: doc.go, "several workers running one execution at once all
// see the value whose write won, and the same decision of a Settle, Race or
// Any".
func (s *simCase) workers(t *testing.T, rng *rand.Rand) []string {
	for _, first := range []simFault{{}, {put: 1 + rng.IntN(max(1, s.cf.puts))}} {
		j := newSimJournal(s.p.scan)
		var runs []*simRun
		s.log = s.log[:0]
		if first != (simFault{}) {
			r := s.run(t, j, s.cf, 0, first)
			runs = append(runs, r)
			s.log = append(s.log, fmt.Sprintf("run 0: %v (%d puts, %d gets)", first, r.puts, r.gets))
		}
		ws := s.runWorkers(t, j, s.cf, len(runs), simFault{}, 2)
		s.again += j.again
		s.log = append(s.log, fmt.Sprintf("run %d: two workers at once (%d puts, %d gets)", len(runs), ws[0].puts, ws[0].gets))
		var out []string
		for w, r := range ws {
			for _, p := range s.check(append(slices.Clone(runs), r)) {
				out = append(out, fmt.Sprintf("worker %d: %s", w, p))
			}
		}
		for _, at := range slices.SortedFunc(maps.Keys(ws[0].results), simAtLess) {
			a := ws[0].results[at]
			b, ok := ws[1].results[at]
			if c := s.p.callsBy[at.id]; ok && c.kind.final() && a.Err == nil && b.Err == nil && !simSame(a, b) {
				out = append(out, fmt.Sprintf("%s %v: the workers saw two decisions:\n    %v\n  and\n    %v", c.kind, at, a, b))
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

// cutAfter is an instant just after s.instants[i], before the next.
func (s *simCase) cutAfter(i int) time.Duration {
	if i+1 < len(s.instants) {
		return s.instants[i] + (s.instants[i+1]-s.instants[i])/2
	}
	return s.instants[i] + s.p.unit/2
}

// cuts are the first faults of the program's cut sequences: every Put cut,
// timeCuts cuts by time, a Get, each top-level decision's write, and two other
// writes of top-level calls.
func (s *simCase) cuts(rng *rand.Rand, timeCuts int) []simFault {
	var cuts []simFault
	for k := 1; k <= s.cf.puts; k++ {
		cuts = append(cuts, simFault{put: k})
	}
	for _, i := range rng.Perm(len(s.instants))[:min(timeCuts, len(s.instants))] {
		cuts = append(cuts, simFault{at: s.cutAfter(i)})
	}
	if s.cf.gets > 0 {
		cuts = append(cuts, simFault{get: 1 + rng.IntN(s.cf.gets)})
	}
	var keys []string
	for _, c := range s.p.calls {
		if c.kind.final() {
			cuts = append(cuts, simFault{key: c.key + "/!d"})
		}
		if c.kind == simStep {
			keys = append(keys, c.key)
			if c.fn.retried() {
				keys = append(keys, simAttemptKey(c.key, 1))
			}
			continue
		}
		keys = append(keys, c.key+"/!h")
		for _, b := range c.branches {
			keys = append(keys, b.key)
			if b.fn.retried() {
				keys = append(keys, simAttemptKey(b.key, 1))
			}
		}
	}
	for _, i := range rng.Perm(len(keys))[:min(2, len(keys))] {
		cuts = append(cuts, simFault{key: keys[i]})
	}
	return cuts
}

// check compares a sequence of runs with the crash-free run.
func (s *simCase) check(runs []*simRun) []string {
	var out []string
	for i, r := range runs {
		for _, p := range r.problems {
			out = append(out, fmt.Sprintf("run %d: %s", i, p))
		}
	}
	last := runs[len(runs)-1]
	// DESIGN.md: "a completed Settle, Race or Any is final: ... a later run
	// returns the same result ... without running anything."
	for i, r := range runs {
		for _, id := range slices.Sorted(maps.Keys(s.p.callsBy)) {
			c := s.p.callsBy[id]
			if !c.kind.final() || !r.stored[c.key+"/!d"] {
				continue
			}
			for _, b := range c.branches {
				if r.runs[b.id] > 0 {
					out = append(out, fmt.Sprintf("run %d: branch #%d of %s #%d ran, though its decision was journaled", i, b.id, c.kind, c.id))
				}
			}
		}
	}
	// DESIGN.md: "A branch's success is journaled when it finishes", and a
	// Permanent failure "is journaled and replayed", and "Retries are
	// durable": "Each failed attempt is journaled": in a run without faults,
	// every such outcome is stored.
	for _, key := range last.kept {
		if !last.after[key] {
			out = append(out, fmt.Sprintf("last run: %s returned an outcome the journal keeps, but it was not stored", key))
		}
	}
	out = append(out, s.checkAttempts(runs)...)

	// cut reports whether call c, called in path, ran inside a branch that
	// returned with its context ended, in run r: what it returned then counts
	// for nothing.
	cut := func(r *simRun, c *simCall, path string) bool {
		for b := c.parent; b != nil; b = b.parent.parent {
			if r.cancelled[simAt{b.id, path}] {
				return true
			}
			if b.fn.on {
				path = simOuter(path)
			}
		}
		return false
	}

	// Allowed differences (a) and (d) excuse the top-level call where they
	// happened; and the ones after it, if that call ran late in some run, which
	// made the next ones begin late: top-level calls share no values, only the
	// clock.
	excused := map[int]bool{}
	for i, r := range runs {
		for _, l := range r.healed {
			if !excused[l.top] {
				excused[l.top] = true
				s.log = append(s.log, fmt.Sprintf("(a): flaky leaf#%d succeeded in run %d", l.id, i))
			}
		}
	}
	// (d) needs a late branch stored by one run, restored by a later one, and its
	// combinator returning there what the crash-free run did not, for another
	// reason than that run's own fault. Not a Settle's or SettleEach's branch
	// that finished after its batch's own deadline: DESIGN.md, "Records are
	// checked": "Branch records carry when the branch finished, so that a
	// resumed run counts only what finished before a journaled deadline" (the
	// head's start is the crash-free run's: heads are written at planned
	// instants).
	var late []simLate
	for i, r := range runs {
		for _, l := range late {
			c := l.b.parent
			at := simAt{c.id, l.path}
			res, ok := r.results[at]
			if c.kind.settles() && c.timeout > 0 && l.at > s.cf.begin[at]+c.timeout {
				continue
			}
			// Not filtered by cut: what a call returned may be why its branch
			// went on until it was cancelled.
			if r.stored[l.b.key] && ok && !excused[c.top] && !simFaulty(res) && s.compare(c, r, at, res) != "" {
				excused[c.top] = true
				s.log = append(s.log, fmt.Sprintf("(d): branch #%d, stored after its context ended, restored in run %d", l.b.id, i))
			}
		}
		late = append(late, r.late...)
	}
	for top := range s.p.calls {
		if !excused[top] {
			continue
		}
		for _, r := range runs {
			for _, d := range r.deviations {
				if d.top == top {
					for k := top + 1; k < len(s.p.calls); k++ {
						excused[k] = true
					}
				}
			}
		}
	}
	// decided is, for each Settle, SettleEach, Race and Any, the first result
	// it returned in the sequence: the decision the journal holds. Each of its
	// invocations (one per attempt of a function around it) reads the same.
	for _, id := range slices.Sorted(maps.Keys(s.p.callsBy)) {
		c := s.p.callsBy[id]
		if !c.kind.final() {
			continue
		}
		first, at := -1, simAt{}
		var decided simResult
		for i, r := range runs {
			for _, node := range slices.SortedFunc(maps.Keys(r.results), simAtLess) {
				res := r.results[node]
				if node.id != id || res.Err != nil {
					continue
				}
				if first < 0 {
					first, at, decided = i, node, res
					continue
				}
				if !simSame(decided, res) {
					out = append(out, fmt.Sprintf("%s %v: the decision of run %d changed in run %d (%v):\n    %v\n  then\n    %v",
						c.kind, at, first, i, node, decided, res))
				}
			}
		}
		if first < 0 || excused[c.top] || cut(runs[first], c, at.path) || cut(s.cf, c, at.path) {
			continue
		}
		if d := s.compare(c, runs[first], at, decided); d != "" {
			out = append(out, fmt.Sprintf("%s %v decided in run %d %s", c.kind, at, first, d))
		}
	}

	for _, at := range slices.SortedFunc(maps.Keys(last.results), simAtLess) {
		c := s.p.callsBy[at.id]
		if excused[c.top] || cut(last, c, at.path) || cut(s.cf, c, at.path) {
			continue
		}
		res := last.results[at]
		if c.kind.final() && res.Err == nil {
			continue // checked above
		}
		if d := s.compare(c, last, at, res); d != "" {
			out = append(out, fmt.Sprintf("%s %v in the last run %s", c.kind, at, d))
		}
	}
	for _, d := range last.deviations {
		if !excused[d.top] {
			out = append(out, "last run: "+d.what)
		}
	}
	return out
}

// checkAttempts checks the attempts of the functions run under a retry policy
// across a sequence of runs.
func (s *simCase) checkAttempts(runs []*simRun) []string {
	var out []string
	for _, f := range s.p.funcs {
		if !f.retried() {
			continue
		}
		// DESIGN.md, "Retries are durable": "a step never runs more than
		// MaxAttempts attempts across crashes, beyond the one attempt that may
		// have been running when a process died". An attempt is cut short by a
		// crash, or by its context ending (retry.go: "Waits end at once when
		// the step's context ends ... the step then fails with its last
		// failure", unjournaled), or its record is lost to a failed write: each
		// such attempt may run again.
		total, cut := 0, 0
		for i, r := range runs {
			for _, a := range r.attempts {
				if a.f != f {
					continue
				}
				total++
				if a.keep == "" || !r.after[a.keep] {
					cut++
				}
				// A resumed run "waits only what is left" of the backoff
				// (doc.go, "Retries"): an attempt after the first begins no
				// sooner than it did in the crash-free run.
				if i > 0 && a.n > 1 {
					if at, ok := s.cf.attemptStart(a.at); ok && a.start < at {
						out = append(out, fmt.Sprintf("run %d: attempt %d of %s began at %s, in the crash-free run at %s: its backoff was cut short",
							i, a.n, f.key, simDur(a.start), simDur(at)))
					}
				}
			}
		}
		if total > f.max+cut {
			out = append(out, fmt.Sprintf("%s ran %d attempts in the sequence, of MaxAttempts %d with %d cut short", f.key, total, f.max, cut))
		}
	}
	return out
}

// attemptStart is when the function invocation at began in run r.
func (r *simRun) attemptStart(at simAt) (time.Duration, bool) {
	for _, a := range r.attempts {
		if a.at == at {
			return a.start, true
		}
	}
	return 0, false
}

// simFaulty reports whether res shows the fault of its run.
func simFaulty(res simResult) bool {
	s := res.String()
	return strings.Contains(s, errSimJournal.Error()) || strings.Contains(s, errSimCrash.Error())
}

// compare compares call c's result got, from invocation at in run r, with the
// crash-free run's, and says how they differ.
func (s *simCase) compare(c *simCall, r *simRun, at simAt, got simResult) string {
	want, ok := s.cf.results[at]
	switch {
	case !ok:
		return fmt.Sprintf("returned, but not in the crash-free run:\n    %v", got)
	case simSame(want, got):
		return ""
	case c.kind.settles() && got.Err == nil && r.restored[at] && simSameDecision(want, got):
		return "" // allowed difference (b)
	}
	return fmt.Sprintf("differs from the crash-free run:\n    want %v\n    got  %v", want, got)
}

// --- the test ---

func simEnv(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return def
}

func TestSimulation(t *testing.T) {
	programs := simPrograms
	if testing.Short() {
		programs /= 5
	}
	programs = simEnv("DURABLE_SIM_PROGRAMS", programs)
	base := simEnv("DURABLE_SIM_BASE", 0)
	timeCuts := simEnv("DURABLE_SIM_TIMECUTS", 8)
	seeds := make([]uint64, programs)
	for i := range seeds {
		seeds[i] = uint64(base + 1 + i)
	}
	one := os.Getenv("DURABLE_SIM_SEED") != ""
	if one {
		seeds = []uint64{uint64(simEnv("DURABLE_SIM_SEED", 0))}
	}
	var stats struct {
		programs, redrawn, skipped, sequences, runs, flaky, late, failed int
		retries, timed, resumed, again                                   int
	}
	start := time.Now()
	// Goroutines that other tests left running engine code, still there when
	// this one began: not this test's leaks. No other test runs meanwhile.
	foreign := simGoroutines()
	for _, seed := range seeds {
		s := &simCase{foreign: foreign}
		ok := false
		for try := 0; try < 4 && !ok; try++ {
			s.p = genSimProg(seed, try)
			var why string
			if ok, why = s.prepare(t); !ok {
				stats.redrawn++
				if one {
					t.Logf("seed %d try %d: the crash-free run is not deterministic (%s):\n%v", seed, try, why, s.p)
				}
			}
		}
		if !ok {
			stats.skipped++
			continue
		}
		stats.programs++
		if len(s.cf.problems) > 0 {
			stats.failed++
			t.Errorf("seed %d (DURABLE_SIM_SEED=%d): the crash-free run:\n%v%s", seed, seed, s.p, strings.Join(s.cf.problems, "\n"))
			continue
		}
		if one {
			t.Logf("%v", s.p)
			for _, at := range slices.SortedFunc(maps.Keys(s.cf.results), simAtLess) {
				t.Logf("crash-free %v: %v", at, s.cf.results[at])
			}
		}
		rng := rand.New(rand.NewPCG(seed, 0xc075))
		cuts := s.cuts(rng, timeCuts)
		failed := false
		for _, cut := range cuts {
			problems, runs := s.sequence(t, rng, cut)
			stats.sequences++
			stats.runs += runs
			if slices.ContainsFunc(s.log, func(l string) bool { return strings.HasPrefix(l, "(a)") }) {
				stats.flaky++
			}
			if slices.ContainsFunc(s.log, func(l string) bool { return strings.HasPrefix(l, "(d)") }) {
				stats.late++
			}
			if one {
				t.Logf("cut %v: %s", cut, strings.Join(s.log, "; "))
			}
			if len(problems) > 0 {
				stats.failed++
				t.Errorf("seed %d (DURABLE_SIM_SEED=%d): %d problems after cut %v\n%v%s\n%s",
					seed, seed, len(problems), cut, s.p, strings.Join(s.log, "\n"), strings.Join(problems, "\n"))
				failed = true
				break // one report a program
			}
		}
		if !failed {
			problems := s.workers(t, rng)
			stats.sequences += 2
			stats.runs += 3
			if len(problems) > 0 {
				stats.failed++
				t.Errorf("seed %d (DURABLE_SIM_SEED=%d): %d problems with two workers\n%v%s\n%s",
					seed, seed, len(problems), s.p, strings.Join(s.log, "\n"), strings.Join(problems, "\n"))
			}
		}
		stats.retries += s.retries
		stats.timed += s.timed
		stats.resumed += s.resumed
		stats.again += s.again
		if stats.failed >= 10 {
			t.Fatal("stopping after 10 failing programs")
		}
	}
	t.Logf("%d programs (%d drawn again, %d skipped as not deterministic), %d cut sequences, %d runs; "+
		"allowed difference (a) in %d sequences, (d) in %d; attempts: %d retries, %d resumed by a later run, %d past their step timeout; "+
		"two workers at once: %d writes lost to the other's; %v",
		stats.programs, stats.redrawn, stats.skipped, stats.sequences, stats.runs, stats.flaky, stats.late,
		stats.retries, stats.resumed, stats.timed, stats.again, time.Since(start).Round(time.Millisecond))
}
