package handlers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

func TestCommandRoundTripInProcess(t *testing.T) {
	ctx := ctxT(t)
	a := newApp(t, handlers.Options{})
	res, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1", Customer: "ada", CmdID: "cmd-1"})
	must(t, err)
	if res.Aggregate != (platform.StreamID{Type: "order", ID: "o-1"}) || res.Version != 1 || res.Position != 1 || len(res.Events) != 1 {
		t.Fatalf("result %+v", res)
	}
	ev := res.Events[0]
	if ev.Type != "test.order-placed" || ev.Event != (OrderPlaced{Customer: "ada"}) || ev.Version != 1 || ev.Position != 1 {
		t.Errorf("event %+v", ev)
	}
	// The command's ID is the causation; with no correlation in ctx it is the correlation too.
	if ev.CausationID != "cmd-1" || ev.CorrelationID != "cmd-1" {
		t.Errorf("causation %q, correlation %q: want cmd-1 for both", ev.CausationID, ev.CorrelationID)
	}

	res, err = a.buses.Commands.Dispatch(platform.WithCorrelationID(ctx, "req-7"), AddItem{OrderID: "o-1", SKU: "book"})
	must(t, err)
	if res.Version != 2 || res.Position != 2 || len(res.Changes) != 1 || res.Changes[0].Result.LastVersion != 2 {
		t.Fatalf("second result %+v", res)
	}
	stored := events(t, a.store)
	if len(stored) != 2 || stored[1].CorrelationID != "req-7" || stored[1].CausationID == "" || stored[1].CausationID == "cmd-1" {
		t.Fatalf("stored %+v", stored)
	}
	if stored[1].CausationID != res.Events[0].CausationID {
		t.Errorf("stored causation %q, result's %q", stored[1].CausationID, res.Events[0].CausationID)
	}

	view, err := handlers.Ask[OrderView](ctx, a.buses.Queries, GetOrder{OrderID: "o-1"})
	must(t, err)
	if view.Customer != "ada" || len(view.Items) != 1 || view.Items[0] != "book" {
		t.Errorf("view %+v", view)
	}
	if _, err := handlers.Ask[string](ctx, a.buses.Queries, GetOrder{OrderID: "o-1"}); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Errorf("asking for the wrong result type: %v", err)
	}
	_, err = handlers.Ask[OrderView](ctx, a.buses.Queries, GetOrder{OrderID: "nope"})
	if !errors.Is(err, platform.ErrQueryExecution) || !errors.Is(err, platform.ErrStreamNotFound) {
		t.Errorf("query of a missing order: %v; want LXE-006 wrapping LXE-007", err)
	}
}

func TestNoHandlerAndDuplicateHandler(t *testing.T) {
	ctx := ctxT(t)
	cmds := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: quiet()})
	qs := handlers.NewQueryBus(handlers.Options{Registry: reg, Logger: quiet()})
	if _, err := cmds.Dispatch(ctx, AddItem{OrderID: "o-1"}); !errors.Is(err, platform.ErrNoHandler) || !strings.Contains(err.Error(), "test.add-item") {
		t.Errorf("no handler: %v", err)
	}
	if _, err := handlers.Ask[OrderView](ctx, qs, GetOrder{}); !errors.Is(err, platform.ErrNoHandler) {
		t.Errorf("no query handler: %v", err)
	}
	if _, err := cmds.Dispatch(ctx, struct{ X int }{}); !errors.Is(err, platform.ErrUnknownEventType) {
		t.Errorf("unregistered command type: %v", err)
	}
	h := func(context.Context, AddItem) error { return nil }
	must(t, handlers.HandleCommand(cmds, h))
	if err := handlers.HandleCommand(cmds, h); !errors.Is(err, platform.ErrDuplicateHandler) {
		t.Errorf("second command handler: %v", err)
	}
	q := func(context.Context, GetOrder) (OrderView, error) { return OrderView{}, nil }
	must(t, handlers.HandleQuery(qs, q))
	if err := handlers.HandleQuery(qs, q); !errors.Is(err, platform.ErrDuplicateHandler) {
		t.Errorf("second query handler: %v", err)
	}
	ev := handlers.NewEventBus(handlers.EventOptions{Registry: reg, Logger: quiet()})
	e := func(context.Context, ItemAdded) error { return nil }
	must(t, handlers.HandleEvent(ev, "a", e))
	must(t, handlers.HandleEvent(ev, "b", e))
	if err := handlers.HandleEvent(ev, "a", e); !errors.Is(err, platform.ErrDuplicateHandler) {
		t.Errorf("second event handler with the same name: %v", err)
	}
	if err := handlers.HandleCommand(cmds, func(context.Context, struct{ Y int }) error { return nil }); !errors.Is(err, platform.ErrUnknownEventType) {
		t.Errorf("handler of an unregistered type: %v", err)
	}
}

