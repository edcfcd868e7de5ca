package projections_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"sync"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// Example keeps a count of orders per customer, follows new events, and
// waits for a command's effect before reading (read-your-writes). The
// memory stores stand in for jetstream.EventStore and
// kvsnapshot.CheckpointStore.
func Example() {
	ctx := context.Background()
	reg := platform.NewRegistry()
	platform.MustRegister[OrderPlaced](reg, "order.placed", 1)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})

	// The read model. Handle is idempotent: it records the position it
	// applied per order, so an event delivered again after a crash is
	// skipped.
	var mu sync.Mutex
	perCustomer := map[string]int{}
	applied := map[string]uint64{}
	handler := projections.HandlerFunc(func(ctx context.Context, gen projections.Generation, e platform.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		if applied[e.Stream.ID] >= e.Position {
			return nil
		}
		applied[e.Stream.ID] = e.Position
		perCustomer[e.Event.(OrderPlaced).Customer]++
		return nil
	})

	m, err := projections.New(store, projections.Options{
		Checkpoints: platform.NewMemoryCheckpointStore(),
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Register(projections.Projection{Name: "orders_per_customer", EventTypes: []string{"order.placed"}, Handler: handler}); err != nil {
		log.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer m.Stop(ctx)

	// A command appends; its result carries the position to wait for.
	res, err := store.Append(ctx, platform.StreamID{Type: "order", ID: "o-1"}, platform.NoStream(),
		[]platform.Envelope{{Event: OrderPlaced{Customer: "ada"}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.WaitFor(ctx, "orders_per_customer", res.LastPosition); err != nil {
		log.Fatal(err)
	}
	mu.Lock()
	fmt.Println("ada has", perCustomer["ada"], "order")
	mu.Unlock()
	// Output: ada has 1 order
}
