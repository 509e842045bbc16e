package sqlitejournal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/durable-go/durable/journal"
)

// Put implements [journal.Journal]: it inserts value unless key already holds
// one, and returns what key holds once the write transaction has committed.
// The returned slice is the caller's to keep; Put keeps no reference to value.
//
// With group commit (the default), Put queues the write for the journal's
// committer, which writes every queued Put in one transaction and syncs once
// for all of them. Put returns when its transaction has committed. If ctx is
// cancelled while Put waits for the committer, Put returns ctx's error at once;
// the value may or may not be stored, and a later Put of the same key returns
// whichever is. Without group commit, Put runs its transaction with ctx.
func (j *Journal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlitejournal: put %q: %w", key, err)
	}
	var (
		stored []byte
		err    error
	)
	if j.cfg.groupCommit {
		stored, err = j.putQueued(ctx, key, value)
	} else {
		stored, err = j.putAlone(ctx, key, value)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitejournal: put %q: %w", key, err)
	}
	return stored, nil
}

// putAlone writes one Put in its own transaction.
func (j *Journal) putAlone(ctx context.Context, key string, value []byte) ([]byte, error) {
	if j.closed.Load() {
		return nil, journal.ErrClosed
	}
	value = nonNil(value)
	tx, err := j.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, j.interpret(ctx, err)
	}
	w := j.writer(ctx, tx, nil)
	stored, inserted, err := w.put(ctx, key, value)
	if err == nil {
		err = w.counts.write(ctx, w.count, w.now)
	}
	if err != nil {
		_ = tx.Rollback() // the statement's error is the one to report
		return nil, j.interpret(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, j.interpret(ctx, err)
	}
	j.txs.Add(1)
	if inserted {
		stored = append([]byte{}, value...) // never hand back the caller's slice
	}
	return stored, nil
}

// writer runs Puts inside one write transaction.
type writer struct {
	insert, readBack, count *sql.Stmt
	now                     int64  // created_at, Unix milliseconds
	counts                  counts // the entries inserted, by execution
}

// writer returns a writer of tx's Puts, which counts in c (cleared), or in a
// map of its own when c is nil.
func (j *Journal) writer(ctx context.Context, tx *sql.Tx, c counts) writer {
	if c == nil {
		c = counts{}
	}
	clear(c)
	return writer{
		insert:   tx.StmtContext(ctx, j.insert),
		readBack: tx.StmtContext(ctx, j.readBack),
		count:    tx.StmtContext(ctx, j.count),
		now:      time.Now().UnixMilli(),
		counts:   c,
	}
}

// put inserts value under key unless the key is taken, and returns what the
// key holds. inserted reports that it holds value itself; stored is then value.
func (w writer) put(ctx context.Context, key string, value []byte) (stored []byte, inserted bool, err error) {
	k := blob(key)
	res, err := w.insert.ExecContext(ctx, k, value, w.now)
	if err != nil {
		return nil, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, false, err
	}
	if n == 1 {
		w.counts.add(key, 1)
		return value, true, nil
	}
	// The key was taken, by an earlier transaction or earlier in this one:
	// read back the value that won. The write lock is held, so it cannot change.
	if err := w.readBack.QueryRowContext(ctx, k).Scan(&stored); err != nil {
		return nil, false, err
	}
	return nonNil(stored), false, nil
}

// A request is one Put waiting for the committer.
type request struct {
	key    string
	value  []byte          // the journal's own copy, never nil
	done   <-chan struct{} // the caller's ctx.Done()
	reply  chan result     // room for the one reply, so the committer never waits for the caller
	stored []byte
}

type result struct {
	stored []byte
	err    error
}

// abandoned reports whether the caller has stopped waiting.
func (r *request) abandoned() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// putQueued hands one Put to the committer and waits for its transaction.
func (j *Journal) putQueued(ctx context.Context, key string, value []byte) ([]byte, error) {
	// Copy value: a caller whose ctx is cancelled returns (and may reuse its
	// slice) while the committer may still be writing it.
	req := &request{
		key:   key,
		value: append(make([]byte, 0, len(value)), value...),
		done:  ctx.Done(),
		reply: make(chan result, 1),
	}
	j.mu.Lock()
	if j.closed.Load() {
		j.mu.Unlock()
		return nil, journal.ErrClosed
	}
	j.queue = append(j.queue, req)
	j.mu.Unlock()
	select {
	case j.wake <- struct{}{}:
	default: // a wake-up is already pending
	}

	select {
	case res := <-req.reply:
		return res.stored, res.err
	case <-ctx.Done():
		select {
		case res := <-req.reply: // committed meanwhile: report that
			return res.stored, res.err
		default:
			return nil, ctx.Err()
		}
	}
}

