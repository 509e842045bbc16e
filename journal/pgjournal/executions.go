package pgjournal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/durable-go/durable/journal"
)

// deletes holds the SQL of listing and deleting executions. The keys of an
// execution are the key equal to its ID and the range [id+"/", id+"0"): '0'
// follows '/'. The statements that delete for DeleteOlder check, as they run,
// that the execution is still older than the cut.
//
// The statements that delete are run in planMode: planned for their
// arguments every time. A generic plan, which pgx's prepared statements get
// after five runs, knows nothing of a range's size, and may scan the whole
// table to find the first row of a range that has none.
type deletes struct {
	list, listAfter      string
	solo, soloOlder      string
	rangeAll, rangeOlder string
	cleanup, exists      string
	older                string
}

func newDeletes(n names) deletes {
	const older = ` AND EXISTS (SELECT 1 FROM %s WHERE id = $%d AND last_at < $%d)`
	// A range is deleted by the row addresses (ctid) of its first rows in
	// key order: one index range scan to find them, one TID scan to delete.
	rangeAll := `DELETE FROM ` + n.table + ` WHERE ctid = ANY (ARRAY (
	SELECT ctid FROM ` + n.table + ` WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3))`
	return deletes{
		list:       `SELECT id, first_at, last_at, entries FROM ` + n.executions + ` ORDER BY id LIMIT $1`,
		listAfter:  `SELECT id, first_at, last_at, entries FROM ` + n.executions + ` WHERE id > $1 ORDER BY id LIMIT $2`,
		solo:       `DELETE FROM ` + n.table + ` WHERE key = $1`,
		soloOlder:  `DELETE FROM ` + n.table + ` WHERE key = $1` + fmt.Sprintf(older, n.executions, 1, 2),
		rangeAll:   rangeAll,
		rangeOlder: rangeAll + fmt.Sprintf(older, n.executions, 4, 5),
		// The triggers delete an execution's row with its last entry; this
		// deletes a row left without entries, should one be (the triggers
		// do not fire where session_replication_role is replica, say).
		cleanup: `DELETE FROM ` + n.executions + ` WHERE id = $1
	AND NOT EXISTS (SELECT 1 FROM ` + n.table + ` WHERE key = $1)
	AND (SELECT key FROM ` + n.table + ` WHERE key >= $2 AND key < $3 ORDER BY key LIMIT 1) IS NULL`,
		exists: `SELECT EXISTS (SELECT 1 FROM ` + n.executions + ` WHERE id = $1)`,
		older:  `SELECT id FROM ` + n.executions + ` WHERE last_at < $1 ORDER BY last_at, id LIMIT $2`,
	}
}

// planMode is how the statements that delete are executed.
const planMode = pgx.QueryExecModeCacheDescribe

// Executions implements [journal.Lister] with one query over the primary key
// of the table of executions, which holds one row per execution: a page costs
// the same however many entries the executions have. The times are the
// created_at of the execution's oldest and latest entries: the start of the
// transactions that wrote them, by the server's clock, to the microsecond.
func (j *Journal) Executions(ctx context.Context, after string, limit int) ([]journal.Execution, error) {
	if err := ctx.Err(); err != nil {
		return nil, j.opError("executions after", after, err)
	}
	if limit < 1 {
		return nil, j.opError("executions after", after, fmt.Errorf("limit %d, want at least 1", limit))
	}
	if j.closed() {
		return nil, j.opError("executions after", after, journal.ErrClosed)
	}
	var (
		rows pgx.Rows
		err  error
	)
	if after == "" {
		rows, err = j.pool.Query(ctx, j.del.list, limit)
	} else {
		rows, err = j.pool.Query(ctx, j.del.listAfter, []byte(after), limit)
	}
	if err != nil {
		return nil, j.opError("executions after", after, err)
	}
	var (
		page []journal.Execution
		id   []byte
		e    journal.Execution
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &e.First, &e.Last, &e.Entries}, func() error {
		e.ID = string(id)
		page = append(page, e)
		return nil
	})
	if err != nil {
		return nil, j.opError("executions after", after, err)
	}
	return page, nil
}

// DeleteExecution implements [journal.Deleter]. It deletes the execution's
// entries in key order, [WithDeleteBatch] of them (10,000 by default) per
// statement and transaction. It locks only the rows it deletes and the
// execution's row in the table of executions, so Puts of other executions
// never wait for it. A Put of the execution between two batches is deleted by
// a later one if its key sorts after the keys deleted so far, and survives
// otherwise.
func (j *Journal) DeleteExecution(ctx context.Context, id string) (int64, error) {
	if err := j.checkDelete(ctx, id); err != nil {
		return 0, j.opError("delete execution", id, err)
	}
	var total int64
	for solo := true; ; solo = false {
		n, done, err := j.deleteBatch(ctx, id, solo)
		if err != nil {
			return total, j.opError("delete execution", id, err)
		}
		total += n
		if done {
			return total, nil
		}
	}
}

