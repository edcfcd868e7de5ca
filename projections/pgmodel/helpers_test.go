package pgmodel_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/internal/pgtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/projections/pgmodel"
)

type OrderPlaced struct {
	Customer string
}

type ItemAdded struct {
	SKU   string
	Price int
}

var registry = func() *platform.Registry {
	r := platform.NewRegistry()
	platform.MustRegister[OrderPlaced](r, "order.placed", 1)
	platform.MustRegister[ItemAdded](r, "order.item-added", 1)
	return r
}()

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// pool is a pgmodel.DB of several connections, as a *pgxpool.Pool would
// be, so that a rebuild held inside its transaction does not hold up the
// serving generation.
type pool struct{ conns chan *pgx.Conn }

func newPool(t testing.TB, n int) *pool {
	p := &pool{conns: make(chan *pgx.Conn, n)}
	for range n {
		p.conns <- pgtest.Conn(t)
	}
	return p
}

func (p *pool) Begin(ctx context.Context) (pgx.Tx, error) {
	var conn *pgx.Conn
	select {
	case conn = <-p.conns:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		p.conns <- conn
		return nil, err
	}
	return &pooledTx{Tx: tx, release: func() { p.conns <- conn }}, nil
}

type pooledTx struct {
	pgx.Tx
	release func()
	once    sync.Once
}

func (t *pooledTx) Commit(ctx context.Context) error {
	err := t.Tx.Commit(ctx)
	t.once.Do(t.release)
	return err
}

func (t *pooledTx) Rollback(ctx context.Context) error {
	err := t.Tx.Rollback(ctx)
	t.once.Do(t.release)
	return err
}

func server(t testing.TB) *embedded.Server {
	return embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
}

func newStore(t testing.TB, srv *embedded.Server) (*lxjs.EventStore, jetstream.JetStream) {
	t.Helper()
	nc := embeddedtest.Conn(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := lxjs.New(testContext(t), js, lxjs.Options{Registry: registry, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

// appendOrders appends n orders with items events each and returns the
// last position.
func appendOrders(t testing.TB, s platform.EventStore, prefix string, n, items int) uint64 {
	t.Helper()
	ctx := testContext(t)
	var last uint64
	for i := range n {
		id := platform.StreamID{Type: "order", ID: fmt.Sprintf("%s-%d", prefix, i)}
		evs := []platform.Envelope{{Event: OrderPlaced{Customer: "c-" + prefix}}}
		for k := range items {
			evs = append(evs, platform.Envelope{Event: ItemAdded{SKU: fmt.Sprintf("sku-%d", k), Price: k + 1}})
		}
		res, err := s.Append(ctx, id, platform.NoStream(), evs)
		if err != nil {
			t.Fatal(err)
		}
		last = res.LastPosition
	}
	return last
}

func manager(t testing.TB, store projections.EventSource, opts projections.Options) *projections.Manager {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = embeddedtest.Logger(t)
	}
	m, err := projections.New(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Stop(ctx)
	})
	return m
}

func newProjection(t testing.TB, db pgmodel.DB, name string, model pgmodel.Model, schema string) *pgmodel.Projection {
	t.Helper()
	p, err := pgmodel.New(db, name, model, pgmodel.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func queryInt(t testing.TB, conn *pgx.Conn, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(testContext(t), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
