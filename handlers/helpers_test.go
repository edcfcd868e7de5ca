package handlers_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// The domain of the tests: orders.

type OrderPlaced struct{ Customer string }
type ItemAdded struct{ SKU string }

type Order struct {
	platform.AggregateRoot
	Customer string
	Items    []string
}

func (o *Order) AggregateType() string { return "order" }

func (o *Order) Apply(event any) {
	switch e := event.(type) {
	case OrderPlaced:
		o.Customer = e.Customer
	case ItemAdded:
		o.Items = append(o.Items, e.SKU)
	}
}

// PlaceOrder creates an order. CmdID, when set, is its message ID.
type PlaceOrder struct {
	OrderID  string
	Customer string
	CmdID    string
}

func (c PlaceOrder) MessageID() string { return c.CmdID }

func (c PlaceOrder) Validate() error {
	if c.OrderID == "" {
		return errors.New("OrderID is empty: give the order an ID")
	}
	return nil
}

type AddItem struct {
	OrderID string
	SKU     string
}

// Fail is a command whose handler returns the error it names.
type Fail struct{ What string }

type GetOrder struct{ OrderID string }

type OrderView struct {
	Customer string
	Items    []string
}

// Sleep is a command whose handler waits for its context to end, and
// reports what ended it on the test's channel.
type Sleep struct{ For time.Duration }

var reg = func() *platform.Registry {
	r := platform.NewRegistry()
	platform.MustRegister[OrderPlaced](r, "test.order-placed", 1)
	platform.MustRegister[ItemAdded](r, "test.item-added", 1)
	platform.MustRegister[PlaceOrder](r, "test.place-order", 1)
	platform.MustRegister[AddItem](r, "test.add-item", 1)
	platform.MustRegister[Fail](r, "test.fail", 1)
	platform.MustRegister[GetOrder](r, "test.get-order", 1)
	platform.MustRegister[Sleep](r, "test.sleep", 1)
	return r
}()

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// app is one simulated process serving the order handlers.
type app struct {
	store  *platform.MemoryEventStore
	orders *platform.Repository[*Order]
	buses  handlers.Buses
	slept  chan error // what ended each Sleep handler's context
}

func newApp(t *testing.T, o handlers.Options) *app {
	t.Helper()
	a := &app{store: platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg}), slept: make(chan error, 10)}
	a.orders = platform.NewRepository(a.store, func() *Order { return &Order{} }, platform.RepositoryOptions{})
	o.Registry = reg
	if o.Logger == nil {
		o.Logger = quiet()
	}
	a.buses.Commands = handlers.NewCommandBus(o)
	a.buses.Queries = handlers.NewQueryBus(o)
	a.buses.Events = handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: o.Logger, TracerProvider: o.TracerProvider, Metrics: o.Metrics})
	must(t, handlers.HandleCommand(a.buses.Commands, func(ctx context.Context, c PlaceOrder) error {
		o := &Order{}
		o.SetID(c.OrderID)
		platform.Raise(o, OrderPlaced{Customer: c.Customer})
		return handlers.Track(ctx, a.orders, o)
	}))
	must(t, handlers.HandleCommand(a.buses.Commands, func(ctx context.Context, c AddItem) error {
		o, err := handlers.Load(ctx, a.orders, c.OrderID)
		if err != nil {
			return err
		}
		platform.Raise(o, ItemAdded{SKU: c.SKU})
		return nil
	}))
	must(t, handlers.HandleCommand(a.buses.Commands, func(ctx context.Context, c Fail) error {
		switch c.What {
		case "ok":
			return nil
		case "panic":
			panic("boom")
		case "concurrency":
			return &platform.ConcurrencyError{Stream: platform.StreamID{Type: "order", ID: "o-9"}, Expected: platform.Exact(3), Actual: 5}
		case "not-found":
			return platform.Errorf(platform.CodeStreamNotFound, "order %q does not exist: place it first", "o-404")
		}
		return errors.New(c.What)
	}))
	must(t, handlers.HandleCommand(a.buses.Commands, func(ctx context.Context, c Sleep) error {
		select {
		case <-ctx.Done():
			a.slept <- ctx.Err()
			return ctx.Err()
		case <-time.After(c.For):
			a.slept <- nil
			return nil
		}
	}))
	must(t, handlers.HandleQuery(a.buses.Queries, func(ctx context.Context, q GetOrder) (OrderView, error) {
		o, err := a.orders.Load(ctx, q.OrderID)
		if err != nil {
			return OrderView{}, err
		}
		return OrderView{Customer: o.Customer, Items: o.Items}, nil
	}))
	return a
}

// run feeds a's event bus from its store until the test ends.
func (a *app) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.buses.Events.Run(ctx, a.store, 0) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("event bus Run: %v", err)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func events(t *testing.T, s *platform.MemoryEventStore) []platform.Envelope {
	t.Helper()
	var out []platform.Envelope
	for e, err := range s.ReadAll(t.Context(), 0) {
		must(t, err)
		out = append(out, e)
	}
	return out
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
