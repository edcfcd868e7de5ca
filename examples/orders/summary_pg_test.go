package orders_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexigram/events/examples/orders"
)

// postgresURL is the test database: LEXIGRAM_TEST_POSTGRES, or the local
// server with trust auth.
func postgresURL() string {
	if u := os.Getenv("LEXIGRAM_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// postgres connects to the test database, skipping the test when it is
// unreachable (failing it under CI=true), and returns a fresh schema
// name, dropped with the generation schemas made from it when the test
// ends.
func postgres(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, postgresURL())
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s is unreachable (%v): start it (.ci/run does) or set LEXIGRAM_TEST_POSTGRES", postgresURL(), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	schema := "lxt_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		defer pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rows, err := pool.Query(ctx, `SELECT nspname FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $1 || '\_%'`, schema)
		if err != nil {
			t.Errorf("list schemas %s*: %v", schema, err)
			return
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Errorf("list schemas %s*: %v", schema, err)
		}
		for _, n := range names {
			if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{n}.Sanitize()+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", n, err)
			}
		}
	})
	return pool, schema
}

// TestSummaryInPostgres: with a database, the summaries are also rows of
// <schema>.order_summary and <schema>.order_line, there once the
// projection has applied the command's position.
func TestSummaryInPostgres(t *testing.T) {
	pool, schema := postgres(t)
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
