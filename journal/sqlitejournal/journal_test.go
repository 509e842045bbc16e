package sqlitejournal_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/journaltest"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

var bg = context.Background()

// openAt opens the journal at path and closes it when the test ends.
func openAt(t testing.TB, path string, opts ...sqlitejournal.Option) *sqlitejournal.Journal {
	t.Helper()
	j, err := sqlitejournal.Open(path, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, j.Close()) })
	return j
}

func tempPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "journal.db")
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []sqlitejournal.Option
	}{
		{"GroupCommit", nil},
		{"GroupCommitSmallBatches", []sqlitejournal.Option{sqlitejournal.WithMaxBatch(3)}},
		{"GroupCommitMaxWait", []sqlitejournal.Option{sqlitejournal.WithMaxWait(time.Millisecond)}},
		{"OneTransactionPerPut", []sqlitejournal.Option{sqlitejournal.WithGroupCommit(false)}},
		{"SynchronousNormal", []sqlitejournal.Option{sqlitejournal.WithSynchronous(sqlitejournal.SynchronousNormal)}},
		{"DeleteBatchesOfThree", []sqlitejournal.Option{sqlitejournal.WithDeleteBatch(3)}},
		{"DeleteBatchesOfOne", []sqlitejournal.Option{sqlitejournal.WithDeleteBatch(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			journaltest.Run(t, func() journal.Journal { return openAt(t, tempPath(t), tc.opts...) })
		})
	}
}

