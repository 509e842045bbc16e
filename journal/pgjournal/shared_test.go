package pgjournal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/internal/crashtest"
	"github.com/durable-go/durable/internal/record"
	"github.com/durable-go/durable/journal/pgjournal"
)

// These tests run several worker processes (this test binary, running
// TestSharedChild) on one execution in one database, as a fleet of workers
// sharing a journal would: two processes at once on one execution, one process
// resuming what a killed one left, and two processes running one Race.
//
// Branches return values that name the process that computed them, so that
// the parent can tell whose value each process returned, and log every
// attempt to a shared file as one line, "ran <combinator> <index> <process>
// <outcome>". Where a test needs both processes inside one combinator at
// once, a branch waits until the log shows that the other process has started
// a branch of it too: not necessarily the same branch, since a Race may have
// its winner before it has dispatched every branch.
const (
	sharedExec     = "x"
	sharedBranches = 200 // FanOut "f"
	sharedSteps    = 60  // Settle "s"
	sharedCap      = 8
	resumeSteps    = 200 // Settle "s" of the resume test
	raceRounds     = 8   // Races "race-0", "race-1", ...
	raceSteps      = 4

	childHangEnv = "DURABLE_PG_HANG" // resume: steps from this index on hang
	childFastEnv = "DURABLE_PG_FAST" // race: the index of the step that wins locally
)

// An attemptFunc is called at the start of every branch with the outcome the
// branch is about to return. With meet, it returns once another process has
// started a branch of the same combinator. An error fails the branch.
type attemptFunc func(ctx context.Context, comb string, i int, outcome string, meet bool) error

// batchOutcome is what runBatch returned, as the parent compares it.
type batchOutcome struct {
	FanOut []string
	Settle settleOutcome
}

type settleOutcome struct {
	Reason string
	Items  []itemOutcome
}

type itemOutcome struct {
	Name     string
	Status   string
	Value    string `json:",omitempty"`
	Err      string `json:",omitempty"`
	Replayed bool   `json:",omitempty"`
}

func settleOutcomeOf(r *durable.BatchResult[string]) settleOutcome {
	o := settleOutcome{Reason: r.Reason.String(), Items: make([]itemOutcome, len(r.Items))}
	for i, it := range r.Items {
		o.Items[i] = itemOutcome{Name: it.Name, Status: it.Status.String(), Value: it.Value, Replayed: it.Replayed}
		if it.Err != nil {
			o.Items[i].Err = it.Err.Error()
		}
	}
	return o
}

// withoutReplayed returns o with every Item's Replayed flag cleared. Processes
// that share an execution agree on the outcomes, not on the flags: the one
// whose Settle decision was committed second replays the other's, and reports
// every item replayed.
func withoutReplayed(o batchOutcome) batchOutcome {
	items := make([]itemOutcome, len(o.Settle.Items))
	for i, it := range o.Settle.Items {
		it.Replayed = false
		items[i] = it
	}
	o.Settle.Items = items
	return o
}

// stepName is the name of step i of a Settle.
func stepName(i int) string { return "step-" + strconv.Itoa(i) }

