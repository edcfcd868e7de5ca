package tenancy_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
	"github.com/lexigram/events/tenancy"
)

type fulfilment struct{ Order string }

// TestSagasPerTenant: the same order ID placed in two tenants starts one
// instance of the saga in each (its association key is the order ID),
// each step runs, and sends its command, in its tenant, also through the
// idempotency middleware of a command bus the tenants share (a saga's
// idempotency keys are made of its type and key, the same in both
// tenants); aborting one tenant's instance compensates it and leaves the
// other's waiting, which then completes on its tenant's event.
func TestSagasPerTenant(t *testing.T) {
	js, err := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	must(t, err)
	reg := domain(t)
	log := embeddedtest.Logger(t)
	ts := tenancy.New(js, tenancy.Options{Registry: reg, Logger: log})
	ctx := t.Context()

	idem, err := handlers.OpenIdempotencyBucket(ctx, js, handlers.IdempotencyBucketOptions{})
	must(t, err)
	bus := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: log,
		Middleware: []handlers.Middleware{handlers.Idempotency(idem, handlers.IdempotencyOptions{Logger: log})}})
	var mu sync.Mutex
	var sent []string // "<tenant> <command> <order>", as the handlers saw them
	record := func(ctx context.Context, what, order string) {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, platform.Tenant(ctx)+" "+what+" "+order)
	}
	sentSorted := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(slices.Values(sent))
	}
	must(t, handlers.HandleCommand(bus, func(ctx context.Context, c Reserve) error { record(ctx, "reserve", c.Order); return nil }))
	must(t, handlers.HandleCommand(bus, func(ctx context.Context, c Release) error { record(ctx, "release", c.Order); return nil }))

	def := sagas.Define[fulfilment]("fulfil").
		StartOn(sagas.When("order", func(_ placed, env platform.Envelope) (string, fulfilment, bool) {
			return env.Stream.ID, fulfilment{Order: env.Stream.ID}, true
		})).
		Step("reserve", func(ctx context.Context, sc *sagas.Context[fulfilment]) error {
			_, err := sc.Send(ctx, Reserve{Order: sc.Data.Order})
			return err
		}, sagas.Compensation(func(ctx context.Context, sc *sagas.Context[fulfilment]) error {
			_, err := sc.Send(ctx, Release{Order: sc.Data.Order})
			return err
		})).
		Wait("paid", sagas.On("payment", func(e paid, _ platform.Envelope) string { return e.Order },
			func(context.Context, *sagas.Context[fulfilment], paid) error { return nil }))

	managers := map[string]*tenancy.Sagas{}
	stores := map[string]*tenancy.Tenant{}
	for _, id := range []string{"acme", "globex"} {
		tn, err := ts.Open(ctx, id)
		must(t, err)
		m, err := tn.Sagas(ctx, sagas.Options{Commands: bus, Logger: log, AckWait: 30 * time.Second})
		must(t, err)
		must(t, m.Register(def))
		runCtx, stop := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		go func() { ran <- m.Run(runCtx) }()
		t.Cleanup(func() {
			stop()
			if err := <-ran; err != nil {
				t.Errorf("tenant %s's saga manager: %v", id, err)
			}
		})
		select {
		case <-m.Ready():
		case err := <-ran:
			t.Fatalf("tenant %s's saga manager: %v", id, err)
		case <-time.After(60 * time.Second):
			t.Fatalf("tenant %s's saga manager not ready within 60s", id)
		}
		managers[id], stores[id] = m, tn
	}
	if managers["acme"].Store == managers["globex"].Store || ts.StreamOf("acme") == ts.StreamOf("globex") {
		t.Fatal("the tenants share a saga store")
	}

	order := platform.StreamID{Type: "order", ID: "42"}
	for id, tn := range stores {
		_, err := tn.Store.Append(ctx, order, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: id}}})
		must(t, err)
	}
	key := sagas.InstanceID("fulfil", "42")
	waiting := func(id string) func() (bool, string) {
		return func() (bool, string) {
			in, err := managers[id].Get(ctx, key)
			return err == nil && in.State == sagas.Running && in.Step == 1, fmt.Sprintf("%s's instance %+v (%v)", id, in, err)
		}
	}
	eventually(t, "acme's instance waits for the payment", waiting("acme"))
	eventually(t, "globex's instance waits for the payment", waiting("globex"))
	if got, want := sentSorted(), []string{"acme reserve 42", "globex reserve 42"}; !slices.Equal(got, want) {
		t.Fatalf("the handlers saw %q, want %q: each tenant's step sends its command once, in its tenant", got, want)
	}

	_, err = managers["acme"].Operator().Abort(ctx, key, "test")
	must(t, err)
	eventually(t, "acme's aborted instance compensates", func() (bool, string) {
		in, err := managers["acme"].Get(ctx, key)
		return err == nil && in.State == sagas.Compensated, fmt.Sprintf("%+v (%v)", in, err)
	})
	if in, err := managers["globex"].Get(ctx, key); err != nil || in.State != sagas.Running || in.Step != 1 {
		t.Fatalf("globex's instance after acme's abort: %+v (%v), want it still waiting", in, err)
	}
	if got, want := sentSorted(), []string{"acme release 42", "acme reserve 42", "globex reserve 42"}; !slices.Equal(got, want) {
		t.Fatalf("the handlers saw %q, want %q", got, want)
	}

	_, err = stores["globex"].Store.Append(ctx, platform.StreamID{Type: "payment", ID: "p-42"}, platform.NoStream(), []platform.Envelope{{Event: paid{Order: "42"}}})
	must(t, err)
	eventually(t, "globex's instance completes on its payment", func() (bool, string) {
		in, err := managers["globex"].Get(ctx, key)
		return err == nil && in.State == sagas.Completed, fmt.Sprintf("%+v (%v)", in, err)
	})
	if list, err := managers["acme"].Operator().List(ctx, sagas.Query{Type: "fulfil"}); err != nil || len(list) != 1 || list[0].State != sagas.Compensated {
		t.Fatalf("acme's instances: %+v (%v), want its one, compensated", list, err)
	}
}
