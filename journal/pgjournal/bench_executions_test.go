package pgjournal_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/journal/pgjournal"
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

// fill writes entries rows to each execution exec-0000 … of table with one
// statement, which counts them as a Put's INSERT does: it marks the rows
// counted and adds them to their executions' rows, one upsert per execution.
// Execution e's entries are created from benchBase + e seconds on, one a
// millisecond, so that the executions age in order. On a table made by the
// first release (migrated false), it inserts as that release did. It then
// analyzes the tables, as autovacuum would soon.
func fill(tb testing.TB, table string, from, to, entries int, migrated bool) {
	tb.Helper()
	rows := `SELECT convert_to(format('exec-%s/step-%s', lpad(e::text, 4, '0'), lpad(n::text, 6, '0')), 'UTF8') AS key,
		decode(md5(e || '/' || n) || md5(n || '/' || e) || md5(e || '.' || n) || md5(n || '.' || e), 'hex') AS value,
		$1::timestamptz + make_interval(secs => e) + n * interval '1 millisecond' AS created_at
	FROM generate_series($2::int, $3::int - 1) AS e, generate_series(0, $4::int - 1) AS n`
	if !migrated {
		exec(tb, `INSERT INTO `+quoted(table)+` (key, value, created_at) `+rows, benchBase, from, to, entries)
		exec(tb, `ANALYZE `+quoted(table))
		return
	}
	exec(tb, `WITH inserted AS (
	INSERT INTO `+quoted(table)+` (key, value, created_at, counted)
	SELECT key, value, created_at, true FROM (`+rows+`) AS r
	ON CONFLICT (key) DO NOTHING
	RETURNING key, created_at
)
INSERT INTO `+quoted(table+"_executions")+` AS e (id, first_at, last_at, entries)
SELECT substring(key FROM 1 FOR position('/'::bytea IN key) - 1) AS id, min(created_at), max(created_at), count(*)
FROM inserted GROUP BY 1 ORDER BY 1
ON CONFLICT (id) DO UPDATE SET
	first_at = least(e.first_at, excluded.first_at),
	last_at = greatest(e.last_at, excluded.last_at),
	entries = e.entries + excluded.entries`, benchBase, from, to, entries)
	exec(tb, `ANALYZE `+quoted(table))
	exec(tb, `ANALYZE `+quoted(table+"_executions"))
}

// writer Puts to an execution of its own until stopped, and reports the
// longest a Put took: how long deleting kept a running execution waiting.
func writer(j *pgjournal.Journal) (stop func() (longest time.Duration, puts int)) {
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
	ctx := context.Background()
	execs, entries, _ := benchScale()
	table := newTable(b)
	j := openJournal(b, table)
	fill(b, table, 0, execs, entries, true)
	b.ReportAllocs()
	for b.Loop() {
		n, after := 0, ""
		for {
			page, err := j.Executions(ctx, after, 100)
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
// journal, one batch (a statement and transaction) at a time, while another
// execution keeps writing. ms/delete is the whole deletion, batch-max-ms the
// longest transaction, put-max-ms the longest the writer waited for a Put.
func BenchmarkDeleteExecution(b *testing.B) {
	ctx := context.Background()
	execs, entries, big := benchScale()
	table := newTable(b)
	j := openJournal(b, table)
	fill(b, table, 0, execs, entries, true)
	var (
		total, putMax time.Duration
		batches       []time.Duration
	)
	for b.Loop() {
		b.StopTimer()
		fill(b, table, execs, execs+1, big, true)
		id := fmt.Sprintf("exec-%04d", execs)
		b.StartTimer()
		stop := writer(j)
		start := time.Now()
		var deleted int64
		for solo := true; ; solo = false {
			t := time.Now()
			n, done, err := pgjournal.DeleteBatch(ctx, j, id, solo)
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
	ctx := context.Background()
	execs, entries, _ := benchScale()
	table := newTable(b)
	j := openJournal(b, table)
	fill(b, table, 0, execs, entries, true)
	cut := benchBase.Add(time.Duration(execs/2) * time.Second)
	var (
		total, putMax time.Duration
		batches       []time.Duration
	)
	for i := 0; b.Loop(); i++ {
		if i > 0 {
			b.StopTimer()
			fill(b, table, 0, execs/2, entries, true)
			b.StartTimer()
		}
		stop := writer(j)
		start := time.Now()
		deleted := 0
		for more := true; more; {
			t := time.Now()
			n, m, err := pgjournal.DeleteOlderBatch(ctx, j, cut)
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

// BenchmarkMigrate migrates a table made and filled by the first release:
// ms/migrate is mostly the filling of the executions from the entries.
func BenchmarkMigrate(b *testing.B) {
	ctx := context.Background()
	execs, entries, _ := benchScale()
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		table := newTable(b)
		exec(b, fmt.Sprintf(createV1, quoted(table)))
		fill(b, table, 0, execs, entries, false)
		j := openUnmigrated(b, table)
		b.StartTimer()
		start := time.Now()
		require.NoError(b, j.Migrate(ctx))
		total += time.Since(start)
		b.StopTimer()
		list, err := j.Executions(ctx, "", execs+1)
		require.NoError(b, err)
		require.Len(b, list, execs)
		b.StartTimer()
	}
	b.ReportMetric(ms(total)/float64(b.N), "ms/migrate")
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
