package orders_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lexigram/events/examples/orders"
	"github.com/lexigram/events/internal/pgtest"
)

// TestSummaryInPostgres: with a database, the summaries are also rows of
// <schema>.order_summary and <schema>.order_line, there once the
// projection has applied the command's position.
func TestSummaryInPostgres(t *testing.T) {
	pool, schema := pgtest.Pool(t), pgtest.Schema(t)
	n := runNode(t, orders.Options{Postgres: pool, PostgresSchema: schema})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, cmd := range []any{
		orders.PlaceOrder{ID: "o-pg", Customer: "ada"},
		orders.AddItem{ID: "o-pg", SKU: "book", Quantity: 2, PriceCents: 1250},
		orders.AddItem{ID: "o-pg", SKU: "pen", Quantity: 3, PriceCents: 199},
		orders.AddItem{ID: "o-pg", SKU: "book", Quantity: 1, PriceCents: 1250},
		orders.RemoveItem{ID: "o-pg", SKU: "pen"},
	} {
		if _, err := n.Commands().Dispatch(ctx, cmd); err != nil {
			t.Fatalf("%T: %v", cmd, err)
		}
	}
	res, err := n.Commands().Dispatch(ctx, orders.CancelOrder{ID: "o-pg", Reason: "changed my mind"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Projections().WaitFor(ctx, orders.SummaryPostgresProjection, res.Position); err != nil {
		t.Fatal(err)
	}
	var customer, status, reason string
	var units, lines int
	var total, version int64
	err = pool.QueryRow(ctx, `SELECT customer, status, cancel_reason, units, total_cents, version,
			(SELECT count(*) FROM `+pgx.Identifier{schema, "order_line"}.Sanitize()+` WHERE order_id = s.id)
		FROM `+pgx.Identifier{schema, "order_summary"}.Sanitize()+` s WHERE id = $1`, "o-pg").
		Scan(&customer, &status, &reason, &units, &total, &version, &lines)
	if err != nil {
		t.Fatal(err)
	}
	if customer != "ada" || status != "cancelled" || reason != "changed my mind" || units != 3 || total != 3750 || version != 6 || lines != 1 {
		t.Errorf("row: customer %s status %s reason %q units %d total %d version %d lines %d; want ada cancelled, 3 books, 3750, version 6",
			customer, status, reason, units, total, version, lines)
	}
}
