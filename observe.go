package durable

import (
	"context"
	"strings"
	"time"

	"github.com/durable-go/durable/internal/record"
)

// Observer receives the events of the combinators, branches, steps, retries
// and checkpoints run with a context that carries it (see [WithObserver]),
// nested ones included.
//
// Observe is called for every [Event]. For the start of a batch or of a
// branch (EventBatchStart, EventBranchStart) the context it returns is the
// one the work runs with — a tracer puts its span there, and the spans of a
// branch's own work nest under it — and the matching end event is observed
// with that context. For other events the context returned is ignored;
// return ctx.
//
// Observe is called from the goroutines that run the branches, concurrently:
// an Observer must be safe for concurrent use. It should return quickly: it
// runs on the branch's path. The Event is valid only during the call; an
// Observer that keeps it must copy it. A panic in Observe is recovered and
// the event dropped.
type Observer interface {
	Observe(ctx context.Context, e Event) context.Context
}

// EventKind says what an [Event] reports.
type EventKind int

const (
	// EventBatchStart: a combinator started (after it opened its journal
	// entries: Resumed says whether an earlier run had started it).
	EventBatchStart EventKind = iota + 1
	// EventBatchEnd: a combinator returned. Reason, the counts, Duration and
	// Err (what the call returns) are set; Replayed when its decision came
	// from the journal. A batch that fails before it starts (bad input,
	// nondeterminism, the journal) reports its end alone, observed with the
	// caller's context.
	EventBatchEnd
	// EventBranchStart: a branch (or a Step.Run) is about to run its function.
	EventBranchStart
	// EventBranchEnd: a branch finished, with its own outcome (Status is
	// Succeeded or Failed; a branch that finished after its batch decided is
	// counted Cancelled in the batch's result). A branch restored from the
	// journal reports EventBranchEnd alone, with Replayed set: it did not run.
	EventBranchEnd
	// EventCheckpoint: the success of a combinator's branch was written to
	// the journal: Bytes is the record's size and Duration the journal's
	// latency. (Steps, Group branches and final failures report no
	// checkpoint event.)
	EventCheckpoint
	// EventRetry: an attempt failed and another is scheduled: Attempt is the
	// failed attempt's number, Wait the backoff, Err the failure.
	EventRetry
	// EventDecisionReplayed: a completed Settle, SettleEach, Race or Any
	// returned its journaled decision without running anything.
	EventDecisionReplayed
)

func (k EventKind) String() string {
	switch k {
	case EventBatchStart:
		return "BATCH_START"
	case EventBatchEnd:
		return "BATCH_END"
	case EventBranchStart:
		return "BRANCH_START"
	case EventBranchEnd:
		return "BRANCH_END"
	case EventCheckpoint:
		return "CHECKPOINT"
	case EventRetry:
		return "RETRY"
	case EventDecisionReplayed:
		return "DECISION_REPLAYED"
	}
	return "EventKind(" + itoa(int(k)) + ")"
}

// Event is one event of an [Observer]. Fields that do not apply to its Kind
// are zero.
type Event struct {
	Kind EventKind

	// Execution is the execution ID, and Path the journal key of the batch,
	// branch or step; without a journal, "" and the escaped names of the
	// batch and the branch, joined by '/' as in a key. A branch's Path is its
	// batch's, a '/' and its own name.
	Execution string
	Path      string
	// Combinator is the batch's kind ("Parallel", "Settle", "Group", ...),
	// or "Step" for Step.Run; Name the batch's, branch's or step's name.
	Combinator string
	Name       string
	// Index is a branch's position in its batch (-1 for a batch, a Group's
	// branch is numbered in the order of Go, a Step.Run has -1).
	Index int

	// Batch start: the number of branches (-1 for a Group: not known at its
	// start), the cap (0: none), the completion policy, and whether an
	// earlier run had started the batch.
	Branches int
	Limit    int
	Policy   string
	Resumed  bool

	Status   Status // branch end
	Reason   Reason // batch end; 0 when it ended with an error
	Replayed bool   // branch end, batch end: the outcome came from the journal
	Attempt  int    // branch end: attempts run; retry: the failed attempt
	Err      error  // branch end, batch end, retry: the failure

	// Duration: at an end, how long the work ran (for a replayed branch, as
	// journaled); at a checkpoint, how long the journal took.
	Duration time.Duration
	Wait     time.Duration // retry: the wait before the next attempt
	Bytes    int           // checkpoint: the record's size

	// Batch end: what became of the branches.
	Succeeded, Failed, Cancelled, NotStarted int
}

