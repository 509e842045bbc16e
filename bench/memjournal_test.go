package bench

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/journal"
)

// BenchmarkMemoryJournal measures what a journal costs per branch: a FanOut
// of 1000 branches without a journal (off), and with a fresh journal.Memory
// and a new execution ID on every call (on), so every branch runs and is
// checkpointed. ratio alternates the two in one loop and reports
// on-ns/branch over off-ns/branch as ratio-vs-off.
func BenchmarkMemoryJournal(b *testing.B) {
	const n = 1000
	for _, w := range works {
		in := items(n)
		fn := func(_ context.Context, i int) (uint64, error) { return w.fn(i), nil }
		call := func(ctx context.Context, b *testing.B) {
			res, err := durable.FanOut(ctx, "bench", in, fn)
			if err != nil {
				b.Fatal(err)
			}
			sink = res
		}
		var exec int
		journaled := func(b *testing.B) {
			exec++
			call(durable.WithJournal(bg, journal.NewMemory(), "exec-"+strconv.Itoa(exec)), b)
		}
		b.Run(fmt.Sprintf("work=%s/journal=off", w.name), func(b *testing.B) {
			perBranch(b, n, func() { call(bg, b) })
		})
		b.Run(fmt.Sprintf("work=%s/journal=memory", w.name), func(b *testing.B) {
			perBranch(b, n, func() { journaled(b) })
		})
		b.Run(fmt.Sprintf("work=%s/ratio", w.name), func(b *testing.B) {
			var r rotation
			r.add("off", func() { call(bg, b) })
			r.add("on", func() { journaled(b) })
			r.loop(b)
			b.ReportMetric(r.per("off", n), "off-ns/branch")
			b.ReportMetric(r.per("on", n), "on-ns/branch")
			b.ReportMetric(r.per("on", n)/r.per("off", n), "ratio-vs-off")
		})
	}
}