// DeleteOlder implements [journal.Deleter]. It finds the executions last
// written before before (to the microsecond) through an index of the table of
// executions, oldest first, and deletes them in transactions of at most
// [WithDeleteBatch] entries each: several small executions share one
// transaction, a large one takes several. Each statement checks that its
// execution is still older than the cut, so one that a Put has written since
// DeleteOlder began is left alone, partly deleted if its deletion had begun.
func (j *Journal) DeleteOlder(ctx context.Context, before time.Time) (int, error) {
	what := "older than " + before.Format(time.RFC3339Nano)
	if err := j.checkDelete(ctx, ""); err != nil {
		return 0, j.opError("delete executions", what, err)
	}
	deleted := 0
	for {
		n, more, err := j.deleteOlderBatch(ctx, before)
		if err != nil {
			return deleted, j.opError("delete executions", what, err)
		}
		deleted += n
		if !more {
			return deleted, nil
		}
	}
}

func (j *Journal) checkDelete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if strings.Contains(id, "/") {
		return errors.New("an execution ID holds no '/'")
	}
	if j.closed() {
		return journal.ErrClosed
	}
	return j.checkVersion(ctx)
}

// deleteBatch runs one transaction of DeleteExecution: deleteEntries with a
// batch's worth.
func (j *Journal) deleteBatch(ctx context.Context, id string, solo bool) (n int64, done bool, err error) {
	err = pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		n, done, err = j.deleteEntries(ctx, tx, id, solo, int64(j.cfg.deleteBatch), nil)
		return err
	})
	return n, done, err
}

// deleteEntries deletes up to limit entries of execution id (first, when solo,
// the one whose key is id, then the first in key order), and, with a cut,
// only if the execution was last written before it. done reports that the
// execution has no entry left, and no row.
func (j *Journal) deleteEntries(ctx context.Context, tx pgx.Tx, id string, solo bool, limit int64, cut *time.Time) (n int64, done bool, err error) {
	key, lo, hi := []byte(id), []byte(id+"/"), []byte(id+"0")
	exec := func(sql string, args ...any) error {
		tag, err := tx.Exec(ctx, sql, append([]any{planMode}, args...)...)
		n += tag.RowsAffected()
		return err
	}
	switch {
	case solo && cut == nil:
		err = exec(j.del.solo, key)
	case solo:
		err = exec(j.del.soloOlder, key, *cut)
	}
	if err != nil {
		return 0, false, err
	}
	if cut == nil {
		err = exec(j.del.rangeAll, lo, hi, limit-n)
	} else {
		err = exec(j.del.rangeOlder, lo, hi, limit-n, key, *cut)
	}
	if err != nil {
		return 0, false, err
	}
	if n < limit {
		if _, err := tx.Exec(ctx, j.del.cleanup, planMode, key, lo, hi); err != nil {
			return 0, false, err
		}
	}
	var left bool
	if err := tx.QueryRow(ctx, j.del.exists, planMode, key).Scan(&left); err != nil {
		return 0, false, err
	}
	return n, !left, nil
}

// deleteOlderBatch deletes, in one transaction, up to a batch of the entries
// of the executions last written before before, oldest first. It reports how
// many executions it deleted entirely, and whether there may be more to
// delete.
func (j *Journal) deleteOlderBatch(ctx context.Context, before time.Time) (deleted int, more bool, err error) {
	err = pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		deleted, more, err = j.deleteOlderIn(ctx, tx, before.Truncate(time.Microsecond))
		return err
	})
	return deleted, more, err
}

// deleteOlderIn is deleteOlderBatch inside tx, with cut to the microsecond.
func (j *Journal) deleteOlderIn(ctx context.Context, tx pgx.Tx, cut time.Time) (deleted int, more bool, err error) {
	// A page of candidates: a batch deletes at most one entry of each.
	budget := int64(j.cfg.deleteBatch)
	rows, err := tx.Query(ctx, j.del.older, planMode, cut, budget)
	if err != nil {
		return 0, false, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return 0, false, err
	}
	for _, id := range ids {
		n, done, err := j.deleteEntries(ctx, tx, string(id), true, budget, &cut)
		if err != nil {
			return 0, false, err
		}
		budget -= n
		if !done {
			break // the budget is spent, or the execution was written after the cut
		}
		deleted++
	}
	return deleted, len(ids) > 0, nil
}
