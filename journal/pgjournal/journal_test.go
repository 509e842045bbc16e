package pgjournal_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/journal"
	"github.com/durable-go/durable/journal/journaltest"
	"github.com/durable-go/durable/journal/pgjournal"
)

func TestConformance(t *testing.T) {
	for _, m := range append(modes[:len(modes):len(modes)],
		struct {
			name string
			opts []pgjournal.Option
		}{"DeleteBatchesOfThree", []pgjournal.Option{pgjournal.WithDeleteBatch(3)}},
		struct {
			name string
			opts []pgjournal.Option
		}{"DeleteBatchesOfOne", []pgjournal.Option{pgjournal.WithDeleteBatch(1)}},
	) {
		t.Run(m.name, func(t *testing.T) {
			table := newTable(t)
			journaltest.Run(t, func() journal.Journal { return openJournal(t, table, m.opts...) })
		})
	}
}

func TestOptionsAreValidated(t *testing.T) {
	// A pool connects lazily, so these need no server.
	pool, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none")
	require.NoError(t, err)
	defer pool.Close()
	bad := map[string]pgjournal.Option{
		"empty table":       pgjournal.WithTable(""),
		"empty schema":      pgjournal.WithTable(".t"),
		"empty table part":  pgjournal.WithTable("s."),
		"three parts":       pgjournal.WithTable("db.s.t"),
		"long name":         pgjournal.WithTable(strings.Repeat("x", 64)),
		"NUL in name":       pgjournal.WithTable("a\x00b"),
		"invalid UTF-8":     pgjournal.WithTable("\xff"),
		"batch of zero":     pgjournal.WithMaxBatch(0),
		"negative max wait": pgjournal.WithMaxWait(-time.Millisecond),
		"delete batch of 0": pgjournal.WithDeleteBatch(0),
	}
	for name, opt := range bad {
		j, err := pgjournal.New(context.Background(), pool, opt)
		require.Error(t, err, name)
		require.Nil(t, j, name)
	}
	_, err = pgjournal.New(context.Background(), nil)
	require.Error(t, err)

	j, err := pgjournal.New(context.Background(), pool,
		pgjournal.WithTable(strings.Repeat("x", 63)), pgjournal.WithMaxWait(0), pgjournal.WithMaxBatch(1))
	require.NoError(t, err)
	require.NoError(t, j.Close())
}

func TestOpenFailsFast(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := pgjournal.Open(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=5")
	require.Error(t, err)
	_, err = pgjournal.Open(ctx, "::not a url::")
	require.Error(t, err)
}

func TestSuccessor(t *testing.T) {
	for _, tc := range []struct {
		prefix, want string
		bounded      bool
	}{
		{"", "", false},
		{"\xff", "", false},
		{"\xff\xff", "", false},
		{"a", "b", true},
		{"a/", "a0", true},
		{"a\xff", "b", true},
		{"a\xff\xff", "b", true},
		{"a\x00", "a\x01", true},
		{"\xfe\xff", "\xff", true},
	} {
		got, ok := pgjournal.Successor([]byte(tc.prefix))
		require.Equal(t, tc.bounded, ok, "%q", tc.prefix)
		require.Equal(t, tc.want, string(got), "%q", tc.prefix)
	}
	// The prefix itself is left alone.
	p := []byte("ab")
	pgjournal.Successor(p)
	require.Equal(t, "ab", string(p))
}

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	j := openJournal(t, table)
	require.NoError(t, j.Migrate(ctx))
	_, err := j.Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	require.NoError(t, j.Migrate(ctx))
	got, ok, err := j.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "v", string(got))

	// Several processes starting at once all migrate the same new table.
	table = newTable(t)
	var wg sync.WaitGroup
	for range 6 {
		j := openUnmigrated(t, table)
		wg.Go(func() { assert.NoError(t, j.Migrate(ctx)) })
	}
	wg.Wait()
}

func TestMissingTable(t *testing.T) {
	ctx := context.Background()
	j := openUnmigrated(t, newTable(t))
	_, err := j.Put(ctx, "the-key", []byte("v"))
	require.ErrorContains(t, err, "Migrate")
	require.ErrorContains(t, err, "the-key")
	_, _, err = j.Get(ctx, "the-key")
	require.ErrorContains(t, err, "Migrate")

	j = openUnmigrated(t, "pgjournal_no_such_schema.durable_journal")
	require.ErrorContains(t, j.Migrate(ctx), "schema")
}

func TestUnusualTableName(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	name := `Odd "Name"; DROP TABLE x; --`
	j := openJournal(t, schema+"."+name)
	_, err := j.Put(ctx, "k", []byte("v"))
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, databaseURL(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx,
		`SELECT count(*) FROM `+pgx.Identifier{schema, name}.Sanitize()).Scan(&n))
	require.Equal(t, 1, n)
}

