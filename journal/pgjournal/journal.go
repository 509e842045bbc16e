package pgjournal

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/durable-go/durable/journal"
)

// Journal is a [journal.Journal] and a [journal.Scanner] stored in one
// PostgreSQL table. It is safe for concurrent use, also by several processes
// sharing the table. Make one with [Open] or [New] and Close it when done.
type Journal struct {
	pool    *pgxpool.Pool
	ownPool bool
	cfg     config
	table   string // the table's name, quoted
	sql     statements

	// reqs carries Puts to the committer. It is unbuffered: Puts that wait for
	// the committer are blocked senders, which it drains into the next batch.
	reqs      chan *request
	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	committer sync.WaitGroup

	txns atomic.Int64 // write transactions committed, for tests
}

var (
	_ journal.Journal = (*Journal)(nil)
	_ journal.Scanner = (*Journal)(nil)
)

// statements holds the journal's SQL, with the table name filled in.
type statements struct {
	create, get, begin, insert, readBack, commit, scanRange, scanFrom string
}

func newStatements(table string) statements {
	return statements{
		create: `CREATE TABLE IF NOT EXISTS ` + table + ` (
	key        bytea       PRIMARY KEY,
	value      bytea       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
)`,
		get: `SELECT value FROM ` + table + ` WHERE key = $1`,
		// Read committed makes each statement see what other transactions
		// committed before it started, whatever the server's default: the
		// read-back must see the rows that made the insert skip a key.
		begin: `BEGIN ISOLATION LEVEL READ COMMITTED`,
		// Rows are inserted in key order so that two batches sharing keys
		// lock them in the same order and cannot deadlock.
		insert: `INSERT INTO ` + table + ` (key, value)
	SELECT k, v FROM unnest($1::bytea[], $2::bytea[]) AS batch (k, v) ORDER BY k
	ON CONFLICT (key) DO NOTHING`,
		readBack:  `SELECT key, value FROM ` + table + ` WHERE key = ANY($1::bytea[])`,
		commit:    `COMMIT`,
		scanRange: `SELECT key, value FROM ` + table + ` WHERE key >= $1 AND key < $2 ORDER BY key`,
		scanFrom:  `SELECT key, value FROM ` + table + ` WHERE key >= $1 ORDER BY key`,
	}
}

// Open connects to the database at dsn, a PostgreSQL URL or key=value
// connection string as [pgxpool.ParseConfig] accepts it, and returns a Journal
// that owns the pool: Close closes it. Open checks that the server answers; it
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
	return j, nil
}

// New returns a Journal that uses pool. The pool stays the caller's: Close does
// not close it, and the caller must not close it before the Journal. New does
// not contact the database.
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
	table, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	j := &Journal{
		pool:    pool,
		ownPool: ownPool,
		cfg:     cfg,
		table:   table,
		sql:     newStatements(table),
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

// Migrate creates the journal's table unless it exists (the SQL is in the
// package documentation). It does not create a schema: for a table named
// "schema.name" the schema must exist. Migrate is idempotent and safe to run
// from several processes at once.
func (j *Journal) Migrate(ctx context.Context) error {
	if j.closed() {
		return fmt.Errorf("pgjournal: migrate %s: %w", j.table, journal.ErrClosed)
	}
	// CREATE TABLE IF NOT EXISTS can still fail with a unique violation in
	// the catalog when two sessions run it at once; a transaction-scoped
	// advisory lock on the table's name makes them take turns.
	h := fnv.New64a()
	h.Write([]byte("github.com/durable-go/durable/journal/pgjournal " + j.table))
	lock := int64(h.Sum64())
	err := pgx.BeginFunc(ctx, j.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lock); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, j.sql.create)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgjournal: migrate %s: %w", j.table, j.interpretError(err))
	}
	return nil
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
	k := []byte(key)
	stored, err := j.write(ctx, [][]byte{k}, [][]byte{value})
	if err != nil {
		return nil, err
	}
	v, ok := stored[key]
	if !ok {
		return nil, errMissing
	}
	return v, nil
}

// errMissing reports a key that the read-back of a committed insert did not
// find, which only a concurrent DELETE can cause.
var errMissing = errors.New("key not found after insert; was it deleted?")

// write inserts the pairs of keys and values whose key is absent, in one
// transaction and one round trip, and returns what every key holds once it has
// committed. keys must be distinct. It runs the transaction again, a few
// times, when the server aborted it to resolve a conflict.
func (j *Journal) write(ctx context.Context, keys, values [][]byte) (map[string][]byte, error) {
	const attempts = 3
	var err error
	for range attempts {
		var stored map[string][]byte
		stored, err = j.writeOnce(ctx, keys, values)
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return stored, err
		}
	}
	return nil, err
}

func (j *Journal) writeOnce(ctx context.Context, keys, values [][]byte) (map[string][]byte, error) {
	b := &pgx.Batch{}
	b.Queue(j.sql.begin)
	b.Queue(j.sql.insert, keys, values)
	b.Queue(j.sql.readBack, keys)
	b.Queue(j.sql.commit)
	br := j.pool.SendBatch(ctx, b)
	stored, err := readBatch(br, len(keys))
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

func readBatch(br pgx.BatchResults, n int) (map[string][]byte, error) {
	if _, err := br.Exec(); err != nil { // BEGIN
		return nil, err
	}
	if _, err := br.Exec(); err != nil { // INSERT
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	stored := make(map[string][]byte, n)
	var k, v []byte
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		stored[string(k)] = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := br.Exec(); err != nil { // COMMIT
		return nil, err
	}
	return stored, nil
}

// Scan implements [journal.Scanner] with one range query over the primary key:
// it calls fn for every key that starts with prefix, in byte order. fn may keep
// value. The query's connection stays in use until Scan returns, so fn should
// not wait for other calls on a pool that has no connection to spare.
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
	var k, v []byte
	for rows.Next() {
		if err := rows.Scan(&k, &v); err != nil {
			return j.opError("scan", prefix, err)
		}
		if err := fn(string(k), v); err != nil {
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