// runBatch runs FanOut "f" and then Settle "s" in the execution of ctx as the
// process tag. Settle step i fails when i%5 == 1, with an error that is not
// journaled, and fails permanently when i%7 == 2 (and not i%5 == 1); the other
// branches succeed. Branch 0 of each meets the other process, so both run
// it: when the other process has started a branch, it has claimed branch 0,
// since branches are dispatched in input order.
func runBatch(ctx context.Context, tag string, attempt attemptFunc) (batchOutcome, error) {
	items := make([]int, sharedBranches)
	for i := range items {
		items[i] = i
	}
	values, err := durable.FanOut(ctx, "f", items, func(ctx context.Context, i int) (string, error) {
		v := fmt.Sprintf("%s.%d.%08x", tag, i, rand.Uint32())
		if err := attempt(ctx, "f", i, v, i == 0); err != nil {
			return "", err
		}
		time.Sleep(rand.N(time.Millisecond))
		return v, nil
	}, durable.WithMaxConcurrency(sharedCap))
	if err != nil {
		return batchOutcome{}, err
	}
	steps := make([]durable.Step[string], sharedSteps)
	for i := range steps {
		steps[i] = durable.NewStep(stepName(i), func(ctx context.Context) (string, error) {
			var v string
			var err error
			switch {
			case i%5 == 1:
				err = fmt.Errorf("%s.%d.failed", tag, i)
			case i%7 == 2:
				err = durable.Permanent(fmt.Errorf("%s.%d.gave-up", tag, i))
			default:
				v = fmt.Sprintf("%s.%d.%08x", tag, i, rand.Uint32())
			}
			outcome := v
			if err != nil {
				outcome = err.Error()
			}
			if err := attempt(ctx, "s", i, outcome, i == 0); err != nil {
				return "", err
			}
			time.Sleep(rand.N(time.Millisecond))
			return v, err
		})
	}
	res, err := durable.Settle(ctx, "s", steps, durable.WithMaxConcurrency(sharedCap))
	if err != nil {
		return batchOutcome{}, err
	}
	return batchOutcome{FanOut: values, Settle: settleOutcomeOf(res)}, nil
}

// runResume runs Settle "s" of resumeSteps steps in the execution of ctx as
// the process tag. Steps from index hang on (none when hang < 0) log their
// attempt and then wait for their context, which nothing cancels: they hang
// until the process is killed.
func runResume(ctx context.Context, tag string, hang int, attempt attemptFunc) (settleOutcome, error) {
	steps := make([]durable.Step[string], resumeSteps)
	for i := range steps {
		steps[i] = durable.NewStep(stepName(i), func(ctx context.Context) (string, error) {
			v := fmt.Sprintf("%s.%d.%08x", tag, i, rand.Uint32())
			if err := attempt(ctx, "s", i, v, false); err != nil {
				return "", err
			}
			if hang >= 0 && i >= hang {
				<-ctx.Done()
				return "", context.Cause(ctx)
			}
			time.Sleep(rand.N(time.Millisecond))
			return v, nil
		})
	}
	res, err := durable.Settle(ctx, "s", steps, durable.WithMaxConcurrency(sharedCap))
	if err != nil {
		return settleOutcome{}, err
	}
	return settleOutcomeOf(res), nil
}

// runRaces runs Races "race-0" to "race-<raceRounds-1>" one after the other in
// the execution of ctx as the process tag, and returns their values. Step fast
// of each returns once it has met the other process; the others wait for their
// context, which the Race cancels once it has a winner.
func runRaces(ctx context.Context, tag string, fast int, attempt attemptFunc) ([]string, error) {
	winners := make([]string, raceRounds)
	for round := range raceRounds {
		comb := "race-" + strconv.Itoa(round)
		steps := make([]durable.Step[string], raceSteps)
		for i := range steps {
			steps[i] = durable.NewStep("r"+strconv.Itoa(i), func(ctx context.Context) (string, error) {
				v := fmt.Sprintf("%s.%d.%08x", tag, i, rand.Uint32())
				if err := attempt(ctx, comb, i, v, i == fast); err != nil {
					return "", err
				}
				if i != fast {
					<-ctx.Done()
					return "", context.Cause(ctx)
				}
				return v, nil
			})
		}
		v, err := durable.Race(ctx, comb, steps)
		if err != nil {
			return nil, err
		}
		winners[round] = v
	}
	return winners, nil
}

// TestSharedChild is the worker of the tests in this file, which run it in
// child processes; it is skipped otherwise. DURABLE_PG_CHILD says what to
// run: "batch" (runBatch), "resume" (runResume) or "race" (runRaces), as the
// process DURABLE_PG_TAG, in execution "x" of the table DURABLE_PG_TABLE. It
// prints "RESULT " and the outcome as JSON.
func TestSharedChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode != "batch" && mode != "resume" && mode != "race" {
		t.Skip("the worker of the shared-execution tests; runs only in their child processes")
	}
	tag := os.Getenv(childTagEnv)
	j := openChildJournal(t)
	attempt := childAttempt(t, tag)
	ctx := durable.WithJournal(context.Background(), j, sharedExec)
	var out any
	var err error
	switch mode {
	case "batch":
		out, err = runBatch(ctx, tag, attempt)
	case "resume":
		hang := -1
		if s := os.Getenv(childHangEnv); s != "" {
			hang, err = strconv.Atoi(s)
			require.NoError(t, err)
		}
		out, err = runResume(ctx, tag, hang, attempt)
	case "race":
		fast, aerr := strconv.Atoi(os.Getenv(childFastEnv))
		require.NoError(t, aerr)
		out, err = runRaces(ctx, tag, fast, attempt)
	}
	require.NoError(t, err)
	crashtest.PrintResult(t, out)
}

