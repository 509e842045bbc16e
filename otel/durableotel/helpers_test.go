package durableotel_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/otel/durableotel"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// rig is an Observer over the SDK's span recorder and a manual metric reader.
type rig struct {
	t      *testing.T
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tracer trace.Tracer
	obs    durable.Observer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		require.NoError(t, tp.Shutdown(context.Background()))
		require.NoError(t, mp.Shutdown(context.Background()))
	})
	obs, err := durableotel.New(durableotel.WithTracerProvider(tp), durableotel.WithMeterProvider(mp))
	require.NoError(t, err)
	return &rig{t: t, spans: spans, reader: reader, tracer: tp.Tracer("test"), obs: obs}
}

// root returns a context with the observer and a root span of the test's,
// and the function that ends that span.
func (r *rig) root(ctx context.Context) (context.Context, func()) {
	ctx, sp := r.tracer.Start(ctx, "test")
	return durable.WithObserver(ctx, r.obs), func() { sp.End() }
}

// ended returns the ended spans, after checking that every span started has
// ended.
func (r *rig) ended() []sdktrace.ReadOnlySpan {
	r.t.Helper()
	ended := r.spans.Ended()
	require.Len(r.t, r.spans.Started(), len(ended), "spans started but never ended")
	return ended
}

// named returns the ended spans named name.
func (r *rig) named(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range r.ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// one returns the one ended span named name.
func (r *rig) one(name string) sdktrace.ReadOnlySpan {
	r.t.Helper()
	s := r.named(name)
	require.Len(r.t, s, 1, "spans named %q in\n%s", name, r.tree())
	return s[0]
}

// tree draws the ended spans as a tree, children sorted by name: for
// failure messages and the example.
func (r *rig) tree() string {
	return tree(r.spans.Ended())
}

func tree(spans []sdktrace.ReadOnlySpan) string {
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext().SpanID()] = true
	}
	var roots []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if p := s.Parent().SpanID(); ids[p] {
			children[p] = append(children[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var draw func([]sdktrace.ReadOnlySpan, int)
	draw = func(list []sdktrace.ReadOnlySpan, depth int) {
		sort.SliceStable(list, func(i, j int) bool { return list[i].Name() < list[j].Name() })
		for _, s := range list {
			fmt.Fprintf(&b, "%s%s\n", strings.Repeat("  ", depth), s.Name())
			draw(children[s.SpanContext().SpanID()], depth+1)
		}
	}
	draw(roots, 0)
	return b.String()
}

// attrs returns a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// events returns a span's events named name.
func events(s sdktrace.ReadOnlySpan, name string) []sdktrace.Event {
	var out []sdktrace.Event
	for _, e := range s.Events() {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func eventAttrs(e sdktrace.Event) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range e.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// requireChild checks that child's parent is parent.
func requireChild(t *testing.T, parent, child sdktrace.ReadOnlySpan) {
	t.Helper()
	require.Equal(t, parent.SpanContext().SpanID(), child.Parent().SpanID(),
		"parent of %q: want %q", child.Name(), parent.Name())
	require.Equal(t, parent.SpanContext().TraceID(), child.SpanContext().TraceID())
}

// collect reads the metrics.
func (r *rig) collect() metricdata.ResourceMetrics {
	r.t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(r.t, r.reader.Collect(context.Background(), &rm))
	return rm
}

func findMetric(t *testing.T, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				require.Equal(t, "github.com/durable-go/durable/otel/durableotel", sm.Scope.Name)
				return m
			}
		}
	}
	require.Failf(t, "no metric", "%s", name)
	return metricdata.Metrics{}
}

// sum is the value of counter name's data point with exactly attrs; 0 when
// there is none.
func sum(t *testing.T, rm metricdata.ResourceMetrics, name string, kvs ...attribute.KeyValue) int64 {
	t.Helper()
	m := findMetric(t, rm, name)
	data, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is a %T", name, m.Data)
	require.True(t, data.IsMonotonic)
	want := attribute.NewSet(kvs...)
	for _, dp := range data.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

// sums is the number of data points of counter name, and their total.
func sums(t *testing.T, rm metricdata.ResourceMetrics, name string) (points int, total int64) {
	t.Helper()
	data := findMetric(t, rm, name).Data.(metricdata.Sum[int64])
	for _, dp := range data.DataPoints {
		total += dp.Value
	}
	return len(data.DataPoints), total
}

// count is the count of histogram name's data point with exactly attrs.
func count(t *testing.T, rm metricdata.ResourceMetrics, name string, kvs ...attribute.KeyValue) uint64 {
	t.Helper()
	m := findMetric(t, rm, name)
	data, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok, "%s is a %T", name, m.Data)
	want := attribute.NewSet(kvs...)
	for _, dp := range data.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Count
		}
	}
	return 0
}

func combinator(c string) attribute.KeyValue { return attribute.String("durable.combinator", c) }
func status(s string) attribute.KeyValue     { return attribute.String("durable.status", s) }
func replayed(b bool) attribute.KeyValue     { return attribute.Bool("durable.replayed", b) }
func reason(r string) attribute.KeyValue     { return attribute.String("durable.reason", r) }

func step[T any](name string, v T) durable.Step[T] {
	return durable.NewStep(name, func(context.Context) (T, error) { return v, nil })
}
