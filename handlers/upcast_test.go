package handlers_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

type (
	upPlacedV1 struct{ Amount int }
	upPlacedV2 struct{ Cents int }
	upBundleV1 struct{ Amount int }
	upShipped  struct{ Via string }
	upNoteV1   struct{ Text string }
)

// The event bus, fed by the store, gets events upcast to their current
// versions: a stored event split in two reaches the handlers of both
// types, WaitFor on its position waits for both, and a retired event
// reaches no one but still counts as dispatched.
func TestEventBusReadsUpcastEvents(t *testing.T) {
	ctx := ctxT(t)
	reg := platform.NewRegistry()
	platform.MustRegister[upPlacedV1](reg, "up.placed", 1)
	platform.MustRegister[upBundleV1](reg, "up.bundle", 1)
	platform.MustRegister[upNoteV1](reg, "up.note", 1)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})
	res, err := store.Append(ctx, platform.StreamID{Type: "up", ID: "a"}, platform.NoStream(), []platform.Envelope{
		{Event: upPlacedV1{Amount: 1}}, {Event: upBundleV1{Amount: 2}}, {Event: upNoteV1{Text: "retired"}},
	})
	must(t, err)
	platform.MustRegister[upPlacedV2](reg, "up.placed", 2)
	platform.MustRegister[upShipped](reg, "up.shipped", 1)
	platform.MustUpcast(reg, func(e upPlacedV1) upPlacedV2 { return upPlacedV2{Cents: e.Amount} })
	platform.MustUpcastMany(reg, func(e upBundleV1) []any { return []any{upPlacedV1(e), upShipped{Via: "post"}} })
	platform.MustRetire[upNoteV1](reg)

	bus := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet()})
	var mu sync.Mutex
	var placed []upPlacedV2
	var shipped []upShipped
	release := make(chan struct{})
	must(t, handlers.HandleEvent(bus, "placed", func(_ context.Context, e upPlacedV2) error {
		mu.Lock()
		placed = append(placed, e)
		mu.Unlock()
		return nil
	}))
	must(t, handlers.HandleEvent(bus, "shipped", func(ctx context.Context, e upShipped) error {
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		shipped = append(shipped, e)
		mu.Unlock()
		return nil
	}))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bus.Run(runCtx, store, 0) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	split := res.FirstPosition + 1
	// The split's first part is handled; its second waits on release, so
	// WaitFor on its position must not return yet.
	waitCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = bus.WaitFor(waitCtx, split)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor(%d) while the split's second part is held = %v, want it to wait", split, err)
	}
	close(release)
	must(t, bus.WaitFor(ctx, res.LastPosition)) // the retired head counts as dispatched
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(placed, []upPlacedV2{{1}, {2}}) || !reflect.DeepEqual(shipped, []upShipped{{"post"}}) {
		t.Fatalf("handlers got placed %v, shipped %v", placed, shipped)
	}
}
