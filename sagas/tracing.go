package sagas

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The trace of what started an instance is kept with it (Instance.Trace,
// W3C trace context), so that the span of every step, in whichever
// process and however much later it runs, links back to it. A link, not a
// parent: a saga outlives the request that started it by hours, and a
// trace that long is unreadable.

var traceContext = propagation.TraceContext{}

// traceOf returns ctx's W3C trace context, "" when it has none.
func traceOf(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// startSpan starts the span of one run of a step, when the manager has a
// tracer.
func (m *Manager) startSpan(ctx context.Context, in *Instance, step string, compensating bool) (context.Context, trace.Span) {
	if m.tracer == nil {
		return ctx, nil
	}
	name := "saga " + in.Type + " " + step
	if compensating {
		name += " compensate"
	}
	opts := []trace.SpanStartOption{trace.WithAttributes(
		attribute.String("lexigram.saga.type", in.Type),
		attribute.String("lexigram.saga.id", in.ID),
		attribute.String("lexigram.saga.key", in.Key),
		attribute.String("lexigram.saga.step", step),
		attribute.Bool("lexigram.saga.compensating", compensating),
		attribute.Int("lexigram.saga.attempt", in.Attempt),
	)}
	if in.Trace != "" {
		started := trace.SpanContextFromContext(traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": in.Trace}))
		if started.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: started}))
		}
	}
	return m.tracer.Start(ctx, name, opts...)
}

// endSpan ends a step's span with its outcome.
func endSpan(span trace.Span, rec StepRecord) {
	if span == nil {
		return
	}
	span.SetAttributes(attribute.String("lexigram.saga.outcome", rec.Outcome))
	if rec.Error != "" {
		span.SetStatus(codes.Error, rec.Error)
	}
	span.End()
}
