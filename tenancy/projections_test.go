package tenancy_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/internal/pgtest"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/projections/pgmodel"
	"github.com/lexigram/events/tenancy"
)

// orders is a read model of one table: an order's customer.
type orders struct{}

func (orders) Tables() []string { return []string{"orders"} }

func (orders) Create(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "CREATE TABLE orders (id text PRIMARY KEY, customer text NOT NULL)")
	return err
}

func (orders) Apply(ctx context.Context, tx pgx.Tx, e platform.Envelope) error {
	p, ok := e.Event.(placed)
	if !ok {
		return nil
	}
	_, err := tx.Exec(ctx, "INSERT INTO orders (id, customer) VALUES ($1, $2)", e.Stream.ID, p.Customer)
	return err
}

// TestPostgresReadModelsPerTenant: two tenants' projections of the same
// aggregate ID keep their rows in two schemas, each reading only its
// tenant's. The tenants and projection names are chosen so that, without
// the '$' that ends a tenant's schema name, tenant "acme"'s projection
// "x_orders" and tenant "acme_x"'s "orders" would share their generation
// schemas: a rebuild of one then drops the other's rows. Here a rebuild
// of acme_x's leaves acme's untouched.
func TestPostgresReadModelsPerTenant(t *testing.T) {
	prefix := pgtest.Schema(t) + "_"
	js, err := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	must(t, err)
	ts := tenancy.New(js, tenancy.Options{Registry: domain(t), Logger: embeddedtest.Logger(t), PGSchemaPrefix: prefix})
	ctx := t.Context()
	id := platform.StreamID{Type: "order", ID: "42"}
	type side struct {
		tenant, projection, customer string
		m                            *projections.Manager
		p                            *pgmodel.Projection
		conn                         *pgx.Conn
	}
	sides := []*side{{tenant: "acme", projection: "x_orders", customer: "ada"}, {tenant: "acme_x", projection: "orders", customer: "bob"}}
	for _, s := range sides {
		tn, err := ts.Open(ctx, s.tenant)
		must(t, err)
		_, err = tn.Store.Append(ctx, id, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: s.customer}}})
		must(t, err)
		s.conn = pgtest.Conn(t)
		s.p, err = tn.PGModel(s.conn, s.projection, orders{}, pgmodel.Options{})
		must(t, err)
		s.m, err = tn.Projections(ctx, projections.Options{Logger: embeddedtest.Logger(t)}, nil)
		must(t, err)
		must(t, s.m.Register(projections.Projection{Name: s.projection, Batch: s.p}))
		must(t, s.m.Start(ctx))
		t.Cleanup(func() { _ = s.m.Stop(context.Background()) })
	}
	if sides[0].p.View("orders") == sides[1].p.View("orders") {
		t.Fatalf("both tenants' read models are in %s", sides[0].p.View("orders"))
	}
	reader := pgtest.Conn(t) // the projections' connections are theirs alone
	rows := func(s *side) []string {
		t.Helper()
		r, err := reader.Query(ctx, "SELECT id || '=' || customer FROM "+s.p.View("orders")+" ORDER BY id")
		must(t, err)
		out, err := pgx.CollectRows(r, pgx.RowTo[string])
		must(t, err)
		return out
	}
	check := func(when string) {
		t.Helper()
		for _, s := range sides {
			wctx, cancel := context.WithTimeout(ctx, 60e9)
			must(t, s.m.WaitFor(wctx, s.projection, 1))
			cancel()
			if got, want := fmt.Sprint(rows(s)), fmt.Sprintf("[42=%s]", s.customer); got != want {
				t.Fatalf("%s: tenant %s's rows in %s: %s, want %s", when, s.tenant, s.p.View("orders"), got, want)
			}
		}
	}
	check("built")

	gen, err := sides[1].m.Rebuild(ctx, sides[1].projection)
	must(t, err)
	eventually(t, "acme_x's rebuild becomes active", func() (bool, string) {
		active, err := sides[1].p.Active(ctx)
		return err == nil && active == gen, fmt.Sprintf("active generation %d (%v), want %d", active, err, gen)
	})
	check("after acme_x's rebuild")
}