// childAttempt returns, in a child, the attemptFunc of process tag: it appends
// the attempt to the shared log in one write and, to meet, watches the log
// for another process's attempt of a branch of the same combinator.
func childAttempt(t *testing.T, tag string) attemptFunc {
	logFile := openChildLog(t)
	logPath := os.Getenv(childLogEnv)
	return func(ctx context.Context, comb string, i int, outcome string, meet bool) error {
		if _, err := logFile.Write(fmt.Appendf(nil, "ran %s %d %s %s\n", comb, i, tag, outcome)); err != nil {
			return err
		}
		if !meet {
			return nil
		}
		prefix := "ran " + comb + " "
		deadline := time.Now().Add(30 * time.Second)
		for {
			data, err := os.ReadFile(logPath)
			if err != nil {
				return err
			}
			for line := range strings.Lines(string(data)) {
				if f := strings.Fields(line); len(f) == 5 && strings.HasPrefix(line, prefix) && f[3] != tag {
					return nil
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("no other process started %s within 30s", comb)
			}
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(time.Millisecond):
			}
		}
	}
}

// replayOnly returns an attemptFunc for a run that must replay everything:
// it counts its calls and fails the branch.
func replayOnly() (attemptFunc, *atomic.Int64) {
	var calls atomic.Int64
	return func(ctx context.Context, comb string, i int, outcome string, meet bool) error {
		calls.Add(1)
		return fmt.Errorf("%s %d ran in a run that should have replayed it", comb, i)
	}, &calls
}

// An attempt is one line of the shared log.
type attempt struct {
	tag, outcome string
}

// readSharedLog returns the attempts of every branch, by "<combinator>/<index>",
// in log order.
func readSharedLog(t *testing.T, logPath string) map[string][]attempt {
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	attempts := map[string][]attempt{}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		require.Len(t, f, 5, "log line %q", line)
		require.Equal(t, "ran", f[0], "log line %q", line)
		k := f[1] + "/" + f[2]
		attempts[k] = append(attempts[k], attempt{tag: f[3], outcome: f[4]})
	}
	return attempts
}

// startShared starts a worker process of mode as process tag, on table and
// logPath, with env added.
// startPair starts two child processes, "p0" and "p1", in mode on one new
// table and execution, child n with env(n) added, and returns what they share.
func startPair(t *testing.T, mode string, env func(n int) []string) (j *pgjournal.Journal, logPath string, tags []string, children []*child) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs child processes; skipped with -short")
	}
	databaseURL(t)
	table := newTable(t)
	j = openJournal(t, table)
	logPath = filepath.Join(t.TempDir(), "ran.log")
	tags = []string{"p0", "p1"}
	children = make([]*child, len(tags))
	for n, tag := range tags {
		children[n] = startShared(t, mode, tag, table, logPath, env(n)...)
	}
	return j, logPath, tags, children
}

func startShared(t *testing.T, mode, tag, table, logPath string, env ...string) *child {
	return startChild(t, "TestSharedChild", append([]string{
		childEnv + "=" + mode, childTagEnv + "=" + tag, childTableEnv + "=" + table, childLogEnv + "=" + logPath,
	}, env...)...)
}

// requireSuccess checks that entries holds, under key, the success record of
// value: a record of kind 's' whose value is the value's JSON.
func requireSuccess(t *testing.T, entries map[string][]byte, key, value string) {
	t.Helper()
	rec, ok := entries[key]
	require.True(t, ok, "the journal holds nothing under %q", key)
	want, err := json.Marshal(value)
	require.NoError(t, err)
	r := requireRecord(t, entries, key, record.KindSuccess)
	require.Equal(t, string(want), string(r.Value), "the journal holds %q under %q, not the success %s", rec, key, want)
}

