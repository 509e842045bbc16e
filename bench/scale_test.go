package bench

import (
	"context"
	"runtime"
	"testing"
	"unsafe"

	"github.com/durable-go/durable"
)

// BenchmarkScale runs a FanOut of a million no-op items at cap 64 without a
// journal, and reports:
//
//   - peak-goroutines: the most goroutines alive in the process during the
//     call, sampled every 1000 items inside the branches and every millisecond
//     by a background sampler (which is one of them); base-goroutines is the
//     count before the call, sampler included;
//   - peak-heap-MB: the peak of the bytes in heap objects (HeapAlloc: live
//     objects and garbage not yet swept) above what the heap held before the
//     call, after a GC; the items slice is allocated before and not counted;
//   - peak-live-MB: the peak of the bytes a GC found live, above the same
//     base: what the call retains, without garbage;
//   - retained-MB: what a GC right after the call finds live above the base,
//     the result still referenced;
//   - result-MB: the size of the returned slice; heap/result and live/result
//     divide the peaks by it.
//
// MB is 2^20 bytes. The result type is 8 or 64 bytes.
func BenchmarkScale(b *testing.B) {
	b.Run("result=8B", func(b *testing.B) {
		benchmarkScale(b, func(i int) uint64 { return uint64(i) })
	})
	b.Run("result=64B", func(b *testing.B) {
		benchmarkScale(b, func(i int) [8]uint64 { return [8]uint64{uint64(i)} })
	})
}

func benchmarkScale[T any](b *testing.B, value func(int) T) {
	const n, limit = 1_000_000, 64
	in := items(n)
	var peakG int64
	var baseG int
	var peakHeap, peakLive, retained uint64
	var res []T
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		res = nil
		runtime.GC()
		baseHeap, baseLive := heapNow()
		baseG = runtime.NumGoroutine() + 1 // and the sampler
		s := startPeakSampler()
		b.StartTimer()

		var err error
		res, err = durable.FanOut(bg, "scale", in, func(_ context.Context, i int) (T, error) {
			if i%1000 == 0 {
				s.sample()
			}
			return value(i), nil
		}, durable.WithMaxConcurrency(limit))

		b.StopTimer()
		s.finish()
		if err != nil {
			b.Fatal(err)
		}
		if len(res) != n {
			b.Fatalf("FanOut returned %d results, want %d", len(res), n)
		}
		runtime.GC()
		_, afterLive := heapNow()
		retained = max(retained, afterLive-min(baseLive, afterLive))
		peakG = max(peakG, s.goroutines.Load())
		peakHeap = max(peakHeap, s.heap.Load()-min(baseHeap, s.heap.Load()))
		peakLive = max(peakLive, s.live.Load()-min(baseLive, s.live.Load()))
		b.StartTimer()
	}
	var zero T
	result := float64(len(res)) * float64(unsafe.Sizeof(zero))
	b.ReportMetric(float64(peakG), "peak-goroutines")
	b.ReportMetric(float64(baseG), "base-goroutines")
	b.ReportMetric(float64(peakHeap)/mb, "peak-heap-MB")
	b.ReportMetric(float64(peakLive)/mb, "peak-live-MB")
	b.ReportMetric(float64(retained)/mb, "retained-MB")
	b.ReportMetric(result/mb, "result-MB")
	b.ReportMetric(float64(peakHeap)/result, "heap/result")
	b.ReportMetric(float64(peakLive)/result, "live/result")
	sink = res
}
