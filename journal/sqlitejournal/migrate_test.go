package sqlitejournal_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

// fixtureV1 is a journal written by the first release (schema version 1,
// user_version 0): 17 entries of the execution "order-7".
const fixtureV1 = "testdata/journal-v1.sqlite"

// copyFixture copies the fixture into a directory of the test's own, so that
// neither the test nor SQLite's side files touch testdata.
func copyFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fixtureV1)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "journal.db")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

type row struct {
	value     []byte
	createdAt int64
}

// rawRows reads durable_journal with a plain connection.
func rawRows(t *testing.T, path string) map[string]row {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	rows, err := db.QueryContext(bg, `SELECT key, value, created_at FROM durable_journal`)
	require.NoError(t, err)
	defer rows.Close()
	m := map[string]row{}
	for rows.Next() {
		var k []byte
		var r row
		require.NoError(t, rows.Scan(&k, &r.value, &r.createdAt))
		m[string(k)] = r
	}
	require.NoError(t, rows.Err())
	return m
}

func rawExec(t *testing.T, path, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ExecContext(bg, query, args...)
	require.NoError(t, err)
}

func TestMigrateFixtureV1(t *testing.T) {
	path := copyFixture(t)
	before := rawRows(t, copyFixture(t))
	require.Len(t, before, 17)
	first, last := int64(1<<62), int64(0)
	for _, r := range before {
		first, last = min(first, r.createdAt), max(last, r.createdAt)
	}

	j := openAt(t, path)
	v, _, err := sqlitejournal.Pragmas(j, "user_version")
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(sqlitejournal.SchemaVersion), v, "Open migrates the file")

	// Every entry is kept, byte for byte, with its time.
	require.Equal(t, before, rawRows(t, path))
	for k, r := range before {
		got, ok, err := j.Get(bg, k)
		require.NoError(t, err)
		require.True(t, ok, k)
		require.Equal(t, r.value, got, k)
	}
	list, err := j.Executions(bg, "", 10)
	require.NoError(t, err)
	require.Equal(t, []journal.Execution{{
		ID: "order-7", First: time.UnixMilli(first), Last: time.UnixMilli(last), Entries: 17,
	}}, list)

	// The execution resumes: the journaled branches of "prices" replay, and
	// the one that never finished runs.
	ctx := durable.WithJournal(bg, j, "order-7")
	replayed := func(name string) durable.Step[int] {
		return durable.NewStep(name, func(context.Context) (int, error) {
			t.Errorf("branch %q ran, but the journal holds its result", name)
			return 0, errors.New("ran again")
		})
	}
	ran := false
	prices, err := durable.Parallel(ctx, "prices", []durable.Step[int]{
		replayed("a"),
		replayed("b"),
		durable.NewStep("c", func(context.Context) (int, error) { ran = true; return 30, nil }),
	})
	require.NoError(t, err)
	require.Equal(t, []int{10, 20, 30}, prices)
	require.True(t, ran, "the branch the journal lacks runs")

	n := 0
	require.NoError(t, j.Scan(bg, "order-7/", func(string, []byte) error { n++; return nil }))
	require.Greater(t, n, 17)
	list, err = j.Executions(bg, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, int64(n), list[0].Entries, "new entries are counted")
	require.Equal(t, time.UnixMilli(first), list[0].First)
	require.True(t, list[0].Last.After(time.UnixMilli(last)))

	// Opening again finds the file migrated.
	require.NoError(t, j.Close())
	j = openAt(t, path)
	list, err = j.Executions(bg, "", 10)
	require.NoError(t, err)
	require.Equal(t, int64(n), list[0].Entries)
}

