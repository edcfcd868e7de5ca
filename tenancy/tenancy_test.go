package tenancy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/tenancy"
)

type placed struct{ Customer string }

type PlaceOrder struct{ ID, Customer string }

func registry() *platform.Registry {
	reg := platform.NewRegistry()
	platform.MustRegister[placed](reg, "order.placed", 1)
	platform.MustRegister[PlaceOrder](reg, "order.place", 1)
	return reg
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func events(t *testing.T, seq func(yield func(platform.Envelope, error) bool)) []platform.Envelope {
	t.Helper()
	var out []platform.Envelope
	for e, err := range seq {
		must(t, err)
		out = append(out, e)
	}
	return out
}

// TestTenantsAreApart: the same aggregate ID in two tenants is two
// aggregates: reads, global reads, snapshots and a projection of one
// never see the other's; a context without a tenant is refused.
func TestTenantsAreApart(t *testing.T) {
	js, err := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	must(t, err)
	ts := tenancy.New(js, tenancy.Options{Registry: registry(), Logger: embeddedtest.Logger(t)})
	ctx := t.Context()
	acme, err := ts.For(platform.WithTenant(ctx, "acme"))
	must(t, err)
	globex, err := ts.For(platform.WithTenant(ctx, "globex"))
	must(t, err)
	id := platform.StreamID{Type: "order", ID: "42"}
	_, err = acme.Store.Append(ctx, id, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: "ada"}}})
	must(t, err)
	_, err = globex.Store.Append(ctx, id, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: "bob"}}, {Event: placed{Customer: "bob2"}}})
	must(t, err)

	if got := events(t, acme.Store.Read(ctx, id, platform.Revision{})); len(got) != 1 || got[0].Event.(placed).Customer != "ada" {
		t.Fatalf("acme's order/42: %+v, want only acme's event", got)
	}
	if got := events(t, globex.Store.ReadAll(ctx, 0)); len(got) != 2 || got[0].Event.(placed).Customer != "bob" {
		t.Fatalf("globex's global order: %+v, want only globex's two events", got)
	}
	state, _ := platform.Msgpack.Marshal(placed{Customer: "ada"})
	must(t, acme.Snapshots.SaveSnapshot(ctx, platform.Snapshot{Stream: id, Revision: platform.Revision{Version: 1, Position: 1}, Codec: "msgpack", State: state}))
	if _, ok, err := globex.Snapshots.LoadSnapshot(ctx, id); ok || err != nil {
		t.Fatalf("globex loaded acme's snapshot of order/42 (%v, %v)", ok, err)
	}

	// A projection on acme's store, rebuilt or not, sees acme's events only.
	var seen []string
	m, err := projections.New(acme.Store, projections.Options{Checkpoints: acme.Checkpoints, Logger: embeddedtest.Logger(t)})
	must(t, err)
	must(t, m.Register(projections.Projection{Name: "customers", Handler: projections.HandlerFunc(func(_ context.Context, _ projections.Generation, e platform.Envelope) error {
		seen = append(seen, e.Event.(placed).Customer)
		return nil
	})}))
	must(t, m.Start(ctx))
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	must(t, m.WaitFor(wctx, "customers", 1))
	must(t, m.Stop(ctx))
	if len(seen) != 1 || seen[0] != "ada" {
		t.Fatalf("acme's projection saw %v, want [ada]", seen)
	}

	if _, err := ts.For(ctx); !errors.Is(err, tenancy.ErrNoTenant) {
		t.Fatalf("For a context without a tenant: %v, want ErrNoTenant", err)
	}
	if _, err := ts.For(platform.WithTenant(ctx, "acme.>")); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("For the tenant \"acme.>\": %v, want an invalid-argument error", err)
	}
	if ts.StreamOf("acme") == ts.StreamOf("globex") {
		t.Fatal("two tenants share a stream")
	}
}