func TestNilValueIsStoredEmpty(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			j := openJournal(t, newTable(t), m.opts...)
			got, err := j.Put(ctx, "nil", nil)
			require.NoError(t, err)
			require.Empty(t, got)
			got, ok, err := j.Get(ctx, "nil")
			require.NoError(t, err)
			require.True(t, ok)
			require.Empty(t, got)
		})
	}
}

// Two Journals with pools of their own behave as two processes would.
func TestTwoProcessesShareTable(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			table := newTable(t)
			a := openJournal(t, table, m.opts...)
			b := openJournal(t, table, m.opts...)

			_, err := a.Put(ctx, "from-a", []byte("1"))
			require.NoError(t, err)
			got, ok, err := b.Get(ctx, "from-a")
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, "1", string(got))
			got, err = b.Put(ctx, "from-a", []byte("2"))
			require.NoError(t, err)
			require.Equal(t, "1", string(got), "the first write must win")

			const keys, writers = 20, 8
			results := make([][]string, keys)
			var wg sync.WaitGroup
			for k := range keys {
				results[k] = make([]string, 2*writers)
				for w := range 2 * writers {
					j := a
					if w%2 == 1 {
						j = b
					}
					wg.Go(func() {
						key := fmt.Sprintf("race/%d", k)
						v, err := j.Put(ctx, key, fmt.Appendf(nil, "writer-%d", w))
						assert.NoError(t, err)
						results[k][w] = string(v)
					})
				}
			}
			wg.Wait()
			for k := range keys {
				key := fmt.Sprintf("race/%d", k)
				winner := results[k][0]
				require.True(t, strings.HasPrefix(winner, "writer-"), "%s: %q", key, winner)
				for w, v := range results[k] {
					require.Equal(t, winner, v, "%s: writer %d saw another value than writer 0", key, w)
				}
				for _, j := range []*pgjournal.Journal{a, b} {
					got, ok, err := j.Get(ctx, key)
					require.NoError(t, err)
					require.True(t, ok)
					require.Equal(t, winner, string(got))
				}
			}
		})
	}
}

func TestGroupCommitBatches(t *testing.T) {
	const puts = 1000
	ctx := context.Background()
	j := openJournal(t, newTable(t))
	before := pgjournal.Transactions(j)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range puts {
		wg.Go(func() {
			<-start
			key := fmt.Sprintf("k/%04d", i)
			v, err := j.Put(ctx, key, []byte(key))
			assert.NoError(t, err)
			assert.Equal(t, key, string(v))
		})
	}
	close(start)
	wg.Wait()
	txns := pgjournal.Transactions(j) - before
	t.Logf("%d concurrent Puts committed in %d transactions", puts, txns)
	require.Positive(t, txns)
	require.Less(t, txns, int64(puts), "group commit must batch concurrent Puts")
	// At most 256 Puts per batch.
	require.GreaterOrEqual(t, txns, int64(puts/256))

	n := 0
	require.NoError(t, j.Scan(ctx, "k/", func(k string, v []byte) error {
		n++
		require.Equal(t, k, string(v))
		return nil
	}))
	require.Equal(t, puts, n)
}

func TestTransactionPerPut(t *testing.T) {
	const puts = 100
	ctx := context.Background()
	j := openJournal(t, newTable(t), pgjournal.WithGroupCommit(false))
	var wg sync.WaitGroup
	for i := range puts {
		wg.Go(func() {
			_, err := j.Put(ctx, fmt.Sprint(i), []byte("v"))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, int64(puts), pgjournal.Transactions(j))
}

func TestBatchesOfLargeValues(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, newTable(t))
	const n = 8
	values := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		values[i] = bytes.Repeat([]byte{byte(i)}, 5<<20)
		wg.Go(func() {
			got, err := j.Put(ctx, fmt.Sprint(i), values[i])
			assert.NoError(t, err)
			assert.True(t, bytes.Equal(values[i], got))
		})
	}
	wg.Wait()
	for i := range n {
		got, ok, err := j.Get(ctx, fmt.Sprint(i))
		require.NoError(t, err)
		require.True(t, ok)
		require.True(t, bytes.Equal(values[i], got))
	}
}

// A key the server refuses fails its own Put only, not the batch it was in.
func TestRejectedPutFailsAlone(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			j := openJournal(t, newTable(t), m.opts...)
			long := make([]byte, 16<<10) // random, so it does not compress into the index
			_, _ = rand.Read(long)
			const n = 50
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					key := fmt.Sprint(i)
					if i == n/2 {
						key = string(long)
					}
					_, errs[i] = j.Put(ctx, key, []byte("v"))
				})
			}
			wg.Wait()
			for i, err := range errs {
				if i == n/2 {
					require.ErrorContains(t, err, "too large")
					continue
				}
				require.NoError(t, err, "Put %d", i)
			}
		})
	}
}

