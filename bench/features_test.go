package bench

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// BenchmarkRetryPolicy measures what a retry policy that never fires costs a
// branch: a FanOut of 1,000 no-op branches, with a journal in memory and
// without one, each with and without WithRetry, alternated in one loop.
// ratio-retry is with-policy ns/branch over without-policy ns/branch.
func BenchmarkRetryPolicy(b *testing.B) {
	const n = 1000
	in := items(n)
	fn := func(_ context.Context, i int) (uint64, error) { return noWork(i), nil }
	retry := durable.WithRetry(durable.RetryPolicy{MaxAttempts: 3, Backoff: time.Millisecond})
	for _, journaled := range []bool{false, true} {
		b.Run(fmt.Sprintf("journal=%v", journaled), func(b *testing.B) {
			exec := 0
			call := func(opts ...durable.Option) func() {
				return func() {
					ctx := bg
					if journaled {
						exec++
						ctx = durable.WithJournal(bg, journal.NewMemory(), "exec-"+strconv.Itoa(exec))
					}
					res, err := durable.FanOut(ctx, "bench", in, fn, opts...)
					if err != nil {
						b.Fatal(err)
					}
					sink = res
				}
			}
			var r rotation
			r.add("plain", call())
			r.add("retry", call(retry))
			r.loop(b)
			b.ReportMetric(r.per("plain", n), "plain-ns/branch")
			b.ReportMetric(r.per("retry", n), "retry-ns/branch")
			b.ReportMetric(r.per("retry", n)/r.per("plain", n), "ratio-retry")
		})
	}
}
