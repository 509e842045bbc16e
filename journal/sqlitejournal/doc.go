// Package sqlitejournal is a [journal.Journal] stored in an SQLite file, for
// durable executions that run on one machine. It uses the pure-Go driver
// modernc.org/sqlite, so it needs no C compiler.
//
//	j, err := sqlitejournal.Open("checkpoints.db")
//	if err != nil {
//		return err
//	}
//	defer j.Close()
//	ctx = durable.WithJournal(ctx, j, jobID)
//
// A [Journal] implements [journal.Journal], [journal.Scanner], [journal.Lister]
// and [journal.Deleter]. It is safe for concurrent use, and several processes
// may open the same file: SQLite's locks serialize their writes, and the first
// Put of a key wins for all of them.
//
// # Schema
//
// The entries live in one table:
//
//	CREATE TABLE IF NOT EXISTS durable_journal (
//		key        BLOB    NOT NULL PRIMARY KEY,
//		value      BLOB    NOT NULL,
//		created_at INTEGER NOT NULL, -- Unix time of the write, in milliseconds
//		counted    INTEGER NOT NULL DEFAULT 0 -- 1: its writer counted it (version 2)
//	) WITHOUT ROWID
//
// Keys are stored as BLOBs, so they may hold any bytes (NUL, invalid UTF-8)
// and compare bytewise. [Journal.Scan] is one range query over the primary key:
// key >= prefix AND key < the prefix's successor (the prefix without its
// trailing 0xff bytes, last byte incremented; no upper bound when nothing is
// left). The table has no rowid: the rows live in the primary key's b-tree, so a
// Put writes one b-tree, not a table and an index.
//
// A second table holds one row per execution (the execution of a key is its
// bytes before the first '/', or all of them; see [journal.Execution]):
//
//	CREATE TABLE durable_executions (
//		id       BLOB    NOT NULL PRIMARY KEY, -- the keys' first segment
//		first_at INTEGER NOT NULL,             -- created_at of the oldest entry
//		last_at  INTEGER NOT NULL,             -- created_at of the latest entry
//		entries  INTEGER NOT NULL              -- how many entries, at least 1
//	) WITHOUT ROWID;
//	CREATE INDEX durable_executions_last_at ON durable_executions (last_at);
//
// The write transaction that inserts entries counts them: the committer
// marks its rows counted, tallies by execution the rows its INSERTs actually
// inserted, and upserts each execution's row once before it commits. A chunk
// whose INSERT inserts all its rows needs no more work; one that inserts none
// has its keys read back, as before, and counts nothing; one that inserts
// some of its rows and not others cannot tell which, so the batch is rolled
// back and written Put by Put, each INSERT of one row telling. Two triggers
// on durable_journal count the rest: after each inserted row not marked
// counted (an operator with the sqlite3 shell, a process still running the
// first release), an upsert of its execution; after each deleted row, one
// entry fewer, the row going with the execution's last entry. So the table
// always agrees with the entries, whoever writes them. A key that is taken
// inserts nothing and counts nothing.
//
// # Schema versions and migration
//
// The schema's version is kept in PRAGMA user_version: 2 for the schema above.
// Files written by the first release hold only durable_journal and
// user_version 0. Open migrates a file whose version is older: it takes the
// write lock (BEGIN IMMEDIATE), reads the version again, runs every missing
// migration and sets user_version, in one transaction. Migrating to version 2
// adds the column counted, creates durable_executions and its triggers, and
// fills it from the entries with one GROUP BY over durable_journal (0.7 s for
// a million entries on two vCPUs; writers of other processes wait under their
// busy timeout meanwhile). A crash leaves the file unchanged; two processes
// opening one old file at once both succeed, the second finding it migrated.
// A process still running the first release can keep using a migrated file:
// the triggers count its writes.
//
// A file whose user_version is newer than this code knows (a newer release
// migrated it) is refused: Open returns a [*journal.VersionError] naming both
// versions, and writes nothing.
//
// # Listing and deleting executions
//
// [Journal.Executions] reads a page of durable_executions in ID order, without
// touching the entries. [Journal.DeleteExecution] deletes the entries of one
// execution, in key order, [WithDeleteBatch] of them (1,000 by default) per
// write transaction: each a range delete over the primary key, each holding
// the write lock for a few milliseconds. [Journal.DeleteOlder] finds the
// executions with last_at before the cut through the index, oldest first, and
// deletes them in transactions of the same size, several small executions to
// a transaction. Puts of other executions, which wait for the write lock,
// wait at most one batch.
//
// Deleting an execution that a process is still writing races with it: a Put
// that commits after the deletion recreates the execution with its own entry,
// and a later resume runs the deleted steps again. Delete executions only once
// no process runs them; with DeleteOlder, choose a cut older than the latest
// write of any execution that may still be running.
//
// # Durability
//
// Open puts the file in write-ahead-log (WAL) mode, in which readers never
// block the writer nor the writer the readers. Every connection runs
//
//	PRAGMA busy_timeout = 5000; -- see WithBusyTimeout
//	PRAGMA journal_mode = WAL;
//	PRAGMA synchronous = FULL;  -- see WithSynchronous
//
// when it opens, and write transactions begin with BEGIN IMMEDIATE, so that a
// writer waits for another process's lock under the busy timeout.
//
// With synchronous FULL, the default, a commit returns after the log is synced
// to disk: a Put that returned survived a power cut. With
// [WithSynchronous]([SynchronousNormal]) the log is synced only when it is
// checkpointed into the database; commits are faster and survive a crash of the
// process, but a power cut or a crash of the operating system may undo the
// latest ones. A durable execution then re-runs those steps: use NORMAL only
// for steps that are safe to run twice.
//
// WAL needs a file system whose processes share memory: a local disk, not a
// network file system. Open fails when the file cannot be put in WAL mode.
//
// # Scanning
//
// [Journal.Scan], which a resumed or rerun batch calls once to restore every
// branch, runs on connections of its own: up to max(4, GOMAXPROCS), opened
// when first needed with SQLite's C API (modernc.org/sqlite/lib) in
// multi-thread mode (SQLITE_OPEN_NOMUTEX), each used by one Scan at a time,
// its two range queries prepared once. They only read, and set the busy
// timeout alone. The driver's connections take a mutex for every call into
// SQLite, several per row, and copy every column; a Scan's row is a step and
// two calls per column, and its callback gets each value where SQLite holds
// it, valid until the callback returns. Keys share blocks of up to 4 KiB.
// Nested Scans in a Scan's callback wait when they would take every scanning
// connection.
//
// # Group commit
//
// A sync costs far more than the write it protects, so the journal shares one
// among concurrent Puts. Put queues its write and waits; a single committer
// goroutine takes up to [WithMaxBatch] queued writes (256 by default), writes
// them in one transaction, syncs once and answers each caller with the value
// its key holds. Puts that arrive during a commit form the next batch, so a
// lone Put is not delayed, and under load each sync serves many Puts.
// [WithMaxWait] lets the committer wait a little for a batch to fill;
// [WithGroupCommit](false) gives every Put its own transaction instead.
//
// The committer writes a batch with a few multi-row INSERTs (chunks of up to 32
// rows) and reads values back only from chunks where a key was already taken.
// Within a batch, Puts are written in the order they were queued: of two Puts
// of one key, the first wins, and both callers get its value. A Put that fails
// in the database (a trigger, say) fails alone: its transaction is rolled
// back and the others are written again without it.
//
// # Errors
//
// Errors name the key, as in `sqlitejournal: put "k": ...`. A Put or Get whose
// context is done returns an error matching the context's error; an operation
// on a closed Journal returns one matching [journal.ErrClosed].
//
// # A file that cannot be written
//
// Open fails when the file cannot be written (a read-only file or mount),
// with an error that says so, rather than letting the first Put fail after a
// wave of branches ran their side effects: it writes the schema version the
// file already holds, a write that changes nothing.
package sqlitejournal
