package sqlitejournal_test

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
	"github.com/durable-go/durable/journal/sqlitejournal"
)

// The crash test runs a durable FanOut in a child process (this test binary,
// running TestCrashChild), kills the child with SIGKILL at a random moment,
// restarts it until a run completes, and checks what a process crash may and
// may not do to an execution journaled in SQLite.
const (
	crashTrials   = 15
	crashBranches = 300
	crashCap      = 16
	crashExec     = "e"
	crashPrefix   = crashExec + "/c/" // the keys of FanOut "c"'s branches
	childEnv      = "DURABLE_CRASH_CHILD"
)

// crashValue is what branch i returns.
func crashValue(i int) string { return fmt.Sprintf("v%d-%d", i, i*i%997) }

// TestCrashChild is the worker of TestCrashRecovery, which runs it in a child
// process; it is skipped otherwise. It runs FanOut "c" of execution "e" in the
// journal DURABLE_CRASH_DB. Each branch first appends "ran <i> run=<k>" to the
// shared log DURABLE_CRASH_LOG, in one write, then sleeps a little. On success
// the worker prints "RESULT " and the values as JSON.
func TestCrashChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("the worker of TestCrashRecovery; runs only in its child processes")
	}
	run := os.Getenv("DURABLE_CRASH_RUN")
	j, err := sqlitejournal.Open(os.Getenv("DURABLE_CRASH_DB"))
	require.NoError(t, err)
	defer j.Close()
	logFile, err := os.OpenFile(os.Getenv("DURABLE_CRASH_LOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer logFile.Close()

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
	out, err := json.Marshal(values)
	require.NoError(t, err)
	fmt.Printf("RESULT %s\n", out)
}

// TestCrashRecovery kills journaled executions at random moments. After each
// killed run it lists the branch checkpoints in the journal; when a run
// finally completes, it checks that
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
	exe, err := os.Executable()
	require.NoError(t, err)
	want := make([]string, crashBranches)
	for i := range want {
		want[i] = crashValue(i)
	}
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)

	midway := 0 // killed runs that left some branches checkpointed and some not
	for trial := range crashTrials {
		seed := uint64(trial + 1)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			midway += crashTrial(t, exe, seed, string(wantJSON))
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
func crashTrial(t *testing.T, exe string, seed uint64, want string) (midway int) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	dir := t.TempDir()
	db := filepath.Join(dir, "journal.db")
	logPath := filepath.Join(dir, "ran.log")

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
				plan.delay = time.Duration(rng.Int64N(int64(60 * time.Millisecond))) // perhaps before the journal is open
			}
		}
		out, wasKilled := runChild(t, exe, db, logPath, run, plan)

		snap := scanJournal(t, db)
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

	ranIn := readLog(t, logPath) // branch -> the runs that ran it, in order
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

// runChild runs the worker as run number run under plan, and returns its
// result line and whether it was killed.
func runChild(t *testing.T, exe, db, logPath string, run int, plan killPlan) (result string, killed bool) {
	cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		"DURABLE_CRASH_DB="+db,
		"DURABLE_CRASH_LOG="+logPath,
		"DURABLE_CRASH_RUN="+strconv.Itoa(run),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	require.NoError(t, cmd.Start())
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	tick := time.NewTicker(200 * time.Microsecond)
	defer tick.Stop()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	sent := false
	var err error
wait:
	for {
		select {
		case err = <-waited:
			break wait
		case <-timeout.C:
			_ = cmd.Process.Kill()
			<-waited
			t.Fatalf("run %d did not end within a minute\nstdout:\n%s\nstderr:\n%s", run, &stdout, &stderr)
		case <-tick.C:
		}
		if !plan.kill || sent {
			continue
		}
		due := plan.lines == 0 && time.Since(start) >= plan.delay ||
			plan.lines > 0 && linesOf(logPath, run) >= plan.lines
		if due {
			time.Sleep(plan.jitter)
			_ = cmd.Process.Kill() // fails only when the child has already exited
			sent = true
		}
	}

	if err == nil {
		for line := range strings.Lines(stdout.String()) {
			if r, ok := strings.CutPrefix(line, "RESULT "); ok {
				return strings.TrimSpace(r), false
			}
		}
		t.Fatalf("run %d printed no result\nstdout:\n%s\nstderr:\n%s", run, &stdout, &stderr)
	}
	if sent && cmd.ProcessState.ExitCode() == -1 { // ended by the signal
		return "", true
	}
	t.Fatalf("run %d failed: %v\nstdout:\n%s\nstderr:\n%s", run, err, &stdout, &stderr)
	return "", false
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

// scanJournal opens the journal, with no child running, and returns every
// entry under crashPrefix.
func scanJournal(t *testing.T, db string) map[string][]byte {
	j, err := sqlitejournal.Open(db)
	require.NoError(t, err)
	defer func() { require.NoError(t, j.Close()) }()
	entries := map[string][]byte{}
	err = j.Scan(context.Background(), crashPrefix, func(key string, value []byte) error {
		entries[key] = bytes.Clone(value)
		return nil
	})
	require.NoError(t, err)
	return entries
}
