package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

func placed(pos uint64) platform.Envelope {
	return platform.Envelope{ID: "ev-" + string(rune('a'+pos%26)), Type: "test.order-placed", Position: pos, Event: OrderPlaced{Customer: "ada"}}
}

func TestEventFanOutInParallel(t *testing.T) {
	ctx := ctxT(t)
	bus := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet()})
	const n = 4
	// Every handler waits until all have started: only a parallel dispatch finishes.
	var started sync.WaitGroup
	started.Add(n)
	var got atomic.Int32
	for i := range n {
		must(t, handlers.HandleEvent(bus, string(rune('a'+i)), func(ctx context.Context, e OrderPlaced) error {
			started.Done()
			started.Wait()
			if e.Customer == "ada" {
				got.Add(1)
			}
			return nil
		}))
	}
	res, err := bus.Dispatch(ctx, placed(1))
	must(t, err)
	if got.Load() != n || len(res.Outcomes) != n || res.Position != 1 || res.Type != "test.order-placed" {
		t.Fatalf("%d handled; result %+v", got.Load(), res)
	}
	for i, o := range res.Outcomes {
		if o.Handler != string(rune('a'+i)) || o.Err != nil || o.Skipped {
			t.Errorf("outcome %d: %+v", i, o)
		}
	}
	// No handlers: nothing to do, no error.
	res, err = bus.Dispatch(ctx, platform.Envelope{Type: "test.item-added", Event: ItemAdded{}})
	if err != nil || len(res.Outcomes) != 0 {
		t.Errorf("no handlers: %+v, %v", res, err)
	}
}

func TestEventMaxConcurrentHandlers(t *testing.T) {
	ctx := ctxT(t)
	bus := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet(), MaxConcurrentHandlers: 2})
	var running, most atomic.Int32
	for i := range 6 {
		must(t, handlers.HandleEvent(bus, string(rune('a'+i)), func(context.Context, OrderPlaced) error {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond) // hold the slot so that others would overlap if they could
			running.Add(-1)
			return nil
		}))
	}
	_, err := bus.Dispatch(ctx, placed(1))
	must(t, err)
	if most.Load() != 2 {
		t.Errorf("at most %d handlers ran at once, want exactly 2", most.Load())
	}
}

func TestEventContinueOnErrorAndStopOnError(t *testing.T) {
	ctx := ctxT(t)
	boom := errors.New("boom")
	for _, tc := range []struct {
		name         string
		o            handlers.EventOptions
		wantLastRuns bool
	}{
		{"continue/parallel", handlers.EventOptions{}, true},
		{"continue/sequential", handlers.EventOptions{Sequential: true}, true},
		{"stop/sequential", handlers.EventOptions{Sequential: true, StopOnError: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.Registry, tc.o.Logger = reg, quiet()
			bus := handlers.NewEventBus(tc.o)
			var lastRan atomic.Bool
			must(t, handlers.HandleEvent(bus, "first", func(context.Context, OrderPlaced) error { return boom }))
			must(t, handlers.HandleEvent(bus, "second", func(context.Context, OrderPlaced) error { lastRan.Store(true); return nil }))
			res, err := bus.Dispatch(ctx, placed(1))
			if !errors.Is(err, platform.ErrEventHandler) || !errors.Is(err, boom) || !errors.Is(res.Outcomes[0].Err, boom) {
				t.Fatalf("error %v, outcomes %+v", err, res.Outcomes)
			}
			if lastRan.Load() != tc.wantLastRuns || res.Outcomes[1].Skipped == tc.wantLastRuns {
				t.Errorf("second handler ran: %v, outcome %+v", lastRan.Load(), res.Outcomes[1])
			}
		})
	}
	t.Run("stop/parallel", func(t *testing.T) {
		bus := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet(), StopOnError: true})
		must(t, handlers.HandleEvent(bus, "first", func(context.Context, OrderPlaced) error { return boom }))
		must(t, handlers.HandleEvent(bus, "slow", func(ctx context.Context, _ OrderPlaced) error {
			<-ctx.Done() // cancelled by the first handler's failure, long before the 30s timeout
			return ctx.Err()
		}))
		res, err := bus.Dispatch(ctx, placed(1))
		// The slow handler is cancelled: skipped if it had not started, else its outcome is the cancellation.
		if !errors.Is(err, boom) || !res.Outcomes[1].Skipped && !errors.Is(res.Outcomes[1].Err, context.Canceled) {
			t.Errorf("error %v, outcomes %+v", err, res.Outcomes)
		}
	})
}

