package handlers_test

import (
	"context"
	"crypto/rand"
	"sync"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// recorder is a TracerProvider that keeps the spans that ended. The
// OpenTelemetry SDK's tracetest exporter would do, but the SDK needs
// github.com/google/uuid, which go.mod and go.sum do not have.
type recorder struct {
	embedded.TracerProvider
	mu    sync.Mutex
	spans []*recSpan
}

type recTracer struct {
	embedded.Tracer
	r *recorder
}

type recSpan struct {
	noop.Span
	r      *recorder
	name   string
	sc     trace.SpanContext
	parent trace.SpanContext
	kind   trace.SpanKind
	err    error
}

func (r *recorder) Tracer(string, ...trace.TracerOption) trace.Tracer { return recTracer{r: r} }

func (t recTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	cfg := trace.NewSpanStartConfig(opts...)
	parent := trace.SpanContextFromContext(ctx)
	var tid trace.TraceID
	var sid trace.SpanID
	_, _ = rand.Read(sid[:])
	if parent.IsValid() {
		tid = parent.TraceID()
	} else {
		_, _ = rand.Read(tid[:])
	}
	s := &recSpan{r: t.r, name: name, parent: parent, kind: cfg.SpanKind(),
		sc: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})}
	return trace.ContextWithSpan(ctx, s), s
}

func (s *recSpan) SpanContext() trace.SpanContext                { return s.sc }
func (s *recSpan) IsRecording() bool                             { return true }
func (s *recSpan) RecordError(err error, _ ...trace.EventOption) { s.err = err }
func (s *recSpan) End(...trace.SpanEndOption) {
	s.r.mu.Lock()
	s.r.spans = append(s.r.spans, s)
	s.r.mu.Unlock()
}

func (r *recorder) find(name string) *recSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if s.name == name {
			return s
		}
	}
	return nil
}