func TestPragmas(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       []sqlitejournal.Option
		sync, busy string
	}{
		{"Default", nil, "2", "5000"},
		{"Normal", []sqlitejournal.Option{sqlitejournal.WithSynchronous(sqlitejournal.SynchronousNormal)}, "1", "5000"},
		{"BusyTimeout", []sqlitejournal.Option{sqlitejournal.WithBusyTimeout(1500 * time.Microsecond)}, "2", "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := openAt(t, tempPath(t), tc.opts...)
			for pragma, want := range map[string]string{
				"journal_mode": "wal",
				"synchronous":  tc.sync,
				"busy_timeout": tc.busy,
			} {
				w, r, err := sqlitejournal.Pragmas(j, pragma)
				require.NoError(t, err)
				require.Equal(t, want, w, "PRAGMA %s on the writer", pragma)
				require.Equal(t, want, r, "PRAGMA %s on a reader", pragma)
			}
			busy, err := sqlitejournal.ScanPragma(j, "busy_timeout")
			require.NoError(t, err)
			require.Equal(t, tc.busy, busy, "PRAGMA busy_timeout on a connection of Scan")
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
		opt  sqlitejournal.Option
		want string
	}{
		{"EmptyPath", "", nil, "empty path"},
		{"MissingDir", filepath.Join(dir, "no", "such", "dir", "j.db"), nil, "no/such/dir"},
		{"MaxBatch", filepath.Join(dir, "j.db"), sqlitejournal.WithMaxBatch(0), "WithMaxBatch(0)"},
		{"MaxWait", filepath.Join(dir, "j.db"), sqlitejournal.WithMaxWait(-time.Second), "WithMaxWait(-1s)"},
		{"BusyTimeout", filepath.Join(dir, "j.db"), sqlitejournal.WithBusyTimeout(-1), "WithBusyTimeout"},
		{"Synchronous", filepath.Join(dir, "j.db"), sqlitejournal.WithSynchronous(7), "Synchronous(7)"},
		{"DeleteBatch", filepath.Join(dir, "j.db"), sqlitejournal.WithDeleteBatch(0), "WithDeleteBatch(0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []sqlitejournal.Option
			if tc.opt != nil {
				opts = append(opts, tc.opt)
			}
			j, err := sqlitejournal.Open(tc.path, opts...)
			require.Error(t, err)
			require.Nil(t, j)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	// A rejected option creates no file.
	_, err := os.Stat(filepath.Join(dir, "j.db"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestOddPaths(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"what?.db", "hash#.db", "per%25cent.db", "space d.db", "ünï.db"} {
		path := filepath.Join(dir, name)
		j := openAt(t, path)
		_, err := j.Put(bg, "k", []byte("v"))
		require.NoError(t, err)
		_, err = os.Stat(path)
		require.NoError(t, err, "the journal must live at exactly %q", path)
		n := 0
		require.NoError(t, j.Scan(bg, "", func(k string, v []byte) error {
			n++
			require.Equal(t, "k", k)
			require.Equal(t, "v", string(v))
			return nil
		}))
		require.Equal(t, 1, n, "Scan reads the journal at %q", path)
	}
}

func TestReopen(t *testing.T) {
	path := tempPath(t)
	j, err := sqlitejournal.Open(path)
	require.NoError(t, err)
	stored, err := j.Put(bg, "exec/step", []byte(`{"v":1}`))
	require.NoError(t, err)
	require.Equal(t, `{"v":1}`, string(stored))
	require.NoError(t, j.Close())

	j = openAt(t, path)
	got, ok, err := j.Get(bg, "exec/step")
	require.NoError(t, err)
	require.True(t, ok, "a committed Put must survive Close and reopen")
	require.Equal(t, `{"v":1}`, string(got))

	stored, err = j.Put(bg, "exec/step", []byte(`{"v":2}`))
	require.NoError(t, err)
	require.Equal(t, `{"v":1}`, string(stored), "the value written before the reopen still wins")
}

func TestTwoHandlesOneFile(t *testing.T) {
	path := tempPath(t)
	a := openAt(t, path)
	b := openAt(t, path, sqlitejournal.WithGroupCommit(false))

	stored, err := a.Put(bg, "k", []byte("from a"))
	require.NoError(t, err)
	require.Equal(t, "from a", string(stored))
	stored, err = b.Put(bg, "k", []byte("from b"))
	require.NoError(t, err)
	require.Equal(t, "from a", string(stored), "b must see a's earlier write")

	_, err = b.Put(bg, "k2", []byte("from b"))
	require.NoError(t, err)
	got, ok, err := a.Get(bg, "k2")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "from b", string(got))

	// Both handles race on the same keys: every writer of a key sees one winner.
	const keys, writersPerHandle = 20, 8
	type outcome struct {
		key    int
		stored string
	}
	outcomes := make(chan outcome, keys*2*writersPerHandle)
	var wg sync.WaitGroup
	for h, j := range []*sqlitejournal.Journal{a, b} {
		for w := range writersPerHandle {
			wg.Go(func() {
				for k := range keys {
					v := fmt.Sprintf("handle %d writer %d", h, w)
					s, err := j.Put(bg, fmt.Sprintf("race/%d", k), []byte(v))
					if !assert.NoError(t, err) {
						return
					}
					outcomes <- outcome{k, string(s)}
				}
			})
		}
	}
	wg.Wait()
	close(outcomes)
	winners := map[int]string{}
	n := 0
	for o := range outcomes {
		n++
		if w, ok := winners[o.key]; ok {
			require.Equal(t, w, o.stored, "key race/%d", o.key)
		}
		winners[o.key] = o.stored
	}
	require.Equal(t, keys*2*writersPerHandle, n)
	for k, w := range winners {
		for _, j := range []*sqlitejournal.Journal{a, b} {
			got, ok, err := j.Get(bg, fmt.Sprintf("race/%d", k))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, w, string(got))
		}
	}

	var scanned int
	require.NoError(t, b.Scan(bg, "race/", func(string, []byte) error { scanned++; return nil }))
	require.Equal(t, keys, scanned)
}

func TestSuccessor(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		end    string
		ok     bool
	}{
		{"", "", false},
		{"a", "b", true},
		{"abc", "abd", true},
		{"a\xff", "b", true},
		{"a\xff\xff", "b", true},
		{"\x00", "\x01", true},
		{"a\xfe", "a\xff", true},
		{"\xff", "", false},
		{"\xff\xff\xff", "", false},
		{"\xfe\xff", "\xff", true},
		{"x\xef\xbf\xbd", "x\xef\xbf\xbe", true}, // U+FFFD is three bytes, not 0xff
	} {
		end, ok := sqlitejournal.Successor(tc.prefix)
		require.Equal(t, tc.ok, ok, "successor(%q)", tc.prefix)
		require.Equal(t, tc.end, string(end), "successor(%q)", tc.prefix)
	}
}

func TestScanPrefixes(t *testing.T) {
	j := openAt(t, tempPath(t))
	all := []string{
		"", "\x00", "a", "a\x00", "a\xfe", "a\xfe\xff", "a\xff", "a\xff\x00", "a\xff\xff", "a\xff\xffz",
		"b", "b\x00", "\xfe", "\xfe\xff", "\xff", "\xff\x00", "\xff\xff", "\xff\xff\xff", "\xff\xffz",
	}
	for _, k := range all {
		_, err := j.Put(bg, k, []byte("v:"+k))
		require.NoError(t, err)
	}
	for _, prefix := range []string{"", "\x00", "a", "a\xfe", "a\xff", "a\xff\xff", "b", "\xfe", "\xff", "\xff\xff", "\xff\xff\xff", "c"} {
		var want []string
		for _, k := range all {
			if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
				want = append(want, k)
			}
		}
		sort.Strings(want)
		var got []string
		err := j.Scan(bg, prefix, func(k string, v []byte) error {
			require.Equal(t, "v:"+k, string(v))
			got = append(got, k)
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, want, got, "Scan(%q) visits the keys with that prefix, in byte order", prefix)
	}
}

func TestGroupCommitManyPuts(t *testing.T) {
	j := openAt(t, tempPath(t))
	const goroutines, perGoroutine = 100, 10
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				k := fmt.Sprintf("g%d/i%d", g, i)
				stored, err := j.Put(bg, k, []byte(k))
				if assert.NoError(t, err) {
					assert.Equal(t, k, string(stored))
				}
				// Every goroutine also races for one shared key.
				stored, err = j.Put(bg, "shared", []byte(k))
				if assert.NoError(t, err) {
					assert.Regexp(t, `^g\d+/i0$`, string(stored))
				}
			}
		})
	}
	wg.Wait()

	n := 0
	require.NoError(t, j.Scan(bg, "g", func(k string, v []byte) error {
		n++
		require.Equal(t, k, string(v))
		return nil
	}))
	require.Equal(t, goroutines*perGoroutine, n)

	puts := int64(2 * goroutines * perGoroutine)
	txs := sqlitejournal.Transactions(j)
	t.Logf("%d Puts in %d transactions", puts, txs)
	require.Less(t, txs, puts, "group commit must share transactions between concurrent Puts")
}

