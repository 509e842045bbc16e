package sqlitejournal

import (
	"context"
	"strconv"
	"time"

	sqlite3 "modernc.org/sqlite/lib"
)

// Successor exposes the upper bound of a prefix scan.
var Successor = successor

// Transactions reports how many write transactions j has committed.
func Transactions(j *Journal) int64 { return j.txs.Load() }

// Begun reports how many batch transactions j's committer has begun.
func Begun(j *Journal) int64 { return j.begun.Load() }

// Queued reports how many Puts wait for j's committer.
func Queued(j *Journal) int { return j.queued() }

// Closed reports whether Close has been called on j.
func Closed(j *Journal) bool { return j.closed.Load() }

// Pragmas reports the value of PRAGMA name on j's writing and reading
// connections.
func Pragmas(j *Journal, name string) (writer, reader string, err error) {
	ctx := context.Background()
	if err := j.w.QueryRowContext(ctx, "PRAGMA "+name).Scan(&writer); err != nil {
		return "", "", err
	}
	if err := j.r.QueryRowContext(ctx, "PRAGMA "+name).Scan(&reader); err != nil {
		return "", "", err
	}
	return writer, reader, nil
}

// SchemaVersion is the schema version this code writes.
var SchemaVersion = schemaVersion

// DeleteBatch runs one transaction of DeleteExecution.
func DeleteBatch(ctx context.Context, j *Journal, id string, solo bool) (n int64, done bool, err error) {
	return j.deleteBatch(ctx, id, solo, int64(j.cfg.deleteBatch))
}

// DeleteOlderBatch runs one transaction of DeleteOlder.
func DeleteOlderBatch(ctx context.Context, j *Journal, before time.Time) (deleted int, more bool, err error) {
	return j.deleteOlderBatch(ctx, before.UnixMilli())
}

// ScanConns reports how many connections j's Scans may hold at once.
func ScanConns(j *Journal) int { return cap(j.scan.tokens) }

// ScanPragma reports the value of PRAGMA name, a number, on a connection of
// j's Scans.
func ScanPragma(j *Journal, name string) (string, error) {
	c, err := j.scan.get(context.Background())
	if err != nil {
		return "", err
	}
	defer j.scan.put(c)
	stmt, err := c.prepare("PRAGMA " + name)
	if err != nil {
		return "", err
	}
	defer sqlite3.Xsqlite3_finalize(c.tls, stmt)
	if rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc != sqlite3.SQLITE_ROW {
		return "", c.error("step", rc)
	}
	return strconv.FormatInt(sqlite3.Xsqlite3_column_int64(c.tls, stmt, 0), 10), nil
}
