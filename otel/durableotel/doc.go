// Package durableotel reports the combinators, branches, steps, retries and
// checkpoints of package [durable] to OpenTelemetry, as spans and metrics.
//
//	obs, err := durableotel.New() // the global providers; see WithTracerProvider
//	if err != nil {
//		return err
//	}
//	ctx = durable.WithObserver(ctx, obs)
//	res, err := durable.Settle(ctx, "orders", steps)
//
// [New] returns a [durable.Observer]; everything run with a context that
// carries it — nested combinators and steps included — is traced and
// measured. It takes one tracer and one meter, whose instrumentation scope is
// this module's path (github.com/durable-go/durable/otel/durableotel) and
// version.
//
// # Spans
//
// Every span is of kind internal, and its name is low-cardinality: IDs and
// keys go in attributes.
//
//	"<Combinator> <name>"  a combinator: "Settle orders", "Group checkout"
//	"branch <name>"        a branch of Parallel, ParallelNamed, Settle, Race,
//	                       Any or a Group
//	"item <batch name>"    a branch of FanOut or SettleEach, whose names are
//	                       its items' (indexes or keys): "item resize"
//	"step <name>"          a Step.Run
//
// A branch's span is a child of its combinator's, and what the branch runs
// nests under the branch's span: a Parallel whose branch runs a Settle whose
// branch runs a step gives Parallel > branch > Settle > branch > step. A
// failed branch or step, and a combinator that returned an error, have the
// error recorded (an "exception" event) and the status Error. A Settle whose
// branches failed returned no error: its span's status stays unset, and
// durable.failed counts the failures.
//
// A branch restored from the journal did not run: its span starts and ends
// when it is replayed (a span of zero length, under its combinator's), with
// durable.replayed=true, and durable.original_duration says how long it ran
// when it ran, as journaled.
//
// # Attributes
//
// Every span has:
//
//	durable.execution   the execution ID (with a journal)
//	durable.key         the journal key of the combinator, branch or step
//	                    (without a journal, its path of names)
//	durable.combinator  Parallel, Settle, Group, ..., or Step
//	durable.name        the name of the combinator, branch or step
//	durable.index       a branch's position in its combinator (not a step's)
//
// A combinator's span adds, at its start, durable.branches (absent for a Group
// until its end), durable.limit (the WithMaxConcurrency cap; absent when none),
// durable.policy (its completion policy) and durable.resumed (an earlier run
// had started it); at its end, durable.replayed (its decision came from the
// journal) and, once it decided, durable.reason ("ALL_COMPLETED", ...) and the
// counts durable.succeeded, durable.failed, durable.cancelled and
// durable.not_started. One that returned an error adds error.type:
// "timeout", "branch" (a branch's failure), "nondeterministic", "corrupt",
// "context" (the caller's context ended) or "_OTHER".
//
// A branch's or step's span adds, at its end, durable.status ("SUCCEEDED" or
// "FAILED"), durable.replayed, and durable.attempt (attempts run) or, replayed,
// durable.original_duration (seconds).
//
// Span events: "retry" on a branch or step whose attempt failed and will be
// tried again, with durable.attempt (the failed attempt), durable.wait (the
// backoff, in seconds) and exception.message; "checkpoint" on a branch whose
// success was journaled, with durable.bytes (the record's size) and
// durable.duration (the journal's latency, in seconds); "decision_replayed" on
// a Settle, SettleEach, Race or Any that returned its journaled decision.
//
// # Metrics
//
//	durable.branches             counter, {branch}: branches and steps that
//	                             finished; durable.combinator, durable.status,
//	                             durable.replayed
//	durable.branch.duration      histogram, s: how long the branches and steps
//	                             that ran took (replayed ones are not
//	                             measured); durable.combinator, durable.status
//	durable.checkpoint.duration  histogram, s: how long the journal took to
//	                             store a checkpoint; durable.combinator
//	durable.batches              counter, {batch}: combinators that returned;
//	                             durable.combinator, durable.reason ("ERROR"
//	                             when it returned an error before deciding),
//	                             and error.type when it returned an error
//	durable.retries              counter, {retry}: failed attempts tried again;
//	                             durable.combinator
//
// The measurements of a branch carry its context, so an exemplar points at
// its span.
//
// # Cost
//
// The Observer keeps no state of its own beyond what it is given: a start
// puts its span in the context it returns, and the end finds it there. The
// attribute sets of the metrics are built once, in New; attributes that are
// set at a span's end are built only when the span is recording.
package durableotel
