// Package crashtest is the part of the journal backends' crash tests that does
// not depend on the backend: it runs a durable FanOut in child processes (the
// backend's test binary), kills them with SIGKILL at random moments, restarts
// the execution until a run completes, and checks what a process crash may and
// may not do to a journaled execution.
//
// A backend's tests provide two tests. The worker, run only in the child
// processes, opens the journal its environment names and calls [Work]:
//
//	func TestCrashChild(t *testing.T) {
//		if os.Getenv("DURABLE_X_CHILD") != "1" {
//			t.Skip("runs only in the child processes of TestCrashRecovery")
//		}
//		j := openJournalNamedByTheEnvironment(t)
//		crashtest.Work(t, j)
//	}
//
// The parent calls [Recovery] with a [Backend], which says how to start the
// worker ([Start] runs it) and how to read the journal between runs.
//
// The FanOut retries failed branches under [Retry], and every fifth branch
// fails its first two attempts, counted across runs: kills land in attempts
// and in the waits between them.
//
// The child writes an attempt log: each attempt of a branch first appends
// "ran <i> run=<k> <ok|fail> t=<unix ns>" to it in one write. The parent kills
// a run after some number of these lines, or after a delay, and in the end
// compares the log with the branch checkpoints and failed attempts it found in
// the journal after each run.
package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/internal/record"
	"github.com/durable-go/durable/journal"
)

// The execution the worker runs: FanOut "c" of execution Exec, with Branches
// branches and at most Workers of them at once.
const (
	Branches = 300
	Workers  = 16
	Exec     = "e"
	Prefix   = Exec + "/c/" // the keys of FanOut "c"'s branches
)

// Retry is FanOut "c"'s retry policy: a failed attempt is tried again after
// 5 ms, then 10 ms, then 20 ms. The waits are long next to an attempt (at most
// 2 ms), so that some kills land in them.
var Retry = durable.RetryPolicy{MaxAttempts: 4, Backoff: 5 * time.Millisecond, Multiplier: 2}

// failures is how many attempts a flaky branch fails, across runs, before it
// succeeds: fewer than Retry.MaxAttempts, so that every branch succeeds in the
// end, as it does without crashes.
const failures = 2

// flaky reports whether branch i fails its first attempts: every fifth does.
func flaky(i int) bool { return i%5 == 0 }

var errFlaky = errors.New("crashtest: an early attempt of a flaky branch")

// The environment by which the parent tells the worker where its attempt log
// is and which run it is. The backend adds what selects the worker and names
// the journal.
const (
	logEnv = "DURABLE_CRASH_LOG"
	runEnv = "DURABLE_CRASH_RUN"
)

// value is what branch i returns.
func value(i int) string { return fmt.Sprintf("v%d-%d", i, i*i%997) }

// Work is the body of a backend's worker test, in a child process that
// [Recovery] started: it runs FanOut "c" of execution [Exec] in j, under
// [Retry]. Each attempt of a branch first appends "ran <i> run=<k> <outcome>
// t=<start>" to the attempt log, in one write, then sleeps a little; a flaky
// branch fails while fewer than two of its attempts are in the log. On success
// Work prints the values as the child's result (see [PrintResult]).
func Work(t *testing.T, j journal.Journal) {
	run := os.Getenv(runEnv)
	logPath := os.Getenv(logEnv)
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, logFile.Close()) })

	// The log's times are read as a batch reads the journaled ones: the wall
	// clock once, plus the monotonic time since.
	start := time.Now()
	now := func() int64 { return start.UnixNano() + int64(time.Since(start)) }

	items := make([]int, Branches)
	for i := range items {
		items[i] = i
	}
	ctx := durable.WithJournal(context.Background(), j, Exec)
	values, err := durable.FanOut(ctx, "c", items, func(ctx context.Context, i int) (string, error) {
		// A branch's attempts never overlap, in a run or across runs: the
		// log holds each earlier one that got as far as its line, and says
		// which attempt this is, whatever the killed runs left journaled.
		data, err := os.ReadFile(logPath)
		if err != nil {
			return "", durable.Permanent(err) // the harness's own failure: not retried
		}
		fail := flaky(i) && loggedAttempts(data, i) < failures
		outcome := "ok"
		if fail {
			outcome = "fail"
		}
		// One write of the whole line: with O_APPEND, concurrent lines never
		// interleave, and a line is in the file once the call returns.
		if _, err := logFile.Write(fmt.Appendf(nil, "ran %d run=%s %s t=%d\n", i, run, outcome, now())); err != nil {
			return "", durable.Permanent(err)
		}
		time.Sleep(rand.N(2 * time.Millisecond))
		if fail {
			return "", errFlaky
		}
		return value(i), nil
	}, durable.WithMaxConcurrency(Workers), durable.WithRetry(Retry))
	require.NoError(t, err)
	PrintResult(t, values)
}

