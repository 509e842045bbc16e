package sqlitejournal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/durable-go/durable/journal"
)

const (
	executionsSQL      = `SELECT id, first_at, last_at, entries FROM durable_executions ORDER BY id LIMIT ?1`
	executionsAfterSQL = `SELECT id, first_at, last_at, entries FROM durable_executions WHERE id > ?1 ORDER BY id LIMIT ?2`
	// The keys of an execution are the key equal to its ID and the range
	// [id+"/", id+"0"): '0' follows '/'.
	deleteSoloSQL  = `DELETE FROM durable_journal WHERE key = ?1`
	deleteRangeSQL = `DELETE FROM durable_journal WHERE key IN (
	SELECT key FROM durable_journal WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?3)`
	// The triggers delete an execution's row with its last entry; this
	// deletes a row left without entries by a file whose triggers were not
	// always there.
	deleteExecutionSQL = `DELETE FROM durable_executions WHERE id = ?1`
	existsSQL          = `SELECT EXISTS (SELECT 1 FROM durable_executions WHERE id = ?1)`
	olderSQL           = `SELECT id FROM durable_executions WHERE last_at < ?1 ORDER BY last_at, id LIMIT ?2`
)

// Executions implements [journal.Lister] with one query over the primary key of
// durable_executions, which holds one row per execution: a page costs the
// same however many entries the executions have. The times are the
// created_at of the execution's oldest and latest entries, to the millisecond.
func (j *Journal) Executions(ctx context.Context, after string, limit int) ([]journal.Execution, error) {
	wrap := func(err error) error { return fmt.Errorf("sqlitejournal: executions after %q: %w", after, err) }
	if err := ctx.Err(); err != nil {
		return nil, wrap(err)
	}
	if limit < 1 {
		return nil, wrap(fmt.Errorf("limit %d, want at least 1", limit))
	}
	if j.closed.Load() {
		return nil, wrap(journal.ErrClosed)
	}
	var (
		rows *sql.Rows
		err  error
	)
	if after == "" {
		rows, err = j.r.QueryContext(ctx, executionsSQL, limit)
	} else {
		rows, err = j.r.QueryContext(ctx, executionsAfterSQL, blob(after), limit)
	}
	if err != nil {
		return nil, wrap(j.interpret(ctx, err))
	}
	defer rows.Close()
	var page []journal.Execution
	for rows.Next() {
		var (
			id          []byte
			first, last int64
			e           journal.Execution
		)
		if err := rows.Scan(&id, &first, &last, &e.Entries); err != nil {
			return nil, wrap(err)
		}
		e.ID, e.First, e.Last = string(id), time.UnixMilli(first), time.UnixMilli(last)
		page = append(page, e)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(j.interpret(ctx, err))
	}
	return page, nil
}

// DeleteExecution implements [journal.Deleter]. It deletes the execution's
// entries in key order, [WithDeleteBatch] of them (1,000 by default) per write
// transaction, so that Puts, which wait for the file's write lock, never wait
// longer than one batch takes. A Put of the execution between two batches is
// deleted by a later one if its key sorts after the keys deleted so far, and
// survives otherwise.
func (j *Journal) DeleteExecution(ctx context.Context, id string) (int64, error) {
	wrap := func(err error) error { return fmt.Errorf("sqlitejournal: delete execution %q: %w", id, err) }
	if err := j.checkDelete(ctx, id); err != nil {
		return 0, wrap(err)
	}
	var total int64
	for solo := true; ; solo = false {
		n, done, err := j.deleteBatch(ctx, id, solo, int64(j.cfg.deleteBatch))
		total += n
		if err != nil {
			return total, wrap(j.interpret(ctx, err))
		}
		if done {
			return total, nil
		}
	}
}

// DeleteOlder implements [journal.Deleter]. It finds the executions last
// written before before (to the millisecond: an execution last written in the
// millisecond of before is kept) through an index of durable_executions, oldest
// first, and deletes them in write transactions of at most [WithDeleteBatch]
// entries each: several small executions share one transaction, a large one
// takes several. Each transaction looks for the executions again, so one
// that a Put has written after the cut since DeleteOlder began is left alone,
// partly deleted if its deletion had begun.
func (j *Journal) DeleteOlder(ctx context.Context, before time.Time) (int, error) {
	wrap := func(err error) error {
		return fmt.Errorf("sqlitejournal: delete executions older than %v: %w", before, err)
	}
	if err := j.checkDelete(ctx, ""); err != nil {
		return 0, wrap(err)
	}
	cut := before.UnixMilli()
	deleted := 0
	for {
		n, more, err := j.deleteOlderBatch(ctx, cut)
		deleted += n
		if err != nil {
			return deleted, wrap(j.interpret(ctx, err))
		}
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
	if j.closed.Load() {
		return journal.ErrClosed
	}
	return nil
}

// deleteBatch deletes up to limit entries of execution id in one write
// transaction: the one whose key is id when solo, then the first in key order
// of its range. done reports that the execution has no entry left, and no
// row.
func (j *Journal) deleteBatch(ctx context.Context, id string, solo bool, limit int64) (n int64, done bool, err error) {
	tx, err := j.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	n, done, err = deleteEntries(ctx, tx, id, solo, limit)
	if err != nil {
		return 0, false, err
	}
	if err := tx.Commit(); err != nil {
		return 0, false, err
	}
	return n, done, nil
}

// deleteEntries is deleteBatch inside the caller's transaction.
func deleteEntries(ctx context.Context, tx *sql.Tx, id string, solo bool, limit int64) (n int64, done bool, err error) {
	if solo {
		if n, err = exec(ctx, tx, deleteSoloSQL, blob(id)); err != nil {
			return 0, false, err
		}
	}
	lo, hi := []byte(id+"/"), []byte(id+"0")
	m, err := exec(ctx, tx, deleteRangeSQL, lo, hi, limit-n)
	if err != nil {
		return 0, false, err
	}
	n += m
	if n < limit {
		if _, err := tx.ExecContext(ctx, deleteExecutionSQL, blob(id)); err != nil {
			return 0, false, err
		}
		return n, true, nil
	}
	// The batch is full: the execution's row is gone if it took the last
	// entry.
	var left bool
	if err := tx.QueryRowContext(ctx, existsSQL, blob(id)).Scan(&left); err != nil {
		return 0, false, err
	}
	return n, !left, nil
}

// deleteOlderBatch deletes, in one write transaction, up to a batch of the
// entries of the executions last written before cut (Unix ms), oldest first.
// It reports how many executions it deleted entirely, and whether there may
// be more to delete.
func (j *Journal) deleteOlderBatch(ctx context.Context, cut int64) (deleted int, more bool, err error) {
	tx, err := j.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = tx.Rollback() }() // after Commit, a no-op
	// A page of candidates: a batch can delete at most one entry of each.
	budget := int64(j.cfg.deleteBatch)
	rows, err := tx.QueryContext(ctx, olderSQL, cut, budget)
	if err != nil {
		return 0, false, err
	}
	var ids []string
	for rows.Next() {
		var id []byte
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, false, err
		}
		ids = append(ids, string(id))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	for _, id := range ids {
		n, done, err := deleteEntries(ctx, tx, id, true, budget)
		if err != nil {
			return 0, false, err
		}
		budget -= n
		if !done {
			break // the budget is spent
		}
		deleted++
	}
	if err := tx.Commit(); err != nil {
		return 0, false, err
	}
	return deleted, len(ids) > 0, nil
}

// exec runs a statement and returns how many rows it changed, not counting
// the triggers' changes.
func exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (int64, error) {
	res, err := tx.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
