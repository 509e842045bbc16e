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
//     tolerated failures by count or ratio, first success) and returns a
//     [BatchResult] with the fate of every branch.
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
// value encoded by encoding/json. A later call with the same journal and
// execution ID resumes:
//
//	what happened on an earlier run          what the next run does
//	-------------------------------------    ------------------------------------
//	a branch succeeded                       returns the journaled value; Fn does not run
//	a branch failed                          runs it again
//	a branch failed with Permanent(err)      returns the journaled failure
//	Settle, Race or Any completed            returns the same result, runs nothing
//	Parallel/FanOut/Group returned an error  replays its successes, runs the rest
//	the process died mid-batch               replays what was journaled, runs the rest
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
// # Journal records
//
// Keys are the escaped names on the path from the execution to the entry, joined
// by '/': "exec/batch/branch", with "exec/batch/!h" for a combinator's head and
// "exec/batch/!d" for the decision of a Settle, Race or Any. In names, '%', '/',
// '#' and '!' are escaped as %25, %2F, %23 and %21, so no name can forge a key.
// Values are versioned binary records (version 1): a version byte, a kind byte
// ('h' head, 's' success, 'f' permanent failure, 'd' decision), then varints and
// length-prefixed strings; a success ends with the JSON of its value. A record
// that does not decode is reported with its key; it is never re-run silently.
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
