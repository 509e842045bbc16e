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

// nopObserver receives every event and does nothing.
type nopObserver struct{}

func (nopObserver) Observe(ctx context.Context, _ durable.Event) context.Context { return ctx }

// BenchmarkObserver measures what an Observer that does nothing costs a
// branch: a FanOut of 1,000 no-op branches with and without one, with a
// journal in memory and without one, alternated in one loop.
func BenchmarkObserver(b *testing.B) {
	const n = 1000
	in := items(n)
	fn := func(_ context.Context, i int) (uint64, error) { return noWork(i), nil }
	for _, journaled := range []bool{false, true} {
		b.Run(fmt.Sprintf("journal=%v", journaled), func(b *testing.B) {
			exec := 0
			call := func(obs durable.Observer) func() {
				return func() {
					ctx := bg
					if journaled {
						exec++
						ctx = durable.WithJournal(bg, journal.NewMemory(), "exec-"+strconv.Itoa(exec))
					}
					if obs != nil {
						ctx = durable.WithObserver(ctx, obs)
					}
					res, err := durable.FanOut(ctx, "bench", in, fn)
					if err != nil {
						b.Fatal(err)
					}
					sink = res
				}
			}
			var r rotation
			r.add("none", call(nil))
			r.add("nop", call(nopObserver{}))
			r.loop(b)
			b.ReportMetric(r.per("none", n), "none-ns/branch")
			b.ReportMetric(r.per("nop", n), "nop-ns/branch")
			b.ReportMetric(r.per("nop", n)/r.per("none", n), "ratio-nop")
		})
	}
}
