package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/alitto/pond/v2"
	"github.com/sourcegraph/conc/iter"
	"github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"

	"github.com/durable-go/durable"
)

// An impl runs n branches of the same work at most limit at a time (0: no
// limit) and returns their results in input order. prepare builds what every
// call may reuse (step lists, item slices, a long-lived pond pool) outside the
// timed loop and returns the call.
type impl struct {
	name    string
	prepare func(b *testing.B, n, limit int, work func(int) uint64) func() []uint64
}

var impls = []impl{
	{"durable.Parallel", prepareParallel},
	{"durable.FanOut", prepareFanOut},
	{"WaitGroup", prepareWaitGroup},
	{"errgroup", prepareErrgroup},
	{"conc.pool", prepareConcPool},
	{"conc.iter.Map", prepareConcIter},
	{"pond", preparePond},
}

func steps(n int, work func(int) uint64) []durable.Step[uint64] {
	s := make([]durable.Step[uint64], n)
	for i := range s {
		s[i] = durable.NewStep(strconv.Itoa(i), func(context.Context) (uint64, error) { return work(i), nil })
	}
	return s
}

func items(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func limitOpts(limit int) []durable.Option {
	if limit == 0 {
		return nil
	}
	return []durable.Option{durable.WithMaxConcurrency(limit)}
}

func prepareParallel(b *testing.B, n, limit int, work func(int) uint64) func() []uint64 {
	s, opts := steps(n, work), limitOpts(limit)
	return func() []uint64 {
		res, err := durable.Parallel(bg, "bench", s, opts...)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
}

func prepareFanOut(b *testing.B, n, limit int, work func(int) uint64) func() []uint64 {
	in, opts := items(n), limitOpts(limit)
	fn := func(_ context.Context, i int) (uint64, error) { return work(i), nil }
	return func() []uint64 {
		res, err := durable.FanOut(bg, "bench", in, fn, opts...)
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
}

// prepareWaitGroup is the hand-written equivalent: a goroutine per branch, and
// under a limit a channel semaphore acquired before each goroutine starts.
func prepareWaitGroup(_ *testing.B, n, limit int, work func(int) uint64) func() []uint64 {
	return func() []uint64 {
		res := make([]uint64, n)
		var wg sync.WaitGroup
		if limit == 0 {
			for i := range n {
				wg.Go(func() { res[i] = work(i) })
			}
		} else {
			sem := make(chan struct{}, limit) // the limit is the bound
			for i := range n {
				sem <- struct{}{}
				wg.Go(func() {
					res[i] = work(i)
					<-sem
				})
			}
		}
		wg.Wait()
		return res
	}
}

// prepareErrgroup uses errgroup.WithContext, which, like durable, cancels the
// branches' context at the first failure.
func prepareErrgroup(b *testing.B, n, limit int, work func(int) uint64) func() []uint64 {
	return func() []uint64 {
		res := make([]uint64, n)
		g, _ := errgroup.WithContext(bg)
		if limit > 0 {
			g.SetLimit(limit)
		}
		for i := range n {
			g.Go(func() error {
				res[i] = work(i)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		return res
	}
}

func prepareConcPool(_ *testing.B, n, limit int, work func(int) uint64) func() []uint64 {
	return func() []uint64 {
		res := make([]uint64, n)
		p := pool.New()
		if limit > 0 {
			p = p.WithMaxGoroutines(limit)
		}
		for i := range n {
			p.Go(func() { res[i] = work(i) })
		}
		p.Wait()
		return res
	}
}

// prepareConcIter uses iter.Mapper with MaxGoroutines set to the limit, or to
// n when there is none (iter.Map's own default is GOMAXPROCS).
func prepareConcIter(_ *testing.B, n, limit int, work func(int) uint64) func() []uint64 {
	in := items(n)
	m := iter.Mapper[int, uint64]{MaxGoroutines: n}
	if limit > 0 {
		m.MaxGoroutines = limit
	}
	return func() []uint64 {
		return m.Map(in, func(i *int) uint64 { return work(*i) })
	}
}

// preparePond submits to one long-lived result pool, through a task group
// per call, which returns the results in input order.
func preparePond(b *testing.B, n, limit int, work func(int) uint64) func() []uint64 {
	p := pond.NewResultPool[uint64](limit) // 0: no limit
	b.Cleanup(p.StopAndWait)
	return func() []uint64 {
		g := p.NewGroup()
		for i := range n {
			g.SubmitErr(func() (uint64, error) { return work(i), nil })
		}
		res, err := g.Wait()
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
}

var (
	branchCounts = []int{10, 1000, 100_000}
	limits       = []int{0, 64}
)

func capName(limit int) string {
	if limit == 0 {
		return "cap=none"
	}
	return "cap=" + strconv.Itoa(limit)
}

// BenchmarkBranch measures the cost of one branch without a journal: each
// implementation runs n branches of the same work under the same cap, and
// reports ns/branch, allocs/branch and B/branch.
func BenchmarkBranch(b *testing.B) {
	for _, w := range works {
		for _, n := range branchCounts {
			for _, limit := range limits {
				for _, im := range impls {
					name := fmt.Sprintf("work=%s/n=%d/%s/impl=%s", w.name, n, capName(limit), im.name)
					b.Run(name, func(b *testing.B) {
						call := im.prepare(b, n, limit, w.fn)
						perBranch(b, n, func() { sink = call() })
					})
				}
			}
		}
	}
}

// BenchmarkRatio runs durable.Parallel, durable.FanOut, errgroup, conc's pool
// and conc's iter.Mapper alternately in one loop and reports the ratio of their
// ns/branch: ratio-vs-errgroup is Parallel over errgroup, fanout-vs-errgroup
// FanOut over errgroup, ratio-vs-conc Parallel over conc.pool, and
// ratio-vs-conc-iter Parallel over conc.iter.Map.
func BenchmarkRatio(b *testing.B) {
	for _, w := range works {
		for _, n := range []int{1000, 100_000} {
			for _, limit := range limits {
				b.Run(fmt.Sprintf("work=%s/n=%d/%s", w.name, n, capName(limit)), func(b *testing.B) {
					var r rotation
					for _, im := range impls {
						switch im.name {
						case "durable.Parallel", "durable.FanOut", "errgroup", "conc.pool", "conc.iter.Map":
							call := im.prepare(b, n, limit, w.fn)
							r.add(im.name, func() { sink = call() })
						}
					}
					r.loop(b)
					par, fan := r.per("durable.Parallel", n), r.per("durable.FanOut", n)
					eg, cp, ci := r.per("errgroup", n), r.per("conc.pool", n), r.per("conc.iter.Map", n)
					b.ReportMetric(par, "parallel-ns/branch")
					b.ReportMetric(fan, "fanout-ns/branch")
					b.ReportMetric(eg, "errgroup-ns/branch")
					b.ReportMetric(cp, "conc-ns/branch")
					b.ReportMetric(ci, "conc-iter-ns/branch")
					b.ReportMetric(par/eg, "ratio-vs-errgroup")
					b.ReportMetric(fan/eg, "fanout-vs-errgroup")
					b.ReportMetric(par/cp, "ratio-vs-conc")
					b.ReportMetric(par/ci, "ratio-vs-conc-iter")
				})
			}
		}
	}
}
