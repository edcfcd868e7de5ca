package orders

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/lexigram/events/platform"
)

// SummaryPostgresProjection is the name of the OrderSummaryProjection
// kept in PostgreSQL, when Options.Postgres is set.
const SummaryPostgresProjection = "order_summary_pg"

// summaryModel is the OrderSummaryProjection in PostgreSQL (a
// pgmodel.Model): readers query <schema>.order_summary and
// <schema>.order_line, views on the active generation's tables. pgmodel
// applies each event exactly once, so the statements are plain INSERTs
// and UPDATEs.
type summaryModel struct{}

func (summaryModel) Tables() []string { return []string{"order_summary", "order_line"} }

func (summaryModel) Create(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `
		CREATE TABLE order_summary (
			id            text        PRIMARY KEY,
			customer      text        NOT NULL,
			status        text        NOT NULL,
			units         int         NOT NULL DEFAULT 0,
			total_cents   bigint      NOT NULL DEFAULT 0,
			cancel_reason text        NOT NULL DEFAULT '',
			version       bigint      NOT NULL,
			position      bigint      NOT NULL,
			updated_at    timestamptz NOT NULL);
		CREATE TABLE order_line (
			order_id    text   NOT NULL,
			sku         text   NOT NULL,
			quantity    int    NOT NULL,
			price_cents bigint NOT NULL,
			PRIMARY KEY (order_id, sku))`)
	return err
}

func (summaryModel) Apply(ctx context.Context, tx pgx.Tx, e platform.Envelope) error {
	id := e.Stream.ID
	var err error
	switch ev := e.Event.(type) {
	case OrderPlaced:
		_, err = tx.Exec(ctx, `INSERT INTO order_summary (id, customer, status, version, position, updated_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			id, ev.Customer, string(StatusOpen), e.Version, e.Position, e.Time)
		return err
	case ItemAdded:
		_, err = tx.Exec(ctx, `INSERT INTO order_line (order_id, sku, quantity, price_cents) VALUES ($1, $2, $3, $4)
			ON CONFLICT (order_id, sku) DO UPDATE SET quantity = order_line.quantity + EXCLUDED.quantity`,
			id, ev.SKU, ev.Quantity, ev.PriceCents)
	case ItemRemoved:
		_, err = tx.Exec(ctx, `DELETE FROM order_line WHERE order_id = $1 AND sku = $2`, id, ev.SKU)
	case OrderConfirmed:
		_, err = tx.Exec(ctx, `UPDATE order_summary SET status = $2 WHERE id = $1`, id, string(StatusConfirmed))
	case OrderShipped:
		_, err = tx.Exec(ctx, `UPDATE order_summary SET status = $2 WHERE id = $1`, id, string(StatusShipped))
	case OrderCancelled:
		_, err = tx.Exec(ctx, `UPDATE order_summary SET status = $2, cancel_reason = $3 WHERE id = $1`, id, string(StatusCancelled), ev.Reason)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	// The totals follow from the lines, in the same transaction.
	_, err = tx.Exec(ctx, `UPDATE order_summary s SET
			units       = COALESCE((SELECT sum(quantity) FROM order_line WHERE order_id = $1), 0),
			total_cents = COALESCE((SELECT sum(quantity::bigint * price_cents) FROM order_line WHERE order_id = $1), 0),
			version = $2, position = $3, updated_at = $4
		WHERE s.id = $1`, id, e.Version, e.Position, e.Time)
	return err
}
