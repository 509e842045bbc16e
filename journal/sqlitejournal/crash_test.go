package sqlitejournal_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/internal/crashtest"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

// The crash test (see package crashtest) runs a durable FanOut in a child
// process (this test binary, running TestCrashChild), kills the child with
// SIGKILL at a random moment, restarts it until a run completes, and checks
// what a process crash may and may not do to an execution journaled in SQLite.
const (
	childEnv   = "DURABLE_CRASH_CHILD"
	childDBEnv = "DURABLE_CRASH_DB" // the journal's database file
)

// TestCrashChild is the worker of TestCrashRecovery, which runs it in a child
// process; it is skipped otherwise. It runs crashtest.Work in the journal
// DURABLE_CRASH_DB.
func TestCrashChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("the worker of TestCrashRecovery; runs only in its child processes")
	}
	j, err := sqlitejournal.Open(os.Getenv(childDBEnv))
	require.NoError(t, err)
	defer j.Close()
	crashtest.Work(t, j)
}

// TestCrashRecovery kills journaled executions at random moments and checks
// what crashtest.Recovery checks. Between runs it opens the journal itself,
// with no child running, to list the branch checkpoints and failed attempts.
func TestCrashRecovery(t *testing.T) {
	crashtest.Recovery(t, crashtest.Backend{
		Trials:   15,
		MaxDelay: 60 * time.Millisecond,
		Open: func(t *testing.T, _ int) crashtest.Trial {
			db := filepath.Join(t.TempDir(), "journal.db")
			return crashtest.Trial{
				Start: func(t *testing.T, env ...string) crashtest.Child {
					return crashtest.Start(t, "TestCrashChild", append(env, childEnv+"=1", childDBEnv+"="+db, "GORACE=atexit_sleep_ms=0")...)
				},
				Scan: func(t *testing.T) map[string][]byte { return scanJournal(t, db) },
			}
		},
	})
}

// scanJournal opens the journal, with no child running, and returns every
// entry under crashtest.Prefix.
func scanJournal(t *testing.T, db string) map[string][]byte {
	j, err := sqlitejournal.Open(db)
	require.NoError(t, err)
	defer func() { require.NoError(t, j.Close()) }()
	// The listing, kept by the killed children's commits, counts exactly the
	// entries of their execution.
	n := len(crashtest.ScanPrefix(t, j, crashtest.Exec+"/"))
	list, err := j.Executions(bg, "", 10)
	require.NoError(t, err)
	if n == 0 {
		require.Empty(t, list)
	} else {
		require.Len(t, list, 1)
		require.Equal(t, crashtest.Exec, list[0].ID)
		require.Equal(t, int64(n), list[0].Entries, "entries counted for the execution the children wrote")
	}
	return crashtest.ScanPrefix(t, j, crashtest.Prefix)
}
