package pgjournal_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/journal/pgjournal"
)

// databaseURL returns the URL of the test server from TEST_DATABASE_URL. When
// it is unset the test is skipped, except in CI (CI=true), where that fails:
// CI must never pass by skipping the PostgreSQL tests.
func databaseURL(tb testing.TB) string {
	tb.Helper()
	if url := os.Getenv("TEST_DATABASE_URL"); url != "" {
		return url
	}
	const how = `eval "$(scripts/pg.sh start /tmp/durable-pg)" starts a server and sets it`
	if os.Getenv("CI") == "true" {
		tb.Fatal("TEST_DATABASE_URL is not set, and CI=true forbids skipping the PostgreSQL tests; " + how)
	}
	tb.Skip("TEST_DATABASE_URL is not set, so the PostgreSQL tests are skipped; " + how)
	return ""
}

// exec runs one SQL statement on a connection of its own.
func exec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL(tb))
	require.NoError(tb, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	require.NoError(tb, err)
}

// newSchema creates a schema with a random name, dropped with everything in it
// when the test ends, and returns its name.
func newSchema(tb testing.TB) string {
	tb.Helper()
	schema := fmt.Sprintf("pgjournal_test_%016x", rand.Uint64())
	exec(tb, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	tb.Cleanup(func() { exec(tb, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE") })
	return schema
}

// newTable returns the name of the journal table in a new schema of its own.
func newTable(tb testing.TB) string {
	tb.Helper()
	return newSchema(tb) + ".durable_journal"
}

// openJournal opens a Journal with its own pool on table, migrated, and closes
// it when the test ends (before the schema is dropped).
func openJournal(tb testing.TB, table string, opts ...pgjournal.Option) *pgjournal.Journal {
	tb.Helper()
	j := openUnmigrated(tb, table, opts...)
	require.NoError(tb, j.Migrate(context.Background()))
	return j
}

func openUnmigrated(tb testing.TB, table string, opts ...pgjournal.Option) *pgjournal.Journal {
	tb.Helper()
	opts = append([]pgjournal.Option{pgjournal.WithTable(table)}, opts...)
	j, err := pgjournal.Open(context.Background(), databaseURL(tb), opts...)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, j.Close()) })
	return j
}

// modes are the write paths every behaviour is checked on.
var modes = []struct {
	name string
	opts []pgjournal.Option
}{
	{"GroupCommit", nil},
	{"SmallBatches", []pgjournal.Option{pgjournal.WithMaxBatch(3)}},
	{"NoWait", []pgjournal.Option{pgjournal.WithMaxWait(0)}},
	{"TransactionPerPut", []pgjournal.Option{pgjournal.WithGroupCommit(false)}},
}
