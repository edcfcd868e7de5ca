package handlers_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// tracing is the OpenTelemetry SDK with an in-memory exporter: spans are
// exported, synchronously, when they end.
type tracing struct {
	tp  *sdktrace.TracerProvider
	exp *tracetest.InMemoryExporter
}

func newTracing(t *testing.T) *tracing {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &tracing{tp: tp, exp: exp}
}

// span returns the ended span of name; more than one is an error, as each
// test names the span it means.
func (tr *tracing) span(name string) (tracetest.SpanStub, bool) {
	var found []tracetest.SpanStub
	for _, s := range tr.exp.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return tracetest.SpanStub{}, false
	}
	return found[0], true
}

// names lists the ended spans, for failure messages.
func (tr *tracing) names() []string {
	var out []string
	for _, s := range tr.exp.GetSpans() {
		out = append(out, s.Name)
	}
	return out
}

// checkSpan fails t unless s has the kind and carries every attribute in want.
func checkSpan(t *testing.T, s tracetest.SpanStub, kind trace.SpanKind, want ...attribute.KeyValue) {
	t.Helper()
	if s.SpanKind != kind {
		t.Errorf("span %q is a %s span, want %s", s.Name, s.SpanKind, kind)
	}
	have := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		have[kv.Key] = kv.Value
	}
	for _, kv := range want {
		if v, ok := have[kv.Key]; !ok || v.Type() != kv.Value.Type() || v.String() != kv.Value.String() {
			t.Errorf("span %q: attribute %s = %s, want %s", s.Name, kv.Key, v.String(), kv.Value.String())
		}
	}
}