func TestValidationAndErrorsWrapped(t *testing.T) {
	ctx := ctxT(t)
	a := newApp(t, handlers.Options{})
	_, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{Customer: "ada"})
	if !errors.Is(err, platform.ErrCommandExecution) || !errors.Is(err, platform.ErrInvalidArgument) || !strings.Contains(err.Error(), "OrderID is empty") {
		t.Errorf("invalid command: %v", err)
	}
	if platform.CodeOf(err) != platform.CodeCommandExecution {
		t.Errorf("code %q", platform.CodeOf(err))
	}
	cause := errors.New("the warehouse is closed")
	_, err = a.buses.Commands.Dispatch(ctx, Fail{What: cause.Error()})
	if !errors.Is(err, platform.ErrCommandExecution) || !strings.Contains(err.Error(), "the warehouse is closed") {
		t.Errorf("failing handler: %v", err)
	}
	if len(events(t, a.store)) != 0 {
		t.Error("a failed command stored events")
	}
}

func TestPanicRecovered(t *testing.T) {
	ctx := ctxT(t)
	a := newApp(t, handlers.Options{})
	_, err := a.buses.Commands.Dispatch(ctx, Fail{What: "panic"})
	if !errors.Is(err, platform.ErrHandlerPanic) || !errors.Is(err, platform.ErrCommandExecution) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("panic: %v", err)
	}
	// Without any middleware, the bus still recovers.
	bare := newApp(t, handlers.Options{Middleware: []handlers.Middleware{}})
	if _, err := bare.buses.Commands.Dispatch(ctx, Fail{What: "panic"}); !errors.Is(err, platform.ErrHandlerPanic) {
		t.Fatalf("panic without middleware: %v", err)
	}
	// The bus still works.
	if _, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
}

func TestUnitOfWorkDiscardsOnError(t *testing.T) {
	ctx := ctxT(t)
	a := newApp(t, handlers.Options{})
	_, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1"})
	must(t, err)
	var loaded *Order
	must(t, handlers.HandleCommand(a.buses.Commands, func(ctx context.Context, c GetOrder) error {
		o, err := handlers.Load(ctx, a.orders, c.OrderID)
		if err != nil {
			return err
		}
		loaded = o
		platform.Raise(o, ItemAdded{SKU: "lost"})
		return errors.New("changed my mind")
	}))
	res, err := a.buses.Commands.Dispatch(ctx, GetOrder{OrderID: "o-1"})
	if err == nil || len(res.Events) != 0 {
		t.Fatalf("result %+v, err %v", res, err)
	}
	if n := len(events(t, a.store)); n != 1 {
		t.Errorf("%d events stored, want 1: the failed command's event was saved", n)
	}
	if len(loaded.Pending()) != 0 {
		t.Errorf("the discarded aggregate still has %d pending events", len(loaded.Pending()))
	}
	// Tracking outside a unit of work is an error, not a silent loss.
	if err := handlers.Track(ctx, a.orders, &Order{}); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Errorf("Track outside a command: %v", err)
	}
}

func TestUnitOfWorkSavesEveryChangedAggregate(t *testing.T) {
	ctx := ctxT(t)
	a := newApp(t, handlers.Options{})
	type Split struct{ From, To string }
	r := platform.NewRegistry()
	platform.MustRegister[Split](r, "test.split", 1)
	cmds := handlers.NewCommandBus(handlers.Options{Registry: r, Logger: quiet()})
	must(t, handlers.HandleCommand(cmds, func(ctx context.Context, c Split) error {
		for _, id := range []string{c.From, c.To} {
			o := &Order{}
			o.SetID(id)
			platform.Raise(o, OrderPlaced{Customer: id})
			must(t, handlers.Track(ctx, a.orders, o))
			must(t, handlers.Track(ctx, a.orders, o)) // harmless twice
		}
		unchanged, err := handlers.Load(ctx, a.orders, c.From)
		if err == nil {
			t.Errorf("loaded %s before it was saved: %+v", c.From, unchanged)
		}
		return nil
	}))
	res, err := cmds.Dispatch(ctx, Split{From: "o-a", To: "o-b"})
	must(t, err)
	if len(res.Changes) != 2 || res.Changes[0].Aggregate.ID != "o-a" || res.Aggregate.ID != "o-b" || len(res.Events) != 2 || res.Position != 2 {
		t.Fatalf("result %+v", res)
	}
}