// requireRecord decodes the record entries holds under key, and checks its
// kind.
func requireRecord(t *testing.T, entries map[string][]byte, key string, kind byte) *record.Record {
	t.Helper()
	r, err := record.Decode(key, entries[key])
	require.NoError(t, err)
	require.Equal(t, string(rune(kind)), string(rune(r.Kind)), "the record under %q", key)
	return r
}

// TestProcessesShareExecution starts two processes at once on one execution,
// running the same FanOut and then the same Settle, with values and error
// messages that name the process. Workers that share an execution do not
// claim branches from each other: both may run a branch, the first to commit
// its checkpoint wins, and both return the winner's value. So each branch ran
// once or twice in all (once in each process at most, and branch 0 of each
// combinator in both, as it waits for the other process), and
//   - both processes return the same values and the same BatchResult, failed
//     branches and their messages included, and the same as a later run that
//     replays the execution without running anything;
//   - every value returned is the one journaled for its branch, and was
//     computed by an attempt of that branch in one of the processes;
//   - permanent failures are journaled, other failures are not, and the
//     Settle's decision is.
func TestProcessesShareExecution(t *testing.T) {
	j, logPath, tags, children := startPair(t, "batch", func(int) []string { return nil })
	outs := make([]batchOutcome, len(tags))
	waitAll(t, children...)
	for n, c := range children {
		require.NoError(t, json.Unmarshal([]byte(c.Result(t)), &outs[n]))
	}
	require.Equal(t, withoutReplayed(outs[0]), withoutReplayed(outs[1]), "the two processes returned different outcomes")
	out := outs[0]

	entries := crashtest.ScanPrefix(t, j, sharedExec+"/")
	// The parent lists the execution the two processes wrote at once, every
	// entry counted once, though both wrote many of the same keys.
	list, err := j.Executions(context.Background(), "", 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, sharedExec, list[0].ID)
	require.Equal(t, int64(len(entries)), list[0].Entries)

	attempts := readSharedLog(t, logPath)
	// checkAttempts checks the attempts of branch k and that outcome is one
	// of theirs, and returns how many processes ran it.
	checkAttempts := func(k, outcome string) int {
		as := attempts[k]
		require.NotEmpty(t, as, "%s never ran", k)
		require.LessOrEqual(t, len(as), len(tags), "%s ran more often than there are processes: %v", k, as)
		found := false
		for n, a := range as {
			for _, b := range as[:n] {
				require.NotEqual(t, b.tag, a.tag, "%s ran twice in %s", k, a.tag)
			}
			found = found || a.outcome == outcome
		}
		require.True(t, found, "%s returned %q, which none of its attempts %v computed", k, outcome, as)
		return len(as)
	}

	both := 0 // branches that both processes ran
	require.Len(t, out.FanOut, sharedBranches)
	for i, v := range out.FanOut {
		requireSuccess(t, entries, fmt.Sprintf("%s/f/%d", sharedExec, i), v)
		if checkAttempts("f/"+strconv.Itoa(i), v) > 1 {
			both++
		}
	}
	require.Len(t, attempts["f/0"], 2, "both processes run FanOut branch 0")

	require.Equal(t, durable.ReasonAllCompleted.String(), out.Settle.Reason)
	require.Len(t, out.Settle.Items, sharedSteps)
	for i, it := range out.Settle.Items {
		key := sharedExec + "/s/" + stepName(i)
		require.Equal(t, stepName(i), it.Name)
		require.Equal(t, durable.StatusFailed.String() == it.Status, i%5 == 1 || i%7 == 2, "step %d: %+v", i, it)
		outcome := it.Value
		switch {
		case i%5 == 1:
			outcome = it.Err
			require.NotContains(t, entries, key, "a failure that is not permanent was journaled")
		case i%7 == 2:
			outcome = it.Err
			r := requireRecord(t, entries, key, record.KindFailure)
			require.Contains(t, it.Err, r.Err.Message, "the journal holds %q under %q, not the permanent failure %q", r.Err.Message, key, it.Err)
		default:
			requireSuccess(t, entries, key, it.Value)
		}
		if checkAttempts("s/"+strconv.Itoa(i), outcome) > 1 {
			both++
		}
	}
	require.Len(t, attempts["s/0"], 2, "both processes run Settle step 0")
	require.Contains(t, entries, sharedExec+"/s/!d", "the Settle's decision is journaled")

	// A third run replays all of it.
	replay, calls := replayOnly()
	again, err := runBatch(durable.WithJournal(context.Background(), j, sharedExec), "replay", replay)
	require.NoError(t, err)
	require.Zero(t, calls.Load(), "the replay ran branches")
	require.Equal(t, withoutReplayed(out), withoutReplayed(again), "the replay returned another outcome")
	for _, it := range again.Settle.Items {
		require.True(t, it.Replayed, "%s was not replayed", it.Name)
	}
	t.Logf("%d of %d branches ran in both processes", both, sharedBranches+sharedSteps)
}

