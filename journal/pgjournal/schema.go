package pgjournal

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/durable-go/durable/journal"
)

// names are the quoted names of the journal's objects in the database. All
// live in the schema of the table of entries and are named after it: for the
// table "durable_journal", "durable_journal_executions" and so on.
type names struct {
	table      string // the entries
	executions string // one row per execution
	lastAt     string // the index of executions by last_at
	migrations string // one row per schema version applied
	count      string // the trigger function that keeps executions
}

func newNames(table pgx.Identifier) names {
	derive := func(suffix string) string {
		id := append(pgx.Identifier{}, table...)
		id[len(id)-1] = derivedName(id[len(id)-1], suffix)
		return id.Sanitize()
	}
	return names{
		table:      table.Sanitize(),
		executions: derive("_executions"),
		lastAt:     pgx.Identifier{derivedName(table[len(table)-1], "_executions_last_at")}.Sanitize(), // an index lives in its table's schema
		migrations: derive("_migrations"),
		count:      derive("_count"),
	}
}

// derivedName returns name+suffix, shortened to fit PostgreSQL's limit on
// identifiers: a name too long keeps its start, cut at a character boundary,
// followed by a hash of the whole name, so that two long names sharing a
// start still get names of their own.
func derivedName(name, suffix string) string {
	if len(name)+len(suffix) <= maxIdentifier {
		return name + suffix
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	tag := fmt.Sprintf("_%08x", h.Sum32())
	keep := maxIdentifier - len(suffix) - len(tag)
	for keep > 0 && !utf8.RuneStart(name[keep]) {
		keep--
	}
	return name[:keep] + tag + suffix
}

// executionOf returns the SQL of the execution of the bytea key in column: its
// bytes before the first '/', or all of them.
func executionOf(column string) string {
	return strings.ReplaceAll(`CASE WHEN position('/'::bytea IN K) > 0 THEN substring(K FROM 1 FOR position('/'::bytea IN K) - 1) ELSE K END`, "K", column)
}

// A migration takes the schema from one version to the next. Migrate runs each
// in the transaction that holds the migration lock.
type migration func(n names) []string

// migrations[v] takes the schema from version v to v+1. Version 0 is no
// schema, or the table of entries alone as the first release made it, which
// recorded no version.
var migrations = []migration{
	// Version 1: the entries.
	func(n names) []string { return []string{createTable(n.table)} },

	// Version 2: one row per execution, so that listing reads one row per
	// execution and retention finds the oldest through an index. This
	// package's INSERT marks its rows counted and counts them in the same
	// statement, one upsert per execution; a row trigger counts the rows of
	// other writers (older releases, operators), and a statement trigger
	// every deleted row. Only rows actually inserted or deleted count (ON
	// CONFLICT DO NOTHING skips the others).
	func(n names) []string {
		return []string{
			// Writers wait until the executions are counted and the triggers
			// are in place, so that no entry is counted twice or missed.
			`LOCK TABLE ` + n.table + ` IN SHARE ROW EXCLUSIVE MODE`,
			// A constant default: no rewrite of the table.
			`ALTER TABLE ` + n.table + ` ADD COLUMN IF NOT EXISTS counted boolean NOT NULL DEFAULT false`,
			`CREATE TABLE IF NOT EXISTS ` + n.executions + ` (
	id       bytea       PRIMARY KEY,
	first_at timestamptz NOT NULL,
	last_at  timestamptz NOT NULL,
	entries  bigint      NOT NULL
)`,
			// (last_at, id) is DeleteOlder's order, so its query reads the
			// index from the start and stops at its limit.
			`CREATE INDEX IF NOT EXISTS ` + n.lastAt + ` ON ` + n.executions + ` (last_at, id)`,
			`CREATE OR REPLACE FUNCTION ` + n.count + `() RETURNS trigger LANGUAGE plpgsql AS ` + dollarQuote(countBody(n)),
			`DROP TRIGGER IF EXISTS durable_count_inserts ON ` + n.table,
			`CREATE TRIGGER durable_count_inserts AFTER INSERT ON ` + n.table + `
	FOR EACH ROW WHEN (NOT NEW.counted) EXECUTE FUNCTION ` + n.count + `()`,
			`DROP TRIGGER IF EXISTS durable_count_deletes ON ` + n.table,
			`CREATE TRIGGER durable_count_deletes AFTER DELETE ON ` + n.table + `
	REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION ` + n.count + `()`,
			`DELETE FROM ` + n.executions,
			`INSERT INTO ` + n.executions + ` (id, first_at, last_at, entries)
	SELECT id, min(created_at), max(created_at), count(*)
	FROM (SELECT ` + executionOf("key") + ` AS id, created_at FROM ` + n.table + `) AS k
	GROUP BY id`,
		}
	},
}

// schemaVersion is the version of the schema this code writes.
var schemaVersion = len(migrations)

func createTable(table string) string {
	return `CREATE TABLE IF NOT EXISTS ` + table + ` (
	key        bytea       PRIMARY KEY,
	value      bytea       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
)`
}

// countBody is the body of the trigger function: for each row inserted
// without being counted, and for each statement that deletes. A deletion
// subtracts, and deletes the rows left without entries; a row updated
// meanwhile by a concurrent insert is subtracted from as it is then, so the
// count stays right.
func countBody(n names) string {
	return `
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO ` + n.executions + ` AS e (id, first_at, last_at, entries)
			VALUES (` + executionOf("NEW.key") + `, NEW.created_at, NEW.created_at, 1)
			ON CONFLICT (id) DO UPDATE SET
				first_at = least(e.first_at, excluded.first_at),
				last_at = greatest(e.last_at, excluded.last_at),
				entries = e.entries + 1;
	ELSE
		UPDATE ` + n.executions + ` AS e SET entries = e.entries - k.n
			FROM (SELECT id, count(*) AS n
				FROM (SELECT ` + executionOf("key") + ` AS id FROM changed) AS d
				GROUP BY id) AS k
			WHERE e.id = k.id;
		DELETE FROM ` + n.executions + ` AS e
			WHERE e.entries <= 0 AND e.id IN (SELECT ` + executionOf("key") + ` FROM changed);
	END IF;
	RETURN NULL;
END`
}

// dollarQuote quotes s as a dollar-quoted string constant, with a tag that s
// does not contain (table names are arbitrary).
func dollarQuote(s string) string {
	tag := "$durable$"
	for i := 0; strings.Contains(s, tag); i++ {
		tag = fmt.Sprintf("$durable%d$", i)
	}
	return tag + s + tag
}

// Migrate brings the journal's schema to the version this code writes,
// creating what is missing: the table of entries (unless it exists), the table
// of executions and the triggers that keep it. It records each version it
// applies in the table of migrations. It does not create a schema: for a
// table named "schema.name" the schema must exist. Migrate is idempotent and
// safe to run from several processes at once; it refuses, with a
// [*journal.VersionError], a schema that a newer release has migrated. The
// package documentation lists the objects and the cost.
func (j *Journal) Migrate(ctx context.Context) error {
	if j.closed() {
		return fmt.Errorf("pgjournal: migrate %s: %w", j.table, journal.ErrClosed)
	}
	// CREATE TABLE IF NOT EXISTS can still fail with a unique violation in
	// the catalog when two sessions run it at once; a transaction-scoped
	// advisory lock on the table's name makes them take turns, and the second
	// finds the version the first recorded.
	h := fnv.New64a()
	h.Write([]byte("github.com/durable-go/durable/journal/pgjournal " + j.table))
	lock := int64(h.Sum64())
	err := pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+j.names.migrations+` (
	version    integer     PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
			return err
		}
		var v int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+j.names.migrations).Scan(&v); err != nil {
			return err
		}
		if v > schemaVersion {
			return j.versionError(v)
		}
		for ; v < schemaVersion; v++ {
			for _, stmt := range migrations[v](j.names) {
				if _, err := tx.Exec(ctx, stmt); err != nil {
					return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+j.names.migrations+` (version) VALUES ($1)`, v+1); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgjournal: migrate %s: %w", j.table, j.interpretError(err))
	}
	// A role that may read the table but not write it would fail its first
	// Put only after a wave of branches ran their side effects: say it now.
	var canWrite bool
	if err := j.pool.QueryRow(ctx, `SELECT has_table_privilege(current_user, $1, 'INSERT')`, j.names.table).Scan(&canWrite); err != nil {
		return fmt.Errorf("pgjournal: migrate %s: %w", j.table, j.interpretError(err))
	}
	if !canWrite {
		return fmt.Errorf("pgjournal: migrate %s: the role may not insert into the table", j.table)
	}
	j.version.Store(int64(schemaVersion))
	j.versionChecked.Store(true)
	return nil
}

func (j *Journal) versionError(v int) error {
	return &journal.VersionError{Store: "table " + j.table, Version: v, Known: schemaVersion}
}

// checkVersion refuses a schema that a newer release has migrated, with a
// *journal.VersionError, and notes the version, which decides how Puts write.
// It asks the database once per Journal, on the first write, or on Open: a
// schema without the table of migrations is older, and is fine. It does not
// cache a failure.
func (j *Journal) checkVersion(ctx context.Context) error {
	if j.versionChecked.Load() {
		return nil
	}
	j.versionMu.Lock()
	defer j.versionMu.Unlock()
	if j.versionChecked.Load() {
		return nil
	}
	var v int
	err := j.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+j.names.migrations).Scan(&v)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == codeUndefinedTable || pgErr.Code == codeInvalidSchemaName) {
		err, v = nil, 0
	}
	if err != nil {
		return err
	}
	if v > schemaVersion {
		return j.versionError(v)
	}
	j.version.Store(int64(v))
	j.versionChecked.Store(true)
	return nil
}
