package sqlitejournal

import (
	"context"
	"time"
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
