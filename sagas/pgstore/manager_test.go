package pgstore_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

type (
	orderPlaced  struct{ Order string }
	paymentTaken struct{ Order string }
	reserveStock struct{ Order string }
	releaseStock struct{ Order string }
)

type checkout struct{ Order string }

// The manager on PostgreSQL: a saga started by an event completes when
// its payment comes, and one whose payment does not come within the
// deadline times out and compensates; each command once.
func TestManagerOnPostgreSQL(t *testing.T) {
	e := newPGEnv(t)
	ctx := testContext(t)
	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	reg := platform.NewRegistry()
	platform.MustRegister[orderPlaced](reg, "order.placed", 1)
	platform.MustRegister[paymentTaken](reg, "payment.taken", 1)
	platform.MustRegister[reserveStock](reg, "stock.reserve", 1)
	platform.MustRegister[releaseStock](reg, "stock.release", 1)
	events, err := lxjs.New(ctx, js, lxjs.Options{Registry: reg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var done []string
	record := func(what string) error {
		mu.Lock()
		defer mu.Unlock()
		done = append(done, what)
		return nil
	}
	cmds := handlers.NewCommandBus(handlers.Options{Registry: reg, Middleware: []handlers.Middleware{}})
	_ = handlers.HandleCommand(cmds, func(_ context.Context, c reserveStock) error { return record("reserve " + c.Order) })
	_ = handlers.HandleCommand(cmds, func(_ context.Context, c releaseStock) error { return record("release " + c.Order) })

	def := sagas.Define[checkout]("pg-checkout").
		StartOn(sagas.When("order", func(ev orderPlaced, _ platform.Envelope) (string, checkout, bool) {
			return ev.Order, checkout(ev), true
		})).
		Step("reserve", func(ctx context.Context, sc *sagas.Context[checkout]) error {
			_, err := sc.Send(ctx, reserveStock{sc.Data.Order})
			return err
		}, sagas.Compensation(func(ctx context.Context, sc *sagas.Context[checkout]) error {
			_, err := sc.Send(ctx, releaseStock{sc.Data.Order})
			return err
		})).
		Wait("paid", sagas.On[checkout]("payment", func(ev paymentTaken, _ platform.Envelope) string { return ev.Order }, nil),
			sagas.Within[checkout](1500*time.Millisecond))
	m, err := sagas.NewManager(ctx, js, e.store, sagas.Options{Commands: cmds, Events: events, ListenFrom: &durable.FromBeginning,
		Retry: sagas.Retry{Initial: 20 * time.Millisecond}, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Register(def); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = m.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-stopped })

	raise := func(aggregate, id string, ev any) {
		if _, err := events.Append(ctx, platform.StreamID{Type: aggregate, ID: id}, platform.Any(), []platform.Envelope{{Event: ev}}); err != nil {
			t.Fatal(err)
		}
	}
	await := func(key string, ok func(sagas.Instance) bool) sagas.Instance {
		deadline := time.Now().Add(20 * time.Second)
		for {
			in, err := m.Find(ctx, "pg-checkout", key)
			if err == nil && ok(in) {
				return in
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %s: %+v, %v", key, in, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	raise("order", "paid-1", orderPlaced{"paid-1"})
	raise("order", "late-1", orderPlaced{"late-1"})
	await("paid-1", func(in sagas.Instance) bool { return in.Step == 1 })
	raise("payment", "p-1", paymentTaken{"paid-1"})
	await("paid-1", func(in sagas.Instance) bool { return in.State == sagas.Completed })
	late := await("late-1", func(in sagas.Instance) bool { return in.State == sagas.Compensated })
	if !slices.ContainsFunc(late.History, func(r sagas.StepRecord) bool { return r.Outcome == "timed out" }) {
		t.Errorf("history %+v: want the wait's timeout", late.History)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(done)
	if want := []string{"release late-1", "reserve late-1", "reserve paid-1"}; !slices.Equal(done, want) {
		t.Errorf("commands %v, want %v", done, want)
	}
}
