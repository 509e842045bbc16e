package durableotel

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"time"

	"github.com/durable-go/durable"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// scopeName is the instrumentation scope of the tracer and the meter: the
// module's path.
const scopeName = "github.com/durable-go/durable/otel/durableotel"

// The attributes of the spans, span events and measurements.
const (
	keyExecution  = attribute.Key("durable.execution")
	keyKey        = attribute.Key("durable.key")
	keyCombinator = attribute.Key("durable.combinator")
	keyName       = attribute.Key("durable.name")
	keyIndex      = attribute.Key("durable.index")
	keyBranches   = attribute.Key("durable.branches")
	keyLimit      = attribute.Key("durable.limit")
	keyPolicy     = attribute.Key("durable.policy")
	keyResumed    = attribute.Key("durable.resumed")
	keyStatus     = attribute.Key("durable.status")
	keyReplayed   = attribute.Key("durable.replayed")
	keyAttempt    = attribute.Key("durable.attempt")
	keyOriginal   = attribute.Key("durable.original_duration")
	keyReason     = attribute.Key("durable.reason")
	keySucceeded  = attribute.Key("durable.succeeded")
	keyFailed     = attribute.Key("durable.failed")
	keyCancelled  = attribute.Key("durable.cancelled")
	keyNotStarted = attribute.Key("durable.not_started")
	keyWait       = attribute.Key("durable.wait")
	keyBytes      = attribute.Key("durable.bytes")
	keyDuration   = attribute.Key("durable.duration")
	keyErrorType  = attribute.Key("error.type")
	keyMessage    = attribute.Key("exception.message")
)

// internal is the option of every span's start: built once, as it costs an
// allocation.
var internal = trace.WithSpanKind(trace.SpanKindInternal)

// reasonError is the durable.reason of a batch that returned an error before
// it decided (the journal, nondeterminism, the caller's context): it has no
// [durable.Reason].
const reasonError = "ERROR"

// New returns a [durable.Observer] that reports to OpenTelemetry: a span for
// every combinator, branch and step, and the metrics durable.branches,
// durable.branch.duration, durable.checkpoint.duration, durable.batches and
// durable.retries (the package documentation lists their names and
// attributes). Give it to [durable.WithObserver].
//
// It takes one tracer and one meter, named after this module, from the
// providers of [WithTracerProvider] and [WithMeterProvider], the global ones
// by default. New fails on an invalid option, or when the meter cannot create
// an instrument. The Observer is safe for concurrent use.
func New(opts ...Option) (durable.Observer, error) {
	var c config
	for _, opt := range opts {
		if opt == nil {
			c.errs = append(c.errs, errors.New("durableotel: nil Option"))
			continue
		}
		opt.apply(&c)
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	tp, mp := c.tracerProvider, c.meterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	v := version()
	o := &observer{tracer: tp.Tracer(scopeName, trace.WithInstrumentationVersion(v))}
	if err := o.instruments(mp.Meter(scopeName, metric.WithInstrumentationVersion(v))); err != nil {
		return nil, err
	}
	return o, nil
}

type observer struct {
	tracer trace.Tracer

	branches           metric.Int64Counter
	branchDuration     metric.Float64Histogram
	checkpointDuration metric.Float64Histogram
	batches            metric.Int64Counter
	retries            metric.Int64Counter

	// sets holds the measurement options of each combinator this module
	// knows, built once: a branch's measurements then cost no allocation.
	// Read-only after New.
	sets map[string]*attrSets
}

// combinators are the values of Event.Combinator.
var combinators = []string{"Parallel", "ParallelNamed", "FanOut", "Settle", "SettleEach", "Race", "Any", "Group", "Step"}

// The histograms' bucket boundaries, in seconds. Branches run from
// milliseconds to an hour; a journal write takes from microseconds to a
// second.
var (
	branchBuckets     = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 120, 300, 600, 1800, 3600}
	checkpointBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
)

