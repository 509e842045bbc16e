package durableotel_test

import (
	"context"
	"testing"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/otel/durableotel"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// BenchmarkParallel runs a Parallel of 100 branches: without an Observer,
// with this one over no-op providers, and over the SDK sampling every span
// (discarded) and aggregating the metrics.
func BenchmarkParallel(b *testing.B) {
	steps := make([]durable.Step[int], 100)
	for i := range steps {
		steps[i] = durable.NewStep(string(rune('a'+i%26))+string(rune('a'+i/26)), func(context.Context) (int, error) { return 1, nil })
	}
	noop, err := durableotel.New(durableotel.WithTracerProvider(tracenoop.NewTracerProvider()),
		durableotel.WithMeterProvider(metricnoop.NewMeterProvider()))
	if err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	sdk, err := durableotel.New(durableotel.WithTracerProvider(tp), durableotel.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		obs  durable.Observer
	}{{"none", nil}, {"noop", noop}, {"sdk", sdk}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			if bc.obs != nil {
				ctx = durable.WithObserver(ctx, bc.obs)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := durable.Parallel(ctx, "p", steps); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
