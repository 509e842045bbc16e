package sqlitejournal_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/journal/sqlitejournal"
)

// The benchmarks of listing and deleting executions run on a journal of
// executions × entries rows: 1,000 × 1,000 (a million entries, and a deleted
// execution of 100,000) when DURABLE_BENCH_FULL=1 is set, and 20 × 500 (and
// 5,000) otherwise, so that CI runs them quickly.
func benchScale() (executions, entries, big int) {
	if os.Getenv("DURABLE_BENCH_FULL") == "1" {
		return 1000, 1000, 100_000
	}
	return 20, 500, 5000
}

// benchBase is the created_at of the first entry of the filled journals.
var benchBase = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fill writes entries rows to each execution exec-0000 … with a plain
// connection, in one transaction, the way Puts would have: execution e's
// entries are created from benchBase + e seconds on, one a millisecond, so
// that the executions age in order. The triggers count them, as they count
// every Put.
func fill(b *testing.B, path string, from, to, entries int) {
	b.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(b, err)
	defer db.Close()
	tx, err := db.Begin()
	require.NoError(b, err)
	for e := from; e < to; e++ {
		_, err := tx.Exec(`WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < ?1)
			INSERT INTO durable_journal (key, value, created_at)
			SELECT CAST(printf('exec-%04d/step-%06d', ?2, n) AS BLOB), randomblob(64), ?3 + n FROM i`,
			entries, e, benchBase.Add(time.Duration(e)*time.Second).UnixMilli())
		require.NoError(b, err)
	}
	require.NoError(b, tx.Commit())
}

// writer Puts to an execution of its own until stopped, and reports the
// longest a Put took: how long deleting kept a running execution waiting.
func writer(j interface {
	Put(context.Context, string, []byte) ([]byte, error)
}) (stop func() (longest time.Duration, puts int)) {
	done := make(chan struct{})
	var (
		wg      sync.WaitGroup
		longest time.Duration
		puts    int
	)
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			start := time.Now()
			if _, err := j.Put(context.Background(), "running/"+strconv.Itoa(puts), []byte("v")); err != nil {
				panic(err)
			}
			longest = max(longest, time.Since(start))
			puts++
		}
	})
	return func() (time.Duration, int) {
		close(done)
		wg.Wait()
		return longest, puts
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkExecutions lists every execution, a page of 100 at a time.
func BenchmarkExecutions(b *testing.B) {
	execs, entries, _ := benchScale()
	path := tempPath(b)
	j := openAt(b, path)
	fill(b, path, 0, execs, entries)
	b.ReportAllocs()
	for b.Loop() {
		n, after := 0, ""
		for {
			page, err := j.Executions(bg, after, 100)
			require.NoError(b, err)
			n += len(page)
			if len(page) < 100 {
				break
			}
			after = page[len(page)-1].ID
		}
		require.Equal(b, execs, n)
	}
	b.ReportMetric(float64(execs), "executions")
	b.ReportMetric(float64(execs*entries), "entries")
}

// BenchmarkDeleteExecution deletes one large execution from the filled
// journal, one batch (a transaction) at a time, while another execution keeps
// writing. ms/delete is the whole deletion, batch-max-ms the longest
// transaction, put-max-ms the longest the writer waited for a Put.
func BenchmarkDeleteExecution(b *testing.B) {
	execs, entries, big := benchScale()
	path := tempPath(b)
	j := openAt(b, path)
	fill(b, path, 0, execs, entries)
	var (
		total, putMax time.Duration
		batches       []time.Duration
	)
	for b.Loop() {
		b.StopTimer()
		fill(b, path, execs, execs+1, big)
		id := fmt.Sprintf("exec-%04d", execs)
		b.StartTimer()
		stop := writer(j)
		start := time.Now()
		var deleted int64
		for solo := true; ; solo = false {
			t := time.Now()
			n, done, err := sqlitejournal.DeleteBatch(bg, j, id, solo)
			require.NoError(b, err)
			batches = append(batches, time.Since(t))
			deleted += n
			if done {
				break
			}
		}
		total += time.Since(start)
		wait, _ := stop()
		putMax = max(putMax, wait)
		require.Equal(b, int64(big), deleted)
	}
	reportDeletes(b, total, batches, putMax)
}

// BenchmarkDeleteOlder deletes the older half of the filled journal's
// executions, one batch (a transaction) at a time, while another execution
// keeps writing; the metrics are those of BenchmarkDeleteExecution.
func BenchmarkDeleteOlder(b *testing.B) {
	execs, entries, _ := benchScale()
	path := tempPath(b)
	j := openAt(b, path)
	fill(b, path, 0, execs, entries)
	cut := benchBase.Add(time.Duration(execs/2) * time.Second)
	var (
		total, putMax time.Duration
		batches       []time.Duration
	)
	for i := 0; b.Loop(); i++ {
		if i > 0 {
			b.StopTimer()
			fill(b, path, 0, execs/2, entries)
			b.StartTimer()
		}
		stop := writer(j)
		start := time.Now()
		deleted := 0
		for more := true; more; {
			t := time.Now()
			n, m, err := sqlitejournal.DeleteOlderBatch(bg, j, cut)
			require.NoError(b, err)
			batches = append(batches, time.Since(t))
			deleted += n
			more = m
		}
		total += time.Since(start)
		wait, _ := stop()
		putMax = max(putMax, wait)
		require.Equal(b, execs/2, deleted)
	}
	reportDeletes(b, total, batches, putMax)
}

// BenchmarkMigrate opens a file written by the first release, which Open
// migrates to the current schema: ms/open is mostly the filling of
// durable_executions from the entries.
func BenchmarkMigrate(b *testing.B) {
	execs, entries, _ := benchScale()
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		path := tempPath(b)
		db, err := sql.Open("sqlite", path)
		require.NoError(b, err)
		_, err = db.Exec(`PRAGMA journal_mode = WAL; CREATE TABLE durable_journal (
	key        BLOB    NOT NULL PRIMARY KEY,
	value      BLOB    NOT NULL,
	created_at INTEGER NOT NULL
) WITHOUT ROWID`)
		require.NoError(b, err)
		require.NoError(b, db.Close())
		fill(b, path, 0, execs, entries)
		b.StartTimer()
		start := time.Now()
		j, err := sqlitejournal.Open(path)
		require.NoError(b, err)
		total += time.Since(start)
		b.StopTimer()
		list, err := j.Executions(bg, "", execs+1)
		require.NoError(b, err)
		require.Len(b, list, execs)
		require.NoError(b, j.Close())
		b.StartTimer()
	}
	b.ReportMetric(ms(total)/float64(b.N), "ms/open")
	b.ReportMetric(float64(execs*entries), "entries")
}

// reportDeletes reports a delete benchmark's metrics: the mean time of a
// delete, its batches (count, median, longest) and the longest Put another
// execution waited meanwhile.
func reportDeletes(b *testing.B, total time.Duration, batches []time.Duration, putMax time.Duration) {
	b.ReportMetric(ms(total)/float64(b.N), "ms/delete")
	slices.Sort(batches)
	b.ReportMetric(float64(len(batches))/float64(b.N), "batches/delete")
	b.ReportMetric(ms(batches[len(batches)/2]), "batch-p50-ms")
	b.ReportMetric(ms(batches[len(batches)-1]), "batch-max-ms")
	b.ReportMetric(ms(putMax), "put-max-ms")
}
