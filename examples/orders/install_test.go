package orders_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/examples/orders"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// syncBuffer is an io.Writer the audit handler and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runNode opens an in-memory node with the domain installed and runs it
// until the test ends.
func runNode(t *testing.T, opts orders.Options) *node.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	n, err := node.OpenInMemory(ctx, node.Options{Registry: platform.NewRegistry(), Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := orders.Install(ctx, n, opts); err != nil {
		_ = n.Close()
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- n.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("node stopped with %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-ran:
		t.Fatalf("node did not start: %v", err)
	case <-ctx.Done():
		t.Fatal("node did not start within 60s")
	}
	checkSagaListening(t, n)
	return n
}

// checkSagaListening checks that the saga's event consumer exists as soon
// as the node is ready: it starts from its creation, so an order
// confirmed before it would start no saga (Ready once closed before the
// saga manager, running in the background, had made it).
func checkSagaListening(t *testing.T, n *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.JetStream().Consumer(ctx, n.Store().StreamName(), "saga-"+orders.FulfillmentSaga); err != nil {
		t.Fatalf("the node is ready but the saga's consumer saga-%s is not there: %v", orders.FulfillmentSaga, err)
	}
}

// TestOrderLifecycle drives the domain through the node's buses: place,
// add and remove items, confirm; the summary query with After sees the
// confirmation at once, the saga ships the order, and the audit log has
// every event once.
func TestOrderLifecycle(t *testing.T) {
	audit := &syncBuffer{}
	n := runNode(t, orders.Options{AuditLog: audit})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dispatch := func(cmd any) handlers.CommandResult {
		t.Helper()
		res, err := n.Commands().Dispatch(ctx, cmd)
		if err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
		return res
	}
	dispatch(orders.PlaceOrder{ID: "o-1", Customer: "ada"})
	dispatch(orders.AddItem{ID: "o-1", SKU: "book", Quantity: 2, PriceCents: 1250})
	dispatch(orders.AddItem{ID: "o-1", SKU: "pen", Quantity: 1, PriceCents: 199})
	dispatch(orders.RemoveItem{ID: "o-1", SKU: "pen"})
	res := dispatch(orders.ConfirmOrder{ID: "o-1"})
	if res.Aggregate != (platform.StreamID{Type: "order", ID: "o-1"}) || res.Version != 5 || res.Position == 0 {
		t.Fatalf("confirm's result %+v: want order o-1 at version 5 with a position", res)
	}

	s, err := handlers.Ask[orders.OrderSummary](ctx, n.Queries(), orders.GetOrderSummary{ID: "o-1", After: res.Position})
	if err != nil {
		t.Fatal(err)
	}
	want := orders.OrderSummary{ID: "o-1", Customer: "ada", Status: orders.StatusConfirmed,
		Items: []orders.Line{{SKU: "book", Quantity: 2, PriceCents: 1250}}, Units: 2, TotalCents: 2500, Version: 5, Position: res.Position}
	s.UpdatedAt = time.Time{}
	if !equalSummary(s, want) {
		t.Fatalf("summary after confirm:\n got %+v\nwant %+v", s, want)
	}

	// The rules hold through the bus, with their codes.
	_, err = n.Commands().Dispatch(ctx, orders.AddItem{ID: "o-1", SKU: "cup", Quantity: 1, PriceCents: 500})
	if !errors.Is(err, orders.ErrNotOpen) || !errors.Is(err, platform.ErrInvalidArgument) {
		t.Errorf("add to a confirmed order: got %v, want ErrNotOpen with LXE-001", err)
	}
	_, err = n.Commands().Dispatch(ctx, orders.ConfirmOrder{ID: "nobody"})
	if !errors.Is(err, platform.ErrStreamNotFound) || !strings.Contains(err.Error(), "order.place") {
		t.Errorf("confirm an unknown order: got %v, want LXE-007 saying to place it", err)
	}
	_, err = handlers.Ask[orders.OrderSummary](ctx, n.Queries(), orders.GetOrderSummary{ID: "nobody"})
	if !errors.Is(err, platform.ErrStreamNotFound) {
		t.Errorf("summary of an unknown order: got %v, want LXE-007", err)
	}

	// The saga reserves, takes the payment, waits for its capture, ships.
	var shipped orders.OrderSummary
	for deadline := time.Now().Add(30 * time.Second); shipped.Status != orders.StatusShipped; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			in, _ := n.Sagas().Get(ctx, sagas.InstanceID(orders.FulfillmentSaga, "o-1"))
			t.Fatalf("the order did not ship within 30s: summary %+v, saga %+v", shipped, in)
		}
		if shipped, err = handlers.Ask[orders.OrderSummary](ctx, n.Queries(), orders.GetOrderSummary{ID: "o-1"}); err != nil {
			t.Fatal(err)
		}
	}
	in, err := n.Sagas().Get(ctx, sagas.InstanceID(orders.FulfillmentSaga, "o-1"))
	if err != nil || in.State != sagas.Completed {
		t.Errorf("saga instance: %+v, %v; want COMPLETED", in, err)
	}

	// The audit log: every event of the order, the stock and the payment,
	// once each, in the store's order.
	wantTypes := []string{"order.placed", "order.item-added", "order.item-added", "order.item-removed", "order.confirmed",
		"stock.reserved", "payment.captured", "order.shipped"}
	var got []string
	for deadline := time.Now().Add(30 * time.Second); len(got) < len(wantTypes); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("audit log after 30s has %v, want %v", got, wantTypes)
		}
		got = auditTypes(t, audit.String())
	}
	if strings.Join(got, " ") != strings.Join(wantTypes, " ") {
		t.Errorf("audit log types %v, want %v", got, wantTypes)
	}
}

func auditTypes(t *testing.T, log string) []string {
	var types []string
	var last uint64
	for line := range strings.SplitSeq(strings.TrimSpace(log), "\n") {
		if line == "" {
			continue
		}
		var rec struct {
			Position uint64
			Type     string
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		if rec.Position <= last {
			t.Fatalf("audit log out of order or repeated at position %d:\n%s", rec.Position, log)
		}
		last = rec.Position
		types = append(types, rec.Type)
	}
	return types
}

func equalSummary(a, b orders.OrderSummary) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// TestInstallTwiceInOneProcess: a second node in the same process (the
// types are in its registry already) installs too.
func TestInstallTwiceInOneProcess(t *testing.T) {
	ctx := context.Background()
	reg := platform.NewRegistry()
	for range 2 {
		n, err := node.OpenInMemory(ctx, node.Options{Registry: reg, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		err = orders.Install(ctx, n, orders.Options{})
		_ = n.Close()
		if err != nil {
			t.Fatalf("install: %v", err)
		}
	}
	if _, ok := reg.Lookup("order.place"); !ok {
		t.Fatal("order.place is not registered")
	}
}
