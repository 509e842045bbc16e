package durableotel

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Option configures [New].
type Option interface {
	apply(*config)
}

type config struct {
	tracerProvider trace.TracerProvider // nil: otel.GetTracerProvider()
	meterProvider  metric.MeterProvider // nil: otel.GetMeterProvider()
	errs           []error
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithTracerProvider makes the Observer create its spans with a tracer from
// tp instead of the global provider, otel.GetTracerProvider(). tp must not be
// nil.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp == nil {
			c.errs = append(c.errs, errors.New("durableotel: WithTracerProvider(nil)"))
			return
		}
		c.tracerProvider = tp
	})
}

// WithMeterProvider makes the Observer create its instruments with a meter
// from mp instead of the global provider, otel.GetMeterProvider(). mp must not
// be nil.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp == nil {
			c.errs = append(c.errs, errors.New("durableotel: WithMeterProvider(nil)"))
			return
		}
		c.meterProvider = mp
	})
}
