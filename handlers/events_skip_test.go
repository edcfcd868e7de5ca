package handlers_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type invoiced struct{ Amount int }

// TestEventBusSkipsUndecodable: an event of a type this process does not
// register (another service's, in a shared stream) is skipped and counted;
// the bus goes on to the next event instead of stopping the node.
func TestEventBusSkipsUndecodable(t *testing.T) {
	js, err := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	must(t, err)
	theirs := platform.NewRegistry()
	platform.MustRegister[invoiced](theirs, "billing.invoiced", 1)
	platform.MustRegister[OrderPlaced](theirs, "test.order-placed", 1)
	ours := platform.NewRegistry()
	platform.MustRegister[OrderPlaced](ours, "test.order-placed", 1)
	writer, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: theirs, Logger: embeddedtest.Logger(t)})
	must(t, err)
	reader, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: ours, Logger: embeddedtest.Logger(t)})
	must(t, err)

	bus := handlers.NewEventBus(handlers.EventOptions{Registry: ours, Logger: embeddedtest.Logger(t)})
	got := make(chan platform.Envelope, 4)
	must(t, handlers.HandleEvent(bus, "shipping", func(_ context.Context, e OrderPlaced) error {
		got <- platform.Envelope{Event: e}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bus.Run(ctx, reader, 0) }()

	_, err = writer.Append(t.Context(), platform.StreamID{Type: "invoice", ID: "i-1"}, platform.NoStream(), []platform.Envelope{{Event: invoiced{Amount: 3}}})
	must(t, err)
	res, err := writer.Append(t.Context(), platform.StreamID{Type: "order", ID: "o-1"}, platform.NoStream(), []platform.Envelope{{Event: OrderPlaced{Customer: "ada"}}})
	must(t, err)
	select {
	case e := <-got:
		if e.Event.(OrderPlaced).Customer != "ada" {
			t.Fatalf("the handler got %+v", e)
		}
	case err := <-done:
		t.Fatalf("the bus stopped at the foreign event: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the event after a foreign one never reached its handler")
	}
	wctx, wcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer wcancel()
	must(t, bus.WaitFor(wctx, res.LastPosition))
	if n := bus.Skipped(); n != 1 {
		t.Errorf("Skipped() = %d, want 1", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