func TestEventHandlerTimeout(t *testing.T) {
	ctx := ctxT(t)
	bus := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet(), HandlerTimeout: 30 * time.Millisecond})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	must(t, handlers.HandleEvent(bus, "stuck", func(context.Context, OrderPlaced) error { <-release; return nil })) // ignores its context
	must(t, handlers.HandleEvent(bus, "quick", func(context.Context, OrderPlaced) error { return nil }))
	res, err := bus.Dispatch(ctx, placed(1))
	if !errors.Is(err, platform.ErrHandlerTimeout) || !errors.Is(res.Outcomes[0].Err, platform.ErrEventHandler) || res.Outcomes[1].Err != nil {
		t.Fatalf("error %v, outcomes %+v", err, res.Outcomes)
	}
	if d := res.Outcomes[0].Duration; d < 30*time.Millisecond || d > 5*time.Second {
		t.Errorf("the stuck handler's outcome came after %s", d)
	}
}

func TestEventPanicRecovered(t *testing.T) {
	ctx := ctxT(t)
	for _, mw := range [][]handlers.Middleware{nil, {}} { // the default pipeline, and none at all
		bus := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet(), Middleware: mw, HandlerTimeout: -1})
		must(t, handlers.HandleEvent(bus, "bad", func(context.Context, OrderPlaced) error { panic("boom") }))
		_, err := bus.Dispatch(ctx, placed(1))
		if !errors.Is(err, platform.ErrHandlerPanic) || !errors.Is(err, platform.ErrEventHandler) {
			t.Errorf("middleware %v: %v", mw, err)
		}
	}
}

// counting wraps a store's Subscribe and tracks how far the feeder read
// ahead of the handlers.
type counting struct {
	src     handlers.Subscriber
	read    atomic.Int64
	handled atomic.Int64
	ahead   atomic.Int64 // the most read and not yet handled
}

func (c *counting) Subscribe(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error] {
	return func(yield func(platform.Envelope, error) bool) {
		for e, err := range c.src.Subscribe(ctx, after) {
			if err == nil {
				n := c.read.Add(1) - c.handled.Load()
				for {
					m := c.ahead.Load()
					if n <= m || c.ahead.CompareAndSwap(m, n) {
						break
					}
				}
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

func TestEventBackpressureBoundsMemory(t *testing.T) {
	ctx := ctxT(t)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})
	const total, queue = 200, 4
	for i := range total {
		_, err := store.Append(ctx, platform.StreamID{Type: "order", ID: "o-" + string(rune('a'+i%26)) + string(rune('a'+i/26))}, platform.NoStream(),
			[]platform.Envelope{{Event: OrderPlaced{Customer: "ada"}}})
		must(t, err)
	}
	m := handlers.NewMetrics(handlers.MetricsOptions{})
	bus := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet(), QueueSize: queue, Metrics: m})
	gate := make(chan struct{})
	src := &counting{src: store}
	must(t, handlers.HandleEvent(bus, "slow", func(context.Context, OrderPlaced) error {
		<-gate
		src.handled.Add(1)
		return nil
	}))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bus.Run(runCtx, src, 0) }()
	queued := fmt.Sprintf(`
# HELP lexigram_event_bus_queued Events waiting in the event bus's bounded channel of their type.
# TYPE lexigram_event_bus_queued gauge
lexigram_event_bus_queued{type="test.order-placed"} %d
`, queue)
	// With the handler stuck, the feeder fills the channel and then waits:
	// one event in the handler, queue in the channel, one in the feeder's hand.
	eventually(t, "a full channel", func() bool {
		return src.read.Load() == queue+2 && testutil.CollectAndCompare(m, strings.NewReader(queued), "lexigram_event_bus_queued") == nil
	})
	if r := src.read.Load(); r != queue+2 {
		t.Fatalf("the feeder read %d events with the handler stuck, want %d", r, queue+2)
	}
	close(gate)
	must(t, bus.WaitFor(ctx, total))
	if h := src.handled.Load(); h != total {
		t.Errorf("%d handled, want %d", h, total)
	}
	if a := src.ahead.Load(); a > queue+2 {
		t.Errorf("the feeder read up to %d events ahead of the handler, want at most %d", a, queue+2)
	}
	cancel()
	must(t, <-done)
}

