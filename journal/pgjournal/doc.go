// Package pgjournal stores durable's checkpoints in PostgreSQL, through pgx.
//
// A [Journal] implements [journal.Journal] and [journal.Scanner] over one
// table. Several processes may share the table: keys are write-once, and when
// two of them Put one key at once the first commit wins and both get its value.
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
// [Journal.Migrate] creates the table, named "durable_journal" unless
// [WithTable] says otherwise, with this statement:
//
//	CREATE TABLE IF NOT EXISTS durable_journal (
//		key        bytea       PRIMARY KEY,
//		value      bytea       NOT NULL,
//		created_at timestamptz NOT NULL DEFAULT now()
//	)
//
// Run it yourself instead when the application's role may not create tables.
// Keys and values are stored byte for byte, so keys may hold any bytes: NUL,
// invalid UTF-8. A key is limited by the primary key's index to about 2.7 kB;
// a value, by PostgreSQL, to 1 GB. created_at only helps an operator find and
// delete old executions: the journal never reads it and never deletes.
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
// as one pipelined round trip. A key the INSERT returns now holds the value
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
package pgjournal
