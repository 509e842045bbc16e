package sqlitejournal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/durable-go/durable/journal"
)

// schema is the table of entries, the first migration (see schema.go);
// doc.go and README.md show it too.
const schema = `CREATE TABLE IF NOT EXISTS durable_journal (
	key        BLOB    NOT NULL PRIMARY KEY,
	value      BLOB    NOT NULL,
	created_at INTEGER NOT NULL
) WITHOUT ROWID`

const (
	insertSQL = `INSERT INTO durable_journal (key, value, created_at, counted) VALUES (?1, ?2, ?3, 1) ON CONFLICT (key) DO NOTHING`
	// countSQL adds entries that this package inserted, and so marked
	// counted, to their execution's row (see schema.go).
	countSQL = `INSERT INTO durable_executions (id, first_at, last_at, entries) VALUES (?1, ?2, ?2, ?3)
	ON CONFLICT (id) DO UPDATE SET
		first_at = min(first_at, excluded.first_at),
		last_at = max(last_at, excluded.last_at),
		entries = entries + excluded.entries`
	getSQL         = `SELECT value FROM durable_journal WHERE key = ?1`
	scanFromSQL    = `SELECT key, value FROM durable_journal WHERE key >= ?1 ORDER BY key`
	scanBetweenSQL = `SELECT key, value FROM durable_journal WHERE key >= ?1 AND key < ?2 ORDER BY key`
)

// Journal is a [journal.Journal] stored in one SQLite file. It is safe for
// concurrent use, and several Journals, in one process or in several, may use
// the same file at once.
//
// A Journal holds three pools of connections to the file: one connection that
// writes, used by the committer; a few that read, used by Get and by listing
// executions; and a few that Scan uses, opened with SQLite's C API rather than
// through database/sql.
type Journal struct {
	path string
	cfg  config

	w *sql.DB // the writer: one connection
	r *sql.DB // the readers

	insert, readBack *sql.Stmt // prepared on w
	count            *sql.Stmt // prepared on w
	get              *sql.Stmt // prepared on r

	scan *scanners // Scan's connections

	mu     sync.Mutex
	queue  []*request // Puts waiting for the committer; at most one per blocked caller
	closed atomic.Bool

	// wake tells the committer that the queue is not empty. It has room for
	// one signal: one pending signal is enough, since the committer drains the
	// whole queue each time it wakes.
	wake   chan struct{}
	quit   chan struct{} // closed by Close
	exited chan struct{} // closed by the committer as it returns

	// The committer's own: its multi-row INSERTs (rows[k] writes 1<<k rows),
	// prepared on w when first needed, and buffers reused from batch to batch.
	rows   [maxRowsLog + 1]*sql.Stmt
	seen   map[string]int
	counts counts
	firsts []*request
	dup    []int
	sizes  []int
	args   []any

	begun atomic.Int64 // batch transactions begun by the committer, for tests
	txs   atomic.Int64 // write transactions committed, for tests
}

var (
	_ journal.Journal = (*Journal)(nil)
	_ journal.Scanner = (*Journal)(nil)
	_ journal.Lister  = (*Journal)(nil)
	_ journal.Deleter = (*Journal)(nil)
)

// Open opens the journal in the SQLite file at path, creating the file and its
// tables when they do not exist, and migrating a file that an older release
// wrote (see the package documentation). It fails with a
// [*journal.VersionError] on a file that a newer release has migrated. The
// file is switched to write-ahead-log mode. The caller must Close the journal.
func Open(path string, opts ...Option) (*Journal, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("sqlitejournal: open %q: %w", path, err)
	}
	if path == "" {
		return nil, errors.New("sqlitejournal: open: empty path")
	}
	j, err := open(path, cfg)
	if err != nil {
		return nil, fmt.Errorf("sqlitejournal: open %q: %w", path, err)
	}
	return j, nil
}

func open(path string, cfg config) (_ *Journal, err error) {
	dsn, err := dataSourceName(path, cfg)
	if err != nil {
		return nil, err
	}
	j := &Journal{path: path, cfg: cfg}
	defer func() {
		if err != nil {
			err = errors.Join(err, j.closeDB())
		}
	}()

	if j.w, err = sql.Open("sqlite", dsn); err != nil {
		return nil, err
	}
	// One writer: SQLite allows one write transaction at a time per file, so a
	// second connection would only wait for the lock.
	j.w.SetMaxOpenConns(1)
	j.w.SetMaxIdleConns(1)

	ctx := context.Background()
	var mode string
	if err = j.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, err
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("journal_mode is %q, not wal (WAL needs a local file system)", mode)
	}
	if err = j.migrate(ctx); err != nil {
		return nil, err
	}
	if err = j.checkWritable(ctx); err != nil {
		return nil, err
	}

	if j.r, err = sql.Open("sqlite", dsn); err != nil {
		return nil, err
	}
	// Readers do not block each other or the writer in WAL mode. Bound them so
	// that a burst of Gets does not open a connection (and a page cache) each.
	readers := max(4, runtime.GOMAXPROCS(0))
	j.r.SetMaxOpenConns(readers)
	j.r.SetMaxIdleConns(readers)
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	j.scan = newScanners(abs, readers, cfg.busyTimeout)

	for _, p := range []struct {
		db   *sql.DB
		stmt **sql.Stmt
		sql  string
	}{
		{j.w, &j.insert, insertSQL},
		{j.w, &j.readBack, getSQL},
		{j.w, &j.count, countSQL},
		{j.r, &j.get, getSQL},
	} {
		if *p.stmt, err = p.db.PrepareContext(ctx, p.sql); err != nil {
			return nil, err
		}
	}

	if cfg.groupCommit {
		j.wake = make(chan struct{}, 1)
		j.quit = make(chan struct{})
		j.exited = make(chan struct{})
		go j.commitLoop()
	}
	return j, nil
}

