package durableotel_test

import (
	"context"
	"fmt"
	"log"
	"sort"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/otel/durableotel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func ExampleNew() {
	spans := tracetest.NewSpanRecorder() // in production: an exporter's batch processor
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	obs, err := durableotel.New(durableotel.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}
	ctx := durable.WithObserver(context.Background(), obs)

	_, err = durable.Parallel(ctx, "checkout", []durable.Step[string]{
		durable.NewStep("reserve", func(ctx context.Context) (string, error) {
			return durable.NewStep("lock", func(context.Context) (string, error) { return "sku-1", nil }).Run(ctx)
		}),
		durable.NewStep("pay", func(context.Context) (string, error) { return "paid", nil }),
	})
	if err != nil {
		log.Fatal(err)
	}

	names := map[trace.SpanID]string{{}: "(root)"}
	for _, s := range spans.Ended() {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	var lines []string
	for _, s := range spans.Ended() {
		lines = append(lines, fmt.Sprintf("%-17s <- %s", s.Name(), names[s.Parent().SpanID()]))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// Parallel checkout <- (root)
	// branch pay        <- Parallel checkout
	// branch reserve    <- Parallel checkout
	// step lock         <- branch reserve
}