func TestRetryReloadsAfterConflict(t *testing.T) {
	ctx := ctxT(t)
	a := newApp(t, handlers.Options{Retry: handlers.RetryOptions{Initial: time.Millisecond}})
	_, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1", Customer: "ada"})
	must(t, err)
	type Bump struct{ ID string }
	r := platform.NewRegistry()
	platform.MustRegister[Bump](r, "test.bump", 1)
	m := handlers.NewMetrics(handlers.MetricsOptions{})
	cmds := handlers.NewCommandBus(handlers.Options{Registry: r, Logger: quiet(), Metrics: m, Retry: handlers.RetryOptions{Initial: time.Millisecond}})
	var attempts atomic.Int32
	var seen []int
	must(t, handlers.HandleCommand(cmds, func(ctx context.Context, c Bump) error {
		o, err := handlers.Load(ctx, a.orders, c.ID)
		if err != nil {
			return err
		}
		seen = append(seen, len(o.Items))
		if attempts.Add(1) == 1 { // someone else changes the order meanwhile
			_, _, err := a.orders.Update(ctx, c.ID, func(o *Order) error { platform.Raise(o, ItemAdded{SKU: "theirs"}); return nil })
			must(t, err)
		}
		platform.Raise(o, ItemAdded{SKU: "ours"})
		return nil
	}))
	res, err := cmds.Dispatch(ctx, Bump{ID: "o-1"})
	must(t, err)
	if attempts.Load() != 2 || res.Version != 3 || len(seen) != 2 || seen[1] != 1 {
		t.Fatalf("attempts %d, result version %d, items seen per attempt %v: want 2 attempts, the second reloaded (1 item), version 3", attempts.Load(), res.Version, seen)
	}
	err = testutil.CollectAndCompare(m, strings.NewReader(`
# HELP lexigram_handler_retries_total Retries by the Retry middleware.
# TYPE lexigram_handler_retries_total counter
lexigram_handler_retries_total{handler="",kind="command",type="test.bump"} 1
`), "lexigram_handler_retries_total")
	if err != nil {
		t.Errorf("retries metric: %v", err)
	}
	// A conflict that persists is returned after the attempts run out.
	attempts.Store(0)
	_, err = a.buses.Commands.Dispatch(ctx, Fail{What: "concurrency"})
	var ce *platform.ConcurrencyError
	if !errors.As(err, &ce) || !errors.Is(err, platform.ErrCommandExecution) {
		t.Errorf("persistent conflict: %v", err)
	}
	// Errors that are not retryable are tried once.
	_, err = a.buses.Commands.Dispatch(ctx, Fail{What: "not-found"})
	if !errors.Is(err, platform.ErrStreamNotFound) {
		t.Errorf("not found: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	ctx := ctxT(t)
	a := newApp(t, handlers.Options{HandlerTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := a.buses.Commands.Dispatch(ctx, Sleep{For: 10 * time.Second})
	if !errors.Is(err, platform.ErrHandlerTimeout) || !errors.Is(err, platform.ErrCommandExecution) {
		t.Fatalf("slow handler: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the timeout took %s", took)
	}
	if got := <-a.slept; !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("the handler's context ended with %v", got)
	}
	if _, err := a.buses.Commands.Dispatch(ctx, Sleep{}); err != nil {
		t.Errorf("fast handler: %v", err)
	}
}

func TestCircuitBreakerTransitions(t *testing.T) {
	ctx := ctxT(t)
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	br := handlers.NewCircuitBreaker(handlers.BreakerOptions{Failures: 2, OpenFor: time.Minute, Now: clock})
	a := newApp(t, handlers.Options{Breaker: br})
	state := func() handlers.BreakerState { return br.State(handlers.KindCommand, "test.fail", "") }
	send := func(what string) error {
		_, err := a.buses.Commands.Dispatch(ctx, Fail{What: what})
		return err
	}
	// Expected outcomes (not found) do not count as failures.
	for range 3 {
		if err := send("not-found"); !errors.Is(err, platform.ErrStreamNotFound) {
			t.Fatal(err)
		}
	}
	if state() != handlers.Closed {
		t.Fatalf("state %s after expected errors, want closed", state())
	}
	for range 2 {
		if err := send("down"); err == nil || errors.Is(err, platform.ErrCircuitOpen) {
			t.Fatalf("failure: %v", err)
		}
	}
	if state() != handlers.Open {
		t.Fatalf("after 2 failures the state is %s, want open", state())
	}
	if err := send("ok"); !errors.Is(err, platform.ErrCircuitOpen) || !errors.Is(err, platform.ErrCommandExecution) {
		t.Fatalf("open circuit: %v", err)
	}
	advance(time.Minute)
	if state() != handlers.HalfOpen {
		t.Fatalf("after OpenFor the state is %s, want half-open", state())
	}
	if err := send("down"); err == nil || errors.Is(err, platform.ErrCircuitOpen) { // the trial call runs, and fails
		t.Fatalf("trial call: %v", err)
	}
	if state() != handlers.Open {
		t.Fatalf("after a failed trial the state is %s, want open", state())
	}
	advance(time.Minute)
	// Another type's circuit is independent.
	if _, err := a.buses.Commands.Dispatch(ctx, PlaceOrder{OrderID: "o-1"}); err != nil {
		t.Fatal(err)
	}
	if state() != handlers.HalfOpen {
		t.Fatalf("state %s, want half-open", state())
	}
	if err := send("ok"); err != nil {
		t.Fatalf("successful trial: %v", err)
	}
	if state() != handlers.Closed {
		t.Fatalf("after a successful trial the state is %s, want closed", state())
	}
}
