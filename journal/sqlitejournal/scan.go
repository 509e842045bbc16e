package sqlitejournal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/durable-go/durable/internal/arena"
	"github.com/durable-go/durable/journal"
)

// scanConn is a connection to the journal's file that runs Scan's queries.
// One goroutine at a time may use it.
//
// Scan reads through connections of its own, opened with the SQLite C API
// (modernc.org/sqlite/lib), rather than through database/sql: the driver
// opens every connection in serialized mode (SQLITE_OPEN_FULLMUTEX) and reads
// a row with three calls per column (its type, its bytes, their length), each
// taking and releasing the connection's mutex, then copies each BLOB into a
// new slice. A scanConn is opened with SQLITE_OPEN_NOMUTEX, reads each column
// with two calls that take no mutex, and hands fn the value where SQLite holds
// it; the keys' strings share blocks (see arena.Blocks), so that a row costs
// no allocation of its own.
type scanConn struct {
	tls *libc.TLS
	db  uintptr // sqlite3*
	// The statements of scanFromSQL and scanBetweenSQL (sqlite3_stmt*),
	// prepared once.
	from, between uintptr
}

// openScanConn opens a scanConn to the file at path, which Open has switched
// to WAL mode and migrated. busyTimeout is how long its reads wait for a lock.
func openScanConn(path string, busyTimeout time.Duration) (_ *scanConn, err error) {
	c := &scanConn{tls: libc.NewTLS()}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.close())
		}
	}()
	name, err := libc.CString(path)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, name)
	out := c.tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer c.tls.Free(int(unsafe.Sizeof(uintptr(0))))

	// No SQLITE_OPEN_CREATE: the file exists, and a file deleted since Open
	// is an error, not a new empty journal. No SQLITE_OPEN_URI: path is a
	// file name, whatever its characters.
	const flags = sqlite3.SQLITE_OPEN_READWRITE | sqlite3.SQLITE_OPEN_NOMUTEX | sqlite3.SQLITE_OPEN_EXRESCODE
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, out, flags, 0)
	c.db = *(*uintptr)(cmem(out)) // set even when the open fails, and then to be closed
	if rc != sqlite3.SQLITE_OK {
		return nil, c.error("open", rc)
	}
	if rc := sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, int32((busyTimeout+time.Millisecond-1)/time.Millisecond)); rc != sqlite3.SQLITE_OK {
		return nil, c.error("busy_timeout", rc)
	}
	if c.from, err = c.prepare(scanFromSQL); err != nil {
		return nil, err
	}
	if c.between, err = c.prepare(scanBetweenSQL); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *scanConn) prepare(query string) (uintptr, error) {
	q, err := libc.CString(query)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(c.tls, q)
	out := c.tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer c.tls.Free(int(unsafe.Sizeof(uintptr(0))))
	if rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, q, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, out, 0); rc != sqlite3.SQLITE_OK {
		return 0, c.error("prepare", rc)
	}
	return *(*uintptr)(cmem(out)), nil
}

// close finalizes c's statements and closes its connection.
func (c *scanConn) close() error {
	for _, s := range []uintptr{c.from, c.between} {
		if s != 0 {
			sqlite3.Xsqlite3_finalize(c.tls, s)
		}
	}
	var err error
	if c.db != 0 {
		if rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db); rc != sqlite3.SQLITE_OK {
			err = c.error("close", rc)
		}
	}
	c.tls.Close()
	return err
}

// error describes the failure rc of c's call op, with SQLite's message.
func (c *scanConn) error(op string, rc int32) error {
	msg := libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	if c.db != 0 {
		if m := libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db)); m != msg {
			msg += ": " + m
		}
	}
	return fmt.Errorf("sqlite: %s: %s (%d)", op, msg, rc)
}

