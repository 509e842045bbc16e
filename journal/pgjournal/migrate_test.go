package pgjournal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/pgjournal"
)

// createV1 is the statement with which the first release's Migrate made the
// table, which it never versioned.
const createV1 = `CREATE TABLE IF NOT EXISTS %s (
	key        bytea       PRIMARY KEY,
	value      bytea       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
)`

// fixtureEntries are the entries of testdata/journal-v1.json at the
// repository's root: a journal written with the first release (record format
// v1), 17 entries of the execution "order-7".
func fixtureEntries(t *testing.T) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/journal-v1.json")
	require.NoError(t, err)
	var entries []struct {
		Key   string `json:"key"`
		Value []byte `json:"value"`
	}
	require.NoError(t, json.Unmarshal(b, &entries))
	m := map[string][]byte{}
	for _, e := range entries {
		m[e.Key] = e.Value
	}
	return m
}

// quoted returns table, "schema.name", as a quoted identifier.
func quoted(table string) string {
	schema, name, _ := strings.Cut(table, ".")
	return pgx.Identifier{schema, name}.Sanitize()
}

// createV1Table makes table as the first release did and writes entries to it,
// each at its own time, a millisecond apart from 2026-01-01.
func createV1Table(t *testing.T, table string, entries map[string][]byte) (first, last time.Time) {
	t.Helper()
	exec(t, fmt.Sprintf(createV1, quoted(table)))
	first = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := first
	for k, v := range entries {
		exec(t, `INSERT INTO `+quoted(table)+` (key, value, created_at) VALUES ($1, $2, $3)`, []byte(k), v, at)
		last = at
		at = at.Add(time.Millisecond)
	}
	return first, last
}