// TestProcessResumesKilledProcess lets process A run a Settle until every
// worker of it hangs in a step from index hang on, kills A with SIGKILL, and
// has process B resume the execution. A's steps before hang had all been
// checkpointed, since a worker takes its next step only once the last one's
// checkpoint has returned. It checks that
//   - the journal holds exactly A's steps before hang when A is gone, and B
//     neither changes nor loses them;
//   - B ran exactly the other steps, once each, and replayed A's: its result
//     holds A's values for them, marked Replayed, and its own for the rest;
//   - every value B returned is the journaled one.
func TestProcessResumesKilledProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped with -short")
	}
	databaseURL(t)
	for _, seed := range []uint64{1, 2} {
		groupCommit := seed%2 == 1
		t.Run(fmt.Sprintf("seed=%d/groupcommit=%t", seed, groupCommit), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0x5eed))
			hang := 1 + rng.IntN(resumeSteps-2*sharedCap)
			table := newTable(t)
			j := openJournal(t, table)
			logPath := filepath.Join(t.TempDir(), "ran.log")
			var env []string
			if !groupCommit {
				env = append(env, childGroupEnv+"=off")
			}

			a := startShared(t, "resume", "A", table, logPath, append(env, childHangEnv+"="+strconv.Itoa(hang))...)
			// Every worker of A is in a hanging step once A has logged hang +
			// sharedCap attempts.
			deadline := time.Now().Add(time.Minute)
			for linesOfTag(logPath, "A") < hang+sharedCap {
				select {
				case <-a.Done():
					a.Fatalf(t, "A exited before it hung")
				default:
				}
				if time.Now().After(deadline) {
					a.Fatalf(t, "A did not reach its hanging steps within a minute")
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(time.Duration(rng.Int64N(int64(5 * time.Millisecond))))
			a.Kill()
			a.wait(t)
			require.True(t, a.WasKilled(), "A ended before it was killed")

			prefix := sharedExec + "/s/"
			left := crashtest.ScanPrefix(t, j, prefix)
			want := []string{prefix + "!h"}
			for i := range hang {
				want = append(want, prefix+stepName(i))
			}
			require.ElementsMatch(t, want, keysOf(left), "the journal after A was killed")

			b := startShared(t, "resume", "B", table, logPath, env...)
			b.wait(t)
			var out settleOutcome
			require.NoError(t, json.Unmarshal([]byte(b.Result(t)), &out))

			final := crashtest.ScanPrefix(t, j, prefix)
			for k, v := range left {
				require.Equal(t, v, final[k], "B changed or lost %q", k)
			}
			attempts := readSharedLog(t, logPath)
			require.Equal(t, durable.ReasonAllCompleted.String(), out.Reason)
			require.Len(t, out.Items, resumeSteps)
			for i, it := range out.Items {
				require.Equal(t, durable.StatusSucceeded.String(), it.Status, "step %d: %+v", i, it)
				requireSuccess(t, final, prefix+stepName(i), it.Value)
				var byA, byB []attempt
				for _, at := range attempts["s/"+strconv.Itoa(i)] {
					if at.tag == "A" {
						byA = append(byA, at)
					} else {
						byB = append(byB, at)
					}
				}
				if i < hang {
					require.True(t, it.Replayed, "step %d, checkpointed by A, was not replayed", i)
					require.Empty(t, byB, "step %d, checkpointed by A, ran in B", i)
					require.Equal(t, []attempt{{"A", it.Value}}, byA, "step %d", i)
					continue
				}
				require.False(t, it.Replayed, "step %d, which A did not finish, was replayed", i)
				require.Equal(t, []attempt{{"B", it.Value}}, byB, "step %d", i)
				if i < hang+sharedCap {
					require.Len(t, byA, 1, "step %d hung in A", i)
				} else {
					require.Empty(t, byA, "step %d ran in A", i)
				}
			}
			t.Logf("A checkpointed %d of %d steps before it was killed; B ran the other %d", hang, resumeSteps, resumeSteps-hang)
		})
	}
}

