// Package scanbench holds the benchmark of [journal.Scanner.Scan] that the
// journal backends share.
package scanbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/durable-go/durable/journal"
)

// Branches is the size of the fan-out whose entries Run scans.
const Branches = 10_000

// Run measures the Scan that reruns a finished fan-out of [Branches]
// branches. It writes the branches' entries to j, keys exec/steps/0 to
// exec/steps/9999, and the fan-out's head, exec/steps/!h, each with a value of
// 90 random bytes; then each op is one Scan of exec/steps/ with a callback that
// checks every key and value. ns/row is the time per entry visited; allocs/op
// divided by 10,001 is the allocations per entry.
func Run(b *testing.B, j interface {
	journal.Journal
	journal.Scanner
}) {
	ctx := context.Background()
	keys := make(chan string)
	var wg sync.WaitGroup
	for w := range 64 {
		rng := rand.New(rand.NewPCG(1, uint64(w)))
		wg.Go(func() {
			for key := range keys {
				value := make([]byte, 90)
				for i := range value {
					value[i] = byte(rng.Uint32())
				}
				if _, err := j.Put(ctx, key, value); err != nil {
					b.Error(err)
				}
			}
		})
	}
	keys <- "exec/steps/!h"
	for i := range Branches {
		keys <- "exec/steps/" + strconv.Itoa(i)
	}
	close(keys)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}

	var rows int
	b.ReportAllocs()
	for b.Loop() {
		rows = 0
		err := j.Scan(ctx, "exec/steps/", func(key string, value []byte) error {
			if !strings.HasPrefix(key, "exec/steps/") || len(value) != 90 {
				return fmt.Errorf("entry %q of %d bytes", key, len(value))
			}
			rows++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if rows != Branches+1 {
		b.Fatalf("Scan visited %d entries, want %d", rows, Branches+1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}
