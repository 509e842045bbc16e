package pgjournal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal/pgjournal"
)

// The crash test runs a durable FanOut in a child process (this test binary,
// running TestCrashChild), kills the child with SIGKILL at a random moment,
// restarts it until a run completes, and checks what a process crash may and
// may not do to an execution journaled in PostgreSQL.
const (
	crashTrials   = 10
	crashBranches = 300
	crashCap      = 16
	crashExec     = "e"
	crashPrefix   = crashExec + "/c/" // the keys of FanOut "c"'s branches
)

// Child processes learn what to do from their environment: childEnv names the
// worker's mode and selects the worker test, which is skipped otherwise.
const (
	childEnv      = "DURABLE_PG_CHILD"
	childTableEnv = "DURABLE_PG_TABLE"       // the journal table
	childLogEnv   = "DURABLE_PG_LOG"         // the file where branches log their attempts
	childTagEnv   = "DURABLE_PG_TAG"         // the run number, or the process's name
	childGroupEnv = "DURABLE_PG_GROUPCOMMIT" // "off": a transaction per Put
)

// crashValue is what branch i returns.
func crashValue(i int) string { return fmt.Sprintf("v%d-%d", i, i*i%997) }

// TestCrashChild is the worker of TestCrashRecovery, which runs it in a child
// process; it is skipped otherwise. It runs FanOut "c" of execution "e" in the
// journal table DURABLE_PG_TABLE. Each branch first appends "ran <i> run=<k>"
// to the shared log DURABLE_PG_LOG, in one write, then sleeps a little. On
// success the worker prints "RESULT " and the values as JSON.
func TestCrashChild(t *testing.T) {
	if os.Getenv(childEnv) != "crash" {
		t.Skip("the worker of TestCrashRecovery; runs only in its child processes")
	}
	run := os.Getenv(childTagEnv)
	j := openChildJournal(t)
	logFile := openChildLog(t)

	items := make([]int, crashBranches)
	for i := range items {
		items[i] = i
	}
	ctx := durable.WithJournal(context.Background(), j, crashExec)
	values, err := durable.FanOut(ctx, "c", items, func(ctx context.Context, i int) (string, error) {
		// One write of the whole line: with O_APPEND, concurrent lines never
		// interleave, and a line is in the file once the call returns.
		if _, err := logFile.Write(fmt.Appendf(nil, "ran %d run=%s\n", i, run)); err != nil {
			return "", err
		}
		time.Sleep(rand.N(2 * time.Millisecond))
		return crashValue(i), nil
	}, durable.WithMaxConcurrency(crashCap))
	require.NoError(t, err)
	printResult(t, values)
}