// checkWritable fails when the file cannot be written (a read-only file or
// mount): Open reports it, rather than the first Put after a wave of branches
// ran their side effects. It writes the schema version the file holds, a
// write that changes nothing.
func (j *Journal) checkWritable(ctx context.Context) error {
	var v int
	if err := j.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if _, err := j.w.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(v)); err != nil {
		return fmt.Errorf("the file cannot be written: %w", err)
	}
	return nil
}

// dataSourceName builds the driver's DSN: a "file:" URI, so that any path
// works, with the pragmas that every connection runs when it opens.
func dataSourceName(path string, cfg config) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	p := filepath.ToSlash(abs)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive letter: file:/C:/dir/file
	}
	p = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)

	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", (cfg.busyTimeout+999_999)/1_000_000))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+cfg.synchronous.String()+")")
	// Write transactions take the write lock when they begin, so they wait
	// for it under busy_timeout instead of failing when they first write.
	q.Set("_txlock", "immediate")
	return "file:" + p + "?" + q.Encode(), nil
}

// Close stops the committer after it has committed every Put already queued,
// then closes the file. Get, Put and Scan called after Close return an error
// matching [journal.ErrClosed]. Calling Close again returns nil.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed.Load() {
		j.mu.Unlock()
		return nil
	}
	j.closed.Store(true)
	j.mu.Unlock()

	if j.quit != nil {
		close(j.quit)
		<-j.exited
	}
	if err := j.closeDB(); err != nil {
		return fmt.Errorf("sqlitejournal: close %q: %w", j.path, err)
	}
	return nil
}

func (j *Journal) closeDB() error {
	var errs []error
	stmts := append([]*sql.Stmt{j.insert, j.readBack, j.count, j.get}, j.rows[:]...)
	for _, s := range stmts {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	for _, db := range []*sql.DB{j.w, j.r} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if j.scan != nil {
		errs = append(errs, j.scan.close())
	}
	return errors.Join(errs...)
}

// Get implements [journal.Journal]. The returned slice is the caller's to keep.
func (j *Journal) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("sqlitejournal: get %q: %w", key, err)
	}
	if j.closed.Load() {
		return nil, false, fmt.Errorf("sqlitejournal: get %q: %w", key, journal.ErrClosed)
	}
	var v []byte
	err := j.get.QueryRowContext(ctx, blob(key)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sqlitejournal: get %q: %w", key, j.interpret(ctx, err))
	}
	return nonNil(v), true, nil
}

// Scan implements [journal.Scanner] with one range query over the primary
// key, visiting keys in ascending byte order. value is valid only until fn
// returns: it is the bytes SQLite holds, not a copy. Scan holds one of the
// journal's scanning connections (there are max(4, GOMAXPROCS)) while it runs;
// fn may call Get, Put and Scan, as long as Scans nested in fn do not take
// every scanning connection. A write by fn may or may not be visited by the
// same Scan. Once ctx is done, Scan visits no further entry and returns ctx's
// error. The keys of one Scan share blocks of up to 4 KiB: a key that fn keeps
// keeps its block in memory.
func (j *Journal) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlitejournal: scan %q: %w", prefix, err)
	}
	if j.closed.Load() {
		return fmt.Errorf("sqlitejournal: scan %q: %w", prefix, journal.ErrClosed)
	}
	c, err := j.scan.get(ctx)
	if err != nil {
		return fmt.Errorf("sqlitejournal: scan %q: %w", prefix, j.interpret(ctx, err))
	}
	defer j.scan.put(c)
	fnErr, err := c.scan(ctx, prefix, fn)
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("sqlitejournal: scan %q: %w", prefix, j.interpret(ctx, err))
	}
	return nil
}

// successor returns the least byte string greater than every string that
// starts with prefix: prefix without its trailing 0xff bytes, with its last
// byte incremented. ok is false when there is none (prefix is empty or all
// 0xff), and then a prefix scan has no upper bound.
func successor(prefix string) (end []byte, ok bool) {
	n := len(prefix)
	for n > 0 && prefix[n-1] == 0xff {
		n--
	}
	if n == 0 {
		return nil, false
	}
	end = []byte(prefix[:n])
	end[n-1]++
	return end, true
}

// interpret maps a driver error to the journal's terms, in one place: an
// operation cut short by the caller's context reports the context's error, and
// one cut short by Close reports journal.ErrClosed.
func (j *Journal) interpret(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w (%v)", ctxErr, err)
	}
	if j.closed.Load() && !errors.Is(err, journal.ErrClosed) {
		return fmt.Errorf("%w (%v)", journal.ErrClosed, err)
	}
	return err
}

// blob returns key as a non-nil byte slice. The driver binds a []byte as a
// BLOB, which SQLite compares bytewise (a string would be TEXT), and binds a
// nil slice as NULL.
func blob(key string) []byte {
	b := make([]byte, len(key))
	copy(b, key)
	return b
}

// nonNil returns b, or an empty slice for nil: a stored empty value reads back
// as empty, not as absent.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
