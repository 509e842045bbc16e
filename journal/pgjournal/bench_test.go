package pgjournal_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/durable-go/durable/internal/scanbench"
	"github.com/durable-go/durable/journal/pgjournal"
)

// BenchmarkPut measures Puts of distinct keys with 100-byte values from a fixed
// number of concurrent callers, with group commit and with one transaction per
// Put. One op is one Put; checkpoints/s counts Puts committed per second of
// wall time. Both journals get a pool of up to 32 connections.
func BenchmarkPut(b *testing.B) {
	for _, m := range []struct {
		name string
		opts []pgjournal.Option
	}{
		{"GroupCommit", nil},
		{"TransactionPerPut", []pgjournal.Option{pgjournal.WithGroupCommit(false)}},
	} {
		for _, callers := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("%s/callers=%d", m.name, callers), func(b *testing.B) {
				benchmarkPut(b, callers, m.opts)
			})
		}
	}
}

func benchmarkPut(b *testing.B, callers int, opts []pgjournal.Option) {
	url := databaseURL(b)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	opts = append([]pgjournal.Option{pgjournal.WithTable(newTable(b))}, opts...)
	j, err := pgjournal.Open(context.Background(), url+sep+"pool_max_conns=32", opts...)
	require.NoError(b, err)
	defer j.Close()
	require.NoError(b, j.Migrate(context.Background()))

	ctx := context.Background()
	value := []byte(`{"status":"ok","width":640,"height":480,"url":"https://example.com/img/0000.png"}`)
	value = append(value, strings.Repeat(" ", 100-len(value))...)
	var failed atomic.Pointer[error]
	// Each loop iteration hands one Put to the callers; the channel is
	// unbuffered, so at most callers Puts run at once.
	work := make(chan int)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for i := range work {
				if _, err := j.Put(ctx, fmt.Sprintf("bench/%09d", i), value); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	b.ReportAllocs()
	txns := pgjournal.Transactions(j)
	start := time.Now()
	i := 0
	for b.Loop() {
		work <- i
		i++
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	b.ReportMetric(float64(i)/elapsed.Seconds(), "checkpoints/s")
	b.ReportMetric(float64(i)/float64(pgjournal.Transactions(j)-txns), "puts/txn")
}

// BenchmarkScan measures one Scan over the entries of a finished fan-out of
// 10,000 branches; see [scanbench.Run].
func BenchmarkScan(b *testing.B) {
	scanbench.Run(b, openJournal(b, newTable(b)))
}
