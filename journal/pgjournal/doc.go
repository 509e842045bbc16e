// Package pgjournal stores durable's checkpoints in PostgreSQL, through pgx.
//
// A [Journal] implements [journal.Journal], [journal.Scanner],
// [journal.Lister] and [journal.Deleter] over one table of entries and a few
// objects beside it. Several processes may share the table: keys are
// write-once, and when two of them Put one key at once the first commit wins
// and both get its value.
//
//	j, err := pgjournal.Open(ctx, "postgres://app@db.internal/app")
//	if err != nil { ... }
//	defer j.Close()
//	if err := j.Migrate(ctx); err != nil { ... }
//	ctx = durable.WithJournal(ctx, j, jobID)
//
// [Open] makes and owns a connection pool; [New] uses a *pgxpool.Pool the
// caller already has and leaves it open on Close.
//
// # Schema
//
// [Journal.Migrate] creates the table of entries, named "durable_journal"
// unless [WithTable] says otherwise:
//
//	CREATE TABLE IF NOT EXISTS durable_journal (
//		key        bytea       PRIMARY KEY,
//		value      bytea       NOT NULL,
//		created_at timestamptz NOT NULL DEFAULT now()
//	)
//
// Keys and values are stored byte for byte, so keys may hold any bytes: NUL,
// invalid UTF-8. A key is limited by the primary key's index to about 2.7 kB;
// a value, by PostgreSQL, to 1 GB. created_at is the start of the transaction
// that wrote the entry.
//
// Schema version 2 adds to it a column
//
//	counted boolean NOT NULL DEFAULT false -- true: its writer counted it
//
// and, in the same schema and named after it,
//
//	CREATE TABLE durable_journal_executions (
//		id       bytea       PRIMARY KEY, -- the keys' first segment
//		first_at timestamptz NOT NULL,    -- created_at of the oldest entry
//		last_at  timestamptz NOT NULL,    -- created_at of the latest entry
//		entries  bigint      NOT NULL     -- how many entries, at least 1
//	);
//	CREATE INDEX durable_journal_executions_last_at ON durable_journal_executions (last_at, id);
//	CREATE TABLE durable_journal_migrations (
//		version    integer     PRIMARY KEY,
//		applied_at timestamptz NOT NULL DEFAULT now()
//	);
//
// The table of executions holds one row per execution (the execution of a
// key is its bytes before the first '/', or all of them; see
// [journal.Execution]). A Put's INSERT keeps it: it marks its rows counted
// and, in the same statement, upserts the row of each execution it wrote to,
// from the keys it returns, which are only the ones it inserted (a key that
// is taken inserts nothing and counts nothing), in the order of the
// executions' IDs:
//
//	WITH inserted AS (
//		INSERT INTO durable_journal (key, value, counted) ... RETURNING key
//	), counted AS (
//		INSERT INTO durable_journal_executions ... SELECT ... FROM inserted GROUP BY id ORDER BY id
//		ON CONFLICT (id) DO UPDATE SET entries = entries + excluded.entries, ...
//	)
//	SELECT key FROM inserted
//
// Two triggers on durable_journal, running a PL/pgSQL function
// durable_journal_count(), count everyone else: one for each inserted row not
// marked counted (an operator with psql, a process still running the first
// release), and one for each DELETE statement, which subtracts what the
// statement deleted, read from its transition table, and deletes the rows
// left without entries. So the table of executions agrees with the entries
// whoever writes them. A Journal that finds the table at version 1 (not yet
// migrated) writes as the first release did, and the trigger counts its
// rows once a migration has added it. A name longer than PostgreSQL's 63
// bytes is shortened, with a hash of the table's name.
//
// The row of an execution is a point of contention: two transactions that
// write one execution at once (two processes sharing it, or
// [WithGroupCommit](false) with concurrent Puts) take turns on it, the second
// waiting for the first to commit. With group commit, one process commits one
// batch at a time anyway; see docs/PERFORMANCE.md for what it costs.
//
// # Schema versions and migration
//
// The schema is versioned in the table of migrations: version 1 is the table
// of entries alone, as the first release made it (it recorded no version);
// version 2 adds the executions. Migrate takes a transaction-scoped advisory
// lock on the table's name, reads the version, runs every missing migration
// and records it, in one transaction; it is idempotent and safe to run from
// several processes at once. Migrating to version 2 locks the table of
// entries against writes (SHARE ROW EXCLUSIVE), so that no entry is counted
// twice or missed, adds the column counted (a constant default: the table is
// not rewritten), and fills the executions with one GROUP BY over the
// entries: writers wait for that, 0.2 s for a million entries on two vCPUs.
// Migrate needs the rights to create tables and functions in the schema;
// an application whose role lacks them can run Migrate once with another
// role, and then needs INSERT, UPDATE, DELETE and SELECT on the tables of
// entries and executions and SELECT on the table of migrations.
//
// A schema that a newer release has migrated is refused, with a
// [*journal.VersionError] naming both versions: by [Open], by Migrate, and by
// the first write of a Journal made with [New], which checks the version
// once.
//
// # Listing and deleting executions
//
// [Journal.Executions] reads a page of the table of executions in ID order,
// without touching the entries. [Journal.DeleteExecution] deletes one
// execution's entries in key order, [WithDeleteBatch] of them (10,000 by
// default) per statement and transaction; [Journal.DeleteOlder] finds the
// executions last written before a time through the index on last_at, oldest
// first, and deletes them in transactions of the same size. Deleting locks
// the rows it deletes and their executions' rows, nothing that writers of
// other executions wait for.
//
// Deleting an execution that a process is still writing races with it: a Put
// that commits after the deletion recreates the execution with its own entry,
// a Put whose key was taken may fail when the entry that took it is deleted
// before it is read back, and a later resume runs the deleted steps again.
// Delete executions only once no process runs them; with DeleteOlder, choose
// a cut older than the latest write of any execution that may still be
// running.
//
// # Writes and group commit
//
// A Put runs
//
//	BEGIN ISOLATION LEVEL READ COMMITTED;
//	INSERT INTO durable_journal (key, value)
//		SELECT k, v FROM unnest($1::bytea[], $2::bytea[]) AS batch (k, v) ORDER BY k
//		ON CONFLICT (key) DO NOTHING
//		RETURNING key;
//	COMMIT;
//
// as one pipelined round trip (with schema version 2, the INSERT is the
// first part of the statement that also counts, shown under Schema). A key the INSERT returns now holds the value
// that was sent, and the Put returns that. A key it skipped held a value
// already, committed before the INSERT went on; only then does the Put take a
// second round trip, after the commit, to read that value with
//
//	SELECT t.key, t.value FROM unnest($1::bytea[]) AS batch (k)
//		JOIN durable_journal AS t ON t.key = batch.k;
//
// and returns it. That query is parsed and planned on every execution rather
// than prepared once per connection, so that the server probes the primary
// key however small the table was when the connection first ran it. A batch
// of new keys reads nothing back, and the INSERT finds conflicts through the
// primary key's index: the cost of a batch hardly grows with the table. If
// the read-back fails, only the Puts of the keys it was to read fail.
//
// By default one committer goroutine groups the Puts that arrive together into
// one such transaction, so that a thousand branches finishing at once cost a
// handful of commits rather than a thousand. A Put returns only once the batch
// holding it has committed. The committer takes whatever Puts are waiting when
// it is free; when the previous batch was larger than what has arrived, it
// waits for the rest up to [WithMaxWait] (500µs) or the time the previous
// commit took, whichever is shorter. A Put alone is committed at once. A batch
// holds at most [WithMaxBatch] (256) Puts. Of several Puts of one key in a
// batch the first is written, and all of them return the stored value. If the
// server rejects a batch for its content (a key too long, say), its Puts are
// retried one by one, so that only the faulty one fails; if the server aborts
// it for a conflict with another transaction, the batch is run again.
// [WithGroupCommit](false) makes every Put its own transaction.
//
// # Durability
//
// A Put has returned only after COMMIT, so its value is as durable as the
// server makes commits. That holds with synchronous_commit set to on (the
// default), or to remote_write, remote_apply or local. With
// synchronous_commit=off a crash of the server may lose the last commits, and
// durable could run again a step whose result a caller has already seen. The
// journal does not override the session's setting; to pin it, add
// synchronous_commit=on to the connection string, as pgx passes unknown
// parameters on to the server.
//
// # Errors
//
// Errors name the operation and the key. They match [context.Canceled] or
// [context.DeadlineExceeded] when the context ended the call, and
// [journal.ErrClosed] after Close. A missing table or schema is reported with
// a hint to run Migrate.
//
// # Privileges
//
// Migrate needs the privilege to create in the table's schema, and fails with
// an error naming the table when the role may not insert into it. Open asks
// only for reading, so that a role that may only read can inspect a journal;
// such a role's Puts fail, and a combinator fails before its branches run,
// when it writes its head, except a resumed one, whose head is there.
package pgjournal
