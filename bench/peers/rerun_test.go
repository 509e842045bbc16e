package peers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/durable-go/durable"
)

// BenchmarkRerun is TestPeers' rerun of a completed execution on durable,
// without a new process for each: the workload (a FanOut of 10,000 steps
// returning a Result, at most 64 at once) runs to completion once, outside
// the timed loop, and each iteration makes the same call on the same
// execution ID, which restores every branch from the journal and runs none.
// It is there for its CPU profile: where the time of a rerun goes.
func BenchmarkRerun(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	for _, store := range []string{"sqlite", "postgres"} {
		b.Run("store="+store, func(b *testing.B) {
			c := childConfig{n: n, cap: 64, id: "rerun", path: filepath.Join(b.TempDir(), "journal.db"), app: "peers-bench"}
			open := openSQLiteJournal
			if store == "postgres" {
				c.url = os.Getenv("TEST_DATABASE_URL")
				if c.url == "" {
					if os.Getenv("CI") == "true" {
						b.Fatal("TEST_DATABASE_URL is not set, and CI=true forbids skipping PostgreSQL")
					}
					b.Skip(`TEST_DATABASE_URL is not set; eval "$(PG_FSYNC=on scripts/pg.sh start /tmp/peers-pg)" starts a server and sets it`)
				}
				c.schema = fmt.Sprintf("peers_bench_%016x", rand.Uint64())
				schema := pgx.Identifier{c.schema}.Sanitize()
				pgExec(b, c.url, "CREATE SCHEMA "+schema)
				b.Cleanup(func() { pgExec(b, c.url, "DROP SCHEMA "+schema+" CASCADE") })
				open = openPGJournal
			}
			j, err := open(ctx, c)
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			items := make([]int, n)
			for i := range items {
				items[i] = i
			}
			run := func() {
				// A new context each time, as in a new process: in one context,
				// a second FanOut named "steps" would be steps#2.
				res, err := durable.FanOut(durable.WithJournal(ctx, j, c.id), "steps", items,
					func(_ context.Context, i int) (Result, error) { return runStep(i) },
					durable.WithMaxConcurrency(c.cap))
				if err != nil {
					b.Fatal(err)
				}
				if err := check(res, n); err != nil {
					b.Fatal(err)
				}
			}
			run()
			before := stepsRun.Load()
			b.ReportAllocs()
			for b.Loop() {
				run()
			}
			if ran := stepsRun.Load() - before; ran != 0 {
				b.Fatalf("reruns ran %d steps", ran)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/branch")
		})
	}
}