func TestScanAcrossBatches(t *testing.T) {
	ctx := context.Background()
	j := openJournal(t, newTable(t), pgjournal.WithMaxBatch(7))
	want := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			key := fmt.Sprintf("scan/%03d", i)
			_, err := j.Put(ctx, key, []byte(fmt.Sprint(i)))
			assert.NoError(t, err)
			mu.Lock()
			want[key] = fmt.Sprint(i)
			mu.Unlock()
		})
	}
	edges := []string{"\xff", "\xff\xff", "\xff\x00", "a\xff", "a\xff\x00", "a\xff\xff", "b", "scan", "scan0", "scan.", "\x00"}
	for _, k := range edges {
		wg.Go(func() {
			_, err := j.Put(ctx, k, []byte("edge"))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	require.Greater(t, pgjournal.Transactions(j), int64(300/7))

	scan := func(prefix string) []string {
		var keys []string
		require.NoError(t, j.Scan(ctx, prefix, func(k string, v []byte) error {
			keys = append(keys, k)
			if want, ok := want[k]; ok {
				require.Equal(t, want, string(v))
			}
			return nil
		}))
		return keys
	}
	got := scan("scan/")
	require.Len(t, got, 300)
	for i, k := range got {
		require.Equal(t, fmt.Sprintf("scan/%03d", i), k, "Scan returns keys in byte order")
	}
	require.Equal(t, []string{"\xff", "\xff\x00", "\xff\xff"}, scan("\xff"))
	require.Equal(t, []string{"\xff\xff"}, scan("\xff\xff"))
	require.Equal(t, []string{"a\xff", "a\xff\x00", "a\xff\xff"}, scan("a\xff"))
	require.Equal(t, []string{"\x00"}, scan("\x00"))
	require.Len(t, scan(""), 300+len(edges))
}

func TestClose(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			j := openJournal(t, newTable(t), m.opts...)
			_, err := j.Put(ctx, "k", []byte("v"))
			require.NoError(t, err)
			require.NoError(t, j.Close())
			require.NoError(t, j.Close(), "Close is idempotent")

			_, err = j.Put(ctx, "k2", []byte("v"))
			require.ErrorIs(t, err, journal.ErrClosed)
			require.ErrorContains(t, err, "k2")
			_, _, err = j.Get(ctx, "k")
			require.ErrorIs(t, err, journal.ErrClosed)
			err = j.Scan(ctx, "", func(string, []byte) error { return nil })
			require.ErrorIs(t, err, journal.ErrClosed)
			require.ErrorIs(t, j.Migrate(ctx), journal.ErrClosed)
		})
	}
}

// New leaves the pool it was given open, and a Journal used after its owner
// closed that pool reports ErrClosed.
func TestNewLeavesPoolOpen(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	pool, err := pgxpool.New(ctx, databaseURL(t))
	require.NoError(t, err)
	defer pool.Close()
	j, err := pgjournal.New(ctx, pool, pgjournal.WithTable(table))
	require.NoError(t, err)
	require.NoError(t, j.Migrate(ctx))
	_, err = j.Put(ctx, "k", []byte("v"))
	require.NoError(t, err)
	require.NoError(t, j.Close())
	require.NoError(t, pool.Ping(ctx))

	j, err = pgjournal.New(ctx, pool, pgjournal.WithTable(table), pgjournal.WithGroupCommit(false))
	require.NoError(t, err)
	defer j.Close()
	pool.Close()
	_, err = j.Put(ctx, "k2", []byte("v"))
	require.ErrorIs(t, err, journal.ErrClosed)
}

// holdKey inserts key into table in a transaction it leaves open, so that a Put
// of key waits for it. The returned function ends the transaction.
func holdKey(t *testing.T, table, key string) (release func(commit bool)) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL(t))
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	schema, name, _ := strings.Cut(table, ".")
	_, err = tx.Exec(ctx, `INSERT INTO `+pgx.Identifier{schema, name}.Sanitize()+` (key, value) VALUES ($1, $2)`,
		[]byte(key), []byte("holder"))
	require.NoError(t, err)
	var once sync.Once
	release = func(commit bool) {
		once.Do(func() {
			if commit {
				require.NoError(t, tx.Commit(ctx))
			} else {
				require.NoError(t, tx.Rollback(ctx))
			}
			require.NoError(t, conn.Close(ctx))
		})
	}
	t.Cleanup(func() { release(false) })
	return release
}