// scan calls fn for each entry whose key starts with prefix, in key order,
// with value where SQLite holds it, valid until fn returns. It stops at fn's
// first error and returns it as fnErr; err is its own, or ctx's error once ctx
// is done, checked before each row.
func (c *scanConn) scan(ctx context.Context, prefix string, fn func(key string, value []byte) error) (fnErr, err error) {
	stmt := c.from
	end, bounded := successor(prefix)
	if bounded {
		stmt = c.between
		if err := c.bind(stmt, 2, string(end)); err != nil {
			return nil, err
		}
	}
	if err := c.bind(stmt, 1, prefix); err != nil {
		return nil, err
	}
	// Reset the statement when done: it ends the read transaction, and
	// leaves the statement ready for the next Scan. The bindings stay: the
	// next Scan sets them again.
	defer sqlite3.Xsqlite3_reset(c.tls, stmt)

	cancellable := ctx.Done() != nil
	var keys arena.Blocks
	for {
		if cancellable {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		switch rc := sqlite3.Xsqlite3_step(c.tls, stmt); rc {
		case sqlite3.SQLITE_ROW:
		case sqlite3.SQLITE_DONE:
			return nil, nil
		default:
			return nil, c.error("step", rc)
		}
		key := keys.String(c.column(stmt, 0))
		if err := fn(key, c.column(stmt, 1)); err != nil {
			return err, nil
		}
	}
}

// bind binds b as a BLOB to parameter i of stmt; SQLite keeps a copy.
func (c *scanConn) bind(stmt uintptr, i int32, b string) error {
	var rc int32
	if len(b) == 0 {
		rc = sqlite3.Xsqlite3_bind_zeroblob(c.tls, stmt, i, 0)
	} else {
		p := c.tls.Alloc(len(b))
		copy(unsafe.Slice((*byte)(cmem(p)), len(b)), b)
		rc = sqlite3.Xsqlite3_bind_blob(c.tls, stmt, i, p, int32(len(b)), sqlite3.SQLITE_TRANSIENT)
		c.tls.Free(len(b))
	}
	if rc != sqlite3.SQLITE_OK {
		return c.error("bind", rc)
	}
	return nil
}

// column returns the bytes of column i of stmt's current row, a BLOB's (or a
// TEXT's, as stored), where SQLite holds them: valid until the statement steps
// or is reset. No bytes are an empty, non-nil slice.
func (c *scanConn) column(stmt uintptr, i int32) []byte {
	p := sqlite3.Xsqlite3_column_blob(c.tls, stmt, i)
	n := sqlite3.Xsqlite3_column_bytes(c.tls, stmt, i)
	if p == 0 || n == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(cmem(p)), n)
}

// cmem returns the address p, of memory that SQLite (modernc.org/libc)
// allocated outside the Go heap, as a pointer.
func cmem(p uintptr) unsafe.Pointer {
	return unsafe.Add(nil, p)
}

// scanners is the pool of Scan's connections: at most as many as it has
// tokens, opened when first needed, kept while the journal is open.
type scanners struct {
	path        string
	busyTimeout time.Duration

	// tokens holds a token for each connection that may be open and is not
	// in use: the idle connection, or nil for one not opened yet. A Scan
	// takes a token, and gives it back.
	tokens chan *scanConn
	done   chan struct{} // closed by close

	mu     sync.Mutex
	closed bool
}

func newScanners(path string, n int, busyTimeout time.Duration) *scanners {
	s := &scanners{
		path:        path,
		busyTimeout: busyTimeout,
		tokens:      make(chan *scanConn, n),
		done:        make(chan struct{}),
	}
	for range n {
		s.tokens <- nil
	}
	return s
}

// get returns a connection for one Scan, waiting while all are in use, and
// opening one when none is idle. The caller must put it back.
func (s *scanners) get(ctx context.Context) (*scanConn, error) {
	var c *scanConn
	select {
	case c = <-s.tokens:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, journal.ErrClosed
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.put(c)
		return nil, journal.ErrClosed
	}
	if c == nil {
		var err error
		if c, err = openScanConn(s.path, s.busyTimeout); err != nil {
			s.tokens <- nil
			return nil, err
		}
	}
	return c, nil
}

// put gives c back to the pool, or closes it when the pool is closed.
func (s *scanners) put(c *scanConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed && c != nil {
		c.close() // nothing to report it to; the reads are done
		c = nil
	}
	s.tokens <- c
}

// close closes the idle connections; those in use are closed as they are put
// back. Later gets fail with journal.ErrClosed.
func (s *scanners) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()
	var errs []error
	for {
		select {
		case c := <-s.tokens:
			if c != nil {
				errs = append(errs, c.close())
			}
		default:
			return errors.Join(errs...)
		}
	}
}
