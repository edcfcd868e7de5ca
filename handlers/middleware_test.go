package handlers_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"

	"github.com/lexigram/events/handlers"
)

func TestTracingFollowsTheGlobalProvider(t *testing.T) {
	ctx := ctxT(t)
	a := newApp(t, handlers.Options{}) // no provider given: the global one
	_, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1"})
	must(t, err)
	rec := &recorder{}
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(rec)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	_, err = a.buses.Commands.Dispatch(ctx, AddItem{OrderID: "o-1", SKU: "pen"})
	must(t, err)
	d, h := rec.find("dispatch command test.add-item"), rec.find("handle command test.add-item")
	if d == nil || h == nil || h.parent.SpanID() != d.sc.SpanID() {
		t.Fatalf("spans after otel.SetTracerProvider: dispatch %+v, handle %+v", d, h)
	}
	if rec.find("dispatch command test.place-order") != nil {
		t.Error("a span was recorded before any provider was installed")
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