// loggedAttempts counts the attempts of branch i in the attempt log data. A
// last line still being written is not one: it is another branch's.
func loggedAttempts(data []byte, i int) int {
	prefix := fmt.Appendf(nil, "ran %d ", i)
	n := 0
	for line := range bytes.Lines(data) {
		if bytes.HasPrefix(line, prefix) && bytes.HasSuffix(line, []byte("\n")) {
			n++
		}
	}
	return n
}

// A Backend is what [Recovery] needs of a journal backend.
type Backend struct {
	// Trials is how many executions Recovery runs, one a subtest; trial n
	// has seed n+1.
	Trials int
	// MaxDelay bounds the delay after which a run is killed when it is not
	// killed after a branch: perhaps before the journal is open.
	MaxDelay time.Duration
	// Label, when not nil, returns what trial n's subtest adds to its name,
	// "seed=<n+1>".
	Label func(n int) string
	// Open prepares, in its subtest t, an empty journal for trial n and
	// returns how to run the worker on it and read it.
	Open func(t *testing.T, n int) Trial
}

// A Trial is one execution's journal, as [Backend.Open] prepared it.
type Trial struct {
	// Start starts a run of the worker test, which calls [Work] on the
	// journal, in a child process with env added to its environment,
	// typically with [Start].
	Start func(t *testing.T, env ...string) Child
	// Scan returns every entry of the journal under [Prefix]. It is called
	// once a run has exited and settled.
	Scan func(t *testing.T) map[string][]byte
}

// A Child is a run of a worker test in a process of its own. [*Process] is
// one; a backend whose journal may still change once the process has exited
// embeds it and overrides Settle.
type Child interface {
	// Done is closed once the process has exited and been waited for.
	Done() <-chan struct{}
	// Kill sends SIGKILL to the process, if it is still running.
	Kill()
	// Settle returns, once the process has exited, when nothing it did can
	// change the journal any more.
	Settle(t *testing.T)
	// WasKilled reports whether the process, which has exited, was ended by
	// a signal.
	WasKilled() bool
	// Result returns the result the process printed; it fails the test when
	// the process failed or printed none.
	Result(t *testing.T) string
	// Fatalf kills the process, waits for it, and fails the test with its
	// output.
	Fatalf(t *testing.T, format string, args ...any)
}

// Recovery kills executions of the worker at random moments. After each run it
// reads the branch checkpoints and failed attempts in the journal; when a run
// finally completes, it checks that
//   - nothing in the journal was lost or changed by a later crash or run, and
//     a branch's failed attempts are journaled as 1, 2, ... k without a gap,
//     with k < Retry.MaxAttempts and the waits Retry sets;
//   - no attempt of a branch ran once its checkpoint was journaled: the last
//     one to run is the success that the run which checkpointed it ran;
//   - no attempt began during the wait a journaled failure set;
//   - a branch ran at most Retry.MaxAttempts attempts in all, plus one per
//     killed run;
//   - a run ran at most one attempt of a branch that it did not journal (the
//     completing run none), and a killed run lost at most one attempt per
//     worker;
//   - the result is the one a run without crashes returns.
//
// It fails the test when no run at all was killed with the FanOut part-way
// done, or none while a branch waited to retry.
func Recovery(t *testing.T, b Backend) {
	if testing.Short() {
		t.Skip("kills child processes; skipped with -short")
	}
	want := make([]string, Branches)
	for i := range want {
		want[i] = value(i)
	}
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)

	var all tally
	for n := range b.Trials {
		seed := uint64(n + 1)
		name := fmt.Sprintf("seed=%d", seed)
		if b.Label != nil {
			name += b.Label(n)
		}
		t.Run(name, func(t *testing.T) {
			killed := runTrial(t, seed, b.MaxDelay, b.Open(t, n), string(wantJSON))
			all.runs += killed.runs
			all.midway += killed.midway
			all.inWait += killed.inWait
		})
	}
	t.Logf("%d runs killed: %d with the FanOut part-way done, %d while a branch waited to retry", all.runs, all.midway, all.inWait)
	require.Positive(t, all.midway, "no run was killed in the middle of the FanOut")
	require.Positive(t, all.inWait, "no run was killed while a branch waited to retry")
}

// A tally counts the killed runs of a trial.
type tally struct {
	runs   int
	midway int // with some branches checkpointed and some not
	inWait int // while a branch waited to retry
}