func (o *observer) instruments(m metric.Meter) error {
	var err, e error
	o.branches, e = m.Int64Counter("durable.branches", metric.WithUnit("{branch}"),
		metric.WithDescription("Branches and steps that finished, whether they ran or were replayed from the journal."))
	err = errors.Join(err, e)
	o.branchDuration, e = m.Float64Histogram("durable.branch.duration", metric.WithUnit("s"),
		metric.WithDescription("How long the branches and steps that ran took, retries and their waits included."),
		metric.WithExplicitBucketBoundaries(branchBuckets...))
	err = errors.Join(err, e)
	o.checkpointDuration, e = m.Float64Histogram("durable.checkpoint.duration", metric.WithUnit("s"),
		metric.WithDescription("How long the journal took to store a branch's checkpoint."),
		metric.WithExplicitBucketBoundaries(checkpointBuckets...))
	err = errors.Join(err, e)
	o.batches, e = m.Int64Counter("durable.batches", metric.WithUnit("{batch}"),
		metric.WithDescription("Combinators that returned."))
	err = errors.Join(err, e)
	o.retries, e = m.Int64Counter("durable.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Failed attempts of branches and steps that were tried again."))
	err = errors.Join(err, e)
	if err != nil {
		return errors.Join(errors.New("durableotel: creating instruments"), err)
	}
	o.sets = make(map[string]*attrSets, len(combinators))
	for _, c := range combinators {
		o.sets[c] = newAttrSets(c)
	}
	return nil
}

// attrSets are the measurement options of the branches of one combinator.
type attrSets struct {
	branches   [durable.StatusNotStarted + 1][2][]metric.AddOption // by status, then replayed
	duration   [durable.StatusNotStarted + 1][]metric.RecordOption // by status
	checkpoint []metric.RecordOption
	retries    []metric.AddOption
}

func newAttrSets(combinator string) *attrSets {
	s := new(attrSets)
	c := keyCombinator.String(combinator)
	for st := durable.StatusSucceeded; st <= durable.StatusNotStarted; st++ {
		status := keyStatus.String(st.String())
		for r, replayed := range []bool{false, true} {
			s.branches[st][r] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(c, status, keyReplayed.Bool(replayed)))}
		}
		s.duration[st] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(c, status))}
	}
	only := metric.WithAttributeSet(attribute.NewSet(c))
	s.checkpoint = []metric.RecordOption{only}
	s.retries = []metric.AddOption{only}
	return s
}

func (o *observer) setsOf(combinator string) *attrSets {
	if s := o.sets[combinator]; s != nil {
		return s
	}
	return newAttrSets(combinator) // a combinator newer than this module
}

// span is a span this Observer started, as it puts it in the context: an end
// event makes sure the span it finds there is the one its start put there.
type span struct {
	trace.Span
	batch                  bool // a batch's, else a branch's or a step's
	combinator, name, path string
}

// spanOf is the span of ctx when this Observer started it; nil otherwise.
func spanOf(ctx context.Context) *span {
	s, _ := trace.SpanFromContext(ctx).(*span)
	return s
}

// ownSpan is the span the start of e's batch (batch) or branch put in ctx,
// or nil if there is none.
func ownSpan(ctx context.Context, e *durable.Event, batch bool) *span {
	s := spanOf(ctx)
	if s == nil || s.batch != batch || s.path != e.Path || s.name != e.Name || s.combinator != e.Combinator {
		return nil
	}
	return s
}

func (o *observer) Observe(ctx context.Context, e durable.Event) context.Context {
	switch e.Kind {
	case durable.EventBatchStart:
		return o.batchStart(ctx, &e)
	case durable.EventBranchStart:
		return o.branchStart(ctx, &e)
	case durable.EventBranchEnd:
		o.branchEnd(ctx, &e)
	case durable.EventBatchEnd:
		o.batchEnd(ctx, &e)
	case durable.EventCheckpoint:
		o.checkpoint(ctx, &e)
	case durable.EventRetry:
		o.retry(ctx, &e)
	case durable.EventDecisionReplayed:
		if s := ownSpan(ctx, &e, true); s != nil {
			s.AddEvent("decision_replayed")
		}
	}
	return ctx
}

