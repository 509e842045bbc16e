package pgjournal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/durable-go/durable/internal/arena"
	"github.com/durable-go/durable/journal"
)

// Journal is a [journal.Journal], [journal.Scanner], [journal.Lister] and
// [journal.Deleter] stored in one PostgreSQL table and the objects beside it. It is safe for concurrent use, also by several processes
// sharing the table. Make one with [Open] or [New] and Close it when done.
type Journal struct {
	pool    *pgxpool.Pool
	ownPool bool
	cfg     config
	table   string // the table's name, quoted
	names   names
	sql     statements
	del     deletes

	// reqs carries Puts to the committer. It is unbuffered: Puts that wait for
	// the committer are blocked senders, which it drains into the next batch.
	reqs      chan *request
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	committer sync.WaitGroup

	// versionChecked is set once the schema's version is known not to be
	// newer than this code's (see checkVersion); version is that version.
	versionChecked atomic.Bool
	version        atomic.Int64
	versionMu      sync.Mutex

	txns      atomic.Int64 // write transactions committed, for tests
	readBacks atomic.Int64 // read-backs of skipped keys run, for tests
}

var (
	_ journal.Journal = (*Journal)(nil)
	_ journal.Scanner = (*Journal)(nil)
	_ journal.Lister  = (*Journal)(nil)
	_ journal.Deleter = (*Journal)(nil)
)

// statements holds the journal's SQL, with the table name filled in.
type statements struct {
	get, begin, insert, insertCounted, readBack, commit, scanRange, scanFrom string
}

func newStatements(n names) statements {
	table := n.table
	return statements{
		get: `SELECT value FROM ` + table + ` WHERE key = $1`,
		// Read committed lets the INSERT skip a key that another transaction
		// committed after the INSERT began, whatever the server's default:
		// under repeatable read or serializable that would be a serialization
		// failure.
		begin: `BEGIN ISOLATION LEVEL READ COMMITTED`,
		// Rows are inserted in key order so that two batches sharing keys
		// lock them in the same order and cannot deadlock. RETURNING names
		// the keys that were inserted, whose value is the one sent; only the
		// others, which already held a value, need to be read back.
		insert: `INSERT INTO ` + table + ` (key, value)
	SELECT k, v FROM unnest($1::bytea[], $2::bytea[]) AS batch (k, v) ORDER BY k
	ON CONFLICT (key) DO NOTHING
	RETURNING key`,
		// From schema version 2 on, the same INSERT marks its rows counted
		// and adds them to their executions' rows, in the order of the
		// executions' IDs, in the same statement (see schema.go).
		insertCounted: `WITH inserted AS (
	INSERT INTO ` + table + ` (key, value, counted)
	SELECT k, v, true FROM unnest($1::bytea[], $2::bytea[]) AS batch (k, v) ORDER BY k
	ON CONFLICT (key) DO NOTHING
	RETURNING key
), counted AS (
	INSERT INTO ` + n.executions + ` AS e (id, first_at, last_at, entries)
	SELECT id, now(), now(), count(*)
	FROM (SELECT ` + executionOf("key") + ` AS id FROM inserted) AS k
	GROUP BY id ORDER BY id
	ON CONFLICT (id) DO UPDATE SET
		first_at = least(e.first_at, excluded.first_at),
		last_at = greatest(e.last_at, excluded.last_at),
		entries = e.entries + excluded.entries
)
SELECT key FROM inserted`,
		// The read-back probes the primary key once per key. It is run as an
		// unnamed statement (see readBackMode), so that it is planned for its
		// keys and the table's current size every time.
		readBack: `SELECT t.key, t.value FROM unnest($1::bytea[]) AS batch (k)
	JOIN ` + table + ` AS t ON t.key = batch.k`,
		commit:    `COMMIT`,
		scanRange: `SELECT key, value FROM ` + table + ` WHERE key >= $1 AND key < $2 ORDER BY key`,
		scanFrom:  `SELECT key, value FROM ` + table + ` WHERE key >= $1 ORDER BY key`,
	}
}