// A killPlan says when to kill a child: jitter after its run has logged its
// lines-th "ran" line or, when lines is 0, delay after the child started.
type killPlan struct {
	kill   bool
	lines  int
	jitter time.Duration
	delay  time.Duration
}

// runTrial runs one execution to completion, killing its first runs, and
// returns the tally of the killed runs.
func runTrial(t *testing.T, seed uint64, maxDelay time.Duration, tr Trial, want string) (killed tally) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	logPath := filepath.Join(t.TempDir(), "ran.log")

	kills := 1 + rng.IntN(4) // runs to kill before one is let through
	s := newSeen()
	var prev map[string][]byte // the journal under Prefix after the previous run
	var result string
	var progress []string // branches checkpointed after each run
	var waiting []string  // branches waiting to retry at each kill
	run := 1
	for ; ; run++ {
		require.LessOrEqual(t, run, kills+1, "the run after the last kill must complete")
		var plan killPlan
		if run <= kills {
			plan.kill = true
			if remaining := Branches - len(s.committedIn); remaining > 0 && rng.IntN(5) > 0 {
				plan.lines = 1 + rng.IntN(remaining)
				plan.jitter = time.Duration(rng.Int64N(int64(2 * time.Millisecond)))
			} else {
				plan.delay = time.Duration(rng.Int64N(int64(maxDelay))) // perhaps before the journal is open
			}
		}
		c := tr.Start(t, logEnv+"="+logPath, runEnv+"="+strconv.Itoa(run))
		out, killedAt := waitRun(t, c, logPath, run, plan)

		snap := tr.Scan(t)
		for k, v := range prev {
			require.Contains(t, snap, k, "run %d lost a checkpoint", run)
			require.Equal(t, v, snap[k], "run %d changed the checkpoint %q", run, k)
		}
		s.add(t, run, snap, prev)
		prev = snap
		progress = append(progress, strconv.Itoa(len(s.committedIn)))

		if killedAt.IsZero() {
			result = out
			break
		}
		killed.runs++
		if n := len(s.committedIn); n > 0 && n < Branches {
			killed.midway++
		}
		w := s.waiting(killedAt.UnixNano())
		if w > 0 {
			killed.inWait++
		}
		waiting = append(waiting, strconv.Itoa(w))
	}

	require.Equal(t, want, result, "the result after %d killed runs", killed.runs)
	require.Len(t, s.committedIn, Branches, "every branch is checkpointed")
	require.Contains(t, prev, Prefix+record.HeadSegment)
	attempts := s.check(t, readLog(t, logPath), run, killed.runs)
	t.Logf("%d runs, %d killed; branches checkpointed after each run: %s; waiting to retry at each kill: %s; %d attempts of %d branches, %d failures journaled",
		run, killed.runs, strings.Join(progress, ", "), strings.Join(waiting, ", "), attempts, Branches, s.failures())
	return killed
}

// seen is what the parent found in the journal after each run of a trial.
type seen struct {
	committedIn map[int]int                    // branch -> the first run after which its checkpoint was in the journal
	failed      map[int]map[int]*record.Record // branch -> attempt number -> its journaled failure
	outcomes    map[[2]int]int                 // {branch, run} -> its outcomes (failures, success) first in the journal after run
}

func newSeen() *seen {
	return &seen{committedIn: map[int]int{}, failed: map[int]map[int]*record.Record{}, outcomes: map[[2]int]int{}}
}

// add notes the entries of snap, the journal after run, that prev, the
// journal before it, did not hold.
func (s *seen) add(t *testing.T, run int, snap, prev map[string][]byte) {
	for key, v := range snap {
		if _, ok := prev[key]; ok {
			continue
		}
		seg := strings.TrimPrefix(key, Prefix)
		if seg == record.HeadSegment || seg == record.DecisionSegment {
			continue
		}
		branch, attempt, isAttempt := strings.Cut(seg, "/"+record.AttemptSegment)
		i, err := strconv.Atoi(branch)
		require.True(t, err == nil && i >= 0 && i < Branches, "unexpected key %q", key)
		rec, err := record.Decode(key, v)
		require.NoError(t, err)
		s.outcomes[[2]int{i, run}]++
		if !isAttempt {
			require.Equal(t, byte(record.KindSuccess), rec.Kind, "the checkpoint %q", key)
			s.committedIn[i] = run
			continue
		}
		n, err := strconv.Atoi(attempt)
		require.True(t, err == nil && n >= 1, "unexpected key %q", key)
		require.Equal(t, byte(record.KindAttempt), rec.Kind, "the record %q", key)
		require.Equal(t, n, rec.Attempt, "the attempt number in %q", key)
		if s.failed[i] == nil {
			s.failed[i] = map[int]*record.Record{}
		}
		s.failed[i][n] = rec
	}
	// Failure n+1 is journaled only once failure n is: never a gap.
	for i, recs := range s.failed {
		for n := 1; n <= len(recs); n++ {
			require.Contains(t, recs, n, "after run %d, branch %d's journaled failures are %v", run, i, slices.Sorted(maps.Keys(recs)))
		}
	}
}