// identity appends the attributes that say which batch, branch or step e is
// about.
func identity(attrs []attribute.KeyValue, e *durable.Event) []attribute.KeyValue {
	if e.Execution != "" {
		attrs = append(attrs, keyExecution.String(e.Execution))
	}
	attrs = append(attrs, keyKey.String(e.Path), keyCombinator.String(e.Combinator), keyName.String(e.Name))
	if e.Index >= 0 {
		attrs = append(attrs, keyIndex.Int(e.Index))
	}
	return attrs
}

func (o *observer) batchStart(ctx context.Context, e *durable.Event) context.Context {
	attrs := identity(make([]attribute.KeyValue, 0, 8), e)
	if e.Branches >= 0 {
		attrs = append(attrs, keyBranches.Int(e.Branches))
	}
	if e.Limit > 0 {
		attrs = append(attrs, keyLimit.Int(e.Limit))
	}
	attrs = append(attrs, keyPolicy.String(e.Policy), keyResumed.Bool(e.Resumed))
	_, sp := o.tracer.Start(ctx, e.Combinator+" "+e.Name, internal, trace.WithAttributes(attrs...))
	return trace.ContextWithSpan(ctx, &span{Span: sp, batch: true, combinator: e.Combinator, name: e.Name, path: e.Path})
}

// branchName is the name of the span of the branch or step of e, whose
// batch's span is in ctx. The branches of FanOut and SettleEach are named
// after their items, by index or by key: their spans are named after their
// batch, "item <batch>", to keep span names few.
func branchName(ctx context.Context, e *durable.Event) string {
	switch e.Combinator {
	case "Step":
		return "step " + e.Name
	case "FanOut", "SettleEach":
		if s := spanOf(ctx); s != nil && s.batch {
			return "item " + s.name
		}
		return "item"
	}
	return "branch " + e.Name
}

func (o *observer) branchStart(ctx context.Context, e *durable.Event) context.Context {
	attrs := identity(make([]attribute.KeyValue, 0, 5), e)
	_, sp := o.tracer.Start(ctx, branchName(ctx, e), internal, trace.WithAttributes(attrs...))
	return trace.ContextWithSpan(ctx, &span{Span: sp, combinator: e.Combinator, name: e.Name, path: e.Path})
}

func (o *observer) branchEnd(ctx context.Context, e *durable.Event) {
	var sp trace.Span
	var end []trace.SpanEndOption
	if s := ownSpan(ctx, e, false); s != nil && !e.Replayed {
		sp = s.Span
	} else {
		// A replayed branch did not run: its span starts and ends now, under
		// the span in ctx, its batch's (or, for a step, its caller's). A branch
		// that ran without a start event (not expected) gets a span back-dated
		// by its duration.
		now := time.Now()
		start := now
		if !e.Replayed {
			start = now.Add(-e.Duration)
		}
		attrs := identity(make([]attribute.KeyValue, 0, 8), e)
		_, sp = o.tracer.Start(ctx, branchName(ctx, e), internal,
			trace.WithTimestamp(start), trace.WithAttributes(attrs...))
		end = []trace.SpanEndOption{trace.WithTimestamp(now)}
	}
	if sp.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 3)
		attrs = append(attrs, keyStatus.String(e.Status.String()), keyReplayed.Bool(e.Replayed))
		switch {
		case e.Replayed && e.Duration > 0:
			attrs = append(attrs, keyOriginal.Float64(e.Duration.Seconds()))
		case !e.Replayed && e.Attempt > 0:
			attrs = append(attrs, keyAttempt.Int(e.Attempt))
		}
		sp.SetAttributes(attrs...)
		if e.Err != nil {
			sp.RecordError(e.Err)
			sp.SetStatus(codes.Error, e.Err.Error())
		}
	}
	sp.End(end...)

	st := e.Status
	if st < durable.StatusSucceeded || st > durable.StatusNotStarted {
		return
	}
	sets := o.setsOf(e.Combinator)
	if e.Replayed {
		o.branches.Add(ctx, 1, sets.branches[st][1]...)
		return
	}
	o.branches.Add(ctx, 1, sets.branches[st][0]...)
	o.branchDuration.Record(ctx, e.Duration.Seconds(), sets.duration[st]...)
}

