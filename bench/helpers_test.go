package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

var bg = context.Background()

// workBuf is the input of hashWork.
var workBuf = func() (buf [256]byte) {
	for i := range buf {
		buf[i] = byte(i*7 + 3)
	}
	return buf
}()

// hashWork is the body of a small-work branch: FNV-1a over 256 bytes, seeded
// by i. Each byte is one multiply in a dependency chain, so it costs a few
// hundred nanoseconds and allocates nothing.
func hashWork(i int) uint64 {
	h := uint64(14695981039346656037) ^ uint64(i)
	for _, c := range workBuf {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// noWork is the body of a no-op branch.
func noWork(i int) uint64 { return uint64(i) }

var works = []struct {
	name string
	fn   func(int) uint64
}{
	{"noop", noWork},
	{"hash", hashWork},
}

// sink keeps results alive so that no call is optimised away.
var sink any

// perBranch runs call in the benchmark loop and reports the cost of one
// branch: ns/branch, allocs/branch and B/branch. Allocations are counted with
// runtime.ReadMemStats around the whole loop.
func perBranch(b *testing.B, branches int, call func()) {
	b.Helper()
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	iters := 0
	for b.Loop() {
		call()
		iters++
	}
	runtime.ReadMemStats(&after)
	total := float64(iters) * float64(branches)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/total, "ns/branch")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/branch")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/branch")
}

// rotation times several calls that run alternately in one benchmark loop,
// so that their ratio is measured under the same conditions. The order rotates
// with every iteration, so no call always follows the same other call.
type rotation struct {
	names []string
	calls []func()
	spent []time.Duration
	iters int
}

func (r *rotation) add(name string, call func()) {
	r.names = append(r.names, name)
	r.calls = append(r.calls, call)
	r.spent = append(r.spent, 0)
}

// loop runs the benchmark loop; each iteration runs every call once.
func (r *rotation) loop(b *testing.B) {
	for b.Loop() {
		for k := range r.calls {
			c := (k + r.iters) % len(r.calls)
			start := time.Now()
			r.calls[c]()
			r.spent[c] += time.Since(start)
		}
		r.iters++
	}
}

// per returns the mean time of one run of the named call, divided by units.
func (r *rotation) per(name string, units int) float64 {
	for k, n := range r.names {
		if n == name {
			return float64(r.spent[k].Nanoseconds()) / float64(r.iters) / float64(units)
		}
	}
	panic("bench: no call named " + name)
}

// rate returns the named call's units per second.
func (r *rotation) rate(name string, units int) float64 {
	return 1e9 / r.per(name, units)
}

// peakSampler follows the peak of the heap and of the goroutine count while
// a benchmark runs: a background goroutine samples every millisecond, and the
// code under test may sample too, with sample.
type peakSampler struct {
	goroutines atomic.Int64  // counted with the world stopped, see sample
	heap       atomic.Uint64 // bytes in heap objects, live or not yet swept
	live       atomic.Uint64 // bytes marked live by the latest GC

	stop chan struct{}
	done sync.WaitGroup

	dumpMu sync.Mutex
	dump   []byte // for countGoroutines, allocated once: the heap is measured too
}

var heapMetrics = []string{"/memory/classes/heap/objects:bytes", "/gc/heap/live:bytes"}

func startPeakSampler() *peakSampler {
	p := &peakSampler{stop: make(chan struct{}), dump: make([]byte, 1<<16)}
	p.sample()
	p.done.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.sample()
			}
		}
	})
	return p
}

func (p *peakSampler) sample() {
	// runtime.NumGoroutine reads the scheduler's lists of free goroutines
	// without stopping the world, and over-counts, by up to a few dozen, while
	// exited goroutines move between them. A count above the peak so far is
	// checked against a dump of every goroutine's stack, taken with the world
	// stopped.
	if g := int64(runtime.NumGoroutine()); g > p.goroutines.Load() {
		storeMax(&p.goroutines, min(g, p.countGoroutines()))
	}
	s := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	storeMaxU(&p.heap, s[0].Value.Uint64())
	storeMaxU(&p.live, s[1].Value.Uint64())
}

// countGoroutines counts the goroutines in a dump of all their stacks.
func (p *peakSampler) countGoroutines() int64 {
	p.dumpMu.Lock()
	defer p.dumpMu.Unlock()
	for {
		n := runtime.Stack(p.dump, true)
		if n < len(p.dump) {
			return int64(bytes.Count(p.dump[:n], []byte("\n\ngoroutine "))) + 1
		}
		p.dump = make([]byte, 2*len(p.dump))
	}
}

// finish stops the background sampler and takes a last sample.
func (p *peakSampler) finish() {
	close(p.stop)
	p.done.Wait()
	p.sample()
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

func storeMaxU(v *atomic.Uint64, x uint64) {
	for {
		cur := v.Load()
		if x <= cur || v.CompareAndSwap(cur, x) {
			return
		}
	}
}

// heapNow returns the bytes in heap objects and the bytes marked live by the
// latest GC.
func heapNow() (heap, live uint64) {
	s := []metrics.Sample{{Name: heapMetrics[0]}, {Name: heapMetrics[1]}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

const mb = 1 << 20

// --- PostgreSQL ---

// databaseURL returns TEST_DATABASE_URL, or skips the benchmark when it is
// unset.
func databaseURL(b *testing.B) string {
	b.Helper()
	url := os.Getenv("TEST_DATABASE_URL")
	if url == "" {
		b.Skip(`TEST_DATABASE_URL is not set; eval "$(scripts/pg.sh start /tmp/durable-pg)" starts a server and sets it`)
	}
	return url
}

// withParam adds a query parameter to a PostgreSQL URL.
func withParam(url, param string) string {
	if strings.Contains(url, "?") {
		return url + "&" + param
	}
	return url + "?" + param
}

// newSchema creates a schema of its own for one benchmark, dropped with its
// tables when the benchmark ends, and returns its name.
func newSchema(b *testing.B) string {
	b.Helper()
	url := databaseURL(b)
	schema := fmt.Sprintf("durable_bench_%016x", rand.Uint64())
	pgExec(b, url, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	b.Cleanup(func() { pgExec(b, url, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE") })
	return schema
}

func pgExec(b *testing.B, url, sql string) {
	b.Helper()
	conn, err := pgx.Connect(bg, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(bg)
	if _, err := conn.Exec(bg, sql); err != nil {
		b.Fatal(err)
	}
}