// waiting counts the branches that, at the instant at, waited to retry: their
// last failure journaled, the next attempt not due, no success journaled.
func (s *seen) waiting(at int64) int {
	n := 0
	for i, recs := range s.failed {
		last := recs[len(recs)]
		if _, ok := s.committedIn[i]; !ok && last.Finished <= at && at < last.NextAt {
			n++
		}
	}
	return n
}

// failures counts the journaled failures.
func (s *seen) failures() int {
	n := 0
	for _, recs := range s.failed {
		n += len(recs)
	}
	return n
}

// wait is the wait Retry sets after failed attempt n.
func wait(n int) time.Duration {
	return time.Duration(float64(Retry.Backoff) * math.Pow(Retry.Multiplier, float64(n-1)))
}

// check compares ran, the attempt log, with what the journal held after each
// of runs runs, killed of them killed, and returns the number of attempts.
func (s *seen) check(t *testing.T, ran map[int][]attempt, runs, killed int) int {
	attempts := 0
	lost := map[int]int{} // run -> attempts it ran and did not journal
	for i := range Branches {
		as := ran[i]
		attempts += len(as)
		k := s.committedIn[i]
		require.NotEmpty(t, as, "branch %d never ran", i)
		last := as[len(as)-1]
		require.True(t, last.run == k && last.ok, "branch %d was checkpointed in run %d, but its last attempt is %+v", i, k, last)
		inRun := map[int]int{} // run -> attempts of branch i
		fails := 0
		for n, a := range as {
			// The worker fails a flaky branch's first attempts, as counted in the log.
			require.Equal(t, !flaky(i) || n >= failures, a.ok, "branch %d's attempt %d in the log", i, n+1)
			if n > 0 && as[n-1].ok {
				require.Less(t, as[n-1].run, a.run, "branch %d ran again in run %d once it had succeeded", i, a.run)
			}
			if !a.ok {
				fails++
			}
			inRun[a.run]++
		}
		for r := 1; r <= runs; r++ {
			// Each outcome a run journaled is an attempt it logged; a kill
			// may cut one attempt short before its outcome is journaled.
			maxLost := 1
			if r == runs {
				maxLost = 0 // the completing run
			}
			journaled := s.outcomes[[2]int{i, r}]
			l := inRun[r] - journaled
			require.True(t, l >= 0 && l <= maxLost, "run %d of %d ran %d attempts of branch %d and journaled %d outcomes", r, runs, inRun[r], i, journaled)
			lost[r] += l
		}
		require.LessOrEqual(t, len(as), Retry.MaxAttempts+killed, "branch %d ran %d attempts, with %d runs killed", i, len(as), killed)

		failed := s.failed[i]
		require.Less(t, len(failed), Retry.MaxAttempts, "branch %d succeeded after %d journaled failures", i, len(failed))
		require.LessOrEqual(t, len(failed), fails, "branch %d has %d journaled failures, %d logged", i, len(failed), fails)
		for n, rec := range failed {
			require.Equal(t, wait(n), time.Duration(rec.NextAt-rec.Finished), "the wait after branch %d's failure %d", i, n)
			for _, a := range as {
				require.False(t, rec.Finished < a.at && a.at < rec.NextAt,
					"branch %d's attempt in run %d began %v before the end of the wait after its failure %d", i, a.run, time.Duration(rec.NextAt-a.at), n)
			}
		}
	}
	// A worker claims its next branch only once the last one's outcome has
	// been journaled, so a crash loses at most one attempt per worker.
	for r, n := range lost {
		require.LessOrEqual(t, n, Workers, "run %d lost %d attempts, more than its %d workers", r, n, Workers)
	}
	return attempts
}

