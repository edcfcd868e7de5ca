package handlers_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

func TestStubDeliversCommandEventsToHandlers(t *testing.T) {
	ctx := ctxT(t)
	stub := handlers.NewStub(handlers.StubOptions{Registry: reg})
	t.Cleanup(func() { must(t, stub.Close()) })
	orders := handlers.StubRepository(stub, func() *Order { return &Order{} })
	must(t, handlers.HandleCommand(stub.Commands, func(ctx context.Context, c PlaceOrder) error {
		o := &Order{}
		o.SetID(c.OrderID)
		platform.Raise(o, OrderPlaced{Customer: c.Customer})
		return handlers.Track(ctx, orders, o)
	}))
	var placedN atomic.Int32
	must(t, handlers.HandleEvent(stub.Events, "count", func(context.Context, OrderPlaced) error { placedN.Add(1); return nil }))
	must(t, handlers.HandleEvent(stub.Events, "picky", func(_ context.Context, e OrderPlaced) error {
		if e.Customer == "bob" {
			return errors.New("no bob")
		}
		return nil
	}))
	for _, who := range []string{"ada", "bob"} {
		if _, err := stub.Dispatch(ctx, PlaceOrder{OrderID: "o-" + who, Customer: who}); err != nil {
			t.Fatal(err)
		}
	}
	// Dispatch returned after the handlers ran.
	if placedN.Load() != 2 {
		t.Errorf("the handler saw %d events, want 2", placedN.Load())
	}
	if err := stub.EventErrors(); !errors.Is(err, platform.ErrEventHandler) {
		t.Errorf("event errors: %v", err)
	}
	// Events appended without a command are delivered too.
	_, err := stub.Store.Append(ctx, platform.StreamID{Type: "order", ID: "o-x"}, platform.NoStream(), []platform.Envelope{{Event: OrderPlaced{}}})
	must(t, err)
	must(t, stub.Settle(ctx))
	if placedN.Load() != 3 {
		t.Errorf("after Settle the handler saw %d events, want 3", placedN.Load())
	}
}

func TestScopeMiddlewareAndClose(t *testing.T) {
	ctx := ctxT(t)
	stub := handlers.NewStub(handlers.StubOptions{Registry: reg})
	t.Cleanup(func() { must(t, stub.Close()) })
	var seen []string
	audit := handlers.Middleware{Name: "audit", Command: func(next handlers.CommandHandlerFunc) handlers.CommandHandlerFunc {
		return func(ctx context.Context, cmd handlers.Message) (handlers.CommandResult, error) {
			seen = append(seen, cmd.Type)
			return next(ctx, cmd)
		}
	}}
	scope := handlers.NewScope("billing", stub.Buses, audit)
	must(t, handlers.HandleCommand(scope, func(context.Context, AddItem) error { return nil }))
	must(t, handlers.HandleQuery(scope, func(context.Context, GetOrder) (OrderView, error) { return OrderView{Customer: "ada"}, nil }))
	must(t, handlers.HandleEvent(scope, "scoped", func(context.Context, ItemAdded) error { return nil }))
	if _, err := stub.Dispatch(ctx, AddItem{}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0] != "test.add-item" {
		t.Errorf("the scope's middleware saw %v", seen)
	}
	scope.Close()
	if _, err := stub.Dispatch(ctx, AddItem{}); !errors.Is(err, platform.ErrNoHandler) {
		t.Errorf("after Close: %v", err)
	}
	if _, err := handlers.Ask[OrderView](ctx, stub.Queries, GetOrder{}); !errors.Is(err, platform.ErrNoHandler) {
		t.Errorf("query after Close: %v", err)
	}
	if res, _ := stub.Events.Dispatch(ctx, platform.Envelope{Type: "test.item-added", Event: ItemAdded{}}); len(res.Outcomes) != 0 {
		t.Errorf("event handlers after Close: %+v", res.Outcomes)
	}
	// The names are free again.
	must(t, handlers.HandleEvent(stub.Events, "scoped", func(context.Context, ItemAdded) error { return nil }))
}
