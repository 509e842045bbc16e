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
// A [Journal] implements [journal.Journal] and [journal.Scanner]. It is safe
// for concurrent use, and several processes may open the same file: SQLite's
// locks serialize their writes, and the first Put of a key wins for all of
// them.
//
// # Schema
//
// Open creates one table when the file does not hold it yet:
//
//	CREATE TABLE IF NOT EXISTS durable_journal (
//		key        BLOB    NOT NULL PRIMARY KEY,
//		value      BLOB    NOT NULL,
//		created_at INTEGER NOT NULL -- Unix time of the write, in milliseconds
//	) WITHOUT ROWID
//
// Keys are stored as BLOBs, so they may hold any bytes (NUL, invalid UTF-8)
// and compare bytewise. [Journal.Scan] is one range query over the primary key:
// key >= prefix AND key < the prefix's successor (the prefix without its
// trailing 0xff bytes, last byte incremented; no upper bound when nothing is
// left). The table has no rowid: the rows live in the primary key's b-tree, so a
// Put writes one b-tree, not a table and an index.
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
package sqlitejournal
