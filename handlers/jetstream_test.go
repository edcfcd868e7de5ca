package handlers_test

import (
	"context"
	"testing"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// The whole path on the JetStream store, over three connections standing
// for three processes: a sender, a command handler saving to the stream,
// and an event handler fed by the stream. The event handler gets exactly
// the stored events (no second publish), with the command's correlation and
// causation IDs and its trace.
func TestJetStreamStoreFeedsEventHandlersInAnotherProcess(t *testing.T) {
	ctx := ctxT(t)
	srv := embeddedtest.Server(t)
	store := func() *lxjs.EventStore {
		js, err := natsjs.New(embeddedtest.Conn(t, srv))
		must(t, err)
		s, err := lxjs.New(ctx, js, lxjs.Options{Stream: "HANDLERS_TEST", SubjectPrefix: "hevents", Registry: reg, Logger: quiet()})
		must(t, err)
		return s
	}
	tr := newTracing(t)

	// Process 1 handles commands.
	commandStore := store()
	orders := platform.NewRepository(commandStore, func() *Order { return &Order{} }, platform.RepositoryOptions{})
	cmds := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet(), Remote: newRemote(t, embeddedtest.Conn(t, srv)), TracerProvider: tr.tp})
	must(t, handlers.HandleCommand(cmds, func(ctx context.Context, c PlaceOrder) error {
		o := &Order{}
		o.SetID(c.OrderID)
		platform.Raise(o, OrderPlaced{Customer: c.Customer})
		return handlers.Track(ctx, orders, o)
	}))

	// Process 2 handles events, fed by its own view of the stream.
	events := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet(), TracerProvider: tr.tp})
	got := make(chan platform.Envelope, 1)
	must(t, handlers.Subscribe(events, "test.order-placed", "mailer", func(_ context.Context, e platform.Envelope) error { got <- e; return nil }))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	feed := store()
	go func() { done <- events.Run(runCtx, feed, 0) }()
	t.Cleanup(func() { cancel(); must(t, <-done) })

	// Process 3 sends.
	sender := client(t, embeddedtest.Conn(t, srv), tr.tp)
	reqCtx, root := tr.tp.Tracer("test").Start(ctx, "request")
	res, err := sender.Commands.Dispatch(platform.WithCorrelationID(reqCtx, "corr-js"), PlaceOrder{OrderID: "o-1", Customer: "ada", CmdID: "cmd-js"})
	must(t, err)
	root.End()
	if res.Position == 0 || res.Version != 1 {
		t.Fatalf("result %+v", res)
	}
	e := <-got
	if e.ID != res.Events[0].ID || e.Position != res.Position || e.CorrelationID != "corr-js" || e.CausationID != "cmd-js" || e.Event != (OrderPlaced{Customer: "ada"}) {
		t.Errorf("delivered %+v; result %+v", e, res.Events[0])
	}
	must(t, events.WaitFor(ctx, res.Position))
	var handle, dispatch tracetest.SpanStub
	eventually(t, "the event handler's span", func() bool {
		var ok bool
		handle, ok = tr.span("handle event test.order-placed")
		return ok
	})
	dispatch, ok := tr.span("dispatch event test.order-placed")
	if !ok {
		t.Fatalf("spans %q: no dispatch event span", tr.names())
	}
	command, ok := tr.span("handle command test.place-order")
	if !ok {
		t.Fatalf("spans %q: no handle command span", tr.names())
	}
	// The trace reaches process 2 through the stored event's metadata:
	// the dispatch's parent is process 1's command span, a remote parent.
	if id := root.SpanContext().TraceID(); handle.SpanContext.TraceID() != id || dispatch.SpanContext.TraceID() != id || command.SpanContext.TraceID() != id {
		t.Errorf("traces: command %s, dispatch %s, handle %s; want all in the request's %s",
			command.SpanContext.TraceID(), dispatch.SpanContext.TraceID(), handle.SpanContext.TraceID(), id)
	}
	if dispatch.Parent.SpanID() != command.SpanContext.SpanID() || !dispatch.Parent.IsRemote() {
		t.Errorf("the event dispatch's parent is %s (remote %t), want the command's span %s, remote",
			dispatch.Parent.SpanID(), dispatch.Parent.IsRemote(), command.SpanContext.SpanID())
	}
	if handle.Parent.SpanID() != dispatch.SpanContext.SpanID() {
		t.Errorf("the event handler's parent is %s, want the dispatch span %s", handle.Parent.SpanID(), dispatch.SpanContext.SpanID())
	}
	checkSpan(t, dispatch, trace.SpanKindConsumer, attribute.String("lexigram.type", "test.order-placed"), attribute.Int64("lexigram.position", int64(res.Position)))
	checkSpan(t, handle, trace.SpanKindConsumer, attribute.String("lexigram.handler", "mailer"), attribute.String("lexigram.correlation_id", "corr-js"))
}
