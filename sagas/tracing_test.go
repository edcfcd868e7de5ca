package sagas_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lexigram/events/sagas"
)

// Each step run has a span, linked to the trace that started the saga.
func TestSagaStepSpansLinkToTheStart(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newEnv(t, sagas.Options{TracerProvider: tp})

	ctx, start := tp.Tracer("test").Start(context.Background(), "place order")
	in, err := e.m.Start(ctx, "fulfillment", "traced", order{Order: "traced"})
	start.End()
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, e.m, in.ID, sagas.Completed)
	want := start.SpanContext()
	steps := map[string]bool{}
	for _, s := range rec.Ended() {
		if s.Name() == "place order" {
			continue
		}
		steps[s.Name()] = true
		if links := s.Links(); len(links) != 1 || links[0].SpanContext.TraceID() != want.TraceID() || links[0].SpanContext.SpanID() != want.SpanID() {
			t.Errorf("span %q links %v, want one link to the starting span %v", s.Name(), s.Links(), want)
		}
	}
	for _, name := range []string{"saga fulfillment reserve", "saga fulfillment charge", "saga fulfillment ship"} {
		if !steps[name] {
			t.Errorf("no span %q among %v", name, steps)
		}
	}
}