// readBackMode is how the read-back is executed: as an unnamed statement,
// parsed and planned on every execution, with its description cached so that
// it still takes one round trip and binary formats. A statement pgx prepares
// and caches (its default) gets a generic plan from the server after five
// executions, costed with the table's statistics of that moment; on a table
// that was small or empty then, that plan is a sequential scan, kept while
// the table grows, and each read-back would then cost the size of the table.
const readBackMode = pgx.QueryExecModeCacheDescribe

// Open connects to the database at dsn, a PostgreSQL URL or key=value
// connection string as [pgxpool.ParseConfig] accepts it, and returns a Journal
// that owns the pool: Close closes it. Open checks that the server answers and
// that no newer release has migrated the table (a [*journal.VersionError]); it
// does not create the table (see [Journal.Migrate]).
func Open(ctx context.Context, dsn string, opts ...Option) (*Journal, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgjournal: open: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgjournal: open: %w", err)
	}
	j, err := newJournal(pool, true, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		_ = j.Close()
		return nil, fmt.Errorf("pgjournal: open: %w", err)
	}
	if err := j.checkVersion(ctx); err != nil {
		_ = j.Close()
		return nil, fmt.Errorf("pgjournal: open: %w", j.interpretError(err))
	}
	return j, nil
}

// New returns a Journal that uses pool. The pool stays the caller's: Close does
// not close it, and the caller must not close it before the Journal. New does
// not contact the database: the first write checks, once, that no newer
// release has migrated the table, and fails with a [*journal.VersionError] if
// one has.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Journal, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pgjournal: new: %w", err)
	}
	if pool == nil {
		return nil, errors.New("pgjournal: new: nil pool")
	}
	return newJournal(pool, false, opts)
}

func newJournal(pool *pgxpool.Pool, ownPool bool, opts []Option) (*Journal, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	ident, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	n := newNames(ident)
	j := &Journal{
		pool:    pool,
		ownPool: ownPool,
		cfg:     cfg,
		table:   n.table,
		names:   n,
		sql:     newStatements(n),
		del:     newDeletes(n),
		reqs:    make(chan *request),
		closing: make(chan struct{}),
	}
	if cfg.groupCommit {
		j.committer.Add(1)
		go j.runCommitter()
	}
	return j, nil
}

// Close stops the journal: Puts that wait for a group commit fail with
// [journal.ErrClosed], the batch being committed finishes, and Close returns
// once the committer has exited. A pool made by [Open] is closed too, after
// the calls that use it have returned. Later calls fail with
// [journal.ErrClosed]. Close is idempotent and always returns nil.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		close(j.closing)
		j.committer.Wait()
		if j.ownPool {
			j.pool.Close()
		}
	})
	return nil
}

func (j *Journal) closed() bool {
	select {
	case <-j.closing:
		return true
	default:
		return false
	}
}

// Get implements [journal.Journal]. The returned slice is the caller's.
func (j *Journal) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, j.opError("get", key, err)
	}
	if j.closed() {
		return nil, false, j.opError("get", key, journal.ErrClosed)
	}
	var value []byte
	err := j.pool.QueryRow(ctx, j.sql.get, []byte(key)).Scan(&value)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, j.opError("get", key, err)
	}
	return value, true, nil
}

// Put implements [journal.Journal]: it inserts value unless key holds one and
// returns what key holds afterwards, once that is committed. With group commit
// (the default) it waits for the committer to write it together with the
// Puts that arrived with it; see the package documentation. If ctx is done
// before the commit, Put returns ctx's error, and the value may or may not
// have been stored. The returned slice is the caller's; Put does not keep
// value after it returns.
func (j *Journal) Put(ctx context.Context, key string, value []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, j.opError("put", key, err)
	}
	if j.closed() {
		return nil, j.opError("put", key, journal.ErrClosed)
	}
	if !j.cfg.groupCommit {
		stored, err := j.putOne(ctx, key, value)
		if err != nil {
			return nil, j.opError("put", key, err)
		}
		return stored, nil
	}
	// The committer may still read value after Put returned early with ctx's
	// error, so it gets its own copy. A nil value is stored as an empty one.
	r := &request{ctx: ctx, key: key, value: append([]byte{}, value...), done: make(chan result, 1)}
	select {
	case j.reqs <- r:
	case <-ctx.Done():
		return nil, j.opError("put", key, ctx.Err())
	case <-j.closing:
		return nil, j.opError("put", key, journal.ErrClosed)
	}
	var res result
	select {
	case res = <-r.done:
	case <-ctx.Done():
		// An answer that arrived together with the cancellation still counts.
		select {
		case res = <-r.done:
		default:
			return nil, j.opError("put", key, ctx.Err())
		}
	}
	if res.err != nil {
		return nil, j.opError("put", key, res.err)
	}
	return res.stored, nil
}

