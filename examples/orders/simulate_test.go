package orders

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
	"github.com/lexigram/events/simulate"
)

// This test shows how to use package simulate on a domain's own code:
// the order command handlers run on a store whose appends meet
// concurrency conflicts, the fulfilment saga runs in a sagas.Stub whose
// payment deadline fires late or after its cancel, the store's events
// reach the saga and the summary projection as an at-least-once consumer
// delivers them (duplicates, redeliveries, crashes before the ack,
// aggregates interleaved), and the domain's invariants are checked at the
// end of every seed. A failing seed is printed with its trace and the
// command that replays it alone:
//
//	LEXIGRAM_SIMULATE_SEED=<seed> go test ./examples/orders -run TestDomainUnderFaults

// simEpoch is where the saga stub's clock starts.
var simEpoch = time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)

// world is one seed's domain: the store, the command bus with the
// domain's handlers, the saga stub and the summaries' bucket.
type world struct {
	sim       *simulate.Sim
	store     *platform.MemoryEventStore
	bus       *handlers.CommandBus
	sagas     *sagas.Stub
	summaries *kvSummaries
	kv        *memKV
	delivered uint64 // the last position handed to the saga
}

func newWorld(t *testing.T, s *simulate.Sim) *world {
	t.Helper()
	reg := platform.NewRegistry()
	if err := registerTypes(reg); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	w := &world{sim: s, store: platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg}), kv: &memKV{values: map[string][]byte{}}}
	conflicting := s.Store(w.store)
	d := &domain{
		log:          log,
		orders:       platform.NewRepository(conflicting, func() *Order { return &Order{} }, platform.RepositoryOptions{}),
		reservations: platform.NewRepository(conflicting, func() *Reservation { return &Reservation{} }, platform.RepositoryOptions{}),
		payments:     platform.NewRepository(conflicting, func() *Payment { return &Payment{} }, platform.RepositoryOptions{}),
		summaries:    &kvSummaries{kv: w.kv},
	}
	w.summaries = d.summaries
	// The node's pipeline, less what needs a server or a clock (tracing,
	// metrics, the breaker, timeouts): a conflict is retried in a fresh
	// unit of work that reloads the aggregate.
	w.bus = handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: log, Middleware: []handlers.Middleware{
		handlers.Validation(),
		handlers.Retry(handlers.RetryOptions{Initial: time.Millisecond, Max: 2 * time.Millisecond}),
		handlers.Transaction(),
		handlers.Recovery(log),
	}})
	if err := errors.Join(d.handleCommands(w.bus), d.handleServices(w.bus)); err != nil {
		t.Fatal(err)
	}
	w.sagas = sagas.NewStub(sagas.StubOptions{Commands: w.bus, Timers: s, Start: simEpoch, Logger: log})
	if err := w.sagas.Register(fulfillment()); err != nil {
		t.Fatal(err)
	}
	return w
}

