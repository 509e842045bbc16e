package journal

import (
	"context"
	"time"
)

// An Execution describes the entries of one execution that a journal holds.
//
// The execution of a key is the key's first segment: the bytes before its
// first '/', or the whole key when it has none. durable writes every key as
// the execution ID, escaped, then '/' and the rest, so ID is the execution ID
// as it is stored, escaped ('%', '/', '#' and '!' as %25, %2F, %23 and %21).
type Execution struct {
	ID      string    // the keys' first segment, as stored
	First   time.Time // when the oldest entry was written
	Last    time.Time // when the latest entry was written
	Entries int64     // how many entries the execution has
}

// Lister is an optional interface for journals that can list the executions
// they hold, page by page, without reading every entry.
//
// Executions returns, in ascending byte order of their IDs, at most limit
// executions whose ID is greater than after; with after == "" it starts at the
// first execution, the one with the empty ID included. A page shorter than
// limit is the last one. To list everything, pass the ID of the last execution
// of each page as after for the next one. limit must be at least 1.
//
// The times are those of the journal's clock (the database server's, for a
// journal stored in a server), with the precision the journal keeps.
type Lister interface {
	Executions(ctx context.Context, after string, limit int) ([]Execution, error)
}

// Deleter is an optional interface for journals that can delete executions:
// every entry of one execution, or of every execution last written before a
// time (retention).
//
// DeleteExecution deletes every entry of the execution id (see [Execution]) and
// returns how many it deleted: 0, and no error, for an execution the journal
// does not hold. An id holding '/' is no execution's, and is an error.
//
// DeleteOlder deletes every execution whose latest entry was written before
// before, and returns how many executions it deleted.
//
// Both may delete in several transactions, so that a large deletion does not
// keep other writers waiting for long; an error may leave an execution partly
// deleted, and calling again finishes the job. Deleting an execution that is
// still being written is a race: the writer's next Put recreates the
// execution with the entries written from then on, and a resumed run of it
// would run again the steps whose entries were deleted. Delete only
// executions that no process is running: DeleteOlder with a cut older than
// any running execution's latest write does that.
type Deleter interface {
	DeleteExecution(ctx context.Context, id string) (int64, error)
	DeleteOlder(ctx context.Context, before time.Time) (int, error)
}