// holdWriteLock takes the file's write lock from another connection, as
// another process would, until the returned function is called.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	conn, err := db.Conn(bg)
	require.NoError(t, err)
	_, err = conn.ExecContext(bg, "BEGIN IMMEDIATE")
	require.NoError(t, err)
	var once sync.Once
	release = func() {
		once.Do(func() {
			_, err := conn.ExecContext(bg, "COMMIT")
			assert.NoError(t, err)
			assert.NoError(t, conn.Close())
			assert.NoError(t, db.Close())
		})
	}
	t.Cleanup(release)
	return release
}

// blockCommitter makes j's committer wait for the write lock with one Put,
// and returns that Put's outcome, to be read after release.
func blockCommitter(t *testing.T, j *sqlitejournal.Journal, path string) (release func(), first <-chan error) {
	t.Helper()
	release = holdWriteLock(t, path)
	errc := make(chan error, 1)
	go func() {
		_, err := j.Put(bg, "first", []byte("first"))
		errc <- err
	}()
	require.Eventually(t, func() bool { return sqlitejournal.Begun(j) == 1 }, 10*time.Second, time.Millisecond)
	return release, errc
}

// putAll starts one Put per key and waits until all of them are queued.
func putAll(t *testing.T, j *sqlitejournal.Journal, keys []string) (wait func() map[string]error) {
	t.Helper()
	var (
		mu   sync.Mutex
		errs = map[string]error{}
		wg   sync.WaitGroup
	)
	for _, k := range keys {
		wg.Go(func() {
			stored, err := j.Put(bg, k, []byte("value of "+k))
			if err == nil {
				assert.Equal(t, "value of "+k, string(stored))
			}
			mu.Lock()
			errs[k] = err
			mu.Unlock()
		})
	}
	require.Eventually(t, func() bool { return sqlitejournal.Queued(j) == len(keys) }, 10*time.Second, time.Millisecond)
	return func() map[string]error {
		wg.Wait()
		return errs
	}
}

