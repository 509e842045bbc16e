package pgjournal

import (
	"context"
	"time"
)

// Transactions reports how many write transactions j has committed: with group
// commit, the number of batches.
func Transactions(j *Journal) int64 { return j.txns.Load() }

// ReadBacks reports how many read-backs of keys whose insert was skipped j
// has run.
func ReadBacks(j *Journal) int64 { return j.readBacks.Load() }

// WriteSQL returns j's INSERT and read-back statements.
func WriteSQL(j *Journal) (insert, readBack string) { return j.sql.insertCounted, j.sql.readBack }

// ReadBackMode is how the read-back is executed.
const ReadBackMode = readBackMode

// Successor exposes the upper bound of a prefix scan.
func Successor(prefix []byte) ([]byte, bool) { return successor(prefix) }

// SchemaVersion is the schema version this code writes.
var SchemaVersion = schemaVersion

// DeleteBatch runs one transaction of DeleteExecution.
func DeleteBatch(ctx context.Context, j *Journal, id string, solo bool) (n int64, done bool, err error) {
	return j.deleteBatch(ctx, id, solo)
}

// DeleteOlderBatch runs one transaction of DeleteOlder.
func DeleteOlderBatch(ctx context.Context, j *Journal, before time.Time) (deleted int, more bool, err error) {
	return j.deleteOlderBatch(ctx, before)
}