// Processes that open one old file at once all succeed: one migrates it, the
// others wait for its write lock and find it done.
func TestMigrateConcurrentOpens(t *testing.T) {
	path := copyFixture(t)
	before := rawRows(t, path)
	const opens = 6
	js := make([]*sqlitejournal.Journal, opens)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range opens {
		wg.Go(func() {
			<-start
			j, err := sqlitejournal.Open(path)
			if assert.NoError(t, err) {
				js[i] = j
			}
		})
	}
	close(start)
	wg.Wait()
	for _, j := range js {
		if j == nil {
			continue
		}
		list, err := j.Executions(bg, "", 10)
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, int64(17), list[0].Entries)
		require.NoError(t, j.Close())
	}
	require.Equal(t, before, rawRows(t, path))
}

// A file migrated by a newer version is refused, naming both versions.
func TestNewerSchemaRefused(t *testing.T) {
	path := tempPath(t)
	j := openAt(t, path)
	_, err := j.Put(bg, "exec/k", []byte("v"))
	require.NoError(t, err)
	require.NoError(t, j.Close())
	newer := sqlitejournal.SchemaVersion + 1
	rawExec(t, path, fmt.Sprintf("PRAGMA user_version = %d", newer))

	j, err = sqlitejournal.Open(path)
	require.Error(t, err)
	require.Nil(t, j)
	var ve *journal.VersionError
	require.ErrorAs(t, err, &ve)
	require.Equal(t, newer, ve.Version)
	require.Equal(t, sqlitejournal.SchemaVersion, ve.Known)
	require.ErrorContains(t, err, fmt.Sprintf("schema version %d, newer than version %d", newer, sqlitejournal.SchemaVersion))
	require.ErrorContains(t, err, path)
	require.Len(t, rawRows(t, path), 1, "a refused file is left alone")
}

// The triggers count the writes that do not go through this package: those
// of a process still running the first release, and deletes by hand.
func TestExecutionsCountForeignWrites(t *testing.T) {
	path := copyFixture(t)
	j := openAt(t, path)
	rawExec(t, path, `INSERT INTO durable_journal (key, value, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING`,
		[]byte("order-8/a"), []byte("v"), time.Now().UnixMilli())
	rawExec(t, path, `INSERT INTO durable_journal (key, value, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO NOTHING`,
		[]byte("order-7/charge"), []byte("taken"), time.Now().UnixMilli())
	rawExec(t, path, `DELETE FROM durable_journal WHERE key = ?1`, []byte("order-7/prices/a"))
	list, err := j.Executions(bg, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, int64(16), list[0].Entries)
	require.Equal(t, "order-8", list[1].ID)
	require.Equal(t, int64(1), list[1].Entries)
	rawExec(t, path, `DELETE FROM durable_journal WHERE key = ?1`, []byte("order-8/a"))
	list, err = j.Executions(bg, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 1, "an execution whose last entry is deleted is gone")
}

// Two Journals on one file behave as two processes: each lists and deletes
// what the other wrote.
func TestExecutionsAcrossHandles(t *testing.T) {
	path := tempPath(t)
	a := openAt(t, path)
	b := openAt(t, path, sqlitejournal.WithDeleteBatch(2))
	for i := range 5 {
		_, err := a.Put(bg, fmt.Sprintf("from-a/%d", i), []byte("v"))
		require.NoError(t, err)
	}
	list, err := b.Executions(bg, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "from-a", list[0].ID)
	require.Equal(t, int64(5), list[0].Entries)

	n, err := b.DeleteExecution(bg, "from-a")
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	_, ok, err := a.Get(bg, "from-a/0")
	require.NoError(t, err)
	require.False(t, ok)
	list, err = a.Executions(bg, "", 10)
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestDeleteAfterClose(t *testing.T) {
	j, err := sqlitejournal.Open(tempPath(t))
	require.NoError(t, err)
	require.NoError(t, j.Close())
	_, err = j.Executions(bg, "", 1)
	require.ErrorIs(t, err, journal.ErrClosed)
	_, err = j.DeleteExecution(bg, "x")
	require.ErrorIs(t, err, journal.ErrClosed)
	_, err = j.DeleteOlder(bg, time.Now())
	require.ErrorIs(t, err, journal.ErrClosed)
}