func TestGroupCommitBatchBound(t *testing.T) {
	path := tempPath(t)
	j := openAt(t, path, sqlitejournal.WithBusyTimeout(time.Minute), sqlitejournal.WithMaxBatch(10))
	release, first := blockCommitter(t, j, path)

	var keys []string
	for i := range 41 {
		keys = append(keys, fmt.Sprint("k", i))
	}
	wait := putAll(t, j, keys)
	release()
	require.NoError(t, <-first)
	for k, err := range wait() {
		require.NoError(t, err, k)
	}
	// The lone first Put, then 41 queued Puts in batches of at most 10.
	require.Equal(t, int64(1+5), sqlitejournal.Transactions(j))
}

func TestGroupCommitMaxWait(t *testing.T) {
	j := openAt(t, tempPath(t), sqlitejournal.WithMaxBatch(10), sqlitejournal.WithMaxWait(time.Minute))
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			_, err := j.Put(bg, fmt.Sprint(i), []byte("v"))
			assert.NoError(t, err)
		})
	}
	wg.Wait() // returns long before a minute: the batch fills
	require.Equal(t, int64(1), sqlitejournal.Transactions(j))

	j = openAt(t, tempPath(t), sqlitejournal.WithMaxWait(5*time.Millisecond))
	_, err := j.Put(bg, "lone", []byte("v")) // waits at most the 5ms
	require.NoError(t, err)
}

// TestGroupCommitBatchOutcomes writes, in one batch, new keys, keys stored
// before and a key queued twice, and checks what each Put returns.
func TestGroupCommitBatchOutcomes(t *testing.T) {
	path := tempPath(t)
	j := openAt(t, path, sqlitejournal.WithBusyTimeout(time.Minute))
	other := openAt(t, path, sqlitejournal.WithGroupCommit(false))
	for i := range 3 {
		_, err := other.Put(bg, fmt.Sprint("old", i), []byte("before"))
		require.NoError(t, err)
	}
	require.NoError(t, other.Close())
	release, first := blockCommitter(t, j, path)

	type put struct{ key, value, want string }
	puts := []put{
		{"new0", "v0", "v0"},
		{"old0", "v1", "before"},
		{"twice", "first", "first"},
		{"new1", "v3", "v3"},
		{"old1", "", "before"},
		{"twice", "second", "first"},
		{"old2", "v6", "before"},
		{"empty", "", ""},
	}
	for i := range 40 { // more than one chunk
		k := fmt.Sprint("many", i)
		puts = append(puts, put{k, k, k})
	}
	got := make([][]byte, len(puts))
	errs := make([]error, len(puts))
	var wg sync.WaitGroup
	for i, p := range puts {
		wg.Go(func() { got[i], errs[i] = j.Put(bg, p.key, []byte(p.value)) })
		// Queue them in order: of the two Puts of "twice", the first wins.
		require.Eventually(t, func() bool { return sqlitejournal.Queued(j) == i+1 }, 10*time.Second, time.Millisecond)
	}
	release()
	require.NoError(t, <-first)
	wg.Wait()
	for i, p := range puts {
		require.NoError(t, errs[i], p.key)
		require.NotNil(t, got[i], p.key)
		require.Equal(t, p.want, string(got[i]), p.key)
		v, ok, err := j.Get(bg, p.key)
		require.NoError(t, err)
		require.True(t, ok, p.key)
		require.Equal(t, p.want, string(v), p.key)
	}
	got[2][0] = 'X' // each caller's slice is its own
	require.Equal(t, "first", string(got[5]))
	// Each key is an execution of its own (it holds no '/'), counted once,
	// though the batch inserted some keys of a chunk and not others.
	list, err := j.Executions(bg, "", 100)
	require.NoError(t, err)
	distinct := map[string]bool{"first": true}
	for _, p := range puts {
		distinct[p.key] = true
	}
	require.Len(t, list, len(distinct))
	for _, e := range list {
		require.Equal(t, int64(1), e.Entries, e.ID)
	}
	// The first Put, then the batch in one transaction.
	require.Equal(t, int64(1+1), sqlitejournal.Transactions(j))
}