// TestCrashRecovery kills journaled executions at random moments, half of them
// with group commit and half with a transaction per Put. After each run it
// waits for the child's database sessions to end and lists the branch
// checkpoints in the journal; when a run finally completes, it checks that
//   - a branch whose checkpoint was in the journal after run k never ran in a
//     later run, and the run that checkpointed it did run it;
//   - no branch ran twice in one run, and a killed run lost the work of at
//     most one branch per worker;
//   - nothing in the journal was lost or changed by a later crash or run;
//   - the result is the one a run without crashes returns.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; skipped with -short")
	}
	databaseURL(t)
	want := make([]string, crashBranches)
	for i := range want {
		want[i] = crashValue(i)
	}
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)

	midway := 0 // killed runs that left some branches checkpointed and some not
	for trial := range crashTrials {
		seed := uint64(trial + 1)
		groupCommit := trial%2 == 0
		t.Run(fmt.Sprintf("seed=%d/groupcommit=%t", seed, groupCommit), func(t *testing.T) {
			midway += crashTrial(t, seed, groupCommit, string(wantJSON))
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

// crashTrial runs one execution to completion, killing its first runs, and
// returns how many runs were killed with the FanOut part-way done.
func crashTrial(t *testing.T, seed uint64, groupCommit bool, want string) (midway int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	table := newTable(t)
	j := openJournal(t, table) // migrated here, and read between runs
	logPath := filepath.Join(t.TempDir(), "ran.log")
	env := []string{childEnv + "=crash", childTableEnv + "=" + table, childLogEnv + "=" + logPath}
	if !groupCommit {
		env = append(env, childGroupEnv+"=off")
	}

	kills := 1 + rng.IntN(4)     // runs to kill before one is let through
	committedIn := map[int]int{} // branch -> the first run after which its checkpoint was in the journal
	var prev map[string][]byte   // the journal under crashPrefix after the previous run
	var result string
	killed := 0
	var progress []string // branches checkpointed after each run
	run := 1
	for ; ; run++ {
		require.LessOrEqual(t, run, kills+1, "the run after the last kill must complete")
		var plan killPlan
		if run <= kills {
			plan.kill = true
			if remaining := crashBranches - len(committedIn); remaining > 0 && rng.IntN(5) > 0 {
				plan.lines = 1 + rng.IntN(remaining)
				plan.jitter = time.Duration(rng.Int64N(int64(2 * time.Millisecond)))
			} else {
				plan.delay = time.Duration(rng.Int64N(int64(150 * time.Millisecond))) // perhaps before the journal is open
			}
		}
		c := startChild(t, "TestCrashChild", append(env, childTagEnv+"="+strconv.Itoa(run))...)
		out, wasKilled := crashRun(t, c, logPath, run, plan)

		snap := scanPrefix(t, j, crashPrefix)
		for k, v := range prev {
			require.Contains(t, snap, k, "run %d lost a checkpoint", run)
			require.Equal(t, v, snap[k], "run %d changed the checkpoint %q", run, k)
		}
		for k := range snap {
			seg := strings.TrimPrefix(k, crashPrefix)
			if seg == "!h" || seg == "!d" {
				continue
			}
			i, err := strconv.Atoi(seg)
			require.NoError(t, err, "unexpected key %q", k)
			require.True(t, i >= 0 && i < crashBranches, "unexpected key %q", k)
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
		if n := len(committedIn); n > 0 && n < crashBranches {
			midway++
		}
	}

	require.Equal(t, want, result, "the result after %d killed runs", killed)
	require.Len(t, committedIn, crashBranches, "every branch is checkpointed")
	require.Contains(t, prev, crashPrefix+"!h")

	ranIn := readCrashLog(t, logPath) // branch -> the runs that ran it, in order
	executions := 0
	lost := map[int]int{} // run -> branches it ran whose checkpoint it did not leave
	for i := range crashBranches {
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
		require.LessOrEqual(t, n, crashCap, "run %d lost the work of %d branches, more than its %d workers", r, n, crashCap)
	}
	t.Logf("%d runs, %d killed; branches checkpointed after each run: %s; %d executions of %d branches",
		run, killed, strings.Join(progress, ", "), executions, crashBranches)
	return midway
}

// crashRun waits for the worker c, run number run, killing it as plan says,
// and returns its result and whether it was killed.
func crashRun(t *testing.T, c *child, logPath string, run int, plan killPlan) (result string, killed bool) {
	start := time.Now()
	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	sent := false
wait:
	for {
		select {
		case <-c.done:
			break wait
		case <-timeout.C:
			c.fatal(t, "run %d did not end within a minute", run)
		case <-tick.C:
		}
		if !plan.kill || sent {
			continue
		}
		due := plan.lines == 0 && time.Since(start) >= plan.delay ||
			plan.lines > 0 && linesOf(logPath, run) >= plan.lines
		if due {
			time.Sleep(plan.jitter)
			c.kill()
			sent = true
		}
	}
	c.settle(t)
	if sent && c.wasKilled() {
		return "", true
	}
	return c.result(t), false
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

// readCrashLog returns, for each branch, the runs whose log says they ran it.
func readCrashLog(t *testing.T, logPath string) map[int][]int {
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

// scanPrefix returns every entry of j under prefix.
func scanPrefix(t *testing.T, j *pgjournal.Journal, prefix string) map[string][]byte {
	entries := map[string][]byte{}
	err := j.Scan(context.Background(), prefix, func(key string, value []byte) error {
		entries[key] = bytes.Clone(value)
		return nil
	})
	require.NoError(t, err)
	return entries
}

// --- child processes ---

// A child is this test binary running one worker test in a process of its own.
// Its sessions carry an application name of their own, app, so that the parent
// can tell when they have ended.
type child struct {
	cmd            *osexec.Cmd
	app            string
	stdout, stderr bytes.Buffer
	done           chan struct{} // closed once the process has exited and been waited for
	err            error         // what Wait returned; read it after done
}

// startChild runs the worker test named test in a child process, with env added
// to the parent's environment. The child is killed and waited for when the test
// ends, if it is still running then.
func startChild(t *testing.T, test string, env ...string) *child {
	exe, err := os.Executable()
	require.NoError(t, err)
	c := &child{
		app:  fmt.Sprintf("pgjournal-child-%016x", rand.Uint64()),
		done: make(chan struct{}),
	}
	c.cmd = osexec.Command(exe, "-test.run=^"+test+"$", "-test.count=1", "-test.timeout=2m")
	// pgx reads PGAPPNAME, like libpq: the child's sessions carry its name.
	// A binary built with -race sleeps a second on exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	c.cmd.Env = append(append(os.Environ(), "PGAPPNAME="+c.app, "GORACE="+gorace), env...)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	require.NoError(t, c.cmd.Start())
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.kill()
		<-c.done
	})
	return c
}

// kill sends SIGKILL to the child. It does nothing once the child has exited.
func (c *child) kill() { _ = c.cmd.Process.Kill() }

// wait waits for the child to exit, within a minute, and then for its database
// sessions to end.
func (c *child) wait(t *testing.T) {
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		c.fatal(t, "the child did not end within a minute")
	}
	c.settle(t)
}

// waitAll waits for every child to exit, within a minute, and then for their
// database sessions to end. When one fails, it kills the others, which may be
// waiting for it, and fails the test with the output of all of them.
func waitAll(t *testing.T, children ...*child) {
	deadline := time.Now().Add(time.Minute)
	for {
		running, failed := 0, false
		for _, c := range children {
			select {
			case <-c.done:
				failed = failed || c.err != nil
			default:
				running++
			}
		}
		if running == 0 && !failed {
			break
		}
		if failed || time.Now().After(deadline) {
			var report strings.Builder
			for n, c := range children {
				c.kill()
				<-c.done
				fmt.Fprintf(&report, "\nchild %d: %v\nstdout:\n%s\nstderr:\n%s", n, c.err, &c.stdout, &c.stderr)
			}
			t.Fatalf("a child failed or did not end within a minute:%s", &report)
		}
		time.Sleep(time.Millisecond)
	}
	for _, c := range children {
		c.settle(t)
	}
}

// settle waits, once the child has exited, until the server runs no session of
// it. A child killed while a commit was under way may leave the server
// finishing that commit after the process is gone: only once its sessions
// have ended does the journal hold everything the child will ever write.
func (c *child) settle(t *testing.T) {
	<-c.done
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, c.app).Scan(&n)
		require.NoError(t, err)
		if n == 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "the server still runs %d sessions of a child that exited 30s ago", n)
		time.Sleep(time.Millisecond)
	}
}