// TestTenantOverTheBuses: a command sent over NATS carries its tenant to
// the handler, whose append lands in that tenant's stream; with Require, a
// command that names no tenant is refused before its handler runs.
func TestTenantOverTheBuses(t *testing.T) {
	srv := embeddedtest.Server(t)
	serverNC, clientNC := embeddedtest.Conn(t, srv), embeddedtest.Conn(t, srv)
	js, err := jetstream.New(serverNC)
	must(t, err)
	reg := registry()
	ts := tenancy.New(js, tenancy.Options{Registry: reg, Logger: embeddedtest.Logger(t)})
	remote := func(nc *nats.Conn) *handlers.Remote {
		r, err := handlers.NewRemote(nc, handlers.RemoteOptions{Prefix: "tn", Logger: embeddedtest.Logger(t)})
		must(t, err)
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	o := handlers.Options{Registry: reg, Logger: embeddedtest.Logger(t), Remote: remote(serverNC)}
	o.Middleware = append(handlers.DefaultMiddleware(o), tenancy.Require())
	served := handlers.NewCommandBus(o)
	ran := 0
	must(t, handlers.HandleCommand(served, func(ctx context.Context, c PlaceOrder) error {
		ran++
		tn, err := ts.For(ctx)
		if err != nil {
			return err
		}
		_, err = tn.Store.Append(ctx, platform.StreamID{Type: "order", ID: c.ID}, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: c.Customer}}})
		return err
	}))
	client := handlers.NewCommandBus(handlers.Options{Registry: reg, Logger: embeddedtest.Logger(t), Remote: remote(clientNC)})

	ctx := t.Context()
	_, err = client.Dispatch(platform.WithTenant(ctx, "acme"), PlaceOrder{ID: "7", Customer: "ada"})
	must(t, err)
	acme, err := ts.Open(ctx, "acme")
	must(t, err)
	globex, err := ts.Open(ctx, "globex")
	must(t, err)
	if got := events(t, acme.Store.ReadAll(ctx, 0)); len(got) != 1 || got[0].Stream.ID != "7" {
		t.Fatalf("acme holds %+v, want the command's event", got)
	}
	if got := events(t, globex.Store.ReadAll(ctx, 0)); len(got) != 0 {
		t.Fatalf("globex holds %d events of acme's command", len(got))
	}
	_, err = client.Dispatch(ctx, PlaceOrder{ID: "8", Customer: "eve"})
	if err == nil || ran != 1 {
		t.Fatalf("a command with no tenant: %v (the handler ran %d times), want it refused before the handler", err, ran)
	}
}

// TestAccountsIsolateTenants: with a NATS account per tenant, the same
// stream name is two streams, and neither account's user can read the
// other's events.
func TestAccountsIsolateTenants(t *testing.T) {
	acmeAcc, globexAcc := server.NewAccount("ACME"), server.NewAccount("GLOBEX")
	srv, err := embedded.Start(t.Context(), embedded.Options{Port: embedded.RandomPort, DataDir: t.TempDir(), Logger: embeddedtest.Logger(t),
		ServerOptions: func(o *server.Options) {
			o.Accounts = []*server.Account{acmeAcc, globexAcc}
			o.Users = []*server.User{{Username: "acme", Password: "a", Account: acmeAcc}, {Username: "globex", Password: "g", Account: globexAcc}}
		}})
	must(t, err)
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	for _, name := range []string{"ACME", "GLOBEX"} {
		acc, err := srv.NATS().LookupAccount(name)
		must(t, err)
		must(t, acc.EnableJetStream(map[string]server.JetStreamAccountLimits{"": {MaxMemory: -1, MaxStore: -1, MaxStreams: -1, MaxConsumers: -1}}, nil))
	}
	open := func(user, pass string) *lxjs.EventStore {
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, pass))
		must(t, err)
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		must(t, err)
		st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: registry(), Logger: embeddedtest.Logger(t)})
		must(t, err)
		return st
	}
	acme, globex := open("acme", "a"), open("globex", "g")
	id := platform.StreamID{Type: "order", ID: "42"}
	_, err = acme.Append(t.Context(), id, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: "ada"}}})
	must(t, err)
	if got := events(t, globex.ReadAll(t.Context(), 0)); len(got) != 0 {
		t.Fatalf("globex's EVENTS holds %d of acme's events", len(got))
	}
	if _, err := globex.Append(t.Context(), id, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: "bob"}}}); err != nil {
		t.Fatalf("globex's own order/42 (a new aggregate in its account): %v", err)
	}
}