// waitRun waits for the worker c, run number run, killing it as plan says,
// and returns its result or, when it was killed, the instant the kill had
// been sent by.
func waitRun(t *testing.T, c Child, logPath string, run int, plan killPlan) (result string, killedAt time.Time) {
	start := time.Now()
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	var sent time.Time
wait:
	for {
		select {
		case <-c.Done():
			break wait
		case <-timeout.C:
			c.Fatalf(t, "run %d did not end within a minute", run)
		case <-tick.C:
		}
		if !plan.kill || !sent.IsZero() {
			continue
		}
		due := plan.lines == 0 && time.Since(start) >= plan.delay ||
			plan.lines > 0 && linesOf(logPath, run) >= plan.lines
		if due {
			time.Sleep(plan.jitter)
			c.Kill()
			sent = time.Now()
		}
	}
	c.Settle(t)
	if !sent.IsZero() && c.WasKilled() {
		return "", sent
	}
	return c.Result(t), time.Time{}
}

// linesOf counts the log lines of run. A log it cannot read has none yet; the
// child's own errors are reported when it exits.
func linesOf(logPath string, run int) int {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0
	}
	return bytes.Count(data, fmt.Appendf(nil, " run=%d ", run))
}

// An attempt is a line of the attempt log: an attempt of a branch in run run,
// begun at the instant at, which the worker made succeed or fail.
type attempt struct {
	run int
	ok  bool
	at  int64 // Unix nanoseconds
}

// readLog returns, for each branch, its attempts in the order they ran.
func readLog(t *testing.T, logPath string) map[int][]attempt {
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	ran := map[int][]attempt{}
	for line := range strings.Lines(string(data)) {
		var i int
		var a attempt
		var outcome string
		_, err := fmt.Sscanf(line, "ran %d run=%d %s t=%d\n", &i, &a.run, &outcome, &a.at)
		require.NoError(t, err, "log line %q", line)
		require.Contains(t, []string{"ok", "fail"}, outcome, "log line %q", line)
		a.ok = outcome == "ok"
		ran[i] = append(ran[i], a)
	}
	return ran
}

// ScanPrefix returns every entry of j under prefix, with copies of the values.
func ScanPrefix(t *testing.T, j journal.Scanner, prefix string) map[string][]byte {
	entries := map[string][]byte{}
	err := j.Scan(context.Background(), prefix, func(key string, value []byte) error {
		entries[key] = bytes.Clone(value)
		return nil
	})
	require.NoError(t, err)
	return entries
}

// --- child processes ---

// A Process is the running test binary running one test in a process of its
// own. It is a [Child].
type Process struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{} // closed once the process has exited and been waited for
	err            error         // what Wait returned; read it after done
}

// Start runs the test named test of the running test binary in a child
// process, with env added to the parent's environment. The child is killed and
// waited for when t ends, if it is still running then.
func Start(t *testing.T, test string, env ...string) *Process {
	exe, err := os.Executable()
	require.NoError(t, err)
	p := &Process{done: make(chan struct{})}
	p.cmd = exec.Command(exe, "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=2m")
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	require.NoError(t, p.cmd.Start())
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		<-p.done
	})
	return p
}

// Done is closed once the process has exited and been waited for.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns what waiting for the process returned. It must have exited.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Output returns what the process wrote to stdout and stderr, labelled. It
// must have exited.
func (p *Process) Output() string {
	<-p.done
	return fmt.Sprintf("stdout:\n%s\nstderr:\n%s", &p.stdout, &p.stderr)
}

// Kill sends SIGKILL to the process. It does nothing once the process has
// exited.
func (p *Process) Kill() { _ = p.cmd.Process.Kill() }

// Settle waits for the process to exit: of a journal that a process writes
// itself, nothing changes once the process is gone.
func (p *Process) Settle(t *testing.T) { <-p.done }

// WasKilled reports whether the process, which has exited, was ended by a
// signal.
func (p *Process) WasKilled() bool {
	<-p.done
	return p.cmd.ProcessState.ExitCode() == -1
}

// Result returns the JSON the process printed with [PrintResult]. The process
// must have exited, successfully.
func (p *Process) Result(t *testing.T) string {
	<-p.done
	if p.err != nil {
		p.Fatalf(t, "the child failed: %v", p.err)
	}
	for line := range strings.Lines(p.stdout.String()) {
		if r, ok := strings.CutPrefix(line, "RESULT "); ok {
			return strings.TrimSpace(r)
		}
	}
	p.Fatalf(t, "the child printed no result")
	return ""
}

// Fatalf kills the process, waits for it, and fails the test with its output.
func (p *Process) Fatalf(t *testing.T, format string, args ...any) {
	t.Helper()
	p.Kill()
	t.Fatalf("%s\n%s", fmt.Sprintf(format, args...), p.Output())
}

// PrintResult prints, in a child, "RESULT " and v as JSON, for the parent's
// [Process.Result].
func PrintResult(t *testing.T, v any) {
	out, err := json.Marshal(v)
	require.NoError(t, err)
	fmt.Printf("RESULT %s\n", out)
}
