package bench

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// BenchmarkReplay measures how fast a resumed run restores finished branches.
// It first runs a FanOut of 100,000 branches at cap 256 to completion, once,
// outside the timed loop; each iteration then runs the same FanOut with a
// fresh context on the same execution ID, which restores every branch from
// the journal and runs none. branches/s counts restored branches. The memory
// journal has no prefix scan, so it restores with one Get per branch; SQLite
// and PostgreSQL restore with one Scan. The first run writes through the
// engine and the journal's group commit.
func BenchmarkReplay(b *testing.B) {
	const n = 100_000
	in := items(n)
	for _, be := range append([]backend{{name: "memory"}}, backends...) {
		b.Run("backend="+be.name, func(b *testing.B) {
			var j journal.Journal
			if be.open == nil {
				j = journal.NewMemory()
			} else {
				j = be.open(b, "replay_journal", true)
			}
			var ran atomic.Int64
			fn := func(ctx context.Context, i int) (outcome, error) {
				ran.Add(1)
				return produce(ctx, i)
			}
			run := func() {
				ctx := durable.WithJournal(bg, j, "replay")
				res, err := durable.FanOut(ctx, "replay", in, fn, durable.WithMaxConcurrency(256))
				if err != nil {
					b.Fatal(err)
				}
				if len(res) != n || res[n-1].Item != n-1 {
					b.Fatalf("replay returned %d results", len(res))
				}
				sink = res
			}
			run()
			if got := ran.Swap(0); got != n {
				b.Fatalf("the first run ran %d branches, want %d", got, n)
			}
			b.ReportAllocs()
			iters := 0
			for b.Loop() {
				run()
				iters++
			}
			if got := ran.Load(); got != 0 {
				b.Fatalf("replays ran %d branches, want none", got)
			}
			b.ReportMetric(float64(iters)*n/b.Elapsed().Seconds(), "branches/s")
		})
	}
}