// TestProcessesShareRace runs Races in two processes at once on one
// execution. In process p, step p returns as soon as the other process has
// started the same Race, and the other steps wait to be cancelled: each
// process picks its own step as the winner, checkpoints it and tries to
// journal its decision, and the first decision committed must win in both.
// It checks that, for every Race,
//   - both processes return the same value, the winner's;
//   - the journal holds each process's fast step, with the value that process
//     computed, the decision, and no other step;
//   - the winner is the step that was fast in the process whose value it is;
//
// and that a later run replays every winner without running anything.
func TestProcessesShareRace(t *testing.T) {
	j, logPath, tags, children := startPair(t, "race", func(n int) []string {
		return []string{childFastEnv + "=" + strconv.Itoa(n)}
	})
	waitAll(t, children...)
	outs := make([][]string, len(tags))
	for n, c := range children {
		require.NoError(t, json.Unmarshal([]byte(c.Result(t)), &outs[n]))
	}
	require.Equal(t, outs[0], outs[1], "the two processes returned different winners")

	entries := crashtest.ScanPrefix(t, j, sharedExec+"/")
	attempts := readSharedLog(t, logPath)
	wins := map[string]int{}
	for round, v := range outs[0] {
		comb := "race-" + strconv.Itoa(round)
		prefix := sharedExec + "/" + comb + "/"
		want := []string{prefix + "!h", prefix + "!d"}
		for n, tag := range tags {
			var fast string
			for _, a := range attempts[comb+"/"+strconv.Itoa(n)] {
				if a.tag == tag {
					fast = a.outcome
				}
			}
			require.NotEmpty(t, fast, "%s: r%d did not run in %s, where it is the fast step", comb, n, tag)
			requireSuccess(t, entries, prefix+"r"+strconv.Itoa(n), fast)
			want = append(want, prefix+"r"+strconv.Itoa(n))
		}
		var inRound []string
		for k := range entries {
			if strings.HasPrefix(k, prefix) {
				inRound = append(inRound, k)
			}
		}
		require.ElementsMatch(t, want, inRound, "%s: the journal", comb)
		requireRecord(t, entries, prefix+"!d", record.KindDecision)

		var tag string
		var i int
		_, err := fmt.Sscanf(strings.ReplaceAll(v, ".", " "), "%s %d", &tag, &i)
		require.NoError(t, err, "%s returned %q", comb, v)
		require.True(t, i < len(tags) && tags[i] == tag, "%s: r%d won with a value of %s, where it was not the fast step", comb, i, tag)
		requireSuccess(t, entries, prefix+"r"+strconv.Itoa(i), v)
		wins[tag]++
	}

	replay, calls := replayOnly()
	again, err := runRaces(durable.WithJournal(context.Background(), j, sharedExec), "replay", 0, replay)
	require.NoError(t, err)
	require.Zero(t, calls.Load(), "the replay ran branches")
	require.Equal(t, outs[0], again, "the replay returned other winners")
	t.Logf("Races won by the value of each process: %v", wins)
}

// linesOfTag counts the attempts that process tag logged.
func linesOfTag(logPath, tag string) int {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0
	}
	n := 0
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) == 5 && f[3] == tag {
			n++
		}
	}
	return n
}

func keysOf(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