// putOne writes one Put in its own transaction.
func (j *Journal) putOne(ctx context.Context, key string, value []byte) ([]byte, error) {
	if value == nil {
		value = []byte{} // a nil slice would be NULL
	}
	stored, err := j.write(ctx, [][]byte{[]byte(key)}, [][]byte{value})
	switch {
	case stored == nil:
		return nil, err
	case stored[0] == nil && err != nil:
		return nil, err
	case stored[0] == nil:
		return nil, errMissing
	}
	// The value is the caller's own slice when it was inserted: Put must not
	// return that.
	return bytes.Clone(stored[0]), nil
}

// errMissing reports a key that the read-back after a skipped insert did not
// find, which only a concurrent DELETE can cause.
var errMissing = errors.New("key not found after insert; was it deleted?")

// writeAttempts is how many times a statement the server aborted to resolve a
// conflict with another transaction is run.
const writeAttempts = 3

// write inserts the pairs of keys and values whose key is absent, in one
// transaction and one round trip, and returns what every key holds once it has
// committed: stored[i] is values[i] where keys[i] was inserted, and the value
// read back where the key held one already. keys must be distinct, and no
// value may be nil.
//
// The read-back is one more round trip, run after the commit and only when
// some key was skipped; it sees the rows that made the INSERT skip them,
// which were committed before the INSERT went on. When the transaction
// fails, write returns a nil slice and the error (the batch may have been
// committed all the same if the connection was lost after COMMIT was sent).
// When only the read-back fails, it returns the slice, nil for the keys not
// read back, and the error.
func (j *Journal) write(ctx context.Context, keys, values [][]byte) ([][]byte, error) {
	if err := j.checkVersion(ctx); err != nil {
		return nil, err
	}
	var stored [][]byte
	err := retry(ctx, func() error {
		var err error
		stored, err = j.insertBatch(ctx, keys, values)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !skipped(stored) {
		return stored, nil
	}
	err = retry(ctx, func() error { return j.readBack(ctx, keys, stored) })
	return stored, err
}

// retry runs f until it succeeds, fails for another reason than a conflict
// with another transaction, ctx ends, or it has run writeAttempts times.
func retry(ctx context.Context, f func() error) error {
	var err error
	for range writeAttempts {
		err = f()
		if err == nil || !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return err
}

// insertBatch runs BEGIN, INSERT and COMMIT as one pipelined round trip and
// returns, for each key, its value if the INSERT wrote it and nil if it was
// skipped.
func (j *Journal) insertBatch(ctx context.Context, keys, values [][]byte) ([][]byte, error) {
	b := &pgx.Batch{}
	b.Queue(j.sql.begin)
	insert := j.sql.insertCounted
	if j.version.Load() < 2 {
		insert = j.sql.insert // a table that the first release made, not yet migrated
	}
	b.Queue(insert, keys, values)
	b.Queue(j.sql.commit)
	br := j.pool.SendBatch(ctx, b)
	stored, err := readInsert(br, keys, values)
	// Close reports the first error of the batch; when one statement failed,
	// the connection is left in the aborted transaction and the pool
	// discards it.
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	j.txns.Add(1)
	return stored, nil
}

func readInsert(br pgx.BatchResults, keys, values [][]byte) ([][]byte, error) {
	if _, err := br.Exec(); err != nil { // BEGIN
		return nil, err
	}
	rows, err := br.Query() // INSERT … RETURNING key
	if err != nil {
		return nil, err
	}
	// The inserted keys are matched with keys only if some were skipped:
	// when as many rows come back as keys were sent, all were inserted.
	var returned keyBuffer
	for rows.Next() {
		if err := rows.Scan(&returned); err != nil {
			rows.Close()
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if _, err := br.Exec(); err != nil { // COMMIT
		return nil, err
	}
	stored := make([][]byte, len(keys))
	if len(returned.ends) == len(keys) {
		copy(stored, values)
		return stored, nil
	}
	inserted := make(map[string]bool, len(returned.ends))
	start := 0
	for _, end := range returned.ends {
		inserted[string(returned.buf[start:end])] = true
		start = end
	}
	for i, k := range keys {
		if inserted[string(k)] {
			stored[i] = values[i]
		}
	}
	return stored, nil
}

// keyBuffer collects the keys an INSERT returns, end to end in one buffer
// rather than one allocation each. It is a
// [github.com/jackc/pgx/v5/pgtype.BytesScanner].
type keyBuffer struct {
	buf  []byte
	ends []int // where each key ends in buf
}

func (b *keyBuffer) ScanBytes(v []byte) error {
	b.buf = append(b.buf, v...)
	b.ends = append(b.ends, len(b.buf))
	return nil
}

// skipped reports whether a key of the batch was not inserted.
func skipped(stored [][]byte) bool {
	for _, v := range stored {
		if v == nil {
			return true
		}
	}
	return false
}

// readBack fills in what the keys whose stored value is nil hold, with one
// query that looks each of them up in the primary key. A key it does not find
// stays nil.
func (j *Journal) readBack(ctx context.Context, keys, stored [][]byte) error {
	var missing [][]byte
	index := make(map[string]int)
	for i, v := range stored {
		if v == nil {
			missing = append(missing, keys[i])
			index[string(keys[i])] = i
		}
	}
	j.readBacks.Add(1)
	rows, err := j.pool.Query(ctx, j.sql.readBack, readBackMode, missing)
	if err != nil {
		return err
	}
	var k, v []byte
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		if i, ok := index[string(k)]; ok {
			if v == nil {
				v = []byte{}
			}
			stored[i] = v
		}
		return nil
	})
	return err
}

// Scan implements [journal.Scanner] with one range query over the primary key:
// it calls fn for every key that starts with prefix, in byte order. value is
// valid only until fn returns: it is the bytes of the row as received, which
// the connection reads the next row over. The keys of one Scan share blocks of
// up to 4 KiB: a key that fn keeps keeps its block in memory. The query's
// connection stays in use until Scan returns, so fn should not wait for other
// calls on a pool that has no connection to spare.
func (j *Journal) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return j.opError("scan", prefix, err)
	}
	if j.closed() {
		return j.opError("scan", prefix, journal.ErrClosed)
	}
	lo := []byte(prefix)
	var rows pgx.Rows
	var err error
	if hi, ok := successor(lo); ok {
		rows, err = j.pool.Query(ctx, j.sql.scanRange, lo, hi)
	} else {
		rows, err = j.pool.Query(ctx, j.sql.scanFrom, lo)
	}
	if err != nil {
		return j.opError("scan", prefix, err)
	}
	defer rows.Close()
	// In binary format a bytea's raw value is its bytes, which fn can have
	// without a copy. A pool set to use the simple protocol gets text, which
	// only Scan decodes.
	fields := rows.FieldDescriptions()
	raw := len(fields) == 2 && fields[0].Format == pgx.BinaryFormatCode && fields[1].Format == pgx.BinaryFormatCode
	var (
		keys arena.Blocks
		k, v []byte
	)
	for rows.Next() {
		if raw {
			values := rows.RawValues()
			k, v = values[0], values[1]
		} else if err := rows.Scan(&k, &v); err != nil {
			return j.opError("scan", prefix, err)
		}
		if err := fn(keys.String(k), v); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return j.opError("scan", prefix, err)
	}
	return nil
}

// successor returns the least byte string greater than every string that
// starts with prefix, and false when there is none (the prefix is empty or all
// 0xff): drop trailing 0xff bytes, then increment the last byte.
func successor(prefix []byte) ([]byte, bool) {
	n := len(prefix)
	for n > 0 && prefix[n-1] == 0xff {
		n--
	}
	if n == 0 {
		return nil, false
	}
	end := append([]byte{}, prefix[:n]...)
	end[n-1]++
	return end, true
}
