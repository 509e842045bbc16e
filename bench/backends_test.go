package bench

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // registers the "sqlite" database/sql driver

	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/pgjournal"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

// A backend opens journals, and a plain database/sql table for the naive
// loop, in storage of the benchmark's own: a directory from b.TempDir for
// SQLite, a new schema for PostgreSQL. Everything is closed when the
// benchmark ends.
type backend struct {
	name string
	// open returns a journal named name, with group commit or with one
	// transaction per checkpoint.
	open func(b *testing.B, name string, groupCommit bool) journal.Journal
	// naive returns a database with an empty table and the INSERT statement
	// that writes one (key, value) row to it.
	naive func(b *testing.B) (db *sql.DB, insert string)
}

var backends = []backend{
	{"sqlite", openSQLite, naiveSQLite},
	{"postgres", openPostgres, naivePostgres},
}

// openSQLite opens a journal file with the default settings (synchronous =
// FULL), but for group commit.
func openSQLite(b *testing.B, name string, groupCommit bool) journal.Journal {
	b.Helper()
	j, err := sqlitejournal.Open(filepath.Join(b.TempDir(), name+".db"), sqlitejournal.WithGroupCommit(groupCommit))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := j.Close(); err != nil {
			b.Error(err)
		}
	})
	return j
}

// naiveSQLite opens a file with the journal's durability settings (WAL,
// synchronous = FULL) and one connection, as SQLite has one writer at a time;
// each INSERT commits on its own.
func naiveSQLite(b *testing.B) (*sql.DB, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "naive.db")
	db, err := sql.Open("sqlite", "file:"+path+
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE checkpoints (
	key   BLOB NOT NULL PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID`); err != nil {
		b.Fatal(err)
	}
	return db, `INSERT INTO checkpoints (key, value) VALUES (?, ?)`
}

// pgPool is the most connections a journal or the naive loop may use.
const pgPool = 32

// openPostgres opens a journal on a new table in a new schema, with a pool of
// pgPool connections.
func openPostgres(b *testing.B, name string, groupCommit bool) journal.Journal {
	b.Helper()
	url := databaseURL(b)
	table := newSchema(b) + "." + name
	j, err := pgjournal.Open(bg, withParam(url, fmt.Sprintf("pool_max_conns=%d", pgPool)),
		pgjournal.WithTable(table), pgjournal.WithGroupCommit(groupCommit))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() }) // before the schema is dropped
	if err := j.Migrate(bg); err != nil {
		b.Fatal(err)
	}
	return j
}

// naivePostgres uses pgx through database/sql with a pool of the journal's
// size; each INSERT commits on its own.
func naivePostgres(b *testing.B) (*sql.DB, string) {
	b.Helper()
	url := databaseURL(b)
	table := pgx.Identifier{newSchema(b), "checkpoints"}.Sanitize()
	db, err := sql.Open("pgx", url)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(pgPool)
	db.SetMaxIdleConns(pgPool)
	b.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE ` + table + ` (key bytea PRIMARY KEY, value bytea NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	return db, `INSERT INTO ` + table + ` (key, value) VALUES ($1, $2)`
}