// commitLoop is the committer: the one goroutine that writes queued Puts. It
// returns once Close has been called and the queue is empty.
func (j *Journal) commitLoop() {
	defer close(j.exited)
	var batch []*request
	for {
		stopping := false
		select {
		case <-j.wake:
		case <-j.quit:
			// Close queues nothing more from here on: once the queue is
			// empty, the committer is done.
			stopping = true
		}
		// Commit until the queue is empty; Puts that arrive during a commit
		// form the next batch.
		for {
			j.linger()
			batch = j.take(batch)
			if len(batch) == 0 {
				break
			}
			j.commitBatch(batch)
			clear(batch) // drop the requests, for the garbage collector
		}
		if stopping {
			return
		}
	}
}

// linger waits, up to the configured maximum, for the queue to fill a batch.
func (j *Journal) linger() {
	if j.cfg.maxWait <= 0 {
		return
	}
	n := j.queued()
	if n == 0 || n >= j.cfg.maxBatch {
		return
	}
	t := time.NewTimer(j.cfg.maxWait)
	defer t.Stop()
	for j.queued() < j.cfg.maxBatch {
		select {
		case <-j.wake:
		case <-t.C:
			return
		case <-j.quit:
			return
		}
	}
}

func (j *Journal) queued() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.queue)
}

// take moves up to maxBatch requests from the head of the queue into batch.
func (j *Journal) take(batch []*request) []*request {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := min(len(j.queue), j.cfg.maxBatch)
	batch = append(batch[:0], j.queue[:n]...)
	rest := copy(j.queue, j.queue[n:])
	clear(j.queue[rest:])
	j.queue = j.queue[:rest]
	return batch
}

