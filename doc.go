// Package durable runs independent steps at once — call three providers, resize
// a thousand images, ask two models and take the first answer — and checkpoints
// every finished step, so that when the process crashes or the job is retried,
// the next run replays what finished and runs only the rest.
//
// # Steps and combinators
//
// A [Step] is a named function. The combinators run a list of them
// concurrently and differ only in their completion policy:
//
//   - [Parallel], [ParallelNamed] and [FanOut] need every branch: the first
//     failure cancels the rest and is returned as a *[BranchError].
//   - [Settle] runs under a [Completion] policy (all completed, N of M,
//     tolerated failures by count or ratio, first success, a rule of your own)
//     and returns a [BatchResult] with the fate of every branch; [SettleEach]
//     is Settle over items, named like FanOut.
//   - [Race] returns the first branch to finish; [Any] the first to succeed.
//   - [NewGroup] and [Go] run branches of different result types.
//
// All of them return results in input order, whatever the completion order;
// take [WithMaxConcurrency] to cap the running branches (and goroutines) and
// [WithTimeout] for a deadline. Bad input — an empty or duplicate name, a nil
// function, an invalid option — is an error returned before any branch runs.
//
// # Structured concurrency
//
// No goroutine started by a combinator outlives the call. When a batch
// completes early (a failure, a policy met, a winner, the deadline, the caller's
// context), the branches still running get a cancelled context and the call
// returns once they have returned: a branch that ignores its context delays the
// return, it never leaks. A panic in a branch becomes that branch's failure, as
// a *[PanicError] with the stack; it never crashes the process.
//
// # Journals and replay
//
// With no journal, the combinators are plain in-process concurrency, about as
// cheap as errgroup, and nothing is encoded. [WithJournal] puts a
// [journal.Journal] and an execution ID in the context; combinators called with
// that context checkpoint every finished branch before counting it, with the
// value encoded by encoding/json (see Values). A later call with the same journal and
// execution ID resumes:
//
//	what happened on an earlier run              what the next run does
//	-----------------------------------------    -----------------------------------------
//	a branch succeeded                           returns the journaled value; Fn does not run
//	a branch failed (outside a final decision)   runs it again
//	a branch failed with Permanent(err)          returns the journaled failure
//	a step's retries ran out (WithRetry)         returns the journaled failure
//	a step failed attempts, then the process     resumes its attempts: same count, the
//	died                                         rest of the wait
//	Settle, SettleEach, Race or Any completed    returns the same result, failures
//	                                             included; runs nothing
//	Parallel/FanOut/Group returned an error      replays its successes, runs the rest
//	the process died mid-batch                   replays what was journaled, runs the rest
//
// A completed Settle, SettleEach, Race or Any is final: its decision — every
// status, the reason, the winner, the failures' messages — is journaled the
// moment it is made, before the batch waits for the branches still running,
// and what those return afterwards is Cancelled, on that run and on every
// resume. A failure counted in a final decision is therefore final too.
//
// Restored branches are counted in the order they first finished, so a policy
// decides as it would have. A branch's key is derived from the execution ID and
// the names of the enclosing combinators, branches and steps — never from
// timing — so combinators nested inside a branch resume too. A step name used
// again in one scope gets an occurrence suffix (poll, poll#2). With a journal, the
// value a branch returns is the one decoded from what was stored, so a first run
// and its replay see identical values, and several workers running one execution
// at once all see the value whose write won, and the same decision of a Settle,
// Race or Any. Workers running one execution at once may both run a branch (its
// first write wins), and each numbers completions on its own, so a later run
// that restores an undecided batch written by two workers counts their outcomes
// in an order neither of them saw.
//
// Each combinator journals its set of branch names (a digest for huge sets) and
// its start time when it first starts. A resumed run that asks for other
// branches fails with [ErrNondeterministic], saying what differs; so does a
// [FanOut] named by index whose item at a journaled index changed.
//
// # Retries
//
// [WithRetry] runs a failed step again after a backoff, up to
// RetryPolicy.MaxAttempts attempts in all, unless the failure is [Permanent] or
// RetryPolicy.Retryable refuses it; [WithStepTimeout] gives each attempt a
// deadline of its own. Given to [NewStep] they apply to the step, given to a
// combinator to each of its branches. With a journal every failed attempt is
// journaled (its number, error and the instant the next may start), so a
// resumed run continues the count and waits only what is left: across crashes
// a step runs at most MaxAttempts attempts, beyond the one attempt that may
// have been running when a process died. Attempts that run out end in a final
// failure, journaled like a Permanent one, whose error counts the attempts and
// wraps the last failure. Each attempt runs in a scope of its own under the
// step's key, so steps it runs replay what an earlier attempt journaled.
// Waits end when the step's context does, and run in fake time under
// testing/synctest. A step without a policy pays nothing for them; one with a
// policy whose first attempt succeeds pays only the lookup of its policy.
//
// # Completion rules
//
// [CompleteWhen] adds a rule of the caller's own to a [Settle] or
// [SettleEach]: it sees the counts so far ([Tally]) each time a branch is
// counted and can end the batch as met ([ReasonRuleMet]) or failed
// ([ReasonRuleFailed]); the built-in criteria are checked first. Its name is
// journaled with the batch's policy.
//
// # Observing
//
// [WithObserver] puts an [Observer] in the context: every combinator, branch,
// Step.Run, retry and checkpoint run with it — nested ones included — reports
// an [Event]:
//
//	EventBatchStart        a combinator started: kind, name, branches, cap, policy, resumed
//	EventBranchStart       a branch or step is about to run
//	EventBranchEnd         it finished: status, error, attempts, duration;
//	                       alone and Replayed for one restored from the journal
//	EventCheckpoint        an outcome was journaled: bytes, latency
//	EventRetry             an attempt failed and another is scheduled: attempt, wait
//	EventDecisionReplayed  a final combinator returned its journaled decision
//	EventBatchEnd          the combinator returned: reason, counts, duration, error
//
// A start event's Observe returns the context the work runs with, so a
// tracer's spans nest: a branch's span is the parent of everything its
// function starts. Observers are called concurrently from the branches'
// goroutines. [LogObserver] logs with log/slog and [Progress] reports a
// batch's progress at most once an interval; the module
// github.com/durable-go/durable/otel/durableotel turns the events into
// OpenTelemetry spans and metrics. Without an Observer, the events cost one
// check per branch.
//
// # Values
//
// With a journal, what a branch returns is encoded, stored, and decoded again,
// and the decoded value is what the caller gets, live and on replay: a first
// run and its replay see identical values. Values are encoded with
// encoding/json unless [WithCodec] names another [Codec] (given to [NewStep]
// for one step, to a combinator for its branches and everything they run).
// Without a journal nothing is encoded and nothing below applies.
//
// A value never changes silently. With encoding/json:
//
//   - a result type that can never round-trip — a func, chan, complex or
//     unsafe.Pointer field, a non-empty interface such as error, a map key
//     JSON cannot hold — fails the call before any branch runs, naming the type
//     and the field;
//   - a value whose encoding would drop data — a non-zero unexported field (or
//     one tagged json:"-") in a type without marshalers of its own, a string
//     that is not valid UTF-8 — fails its branch, naming the type and the field
//     path; give the type MarshalJSON and UnmarshalJSON methods, or use
//     WithCodec. Zero-valued unexported fields lose nothing and pass; types
//     with marshalers of their own, time.Time among them, are trusted.
//
// The verdict for a type is computed once; a type with nothing to check at run
// time costs nothing more. With any codec, a value whose encoding does not
// decode is never stored: its branch fails with a plain error, and the next
// run runs it again. Each journaled value records the codec that wrote it: a
// later run that reads it with another fails with [ErrNondeterministic].
//
// # Errors on replay
//
// A failure restored from the journal (a [Permanent] one, or a failed branch
// of a final Settle, Race or Any) has the original's message, [IsPermanent]
// holds for it as it did live, and its TypeName method reports the type of the
// innermost error that is not a plain wrapper. errors.Is holds for it against
// every sentinel registered with [RegisterErrors] that the original matched.
//
// # Journal records
//
// Keys are the escaped names on the path from the execution to the entry, joined
// by '/': "exec/batch/branch", with "exec/batch/!h" for a combinator's head and
// "exec/batch/!d" for the decision of a Settle, Race or Any. In names, '%', '/',
// '#' and '!' are escaped as %25, %2F, %23 and %21, so no name can forge a key.
//
// Values are versioned binary records. Version 2, written now: a version byte
// (2), a CRC-32C (Castagnoli) checksum in 4 little-endian bytes, a kind byte,
// and a body of varints (times in Unix nanoseconds, durations in nanoseconds)
// and strings (a uvarint length, then the bytes):
//
//	'h' head:     start | combinator | policy | count | set digest (32 bytes) |
//	              order digest (32 bytes) | names (n, then n strings; 0 for huge sets)
//	's' success:  seq | item digest | finished | ran | codec | value (the rest)
//	'f' failure:  seq | item digest | finished | ran | error
//	'd' decision: decided | reason (byte) | winner+1 | n | n status bytes |
//	              failures (k, then k times: index | error)
//	error:        type name | message | sentinels (m, then m strings; the
//	              string "!permanent" among them marks a Permanent failure)
//
// The checksum covers the key (its length as a uvarint, then its bytes) and
// every byte after the checksum, so a record changed in any bit, or read under
// a changed key, fails it. An entry that fails its checksum or does not decode
// is an error matching [ErrCorrupt] that names the key: committed work never
// runs again because an entry was damaged, and a damaged value is never
// returned. Restoring a batch checks every entry under its key prefix, nested
// ones included, when the journal is a [journal.Scanner] (every journal this
// module ships is), so an entry whose key was damaged is reported too; a
// damaged key that falls outside its batch's prefix leaves the entry where no
// run looks for it, and its branch runs again.
//
// Version 1 records, written by earlier releases, are still read: no checksum,
// no times, no combinator, policy, codec or sentinels (a version byte 1, a kind
// byte, then the fields above without those). A version 1 head matches any
// combinator and policy.
//
// # Cost
//
// Without a journal a branch costs a goroutine start (one per worker under a
// cap) and no allocation beyond the result; the fail-fast combinators record a
// success with atomic operations alone, so they cost about what errgroup costs
// (docs/PERFORMANCE.md has the measurements). With a journal a branch adds an
// encode of its value (integers, booleans and plain strings skip
// encoding/json), one record, one Put and about five small allocations, and a
// decode of what was stored, skipped when this write is the one stored and
// the value is made only of booleans, numbers and valid UTF-8 strings, in
// arrays and plain structs, for which decoding is known to give it back; a
// worker whose outcome must wait for earlier ones to be counted waits for its
// next branch rather than leaving, so under a cap the same goroutines run every
// branch. Journals that implement [journal.Scanner] let a resumed batch load all
// its branches in one call.
package durable
