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
// The child writes an attempt log: each branch, before it returns, appends
// "ran <i> run=<k>" to it in one write. The parent kills a run after some
// number of these lines, or after a delay, and in the end compares the log
// with the branch checkpoints it found in the journal after each run.
package crashtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
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
// [Recovery] started: it runs FanOut "c" of execution [Exec] in j. Each branch
// first appends "ran <i> run=<k>" to the attempt log, in one write, then
// sleeps a little. On success Work prints the values as the child's result
// (see [PrintResult]).
func Work(t *testing.T, j journal.Journal) {
	run := os.Getenv(runEnv)
	logFile, err := os.OpenFile(os.Getenv(logEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, logFile.Close()) })

	items := make([]int, Branches)
	for i := range items {
		items[i] = i
	}
	ctx := durable.WithJournal(context.Background(), j, Exec)
	values, err := durable.FanOut(ctx, "c", items, func(ctx context.Context, i int) (string, error) {
		// One write of the whole line: with O_APPEND, concurrent lines never
		// interleave, and a line is in the file once the call returns.
		if _, err := logFile.Write(fmt.Appendf(nil, "ran %d run=%s\n", i, run)); err != nil {
			return "", err
		}
		time.Sleep(rand.N(2 * time.Millisecond))
		return value(i), nil
	}, durable.WithMaxConcurrency(Workers))
	require.NoError(t, err)
	PrintResult(t, values)
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
// lists the branch checkpoints in the journal; when a run finally completes,
// it checks that
//   - a branch whose checkpoint was in the journal after run k never ran in a
//     later run, and the run that checkpointed it did run it;
//   - no branch ran twice in one run, and a killed run lost the work of at
//     most one branch per worker;
//   - nothing in the journal was lost or changed by a later crash or run;
//   - the result is the one a run without crashes returns.
//
// It fails the test when no run at all was killed with the FanOut part-way
// done.
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

	midway := 0 // killed runs that left some branches checkpointed and some not
	for n := range b.Trials {
		seed := uint64(n + 1)
		name := fmt.Sprintf("seed=%d", seed)
		if b.Label != nil {
			name += b.Label(n)
		}
		t.Run(name, func(t *testing.T) {
			midway += runTrial(t, seed, b.MaxDelay, b.Open(t, n), string(wantJSON))
		})
	}
	require.Positive(t, midway, "no run was killed in the middle of the FanOut")
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
// returns how many runs were killed with the FanOut part-way done.
func runTrial(t *testing.T, seed uint64, maxDelay time.Duration, tr Trial, want string) (midway int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	logPath := filepath.Join(t.TempDir(), "ran.log")

	kills := 1 + rng.IntN(4)     // runs to kill before one is let through
	committedIn := map[int]int{} // branch -> the first run after which its checkpoint was in the journal
	var prev map[string][]byte   // the journal under Prefix after the previous run
	var result string
	killed := 0
	var progress []string // branches checkpointed after each run
	run := 1
	for ; ; run++ {
		require.LessOrEqual(t, run, kills+1, "the run after the last kill must complete")
		var plan killPlan
		if run <= kills {
			plan.kill = true
			if remaining := Branches - len(committedIn); remaining > 0 && rng.IntN(5) > 0 {
				plan.lines = 1 + rng.IntN(remaining)
				plan.jitter = time.Duration(rng.Int64N(int64(2 * time.Millisecond)))
			} else {
				plan.delay = time.Duration(rng.Int64N(int64(maxDelay))) // perhaps before the journal is open
			}
		}
		c := tr.Start(t, logEnv+"="+logPath, runEnv+"="+strconv.Itoa(run))
		out, wasKilled := waitRun(t, c, logPath, run, plan)

		snap := tr.Scan(t)
		for k, v := range prev {
			require.Contains(t, snap, k, "run %d lost a checkpoint", run)
			require.Equal(t, v, snap[k], "run %d changed the checkpoint %q", run, k)
		}
		for k := range snap {
			seg := strings.TrimPrefix(k, Prefix)
			if seg == "!h" || seg == "!d" {
				continue
			}
			i, err := strconv.Atoi(seg)
			require.NoError(t, err, "unexpected key %q", k)
			require.True(t, i >= 0 && i < Branches, "unexpected key %q", k)
			if _, ok := committedIn[i]; !ok {
				committedIn[i] = run
			}
		}
		prev = snap
		progress = append(progress, strconv.Itoa(len(committedIn)))

		if !wasKilled {
			result = out
			break
		}
		killed++
		if n := len(committedIn); n > 0 && n < Branches {
			midway++
		}
	}

	require.Equal(t, want, result, "the result after %d killed runs", killed)
	require.Len(t, committedIn, Branches, "every branch is checkpointed")
	require.Contains(t, prev, Prefix+"!h")

	ranIn := readLog(t, logPath) // branch -> the runs that ran it, in order
	executions := 0
	lost := map[int]int{} // run -> branches it ran whose checkpoint it did not leave
	for i := range Branches {
		runs := ranIn[i]
		executions += len(runs)
		k := committedIn[i]
		for _, r := range runs {
			if r != k {
				lost[r]++
			}
		}
		require.Contains(t, runs, k, "branch %d was checkpointed in run %d, which did not run it", i, k)
		for n, r := range runs {
			require.LessOrEqual(t, r, k, "branch %d, checkpointed in run %d, ran again in run %d", i, k, r)
			if n > 0 {
				require.Less(t, runs[n-1], r, "branch %d ran twice in run %d", i, r)
			}
		}
	}
	// A worker claims its next branch only once the last one's checkpoint
	// has returned, so a crash loses the work of at most one branch per worker.
	for r, n := range lost {
		require.LessOrEqual(t, n, Workers, "run %d lost the work of %d branches, more than its %d workers", r, n, Workers)
	}
	t.Logf("%d runs, %d killed; branches checkpointed after each run: %s; %d executions of %d branches",
		run, killed, strings.Join(progress, ", "), executions, Branches)
	return midway
}

// waitRun waits for the worker c, run number run, killing it as plan says,
// and returns its result and whether it was killed.
func waitRun(t *testing.T, c Child, logPath string, run int, plan killPlan) (result string, killed bool) {
	start := time.Now()
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	sent := false
wait:
	for {
		select {
		case <-c.Done():
			break wait
		case <-timeout.C:
			c.Fatalf(t, "run %d did not end within a minute", run)
		case <-tick.C:
		}
		if !plan.kill || sent {
			continue
		}
		due := plan.lines == 0 && time.Since(start) >= plan.delay ||
			plan.lines > 0 && linesOf(logPath, run) >= plan.lines
		if due {
			time.Sleep(plan.jitter)
			c.Kill()
			sent = true
		}
	}
	c.Settle(t)
	if sent && c.WasKilled() {
		return "", true
	}
	return c.Result(t), false
}

// linesOf counts the log lines of run. A log it cannot read has none yet; the
// child's own errors are reported when it exits.
func linesOf(logPath string, run int) int {
	data, err := os.ReadFile(logPath)
	if err != nil {
		return 0
	}
	return bytes.Count(data, fmt.Appendf(nil, " run=%d\n", run))
}

// readLog returns, for each branch, the runs whose log says they ran it.
func readLog(t *testing.T, logPath string) map[int][]int {
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	ranIn := map[int][]int{}
	for line := range strings.Lines(string(data)) {
		var i, run int
		_, err := fmt.Sscanf(line, "ran %d run=%d\n", &i, &run)
		require.NoError(t, err, "log line %q", line)
		ranIn[i] = append(ranIn[i], run)
	}
	return ranIn
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