func (o *observer) batchEnd(ctx context.Context, e *durable.Event) {
	var sp trace.Span
	var end []trace.SpanEndOption
	if s := ownSpan(ctx, e, true); s != nil {
		sp = s.Span
	} else {
		// A batch that failed before it started (its journal, a
		// nondeterministic execution, the caller's context already done)
		// reports its end alone, with the caller's context: a span back-dated
		// by its duration, under the caller's span, which is left alone.
		now := time.Now()
		attrs := identity(make([]attribute.KeyValue, 0, 8), e)
		_, sp = o.tracer.Start(ctx, e.Combinator+" "+e.Name, internal,
			trace.WithTimestamp(now.Add(-e.Duration)), trace.WithAttributes(attrs...))
		end = []trace.SpanEndOption{trace.WithTimestamp(now)}
	}
	reason := reasonError
	if e.Reason != 0 {
		reason = e.Reason.String()
	}
	errType := ""
	if e.Err != nil {
		errType = errorType(e.Err)
	}
	if sp.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 8)
		if e.Reason != 0 { // decided: the counts are the result's
			attrs = append(attrs, keyReason.String(reason),
				keySucceeded.Int(e.Succeeded), keyFailed.Int(e.Failed),
				keyCancelled.Int(e.Cancelled), keyNotStarted.Int(e.NotStarted))
		}
		if e.Branches > 0 { // a Group knows its branches at its end
			attrs = append(attrs, keyBranches.Int(e.Branches))
		}
		attrs = append(attrs, keyReplayed.Bool(e.Replayed))
		if e.Err != nil {
			attrs = append(attrs, keyErrorType.String(errType))
		}
		sp.SetAttributes(attrs...)
		if e.Err != nil {
			sp.RecordError(e.Err)
			sp.SetStatus(codes.Error, e.Err.Error())
		}
	}
	sp.End(end...)

	attrs := make([]attribute.KeyValue, 0, 3)
	attrs = append(attrs, keyCombinator.String(e.Combinator), keyReason.String(reason))
	if e.Err != nil {
		attrs = append(attrs, keyErrorType.String(errType))
	}
	o.batches.Add(ctx, 1, metric.WithAttributes(attrs...))
}

// errorType classifies the error a batch returned, for the attribute
// error.type: "timeout" (its WithTimeout deadline), "branch" (a branch's
// failure), "nondeterministic", "corrupt" (a journal entry), "context" (the
// caller's context ended), or "_OTHER".
func errorType(err error) string {
	var be *durable.BranchError
	switch {
	case errors.Is(err, durable.ErrTimeout):
		return "timeout"
	case errors.As(err, &be):
		return "branch"
	case errors.Is(err, durable.ErrNondeterministic):
		return "nondeterministic"
	case errors.Is(err, durable.ErrCorrupt):
		return "corrupt"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "context"
	}
	return "_OTHER"
}

func (o *observer) checkpoint(ctx context.Context, e *durable.Event) {
	if s := spanOf(ctx); s != nil && s.IsRecording() {
		s.AddEvent("checkpoint", trace.WithAttributes(keyBytes.Int(e.Bytes), keyDuration.Float64(e.Duration.Seconds())))
	}
	o.checkpointDuration.Record(ctx, e.Duration.Seconds(), o.setsOf(e.Combinator).checkpoint...)
}

func (o *observer) retry(ctx context.Context, e *durable.Event) {
	if s := spanOf(ctx); s != nil && s.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 3)
		attrs = append(attrs, keyAttempt.Int(e.Attempt), keyWait.Float64(e.Wait.Seconds()))
		if e.Err != nil {
			attrs = append(attrs, keyMessage.String(e.Err.Error()))
		}
		s.AddEvent("retry", trace.WithAttributes(attrs...))
	}
	o.retries.Add(ctx, 1, o.setsOf(e.Combinator).retries...)
}

// version is this module's version, as the binary's build information
// records it; "" when unknown.
var version = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	v := ""
	if bi.Main.Path == scopeName {
		v = bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == scopeName {
			v = d.Version
		}
	}
	if v == "(devel)" {
		v = ""
	}
	return v
})