// commitBatch writes batch in one transaction and replies to every request.
// Requests whose caller has gone are left out. When one Put fails, the
// transaction is rolled back, that Put gets the error, and the others are
// written again without it; when the transaction as a whole fails, every Put
// gets the error.
func (j *Journal) commitBatch(batch []*request) {
	live := batch[:0] // filtered in place
	for _, r := range batch {
		if !r.abandoned() {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	switch ok, err := j.commitRows(live); {
	case ok:
		for _, r := range live {
			r.reply <- result{stored: r.stored}
		}
		return
	case err != nil:
		for _, r := range live {
			r.reply <- result{err: err}
		}
		return
	}
	// An INSERT failed, or inserted part of its chunk: write the Puts one by
	// one, which counts each and finds the one at fault.
	for len(live) > 0 {
		bad, err := j.commitOnce(live)
		switch {
		case err == nil:
			for _, r := range live {
				r.reply <- result{stored: r.stored}
			}
			return
		case bad < 0:
			for _, r := range live {
				r.reply <- result{err: err}
			}
			return
		default:
			live[bad].reply <- result{err: err}
			live = append(live[:bad], live[bad+1:]...)
		}
	}
}

// One multi-row INSERT writes at most 1<<maxRowsLog rows. The driver matches
// each parameter to its argument by a linear search, so a statement's cost
// grows with the square of its parameters: past a few dozen rows, a larger
// statement costs more per row, not less.
const maxRowsLog = 5

// insertRowsSQL returns an INSERT of n rows, each with its key, value and
// created_at, marked counted. The parameters are anonymous: the driver looks
// a numbered one's name up, and allocates, every time it binds it.
func insertRowsSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO durable_journal (key, value, created_at, counted) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, 1)`)
	}
	b.WriteString(` ON CONFLICT (key) DO NOTHING`)
	return b.String()
}

// insertRows returns the committer's prepared INSERT of 1<<k rows, preparing
// it on first use. It must be called outside a transaction: the writer has
// one connection.
func (j *Journal) insertRows(ctx context.Context, k int) (*sql.Stmt, error) {
	if j.rows[k] == nil {
		s, err := j.w.PrepareContext(ctx, insertRowsSQL(1<<k))
		if err != nil {
			return nil, err
		}
		j.rows[k] = s
	}
	return j.rows[k], nil
}

// commitRows writes reqs in one transaction with as few statements as it
// can: one multi-row INSERT per chunk of distinct keys, chunks of 1<<k rows
// (a batch of 100 is 64+32+4), so a few prepared statements serve every batch
// size, then one upsert of durable_executions per execution. A chunk that
// inserted all its rows needs no read-back, and one that inserted none reads
// every key back. The first Put of a key in reqs is the one written; later
// ones get its outcome.
//
// ok is false, with the transaction rolled back, when an INSERT failed, or
// inserted some of its rows and not others, which leaves unknown which ones
// to count: the caller then writes reqs one by one with commitOnce, which
// also finds the Put at fault. err without ok reports a failure of the
// transaction itself.
func (j *Journal) commitRows(reqs []*request) (ok bool, err error) {
	ctx := context.Background()
	// Distinct keys, in queue order; dup[i] is the index of the first Put of
	// reqs[i]'s key, or -1 when reqs[i] is that first Put.
	firsts, dup := j.firsts[:0], j.dup[:0]
	if j.seen == nil {
		j.seen = make(map[string]int)
	}
	clear(j.seen)
	for i, r := range reqs {
		if f, ok := j.seen[r.key]; ok {
			dup = append(dup, f)
			continue
		}
		j.seen[r.key] = i
		dup = append(dup, -1)
		firsts = append(firsts, r)
	}
	j.firsts, j.dup = firsts, dup
	defer clear(j.firsts) // drop the requests, for the garbage collector

	// The chunk sizes, largest first, and their statements, prepared before
	// the transaction begins.
	sizes := j.sizes[:0]
	for n := len(firsts); n > 0; {
		k := min(bits.Len(uint(n))-1, maxRowsLog)
		sizes = append(sizes, k)
		n -= 1 << k
	}
	j.sizes = sizes
	for _, k := range sizes {
		if _, err := j.insertRows(ctx, k); err != nil {
			return false, nil // commitOnce will meet the error, if it lasts
		}
	}

	j.begun.Add(1)
	tx, err := j.w.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	w := j.writer(ctx, tx, j.counts)
	j.counts = w.counts
	now := w.now
	args := j.args[:0]
	readBack := w.readBack
	write := func(stmt *sql.Stmt, chunk []*request) error {
		args = args[:0]
		for _, r := range chunk {
			args = append(args, blob(r.key), r.value, now)
		}
		res, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if int(n) == len(chunk) {
			for _, r := range chunk {
				r.stored = r.value
				w.counts.add(r.key, 1)
			}
			return nil
		}
		if n > 0 {
			return errPartial
		}
		// Every key was taken by earlier transactions: read back what
		// each holds. The write lock is held, so it cannot change.
		for _, r := range chunk {
			if err := readBack.QueryRowContext(ctx, blob(r.key)).Scan(&r.stored); err != nil {
				return err
			}
			r.stored = nonNil(r.stored)
		}
		return nil
	}
	rest := firsts
	for _, k := range sizes {
		if err = write(j.rows[k], rest[:1<<k]); err != nil {
			break
		}
		rest = rest[1<<k:]
	}
	if err == nil {
		err = w.counts.write(ctx, w.count, now)
	}
	clear(args)
	j.args = args[:0]
	if err != nil {
		_ = tx.Rollback()
		return false, nil
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	j.txs.Add(1)
	for i, r := range reqs {
		if f := dup[i]; f >= 0 {
			r.stored = append([]byte{}, reqs[f].stored...) // a slice of its own
		}
	}
	return true, nil
}

// commitOnce writes reqs in one transaction, setting each one's stored value.
// On failure it returns the index of the request whose statement failed, or
// -1 when the transaction itself failed.
func (j *Journal) commitOnce(reqs []*request) (bad int, err error) {
	// The committer's own context: Close waits for the queue to drain rather
	// than cutting a transaction short, and callers that leave do not abort
	// the others' transaction.
	ctx := context.Background()
	j.begun.Add(1)
	tx, err := j.w.BeginTx(ctx, nil)
	if err != nil {
		return -1, err
	}
	w := j.writer(ctx, tx, j.counts)
	j.counts = w.counts
	for i, r := range reqs {
		if r.stored, _, err = w.put(ctx, r.key, r.value); err != nil {
			_ = tx.Rollback() // the statement's error is the one to report
			return i, err
		}
	}
	if err := w.counts.write(ctx, w.count, w.now); err != nil {
		_ = tx.Rollback()
		return -1, err
	}
	if err := tx.Commit(); err != nil {
		return -1, err
	}
	j.txs.Add(1)
	return -1, nil
}

// errPartial reports a chunk that inserted some of its rows and not others.
var errPartial = errors.New("a chunk inserted only some of its rows")

// counts are the entries a transaction inserted, by execution: what it adds
// to durable_executions before it commits. The rows it inserts are marked
// counted, so that the trigger, which counts the rows of other writers, leaves
// them alone.
type counts map[string]int64

func (c counts) add(key string, n int64) {
	id, _, _ := strings.Cut(key, "/")
	c[id] += n
}

// write adds c to durable_executions with stmt, countSQL in the transaction,
// the entries dated now (Unix ms).
func (c counts) write(ctx context.Context, stmt *sql.Stmt, now int64) error {
	for id, n := range c {
		if _, err := stmt.ExecContext(ctx, blob(id), now, n); err != nil {
			return err
		}
	}
	return nil
}