// waitForLockWait waits until a statement on table waits for a lock.
func waitForLockWait(t *testing.T, table string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, databaseURL(t))
	require.NoError(t, err)
	defer conn.Close(ctx)
	schema, _, _ := strings.Cut(table, ".")
	require.Eventually(t, func() bool {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND strpos(query, $1) > 0`, schema).Scan(&n)
		return err == nil && n > 0
	}, 10*time.Second, 5*time.Millisecond)
}

type putResult struct {
	v   []byte
	err error
}

func putAsync(ctx context.Context, j *pgjournal.Journal, key, value string) <-chan putResult {
	ch := make(chan putResult, 1)
	go func() {
		v, err := j.Put(ctx, key, []byte(value))
		ch <- putResult{v, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan putResult) putResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Put did not return")
		return putResult{}
	}
}

func TestPutCancelledWhileQueued(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	j := openJournal(t, table)
	release := holdKey(t, table, "held")

	inFlight := putAsync(ctx, j, "held", "mine") // the committer waits in this batch
	waitForLockWait(t, table)
	qctx, cancel := context.WithCancel(ctx)
	queued := putAsync(qctx, j, "queued", "v")
	cancel()
	r := await(t, queued)
	require.ErrorIs(t, r.err, context.Canceled)
	require.ErrorContains(t, r.err, "queued")

	release(false)
	r = await(t, inFlight)
	require.NoError(t, r.err)
	require.Equal(t, "mine", string(r.v))
	_, ok, err := j.Get(ctx, "queued")
	require.NoError(t, err)
	require.False(t, ok, "a Put cancelled before its batch started must not be written")
}

func TestPutCancelledInFlight(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			table := newTable(t)
			j := openJournal(t, table, m.opts...)
			release := holdKey(t, table, "held")

			cctx, cancel := context.WithCancel(ctx)
			inFlight := putAsync(cctx, j, "held", "mine")
			waitForLockWait(t, table)
			cancel()
			r := await(t, inFlight)
			require.ErrorIs(t, r.err, context.Canceled)

			// Nobody waits for that batch any more, so it was abandoned and
			// the journal writes on while the key is still held.
			r = await(t, putAsync(ctx, j, "other", "v"))
			require.NoError(t, r.err)

			release(true)
			got, ok, err := j.Get(ctx, "held")
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, "holder", string(got))
		})
	}
}

// Close lets the batch under way finish, and fails the Puts waiting for the
// next one.
func TestCloseWhilePutsWait(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	j := openJournal(t, table)
	release := holdKey(t, table, "held")

	inFlight := putAsync(ctx, j, "held", "mine")
	waitForLockWait(t, table)
	var queued []<-chan putResult
	for i := range 5 {
		queued = append(queued, putAsync(ctx, j, fmt.Sprint(i), "v"))
	}
	closed := make(chan struct{})
	go func() {
		assert.NoError(t, j.Close())
		close(closed)
	}()
	for _, ch := range queued {
		require.ErrorIs(t, await(t, ch).err, journal.ErrClosed)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a batch was still being committed")
	case <-time.After(50 * time.Millisecond):
	}

	release(false)
	r := await(t, inFlight)
	require.NoError(t, r.err)
	require.Equal(t, "mine", string(r.v))
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	j := openJournal(t, newTable(t))
	_, err := j.Put(ctx, "some/key", []byte("v"))
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, `"some/key"`)
	_, _, err = j.Get(ctx, "other/key")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, `"other/key"`)
	require.False(t, errors.Is(err, journal.ErrClosed))
}

// A pool that uses the simple protocol receives bytea as text, which Scan
// decodes; it visits the same entries as one that receives them in binary.
func TestScanSimpleProtocol(t *testing.T) {
	ctx := context.Background()
	table := newTable(t)
	j := openJournal(t, table)
	want := map[string]string{"s/": "", "s/\x00": "\x00\xff", "s/a": "a", "s/\xff\xff": "\\x41"}
	for k, v := range want {
		_, err := j.Put(ctx, k, []byte(v))
		require.NoError(t, err)
	}
	url := databaseURL(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	simple, err := pgjournal.Open(ctx, url+sep+"default_query_exec_mode=simple_protocol", pgjournal.WithTable(table))
	require.NoError(t, err)
	defer simple.Close()
	for _, s := range []*pgjournal.Journal{j, simple} {
		got := map[string]string{}
		var order []string
		require.NoError(t, s.Scan(ctx, "s/", func(k string, v []byte) error {
			got[k] = string(v)
			order = append(order, k)
			return nil
		}))
		require.Equal(t, want, got)
		require.True(t, slices.IsSorted(order), "keys in byte order: %q", order)
	}
}