// stored reads the store's events after a position.
func (w *world) stored(ctx context.Context, after uint64) ([]platform.Envelope, error) {
	var out []platform.Envelope
	for e, err := range w.store.ReadAll(ctx, after) {
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// feedSaga hands the saga's listener the events stored since the last
// feed, under the seed's delivery faults; the saga's commands store more,
// fed on the next round.
func (w *world) feedSaga(ctx context.Context) (int, error) {
	events, err := w.stored(ctx, w.delivered)
	if err != nil || len(events) == 0 {
		return 0, err
	}
	w.delivered = events[len(events)-1].Position
	return len(events), w.sim.Deliver(ctx, events, func(ctx context.Context, e platform.Envelope) error {
		return w.sagas.Deliver(ctx, e)
	})
}

// orderPlan is what the workload does with order i: its items, and
// whether the customer cancels it before confirming.
func orderPlan(i int) (items []AddItem, cancel bool) {
	id := fmt.Sprintf("order-%d", i)
	for k := range 1 + i%3 {
		items = append(items, AddItem{ID: id, SKU: fmt.Sprintf("sku-%d", k), Quantity: 1 + (i+k)%4, PriceCents: int64(250 * (k + 1))})
	}
	return items, i%4 == 3
}

const simOrders = 6

func TestDomainUnderFaults(t *testing.T) {
	// What the seeds met, to show the faults and both outcomes happened.
	met := map[string]int{}
	simulate.Check(t, simulate.Options{Seed: 1, Runs: 40}, func(s *simulate.Sim) error {
		ctx := t.Context()
		w := newWorld(t, s)
		defer func() { w.tally(ctx, met) }()

		// The customers' commands, each through the bus's retries.
		for i := range simOrders {
			id := fmt.Sprintf("order-%d", i)
			items, cancel := orderPlan(i)
			cmds := []any{PlaceOrder{ID: id, Customer: fmt.Sprintf("customer-%d", i%2)}}
			for _, it := range items {
				cmds = append(cmds, it)
			}
			if len(items) > 1 {
				cmds = append(cmds, RemoveItem{ID: id, SKU: items[0].SKU})
			}
			if cancel {
				cmds = append(cmds, CancelOrder{ID: id, Reason: "changed my mind"})
			} else {
				cmds = append(cmds, ConfirmOrder{ID: id})
			}
			for _, c := range cmds {
				if _, err := w.bus.Dispatch(ctx, c); err != nil {
					return fmt.Errorf("%T for %s: %w", c, id, err)
				}
			}
		}

		// The saga: fed what the store holds, round after round, the
		// services' replies coming after a seeded while, sometimes past
		// the payment deadline.
		for round := 0; ; round++ {
			n, err := w.feedSaga(ctx)
			if err != nil {
				return fmt.Errorf("round %d: deliver to the saga: %w", round, err)
			}
			if n == 0 {
				break
			}
			if round > 20 {
				return errors.New("the saga kept storing events for 20 rounds")
			}
			if err := w.sagas.Advance(ctx, s.Duration(PaymentTimeout*3/2, fmt.Sprintf("round %d: the next replies come after", round))); err != nil {
				return err
			}
		}
		// Every timer fires, late and stale ones too; what they set off is
		// fed as well.
		if err := w.sagas.Advance(ctx, 24*time.Hour); err != nil {
			return err
		}
		if _, err := w.feedSaga(ctx); err != nil {
			return err
		}

		// The summary projection's handler, fed all of it.
		all, err := w.stored(ctx, 0)
		if err != nil {
			return err
		}
		if err := s.Deliver(ctx, all, func(ctx context.Context, e platform.Envelope) error {
			if e.Stream.Type != AggregateType {
				return nil // the projection reads order events only
			}
			return w.summaries.Handle(ctx, 1, e)
		}); err != nil {
			return fmt.Errorf("deliver to the summary projection: %w", err)
		}
		return w.check(ctx, all)
	})
	for _, what := range []string{"completed", "compensated", "timed out", "conflict", "duplicate", "crash", "late", "fires anyway"} {
		if met[what] == 0 {
			t.Errorf("no seed met %q (met %v): the scenario does not exercise it", what, met)
		}
	}
}

// tally counts the seed's outcomes and faults into met.
func (w *world) tally(ctx context.Context, met map[string]int) {
	for i := range simOrders {
		in, err := w.sagas.Find(ctx, FulfillmentSaga, fmt.Sprintf("order-%d", i))
		if err != nil {
			continue
		}
		met[strings.ToLower(string(in.State))]++
		for _, h := range in.History {
			if h.Outcome == "timed out" {
				met["timed out"]++
			}
		}
	}
	for _, line := range w.sim.Trace() {
		for _, what := range []string{"conflict", "duplicate", "crash", "late", "fires anyway"} {
			if strings.Contains(line, what) {
				met[what]++
			}
		}
	}
}

// check asserts the domain's invariants over the store's events.
func (w *world) check(ctx context.Context, all []platform.Envelope) error {
	byStream := map[platform.StreamID][]platform.Envelope{}
	for _, e := range all {
		byStream[e.Stream] = append(byStream[e.Stream], e)
	}
	count := func(stream platform.StreamID, match func(any) bool) int {
		n := 0
		for _, e := range byStream[stream] {
			if match(e.Event) {
				n++
			}
		}
		return n
	}
	var confirmedTotal, summaryTotal int64
	for i := range simOrders {
		id := fmt.Sprintf("order-%d", i)
		stream := platform.StreamID{Type: AggregateType, ID: id}
		events := byStream[stream]

		// The summary is the fold of the order's events in their order,
		// whatever the delivery did.
		var want OrderSummary
		for _, e := range events {
			want.apply(e)
		}
		got, ok, err := w.summaries.get(ctx, id)
		if err != nil {
			return err
		}
		if !ok || got.Status != want.Status || got.TotalCents != want.TotalCents || got.Units != want.Units || got.Version != want.Version {
			return fmt.Errorf("%s: summary %+v, want the fold of its %d events: %+v", id, got, len(events), want)
		}
		if count(stream, func(e any) bool { _, ok := e.(OrderPlaced); return ok }) != 1 {
			return fmt.Errorf("%s placed %d times, want once (a conflict's retry placed it again?)", id, count(stream, func(e any) bool { _, ok := e.(OrderPlaced); return ok }))
		}

		_, cancelled := orderPlan(i)
		in, err := w.sagas.Find(ctx, FulfillmentSaga, id)
		if cancelled {
			if !errors.Is(err, platform.ErrSagaNotFound) {
				return fmt.Errorf("%s was cancelled before confirming, yet has a saga (%v, %+v)", id, err, in)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%s was confirmed and has no saga: %w", id, err)
		}
		for _, e := range events {
			if c, ok := e.Event.(OrderConfirmed); ok {
				confirmedTotal += c.TotalCents
			}
		}
		if got.Status == StatusShipped {
			summaryTotal += got.TotalCents
		}

		// The saga ends once, one way or the other, and its effects say
		// the same: shipped with the stock and the payment kept, or
		// cancelled with them given back, each exactly once.
		shipped := count(stream, func(e any) bool { _, ok := e.(OrderShipped); return ok })
		cancels := count(stream, func(e any) bool { _, ok := e.(OrderCancelled); return ok })
		stock, pay := platform.StreamID{Type: "stock", ID: id}, platform.StreamID{Type: "payment", ID: paymentID(id)}
		reserved := count(stock, func(e any) bool { _, ok := e.(StockReserved); return ok })
		released := count(stock, func(e any) bool { _, ok := e.(StockReleased); return ok })
		captured := count(pay, func(e any) bool { _, ok := e.(PaymentCaptured); return ok })
		refunded := count(pay, func(e any) bool { _, ok := e.(PaymentRefunded); return ok })
		switch in.State {
		case sagas.Completed:
			if shipped != 1 || cancels != 0 || reserved != 1 || released != 0 || captured != 1 || refunded != 0 {
				return fmt.Errorf("%s: saga COMPLETED with shipped %d, cancelled %d, stock reserved %d released %d, payment captured %d refunded %d: want 1,0,1,0,1,0",
					id, shipped, cancels, reserved, released, captured, refunded)
			}
		case sagas.Compensated:
			if shipped != 0 || cancels != 1 || reserved != 1 || released != 1 || captured != 1 || refunded != 1 {
				return fmt.Errorf("%s: saga COMPENSATED (%s) with shipped %d, cancelled %d, stock reserved %d released %d, payment captured %d refunded %d: want 0,1,1,1,1,1",
					id, in.Error, shipped, cancels, reserved, released, captured, refunded)
			}
		default:
			return fmt.Errorf("%s: saga %s at step %d (%s): want it COMPLETED or COMPENSATED", id, in.State, in.Step, in.Error)
		}
	}
	// The shipped orders' summaries add up to what was confirmed and
	// not given back.
	var keptTotal int64
	for i := range simOrders {
		id := fmt.Sprintf("order-%d", i)
		if in, err := w.sagas.Find(ctx, FulfillmentSaga, id); err == nil && in.State == sagas.Completed {
			for _, e := range byStream[platform.StreamID{Type: AggregateType, ID: id}] {
				if c, ok := e.Event.(OrderConfirmed); ok {
					keptTotal += c.TotalCents
				}
			}
		}
	}
	if summaryTotal != keptTotal || keptTotal > confirmedTotal {
		return fmt.Errorf("the shipped summaries total %d cents; the completed sagas' orders were confirmed for %d (all confirmed: %d)", summaryTotal, keptTotal, confirmedTotal)
	}
	return nil
}

// memKV is the summaries' bucket in memory: the three calls kvSummaries
// makes. (Any other call panics on the nil interface: the test would
// name it.)
type memKV struct {
	jetstream.KeyValue
	mu     sync.Mutex
	values map[string][]byte
	rev    uint64
}

func (k *memKV) Bucket() string { return DefaultSummaryBucket }

func (k *memKV) Get(_ context.Context, key string) (jetstream.KeyValueEntry, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.values[key]
	if !ok {
		return nil, jetstream.ErrKeyNotFound
	}
	return memEntry{value: v}, nil
}

func (k *memKV) Put(_ context.Context, key string, value []byte) (uint64, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.values[key] = append([]byte(nil), value...)
	k.rev++
	return k.rev, nil
}

type memEntry struct {
	jetstream.KeyValueEntry
	value []byte
}

func (e memEntry) Value() []byte { return e.value }
