package sqlitejournal_test

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/durable-go/durable/internal/scanbench"
	"github.com/durable-go/durable/journal/sqlitejournal"
)

// BenchmarkPut measures checkpoint throughput with group commit against one
// transaction per Put. Each iteration is a wave of `conc` concurrent Puts of new
// keys, as when that many branches of a fan-out finish at once; checkpoints/s
// counts Puts, and puts/tx how many shared a transaction.
func BenchmarkPut(b *testing.B) {
	value := []byte(`{"status":"ok","items":[1,2,3],"note":"a typical small JSON checkpoint value"}`)
	for _, mode := range []struct {
		name string
		opt  sqlitejournal.Option
	}{
		{"GroupCommit", sqlitejournal.WithGroupCommit(true)},
		{"TxPerPut", sqlitejournal.WithGroupCommit(false)},
	} {
		for _, conc := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/conc=%d", mode.name, conc), func(b *testing.B) {
				j := openAt(b, tempPath(b), mode.opt)
				var seq atomic.Int64
				b.ReportAllocs()
				for b.Loop() {
					var wg sync.WaitGroup
					for range conc {
						wg.Go(func() {
							key := "bench/" + strconv.FormatInt(seq.Add(1), 10)
							if _, err := j.Put(bg, key, value); err != nil {
								b.Error(err)
							}
						})
					}
					wg.Wait()
				}
				puts := float64(seq.Load())
				b.ReportMetric(puts/b.Elapsed().Seconds(), "checkpoints/s")
				b.ReportMetric(puts/float64(sqlitejournal.Transactions(j)), "puts/tx")
			})
		}
	}
}

// BenchmarkScan measures one Scan over the entries of a finished fan-out of
// 10,000 branches; see [scanbench.Run].
func BenchmarkScan(b *testing.B) {
	scanbench.Run(b, openAt(b, tempPath(b)))
}
