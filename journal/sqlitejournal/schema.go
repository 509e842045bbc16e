package sqlitejournal

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/durable-go/durable/journal"
)

// The file's schema is versioned in PRAGMA user_version, which SQLite keeps in
// the file's header. Version 0 is a file this package has not set up yet: a
// new file, or one written by the first release, which made the table of
// entries and never set user_version. migrations[v] takes a file from version
// v to v+1; schemaVersion is the number of migrations. Each migration is one
// step of the upgrade transaction that Open runs (see migrate).
var migrations = []string{
	// Version 1: the entries.
	schema,

	// Version 2: one row per execution, so that listing the executions reads
	// one row per execution, and retention finds the oldest through an index.
	// This package's writers count the entries they insert, one upsert per
	// execution and transaction, and mark them counted; the insert trigger
	// counts the others (written by hand, or by a process still running the
	// first release), one upsert per row. The delete trigger counts every
	// deleted row.
	`ALTER TABLE durable_journal ADD COLUMN counted INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS durable_executions (
	id       BLOB    NOT NULL PRIMARY KEY, -- the keys' first segment
	first_at INTEGER NOT NULL,             -- created_at of the oldest entry, Unix ms
	last_at  INTEGER NOT NULL,             -- created_at of the latest entry, Unix ms
	entries  INTEGER NOT NULL              -- how many entries it has, at least 1
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS durable_executions_last_at ON durable_executions (last_at);
DELETE FROM durable_executions;
INSERT INTO durable_executions (id, first_at, last_at, entries)
	SELECT id, min(created_at), max(created_at), count(*)
	FROM (SELECT ` + executionOf("key") + ` AS id, created_at FROM durable_journal)
	GROUP BY id;
CREATE TRIGGER IF NOT EXISTS durable_journal_insert AFTER INSERT ON durable_journal WHEN NEW.counted = 0 BEGIN
	INSERT INTO durable_executions (id, first_at, last_at, entries)
		VALUES (` + executionOf("NEW.key") + `, NEW.created_at, NEW.created_at, 1)
		ON CONFLICT (id) DO UPDATE SET
			first_at = min(first_at, excluded.first_at),
			last_at = max(last_at, excluded.last_at),
			entries = entries + 1;
END;
CREATE TRIGGER IF NOT EXISTS durable_journal_delete AFTER DELETE ON durable_journal BEGIN
	DELETE FROM durable_executions WHERE id = ` + executionOf("OLD.key") + ` AND entries <= 1;
	UPDATE durable_executions SET entries = entries - 1 WHERE id = ` + executionOf("OLD.key") + `;
END`,
}

// schemaVersion is the version of the schema this code writes.
var schemaVersion = len(migrations)

// executionOf returns the SQL of the execution of the key in column: its bytes
// before the first '/', or all of them. instr and substr count bytes in a BLOB.
func executionOf(column string) string {
	return strings.ReplaceAll(`CASE WHEN instr(K, X'2F') > 0 THEN substr(K, 1, instr(K, X'2F') - 1) ELSE K END`, "K", column)
}

// migrate brings the file's schema to schemaVersion. A file already there
// costs one read of its header. Otherwise migrate takes the write lock (BEGIN
// IMMEDIATE, waiting under the busy timeout), reads the version again, since
// another process may have migrated the file meanwhile, runs the missing
// migrations and sets user_version, all in one transaction: a crash leaves the
// file as it was, and two processes opening one old file at once both
// succeed, one migrating and the other finding it done. A file of a newer
// version is refused with a *journal.VersionError.
func (j *Journal) migrate(ctx context.Context) error {
	v, err := userVersion(ctx, j.w)
	if err != nil {
		return err
	}
	if v == schemaVersion {
		return nil
	}
	if v > schemaVersion {
		return j.versionError(v)
	}
	tx, err := j.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	if v, err = userVersion(ctx, tx); err != nil {
		return err
	}
	if v > schemaVersion {
		return j.versionError(v)
	}
	for ; v < schemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate to schema version %d: %w", v+1, err)
		}
	}
	// PRAGMA takes no parameters; v is a number.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

func (j *Journal) versionError(v int) error {
	return &journal.VersionError{Store: fmt.Sprintf("file %q", j.path), Version: v, Known: schemaVersion}
}

func userVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}