func TestGroupCommitOneFailingPut(t *testing.T) {
	path := tempPath(t)
	j := openAt(t, path, sqlitejournal.WithBusyTimeout(time.Minute))

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	_, err = db.ExecContext(bg, `CREATE TRIGGER reject BEFORE INSERT ON durable_journal
		WHEN NEW.key = CAST('bad' AS BLOB) BEGIN SELECT RAISE(ABORT, 'rejected by trigger'); END`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	release, first := blockCommitter(t, j, path)
	wait := putAll(t, j, []string{"a", "b", "bad", "c", "d"})
	release()
	require.NoError(t, <-first)
	errs := wait()
	for _, k := range []string{"a", "b", "c", "d"} {
		require.NoError(t, errs[k], k)
		got, ok, err := j.Get(bg, k)
		require.NoError(t, err)
		require.True(t, ok, k)
		require.Equal(t, "value of "+k, string(got))
	}
	require.ErrorContains(t, errs["bad"], `sqlitejournal: put "bad"`)
	require.ErrorContains(t, errs["bad"], "rejected by trigger")
	_, ok, err := j.Get(bg, "bad")
	require.NoError(t, err)
	require.False(t, ok)
	// The first Put; then the batch, rolled back and committed without "bad".
	require.Equal(t, int64(2), sqlitejournal.Transactions(j))
}

func TestPutCancelledWhileQueued(t *testing.T) {
	path := tempPath(t)
	j := openAt(t, path, sqlitejournal.WithBusyTimeout(time.Minute))
	release, first := blockCommitter(t, j, path)

	ctx, cancel := context.WithCancel(bg)
	errc := make(chan error, 1)
	go func() {
		_, err := j.Put(ctx, "cancelled", []byte("v"))
		errc <- err
	}()
	require.Eventually(t, func() bool { return sqlitejournal.Queued(j) == 1 }, 10*time.Second, time.Millisecond)
	cancel()
	err := <-errc // while the lock is still held
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, `sqlitejournal: put "cancelled"`)

	release()
	require.NoError(t, <-first)
	// It may or may not have been stored, but never something else.
	if got, ok, err := j.Get(bg, "cancelled"); assert.NoError(t, err) && ok {
		require.Equal(t, "v", string(got))
	}
	stored, err := j.Put(bg, "after", []byte("after"))
	require.NoError(t, err)
	require.Equal(t, "after", string(stored))
}

func TestCloseCommitsQueuedPuts(t *testing.T) {
	path := tempPath(t)
	j, err := sqlitejournal.Open(path, sqlitejournal.WithBusyTimeout(time.Minute))
	require.NoError(t, err)
	release, first := blockCommitter(t, j, path)
	wait := putAll(t, j, []string{"q1", "q2", "q3"})

	closed := make(chan error, 1)
	go func() { closed <- j.Close() }()
	require.Eventually(t, func() bool { return sqlitejournal.Closed(j) }, 10*time.Second, time.Millisecond)
	_, err = j.Put(bg, "late", []byte("v"))
	require.ErrorIs(t, err, journal.ErrClosed)

	release()
	require.NoError(t, <-first)
	for k, err := range wait() {
		require.NoError(t, err, k)
	}
	require.NoError(t, <-closed)

	j = openAt(t, path)
	for _, k := range []string{"first", "q1", "q2", "q3"} {
		_, ok, err := j.Get(bg, k)
		require.NoError(t, err)
		require.True(t, ok, "%s was queued before Close and must be committed", k)
	}
}

func TestUseAfterClose(t *testing.T) {
	for _, group := range []bool{true, false} {
		t.Run(fmt.Sprintf("GroupCommit=%v", group), func(t *testing.T) {
			j, err := sqlitejournal.Open(tempPath(t), sqlitejournal.WithGroupCommit(group))
			require.NoError(t, err)
			_, err = j.Put(bg, "k", []byte("v"))
			require.NoError(t, err)
			require.NoError(t, j.Close())
			require.NoError(t, j.Close(), "a second Close is harmless")

			_, err = j.Put(bg, "k2", []byte("v"))
			require.ErrorIs(t, err, journal.ErrClosed)
			require.ErrorContains(t, err, `sqlitejournal: put "k2"`)
			_, _, err = j.Get(bg, "k")
			require.ErrorIs(t, err, journal.ErrClosed)
			err = j.Scan(bg, "", func(string, []byte) error { return nil })
			require.ErrorIs(t, err, journal.ErrClosed)
		})
	}
}

