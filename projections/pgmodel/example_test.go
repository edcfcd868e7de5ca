package pgmodel_test

import (
	"context"

	"github.com/jackc/pgx/v5"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/projections/pgmodel"
)

// OrderCreated is the seed example's event.
type OrderCreated struct {
	OrderID    string
	CustomerID string
}

// OrderSummary is the seed's OrderSummaryProjection as a pgmodel.Model.
type OrderSummary struct{}

func (OrderSummary) Tables() []string { return []string{"order_summary"} }

func (OrderSummary) Create(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "CREATE TABLE order_summary (id text PRIMARY KEY, customer text NOT NULL, total bigint NOT NULL)")
	return err
}

func (OrderSummary) Apply(ctx context.Context, tx pgx.Tx, e platform.Envelope) error {
	if ev, ok := e.Event.(OrderCreated); ok {
		// A plain INSERT: each event is applied exactly once.
		_, err := tx.Exec(ctx, "INSERT INTO order_summary (id, customer, total) VALUES ($1, $2, $3)", ev.OrderID, ev.CustomerID, 0)
		return err
	}
	return nil
}

// Example registers the seed's OrderSummaryProjection with a manager.
// Readers query the view "public"."order_summary".
func Example() {
	ctx := context.Background()
	var store *lxjs.EventStore // lxjs.New(ctx, js, lxjs.Options{})
	var db pgmodel.DB          // a *pgxpool.Pool, or a *pgx.Conn used by nothing else
	summary, err := pgmodel.New(db, "order_summary", OrderSummary{}, pgmodel.Options{})
	if err != nil {
		return
	}
	m, err := projections.New(store, projections.Options{BatchSize: 100})
	if err != nil {
		return
	}
	_ = m.Register(projections.Projection{Name: "order_summary", EventTypes: []string{"order.created"}, Batch: summary})
	_ = m.Start(ctx)
	defer m.Stop(ctx)
}