// rawEntries reads table with a connection of its own.
func rawEntries(t *testing.T, table string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT key, value FROM `+quoted(table))
	require.NoError(t, err)
	m := map[string][]byte{}
	var k, v []byte
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error { m[string(k)] = bytes.Clone(v); return nil })
	require.NoError(t, err)
	return m
}

func TestMigrateFromV1(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	entries := fixtureEntries(t)
	require.Len(t, entries, 17)
	first, last := createV1Table(t, table, entries)

	// The first release's table works unmigrated, but cannot list.
	j := openUnmigrated(t, table)
	stale := openUnmigrated(t, table) // finds version 1, and keeps writing as it did
	got, ok, err := j.Get(ctx, "order-7/prices/a")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, entries["order-7/prices/a"], got)
	_, err = stale.Put(ctx, "order-8/a", []byte("before"))
	require.NoError(t, err)
	entries["order-8/a"] = []byte("before")
	_, err = j.Executions(ctx, "", 10)
	require.ErrorContains(t, err, "Migrate")

	require.NoError(t, j.Migrate(ctx))
	require.Equal(t, entries, rawEntries(t, table), "every entry is kept, byte for byte")
	list, err := j.Executions(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "order-7", list[0].ID)
	require.Equal(t, int64(17), list[0].Entries)
	require.True(t, first.Equal(list[0].First), "First %v, want %v", list[0].First, first)
	require.True(t, last.Equal(list[0].Last), "Last %v, want %v", list[0].Last, last)
	require.Equal(t, "order-8", list[1].ID)

	// The Journal that found the table unmigrated writes as the first
	// release did; the trigger counts its entries.
	_, err = stale.Put(ctx, "order-8/b", []byte("after"))
	require.NoError(t, err)
	list, err = j.Executions(ctx, "order-7", 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, int64(2), list[0].Entries)
	n, err := j.DeleteExecution(ctx, "order-8")
	require.NoError(t, err)
	require.Equal(t, int64(2), n)

	// The execution resumes: the journaled branches of "prices" replay, and
	// the one that never finished runs.
	dctx := durable.WithJournal(ctx, j, "order-7")
	replayed := func(name string) durable.Step[int] {
		return durable.NewStep(name, func(context.Context) (int, error) {
			t.Errorf("branch %q ran, but the journal holds its result", name)
			return 0, errors.New("ran again")
		})
	}
	prices, err := durable.Parallel(dctx, "prices", []durable.Step[int]{
		replayed("a"),
		replayed("b"),
		durable.NewStep("c", func(context.Context) (int, error) { return 30, nil }),
	})
	require.NoError(t, err)
	require.Equal(t, []int{10, 20, 30}, prices)
	n = 0
	require.NoError(t, j.Scan(ctx, "order-7/", func(string, []byte) error { n++; return nil }))
	require.Greater(t, n, int64(17))
	list, err = j.Executions(ctx, "", 10)
	require.NoError(t, err)
	require.Equal(t, n, list[0].Entries, "new entries are counted")

	// Migrating again changes nothing; each version is recorded once.
	require.NoError(t, j.Migrate(ctx))
	list2, err := j.Executions(ctx, "", 10)
	require.NoError(t, err)
	require.Equal(t, list, list2)
	var versions []int32
	rows, err := pgxConnQuery(t, `SELECT version FROM `+quoted(table+"_migrations")+` ORDER BY version`)
	require.NoError(t, err)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Equal(t, []int32{1, 2}, versions)
}

// pgxConnQuery runs a query on a connection closed when the test ends.
func pgxConnQuery(t *testing.T, sql string, args ...any) (pgx.Rows, error) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	return conn.Query(ctx, sql, args...)
}

// Processes that migrate one old table at once all succeed, and the counts
// include every entry, also those that a process of the first release writes
// while they migrate.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	createV1Table(t, table, fixtureEntries(t))

	// A writer of the first release: INSERTs as its Puts did, without
	// knowing of any migration.
	stop := make(chan struct{})
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		conn, err := pgx.Connect(ctx, databaseURL(t))
		if !assert.NoError(t, err) {
			return
		}
		defer conn.Close(ctx)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := conn.Exec(ctx, `INSERT INTO `+quoted(table)+` (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`,
				fmt.Appendf(nil, "old-writer/%d", i), []byte("v"))
			if !assert.NoError(t, err) {
				return
			}
			written.Add(1)
		}
	})
	for range 6 {
		j := openUnmigrated(t, table)
		wg.Go(func() { assert.NoError(t, j.Migrate(ctx)) })
	}
	require.Eventually(t, func() bool { return written.Load() > 50 }, 10*time.Second, time.Millisecond)
	close(stop)
	wg.Wait()

	j := openJournal(t, table)
	list, err := j.Executions(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "old-writer", list[0].ID)
	require.Equal(t, written.Load(), list[0].Entries)
	require.Equal(t, "order-7", list[1].ID)
	require.Equal(t, int64(17), list[1].Entries)
}

// A table migrated by a newer release is refused, naming both versions.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	j := openJournal(t, table)
	_, err := j.Put(ctx, "exec/k", []byte("v"))
	require.NoError(t, err)
	newer := pgjournal.SchemaVersion + 1
	exec(t, `INSERT INTO `+quoted(table+"_migrations")+` (version) VALUES ($1)`, newer)

	check := func(err error) {
		t.Helper()
		var ve *journal.VersionError
		require.ErrorAs(t, err, &ve)
		require.Equal(t, newer, ve.Version)
		require.Equal(t, pgjournal.SchemaVersion, ve.Known)
		require.ErrorContains(t, err, fmt.Sprintf("schema version %d, newer than version %d", newer, pgjournal.SchemaVersion))
	}
	_, err = pgjournal.Open(ctx, databaseURL(t), pgjournal.WithTable(table))
	check(err)
	// A Journal made before the newer release migrated (or by New, which
	// does not contact the database) refuses its first write.
	pool, err := pgxpool.New(ctx, databaseURL(t))
	require.NoError(t, err)
	defer pool.Close()
	fresh, err := pgjournal.New(ctx, pool, pgjournal.WithTable(table))
	require.NoError(t, err)
	defer fresh.Close()
	_, err = fresh.Put(ctx, "exec/k2", []byte("v"))
	check(err)
	_, err = fresh.DeleteExecution(ctx, "exec")
	check(err)
	check(fresh.Migrate(ctx))
	require.Equal(t, map[string][]byte{"exec/k": []byte("v")}, rawEntries(t, table))
}

// The triggers count the writes that do not go through this package.
func TestExecutionsCountForeignWrites(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	j := openJournal(t, table)
	for i := range 3 {
		_, err := j.Put(ctx, fmt.Sprintf("mine/%d", i), []byte("v"))
		require.NoError(t, err)
	}
	exec(t, `INSERT INTO `+quoted(table)+` (key, value) VALUES ('theirs/1', 'v'), ('theirs/2', 'v'), ('mine/0', 'taken') ON CONFLICT (key) DO NOTHING`)
	exec(t, `DELETE FROM `+quoted(table)+` WHERE key = 'mine/1'`)
	list, err := j.Executions(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, int64(2), list[0].Entries)
	require.Equal(t, int64(2), list[1].Entries)
	exec(t, `DELETE FROM `+quoted(table)+` WHERE key >= 'theirs/' AND key < 'theirs0'`)
	list, err = j.Executions(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 1, "an execution whose last entry is deleted is gone")
}

// Two Journals with pools of their own behave as two processes: each lists
// and deletes what the other wrote.
func TestExecutionsAcrossJournals(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	a := openJournal(t, table)
	b := openJournal(t, table, pgjournal.WithDeleteBatch(2))
	for i := range 5 {
		_, err := a.Put(ctx, fmt.Sprintf("from-a/%d", i), []byte("v"))
		require.NoError(t, err)
	}
	list, err := b.Executions(ctx, "", 10)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "from-a", list[0].ID)
	require.Equal(t, int64(5), list[0].Entries)

	n, err := b.DeleteExecution(ctx, "from-a")
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	_, ok, err := a.Get(ctx, "from-a/0")
	require.NoError(t, err)
	require.False(t, ok)
	list, err = a.Executions(ctx, "", 10)
	require.NoError(t, err)
	require.Empty(t, list)
}

// Tables whose names leave no room for a suffix get objects of their own.
func TestLongTableNames(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	long := strings.Repeat("é", 25) + "x" // 51 bytes
	var js []*pgjournal.Journal
	for _, name := range []string{long + strings.Repeat("a", 12), long + strings.Repeat("b", 12), long} {
		j := openJournal(t, schema+"."+name)
		_, err := j.Put(ctx, name+"/k", []byte("v"))
		require.NoError(t, err)
		js = append(js, j)
	}
	for _, j := range js {
		list, err := j.Executions(ctx, "", 10)
		require.NoError(t, err)
		require.Len(t, list, 1, "each table has an executions table of its own")
	}
}

func TestDeleteAfterClose(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, newTable(t))
	require.NoError(t, j.Close())
	_, err := j.Executions(ctx, "", 1)
	require.ErrorIs(t, err, journal.ErrClosed)
	_, err = j.DeleteExecution(ctx, "x")
	require.ErrorIs(t, err, journal.ErrClosed)
	_, err = j.DeleteOlder(ctx, time.Now())
	require.ErrorIs(t, err, journal.ErrClosed)
}