func TestEventBusFedByTheStore(t *testing.T) {
	ctx := ctxT(t)
	m := handlers.NewMetrics(handlers.MetricsOptions{})
	a := newApp(t, handlers.Options{Metrics: m})
	var mu sync.Mutex
	var seen []platform.Envelope
	must(t, handlers.Subscribe(a.buses.Events, "test.item-added", "audit", func(_ context.Context, e platform.Envelope) error {
		mu.Lock()
		seen = append(seen, e)
		mu.Unlock()
		return nil
	}))
	must(t, handlers.HandleEvent(a.buses.Events, "flaky", func(_ context.Context, e ItemAdded) error {
		if e.SKU == "bad" {
			return errors.New("cannot ship bad")
		}
		return nil
	}))
	_, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1"})
	must(t, err)
	a.run(t) // after the first event: Run catches up from the start, then follows
	var last handlers.CommandResult
	for _, sku := range []string{"a", "bad", "c"} {
		last, err = a.buses.Commands.Dispatch(ctx, AddItem{OrderID: "o-1", SKU: sku})
		must(t, err)
	}
	must(t, a.buses.Events.WaitFor(ctx, last.Position))
	mu.Lock()
	if len(seen) != 3 || seen[0].Event != (ItemAdded{SKU: "a"}) || seen[2].Position != last.Position {
		t.Errorf("the audit handler saw %+v", seen)
	}
	mu.Unlock()
	// Every series, the command's included: a handler counted twice or
	// under the wrong label would show.
	err = testutil.CollectAndCompare(m, strings.NewReader(`
# HELP lexigram_handler_handled_total Commands, queries and events handled, by outcome: ok or the error code.
# TYPE lexigram_handler_handled_total counter
lexigram_handler_handled_total{handler="",kind="command",outcome="ok",type="test.add-item"} 3
lexigram_handler_handled_total{handler="",kind="command",outcome="ok",type="test.place-order"} 1
lexigram_handler_handled_total{handler="audit",kind="event",outcome="ok",type="test.item-added"} 3
lexigram_handler_handled_total{handler="flaky",kind="event",outcome="error",type="test.item-added"} 1
lexigram_handler_handled_total{handler="flaky",kind="event",outcome="ok",type="test.item-added"} 2
# HELP lexigram_handler_in_flight Handlers running now.
# TYPE lexigram_handler_in_flight gauge
lexigram_handler_in_flight{handler="",kind="command",type="test.add-item"} 0
lexigram_handler_in_flight{handler="",kind="command",type="test.place-order"} 0
lexigram_handler_in_flight{handler="audit",kind="event",type="test.item-added"} 0
lexigram_handler_in_flight{handler="flaky",kind="event",type="test.item-added"} 0
`), "lexigram_handler_handled_total", "lexigram_handler_in_flight")
	if err != nil {
		t.Error(err)
	}
	// Latencies vary, so the histogram is checked by its sample count.
	cmd := map[string]string{"kind": "command", "type": "test.add-item", "handler": ""}
	if v := sampleCount(t, m, "lexigram_handler_duration_seconds", cmd); v != 3 {
		t.Errorf("command latency samples: %v, want 3", v)
	}
}
