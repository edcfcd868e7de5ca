package projections_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// totals is a read model: each customer's order total and count of
// items, idempotent by the position it applied per order.
type totals struct {
	mu      sync.Mutex
	total   map[string]int
	items   map[string]int
	owner   map[string]string // order -> customer
	applied map[string]uint64
	seen    []string // "type@position", in the order handled
}

func newTotals() *totals {
	return &totals{total: map[string]int{}, items: map[string]int{}, owner: map[string]string{}, applied: map[string]uint64{}}
}

func (m *totals) Handle(_ context.Context, _ projections.Generation, e platform.Envelope) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = append(m.seen, fmt.Sprintf("%s@%d", e.Type, e.Position))
	if m.applied[e.Stream.ID] >= e.Position {
		return nil
	}
	m.applied[e.Stream.ID] = e.Position
	switch ev := e.Event.(type) {
	case OrderPlaced:
		m.owner[e.Stream.ID] = ev.Customer
		m.total[ev.Customer] += ev.Total
	case ItemAdded:
		c := m.owner[e.Stream.ID]
		m.total[c] += ev.Price
		m.items[c]++
	}
	return nil
}

func (m *totals) snapshot() (map[string]int, map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.total), maps.Clone(m.items)
}

func newProjectionStub(t *testing.T) *projections.Stub {
	t.Helper()
	s := projections.NewStub(projections.StubOptions{Registry: registry})
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

// Given returns once the handler has applied the events, in order, only
// those of the projection's types, and the position moved past the rest.
func TestStubAppliesGivenEventsInOrder(t *testing.T) {
	ctx := testContext(t)
	s := newProjectionStub(t)
	m := newTotals()
	if err := s.Register(projections.Projection{Name: "placed", EventTypes: []string{"order.placed"}, Handler: m}); err != nil {
		t.Fatal(err)
	}
	all := newTotals()
	if err := s.Register(projections.Projection{Name: "all", Handler: all}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Given(ctx, platform.StreamID{Type: "order", ID: "o-1"}, OrderPlaced{Customer: "ada", Total: 10}, ItemAdded{SKU: "pen", Price: 2}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Given(ctx, platform.StreamID{Type: "order", ID: "o-2"}, OrderPlaced{Customer: "bob", Total: 5}, ItemAdded{SKU: "ink", Price: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	placed := slices.Clone(m.seen)
	m.mu.Unlock()
	if want := []string{"order.placed@1", "order.placed@3"}; !slices.Equal(placed, want) {
		t.Fatalf("the filtered projection handled %v, want %v", placed, want)
	}
	total, items := all.snapshot()
	if total["ada"] != 12 || total["bob"] != 6 || items["ada"] != 1 || items["bob"] != 1 {
		t.Fatalf("read model totals %v items %v, want ada 12/1 and bob 6/1", total, items)
	}
	for _, name := range []string{"placed", "all"} {
		st, err := s.Manager.Status(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Position != res.LastPosition || st.State != projections.Live {
			t.Errorf("%s: %s at position %d, want LIVE at %d (events of other types move it too)", name, st.State, st.Position, res.LastPosition)
		}
	}
}

// A projection registered after events were stored catches up on them;
// Settle waits for events appended to the store directly.
func TestStubCatchesUpAndSettles(t *testing.T) {
	ctx := testContext(t)
	s := newProjectionStub(t)
	appendOrders(t, s.Store, "x", 3, 2)
	m := newTotals()
	if err := s.Register(projections.Projection{Name: "late", Handler: m}); err != nil {
		t.Fatal(err)
	}
	if err := s.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	total, items := m.snapshot()
	if total["cx"] != 0+1+2+3*(0+1) || items["cx"] != 6 {
		t.Fatalf("totals %v items %v, want cx 6/6 after catching up", total, items)
	}
}

// A handler's error faults the projection, and Given says so rather than
// waiting.
func TestStubReportsAFaultedProjection(t *testing.T) {
	ctx := testContext(t)
	s := newProjectionStub(t)
	broken := errors.New("the read model is full")
	h := projections.HandlerFunc(func(_ context.Context, _ projections.Generation, e platform.Envelope) error {
		if _, ok := e.Event.(ItemAdded); ok {
			return broken
		}
		return nil
	})
	if err := s.Register(projections.Projection{Name: "broken", Handler: h}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Given(ctx, platform.StreamID{Type: "order", ID: "o-1"}, OrderPlaced{Customer: "ada"}, ItemAdded{SKU: "pen"})
	if !errors.Is(err, broken) || !errors.Is(err, platform.ErrProjectionBuild) {
		t.Fatalf("Given: %v, want the handler's error as a FAULTED projection's", err)
	}
	st, _ := s.Manager.Status(ctx, "broken")
	if st.State != projections.Faulted || st.Position != 1 {
		t.Fatalf("%s at %d, want FAULTED at 1 (the event before the failing one applied)", st.State, st.Position)
	}
}

// memBatch is a BatchHandler keeping its rows and position together.
type memBatch struct {
	mu   sync.Mutex
	pos  uint64
	rows []uint64
}

func (b *memBatch) Position(context.Context, projections.Generation) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pos, nil
}

func (b *memBatch) ApplyBatch(_ context.Context, _ projections.Generation, batch projections.Batch) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if batch.From != b.pos {
		return platform.ErrCheckpointConflict
	}
	for _, e := range batch.Events {
		b.rows = append(b.rows, e.Position)
	}
	b.pos = batch.To
	return nil
}

func TestStubRunsBatchHandlers(t *testing.T) {
	ctx := testContext(t)
	s := projections.NewStub(projections.StubOptions{Registry: registry, Manager: projections.Options{BatchSize: 2}})
	defer s.Close(ctx)
	b := &memBatch{}
	if err := s.Register(projections.Projection{Name: "rows", EventTypes: []string{"order.item-added"}, Batch: b}); err != nil {
		t.Fatal(err)
	}
	last := appendOrders(t, s.Store, "b", 2, 3)
	if err := s.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if want := []uint64{2, 3, 4, 6, 7, 8}; !slices.Equal(b.rows, want) || b.pos != last {
		t.Fatalf("rows %v at position %d, want %v at %d", b.rows, b.pos, want, last)
	}
}

// The same projection through the stub and through a manager on
// JetStream ends with the same read model, the same events handled and
// the same position.
func TestStubMatchesTheManager(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	real := newTotals()
	m := n.manager(t, projections.Options{BatchSize: 3})
	if err := m.Register(projections.Projection{Name: "totals", Handler: real}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	last := appendOrders(t, n.store, "r", 4, 3)
	if err := m.WaitFor(ctx, "totals", last); err != nil {
		t.Fatal(err)
	}

	s := projections.NewStub(projections.StubOptions{Registry: registry, Manager: projections.Options{BatchSize: 3}})
	defer s.Close(ctx)
	stub := newTotals()
	if err := s.Register(projections.Projection{Name: "totals", Handler: stub}); err != nil {
		t.Fatal(err)
	}
	if got := appendOrders(t, s.Store, "r", 4, 3); got != last {
		t.Fatalf("the stub's store ended at %d, the server's at %d", got, last)
	}
	if err := s.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	rt, ri := real.snapshot()
	st, si := stub.snapshot()
	if !maps.Equal(rt, st) || !maps.Equal(ri, si) {
		t.Fatalf("read models differ: stub %v/%v, manager %v/%v", st, si, rt, ri)
	}
	real.mu.Lock()
	stub.mu.Lock()
	defer real.mu.Unlock()
	defer stub.mu.Unlock()
	if !slices.Equal(real.seen, stub.seen) {
		t.Fatalf("events handled differ:\nstub    %v\nmanager %v", stub.seen, real.seen)
	}
}

// ExampleStub unit-tests a projection with no NATS: Given returns once
// the projection has applied the events, so the read model can be read
// at once.
func ExampleStub() {
	reg := platform.NewRegistry()
	platform.MustRegister[OrderPlaced](reg, "order.placed", 1)
	s := projections.NewStub(projections.StubOptions{Registry: reg})
	ctx := context.Background()
	defer s.Close(ctx)

	perCustomer := map[string]int{} // touched only by the projection, and read after Given
	var mu sync.Mutex
	_ = s.Register(projections.Projection{Name: "per_customer", EventTypes: []string{"order.placed"},
		Handler: projections.HandlerFunc(func(_ context.Context, _ projections.Generation, e platform.Envelope) error {
			mu.Lock()
			defer mu.Unlock()
			perCustomer[e.Event.(OrderPlaced).Customer]++
			return nil
		})})

	_, _ = s.Given(ctx, platform.StreamID{Type: "order", ID: "o-1"}, OrderPlaced{Customer: "ada"})
	_, err := s.Given(ctx, platform.StreamID{Type: "order", ID: "o-2"}, OrderPlaced{Customer: "ada"})
	mu.Lock()
	fmt.Println("ada has", perCustomer["ada"], "orders; err:", err)
	mu.Unlock()
	// Output: ada has 2 orders; err: <nil>
}

func TestStubRefusesBadOptions(t *testing.T) {
	s := projections.NewStub(projections.StubOptions{Registry: registry, Manager: projections.Options{BatchSize: -1}})
	defer s.Close(context.Background())
	err := s.Register(projections.Projection{Name: "p", Handler: newTotals()})
	if !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "batch size -1") {
		t.Fatalf("Register on a stub with a negative batch size: %v, want the manager's refusal naming it", err)
	}
}