type observerKey struct{}

// WithObserver returns a context whose combinators, branches, steps, retries
// and checkpoints report to o — nested ones too, since they run with contexts
// derived from it. A WithObserver inside replaces the observer for what runs
// under it; WithObserver(ctx, nil) removes it. To report to several, give an
// Observer that calls each. With no Observer, the events cost nothing.
func WithObserver(ctx context.Context, o Observer) context.Context {
	return context.WithValue(ctx, observerKey{}, observerBox{o})
}

type observerBox struct{ o Observer }

func observerOf(ctx context.Context) Observer {
	b, _ := ctx.Value(observerKey{}).(observerBox)
	return b.o
}

// observe reports e to o and returns the context to go on with: the one o
// returns for a start event, else ctx. A panic in o drops the event.
func observe(ctx context.Context, o Observer, e Event) (out context.Context) {
	out = ctx
	defer func() {
		if recover() != nil {
			out = ctx
		}
	}()
	next := o.Observe(ctx, e)
	if next != nil && (e.Kind == EventBatchStart || e.Kind == EventBranchStart) {
		out = next
	}
	return out
}

// executionOf is the execution ID in key.
func executionOf(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		key = key[:i]
	}
	return record.Unescape(key)
}

func itoa(n int) string {
	return string(appendInt(nil, int64(n)))
}

// branchObserver reports the events of one branch of a Group, or of a
// Step.Run; nil without an Observer.
type branchObserver struct {
	obs      Observer
	e        Event // the branch's fields
	start    time.Time
	attempts int
}

// newBranchObserver reports on a branch whose journal key is key, or, without
// a journal (key ""), whose path is path.
func newBranchObserver(obs Observer, combinator, name string, index int, key, path string) *branchObserver {
	if obs == nil {
		return nil
	}
	e := Event{Combinator: combinator, Name: name, Index: index, Path: path}
	if key != "" {
		e.Path, e.Execution = key, executionOf(key)
	}
	return &branchObserver{obs: obs, e: e, attempts: 1}
}

// begin reports the branch's start and returns the context it runs with.
func (o *branchObserver) begin(ctx context.Context) context.Context {
	o.start = time.Now()
	e := o.e
	e.Kind = EventBranchStart
	return observe(ctx, o.obs, e)
}

// end reports the branch's own outcome.
func (o *branchObserver) end(ctx context.Context, err error) {
	e := o.e
	e.Kind, e.Err, e.Attempt, e.Duration = EventBranchEnd, err, o.attempts, time.Since(o.start)
	e.Status = StatusSucceeded
	if err != nil {
		e.Status = StatusFailed
	}
	observe(ctx, o.obs, e)
}

// replayed reports the branch restored from the journal, which ran for ran.
func (o *branchObserver) replayed(ctx context.Context, err error, ran time.Duration) {
	e := o.e
	e.Kind, e.Err, e.Replayed, e.Duration = EventBranchEnd, err, true, ran
	e.Status = StatusSucceeded
	if err != nil {
		e.Status = StatusFailed
	}
	observe(ctx, o.obs, e)
}

// onRetry is the onRetry of the branch's attempts, reporting with ctx; nil
// without an Observer.
func (o *branchObserver) onRetry(ctx context.Context) func(int, time.Duration, error) {
	if o == nil {
		return nil
	}
	return func(n int, wait time.Duration, err error) {
		o.attempts = n + 1
		e := o.e
		e.Kind, e.Attempt, e.Wait, e.Err = EventRetry, n, wait, err
		observe(ctx, o.obs, e)
	}
}
