package pgjournal_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/internal/crashtest"
	"github.com/durable-go/durable/journal/pgjournal"
)

// The crash test (see package crashtest) runs a durable FanOut in a child
// process (this test binary, running TestCrashChild), kills the child with
// SIGKILL at a random moment, restarts it until a run completes, and checks
// what a process crash may and may not do to an execution journaled in
// PostgreSQL.
//
// Child processes learn what to do from their environment: childEnv names the
// worker's mode and selects the worker test, which is skipped otherwise.
const (
	childEnv      = "DURABLE_PG_CHILD"
	childTableEnv = "DURABLE_PG_TABLE"       // the journal table
	childLogEnv   = "DURABLE_PG_LOG"         // the file where branches log their attempts
	childTagEnv   = "DURABLE_PG_TAG"         // the process's name
	childGroupEnv = "DURABLE_PG_GROUPCOMMIT" // "off": a transaction per Put
)

// TestCrashChild is the worker of TestCrashRecovery, which runs it in a child
// process; it is skipped otherwise. It runs crashtest.Work in the journal
// table DURABLE_PG_TABLE.
func TestCrashChild(t *testing.T) {
	if os.Getenv(childEnv) != "crash" {
		t.Skip("the worker of TestCrashRecovery; runs only in its child processes")
	}
	crashtest.Work(t, openChildJournal(t))
}

// TestCrashRecovery kills journaled executions at random moments, half of them
// with group commit and half with a transaction per Put, and checks what
// crashtest.Recovery checks. After each run it waits for the child's database
// sessions to end before it lists the branch checkpoints and failed attempts
// in the journal.
func TestCrashRecovery(t *testing.T) {
	databaseURL(t)
	groupCommit := func(n int) bool { return n%2 == 0 }
	crashtest.Recovery(t, crashtest.Backend{
		Trials:   10,
		MaxDelay: 150 * time.Millisecond,
		Label:    func(n int) string { return fmt.Sprintf("/groupcommit=%t", groupCommit(n)) },
		Open: func(t *testing.T, n int) crashtest.Trial {
			table := newTable(t)
			j := openJournal(t, table) // migrated here, and read between runs
			env := []string{childEnv + "=crash", childTableEnv + "=" + table}
			if !groupCommit(n) {
				env = append(env, childGroupEnv+"=off")
			}
			return crashtest.Trial{
				Start: func(t *testing.T, runEnv ...string) crashtest.Child {
					return startChild(t, "TestCrashChild", append(runEnv, env...)...)
				},
				Scan: func(t *testing.T) map[string][]byte {
					requireCounted(t, j)
					return crashtest.ScanPrefix(t, j, crashtest.Prefix)
				},
			}
		},
	})
}

// requireCounted checks that the listing, which the killed children's
// commits kept, counts exactly the entries of their execution.
func requireCounted(t *testing.T, j *pgjournal.Journal) {
	t.Helper()
	n := len(crashtest.ScanPrefix(t, j, crashtest.Exec+"/"))
	list, err := j.Executions(context.Background(), "", 10)
	require.NoError(t, err)
	if n == 0 {
		require.Empty(t, list)
		return
	}
	require.Len(t, list, 1)
	require.Equal(t, crashtest.Exec, list[0].ID)
	require.Equal(t, int64(n), list[0].Entries, "entries counted for the execution the children wrote")
}

// --- child processes ---

// A child is this test binary running one worker test in a process of its own.
// Its sessions carry an application name of their own, app, so that the parent
// can tell when they have ended.
type child struct {
	*crashtest.Process
	app string
}

// startChild runs the worker test named test in a child process, with env added
// to the parent's environment. The child is killed and waited for when the test
// ends, if it is still running then.
func startChild(t *testing.T, test string, env ...string) *child {
	app := fmt.Sprintf("pgjournal-child-%016x", rand.Uint64())
	// pgx reads PGAPPNAME, like libpq: the child's sessions carry its name.
	// A binary built with -race sleeps a second on exit unless told not to.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return &child{
		Process: crashtest.Start(t, test, append([]string{"PGAPPNAME=" + app, "GORACE=" + gorace}, env...)...),
		app:     app,
	}
}

// wait waits for the child to exit, within a minute, and then for its database
// sessions to end.
func (c *child) wait(t *testing.T) {
	select {
	case <-c.Done():
	case <-time.After(time.Minute):
		c.Fatalf(t, "the child did not end within a minute")
	}
	c.Settle(t)
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
			case <-c.Done():
				failed = failed || c.Err() != nil
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
				c.Kill()
				fmt.Fprintf(&report, "\nchild %d: %v\n%s", n, c.Err(), c.Output())
			}
			t.Fatalf("a child failed or did not end within a minute:%s", &report)
		}
		time.Sleep(time.Millisecond)
	}
	for _, c := range children {
		c.Settle(t)
	}
}

// Settle waits, once the child has exited, until the server runs no session of
// it. A child killed while a commit was under way may leave the server
// finishing that commit after the process is gone: only once its sessions
// have ended does the journal hold everything the child will ever write.
func (c *child) Settle(t *testing.T) {
	<-c.Done()
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
