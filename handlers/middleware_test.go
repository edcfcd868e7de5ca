package handlers_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/handlers"
)

func TestTracingFollowsTheGlobalProvider(t *testing.T) {
	ctx := ctxT(t)
	a := newApp(t, handlers.Options{}) // no provider given: the global one
	_, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1"})
	must(t, err)
	tr := newTracing(t)
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tr.tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	_, err = a.buses.Commands.Dispatch(ctx, AddItem{OrderID: "o-1", SKU: "pen"})
	must(t, err)
	d, okD := tr.span("dispatch command test.add-item")
	h, okH := tr.span("handle command test.add-item")
	if !okD || !okH {
		t.Fatalf("spans after otel.SetTracerProvider: %q, want one dispatch and one handle span of test.add-item", tr.names())
	}
	if h.Parent.SpanID() != d.SpanContext.SpanID() || h.SpanContext.TraceID() != d.SpanContext.TraceID() {
		t.Errorf("the handle span's parent is %s in trace %s, want the dispatch span %s in trace %s",
			h.Parent.SpanID(), h.Parent.TraceID(), d.SpanContext.SpanID(), d.SpanContext.TraceID())
	}
	checkSpan(t, d, trace.SpanKindClient, attribute.String("lexigram.kind", "command"), attribute.String("lexigram.type", "test.add-item"))
	checkSpan(t, h, trace.SpanKindServer, attribute.String("lexigram.kind", "command"), attribute.String("lexigram.type", "test.add-item"))
	if n := len(tr.exp.GetSpans()); n != 2 {
		t.Errorf("%d spans %q, want 2: none before any provider was installed", n, tr.names())
	}
}

func TestLoggingMiddleware(t *testing.T) {
	ctx := ctxT(t)
	var buf bytes.Buffer
	a := newApp(t, handlers.Options{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	_, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1", CmdID: "cmd-1"})
	must(t, err)
	_, err = a.buses.Commands.Dispatch(ctx, Fail{What: "not-found"})
	if err == nil {
		t.Fatal("no error")
	}
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="handlers: command handled" type=test.place-order id=cmd-1 correlation_id=cmd-1`,
		`level=WARN msg="handlers: command failed" type=test.fail`,
		`code=LXE-007`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}
