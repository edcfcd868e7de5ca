package handlers

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// defaultProvider is the global provider before any SDK is installed:
// otel.SetTracerProvider replaces it, and otel.GetTracerProvider then
// returns the new one.
var defaultProvider = otel.GetTracerProvider()

// noSpan is what spanner.start returns when nothing records spans.
var noSpan trace.Span = noop.Span{}

// spanner starts this package's spans. With no provider given it follows
// the global one, and while that is still OpenTelemetry's default (no SDK
// installed) it starts no span at all: the default's non-recording spans
// would cost three allocations each, a third of a dispatch's.
type spanner struct {
	fixed  trace.Tracer // from Options.TracerProvider; nil: follow the global provider
	global atomic.Pointer[globalTracer]
}

type globalTracer struct {
	tp trace.TracerProvider
	t  trace.Tracer
}

func newSpanner(tp trace.TracerProvider) *spanner {
	s := &spanner{}
	if tp != nil {
		s.fixed = tp.Tracer(instrumentation)
	}
	return s
}

// off reports that start would start no span, so a caller can skip
// preparing one.
func (s *spanner) off() bool {
	return s.fixed == nil && otel.GetTracerProvider() == defaultProvider
}

func (s *spanner) start(ctx context.Context, name string, opts []trace.SpanStartOption) (context.Context, trace.Span) {
	if s.fixed != nil {
		return s.fixed.Start(ctx, name, opts...)
	}
	tp := otel.GetTracerProvider()
	if tp == defaultProvider {
		return ctx, noSpan
	}
	g := s.global.Load()
	if g == nil || g.tp != tp {
		g = &globalTracer{tp: tp, t: tp.Tracer(instrumentation)}
		s.global.Store(g)
	}
	return g.t.Start(ctx, name, opts...)
}