func TestScanCallsBack(t *testing.T) {
	j := openAt(t, tempPath(t))
	for i := range 5 {
		_, err := j.Put(bg, fmt.Sprint("s/", i), []byte("v"))
		require.NoError(t, err)
	}
	// fn may use the journal while Scan holds its connection.
	var n int
	err := j.Scan(bg, "s/", func(k string, _ []byte) error {
		n++
		if _, ok, err := j.Get(bg, k); err != nil || !ok {
			return errors.Join(err, fmt.Errorf("Get(%q) inside Scan found nothing", k))
		}
		_, err := j.Put(bg, "copy/"+k, []byte("v"))
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 5, n)
}

// A Scan whose context is done stops before the next entry; the connection it
// used serves the Scans after it.
func TestScanCancelled(t *testing.T) {
	j := openAt(t, tempPath(t))
	for i := range 10 {
		_, err := j.Put(bg, fmt.Sprint("c/", i), []byte("v"))
		require.NoError(t, err)
	}
	// Twice as many rounds as there are connections, so that each is used
	// again after a cancelled Scan.
	for range 2 * sqlitejournal.ScanConns(j) {
		ctx, cancel := context.WithCancel(bg)
		calls := 0
		err := j.Scan(ctx, "c/", func(string, []byte) error {
			calls++
			if calls == 3 {
				cancel()
			}
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, `sqlitejournal: scan "c/"`)
		require.Equal(t, 3, calls, "no entry is visited after the context is done")

		n := 0
		require.NoError(t, j.Scan(bg, "c/", func(string, []byte) error { n++; return nil }))
		require.Equal(t, 10, n)
	}
}

// Scans that hold every connection of Scan while the journal closes finish
// their entries; a Scan waiting for a connection gives up when its context is
// done, and a Scan after Close fails.
func TestScanDuringClose(t *testing.T) {
	j, err := sqlitejournal.Open(tempPath(t))
	require.NoError(t, err)
	for i := range 3 {
		_, err := j.Put(bg, fmt.Sprint("d/", i), []byte("v"))
		require.NoError(t, err)
	}
	conns := sqlitejournal.ScanConns(j)
	held := make(chan struct{})
	release := make(chan struct{})
	results := make(chan error, conns)
	for range conns {
		go func() {
			n := 0
			err := j.Scan(bg, "d/", func(string, []byte) error {
				if n++; n == 1 {
					held <- struct{}{}
					<-release
				}
				return nil
			})
			if err == nil && n != 3 {
				err = fmt.Errorf("visited %d entries, want 3", n)
			}
			results <- err
		}()
	}
	for range conns {
		<-held
	}

	ctx, cancel := context.WithCancel(bg)
	waiting := make(chan error, 1)
	go func() {
		waiting <- j.Scan(ctx, "d/", func(string, []byte) error { return errors.New("no connection was free") })
	}()
	cancel()
	require.ErrorIs(t, <-waiting, context.Canceled)

	require.NoError(t, j.Close())
	close(release)
	for range conns {
		require.NoError(t, <-results)
	}
	err = j.Scan(bg, "d/", func(string, []byte) error { return nil })
	require.ErrorIs(t, err, journal.ErrClosed)
}

// Close closes every connection, those of Scan too: SQLite removes the
// write-ahead log when the last connection to the file closes.
func TestCloseClosesScanConnections(t *testing.T) {
	path := tempPath(t)
	j, err := sqlitejournal.Open(path)
	require.NoError(t, err)
	_, err = j.Put(bg, "k", []byte("v"))
	require.NoError(t, err)
	require.NoError(t, j.Scan(bg, "", func(string, []byte) error { return nil }))
	_, err = os.Stat(path + "-wal")
	require.NoError(t, err, "the log exists while the journal is open")
	require.NoError(t, j.Close())
	_, err = os.Stat(path + "-wal")
	require.ErrorIs(t, err, os.ErrNotExist, "a connection is still open")
}

// fn may keep the keys Scan gives it, however many there are and however long.
func TestScanKeysKept(t *testing.T) {
	j := openAt(t, tempPath(t))
	var want []string
	for i := range 3000 {
		want = append(want, fmt.Sprintf("kept/%d/%s", i, strings.Repeat("x", i%40)))
	}
	want = append(want, "kept/long/"+strings.Repeat("y", 4096), "kept/longer/"+strings.Repeat("z", 10_000))
	for _, k := range want {
		_, err := j.Put(bg, k, []byte("v"))
		require.NoError(t, err)
	}
	sort.Strings(want)
	var got []string
	require.NoError(t, j.Scan(bg, "kept/", func(k string, _ []byte) error {
		got = append(got, k)
		return nil
	}))
	require.Equal(t, want, got)
}