// wasKilled reports whether the child, which has exited, was ended by a signal.
func (c *child) wasKilled() bool { return c.cmd.ProcessState.ExitCode() == -1 }

// result returns the JSON the child printed after "RESULT ". The child must
// have exited, successfully.
func (c *child) result(t *testing.T) string {
	<-c.done
	if c.err != nil {
		c.fatal(t, "the child failed: %v", c.err)
	}
	for line := range strings.Lines(c.stdout.String()) {
		if r, ok := strings.CutPrefix(line, "RESULT "); ok {
			return strings.TrimSpace(r)
		}
	}
	c.fatal(t, "the child printed no result")
	return ""
}

// fatal kills the child, waits for it, and fails the test with its output.
func (c *child) fatal(t *testing.T, format string, args ...any) {
	t.Helper()
	c.kill()
	<-c.done
	t.Fatalf("%s\nstdout:\n%s\nstderr:\n%s", fmt.Sprintf(format, args...), &c.stdout, &c.stderr)
}

// openChildJournal opens, in a child, the journal on the table the parent
// named, and migrates it as every worker process would at startup.
func openChildJournal(t *testing.T) *pgjournal.Journal {
	opts := []pgjournal.Option{pgjournal.WithTable(os.Getenv(childTableEnv))}
	if os.Getenv(childGroupEnv) == "off" {
		opts = append(opts, pgjournal.WithGroupCommit(false))
	}
	ctx := context.Background()
	j, err := pgjournal.Open(ctx, databaseURL(t), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, j.Close()) })
	require.NoError(t, j.Migrate(ctx))
	return j
}

// openChildLog opens, in a child, the shared log for appending.
func openChildLog(t *testing.T) *os.File {
	f, err := os.OpenFile(os.Getenv(childLogEnv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, f.Close()) })
	return f
}

// printResult prints, in a child, "RESULT " and v as JSON, for the parent.
func printResult(t *testing.T, v any) {
	out, err := json.Marshal(v)
	require.NoError(t, err)
	fmt.Printf("RESULT %s\n", out)
}
