package handlers_test

import (
	"context"
	"testing"

	natsjs "github.com/nats-io/nats.go/jetstream"

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
	rec := &recorder{}

	// Process 1 handles commands.
	commandStore := store()
	orders := platform.NewRepository(commandStore, func() *Order { return &Order{} }, platform.RepositoryOptions{})
	cmds := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet(), Remote: newRemote(t, embeddedtest.Conn(t, srv)), TracerProvider: rec})
	must(t, handlers.HandleCommand(cmds, func(ctx context.Context, c PlaceOrder) error {
		o := &Order{}
		o.SetID(c.OrderID)
		platform.Raise(o, OrderPlaced{Customer: c.Customer})
		return handlers.Track(ctx, orders, o)
	}))

	// Process 2 handles events, fed by its own view of the stream.
	events := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet(), TracerProvider: rec})
	got := make(chan platform.Envelope, 1)
	must(t, handlers.Subscribe(events, "test.order-placed", "mailer", func(_ context.Context, e platform.Envelope) error { got <- e; return nil }))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	feed := store()
	go func() { done <- events.Run(runCtx, feed, 0) }()
	t.Cleanup(func() { cancel(); must(t, <-done) })

	// Process 3 sends.
	sender := client(t, embeddedtest.Conn(t, srv), rec)
	reqCtx, root := rec.Tracer("test").Start(ctx, "request")
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
	eventually(t, "the event handler's span", func() bool { return rec.find("handle event test.order-placed") != nil })
	if h := rec.find("handle event test.order-placed"); h.sc.TraceID() != root.SpanContext().TraceID() {
		t.Error("the event handler's span is not in the command's trace")
	}
}
