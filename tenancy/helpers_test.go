package tenancy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lexigram/events/platform"
)

// The saga and encryption tests' domain, beside placed and PlaceOrder.
type (
	paid    struct{ Order string }
	Reserve struct{ Order string }
	Release struct{ Order string }
	// signedUp names its data subject, a customer, whose key seals the
	// e-mail address.
	signedUp struct {
		Customer string `lexigram:"subject"`
		Email    string `lexigram:"personal"`
	}
)

// register registers the whole test domain in reg.
func register(reg *platform.Registry) error {
	for _, err := range []error{
		platform.Register[placed](reg, "order.placed", 1),
		platform.Register[PlaceOrder](reg, "order.place", 1),
		platform.Register[paid](reg, "payment.captured", 1),
		platform.Register[Reserve](reg, "stock.reserve", 1),
		platform.Register[Release](reg, "stock.release", 1),
		platform.Register[signedUp](reg, "customer.signed-up", 1),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

func domain(t testing.TB) *platform.Registry {
	reg := platform.NewRegistry()
	if err := register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// eventually polls cond every 10ms until it holds, failing the test with
// what cond last said after 60s (generous: the tests run with the
// machine busy).
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s; last: %s", what, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// postgresURL is the test database: LEXIGRAM_TEST_POSTGRES, or the local
// server with trust auth.
func postgresURL() string {
	if u := os.Getenv("LEXIGRAM_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// connect opens a connection to the test database, closed on cleanup. It
// skips the test when PostgreSQL is unreachable, and fails it instead
// when CI=true.
func connect(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresURL())
	if err != nil {
		msg := fmt.Sprintf("PostgreSQL at %s is unreachable (%v): start it (.ci/run does) or set LEXIGRAM_TEST_POSTGRES", postgresURL(), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// schemaPrefix returns a fresh PGSchemaPrefix, and drops every schema
// starting with it when the test ends.
func schemaPrefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	prefix := "lxt_" + hex.EncodeToString(b) + "_"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, postgresURL())
		if err != nil {
			t.Errorf("drop schemas %s*: %v", prefix, err)
			return
		}
		defer conn.Close(ctx)
		rows, err := conn.Query(ctx, "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", prefix)
		if err != nil {
			t.Errorf("list schemas %s*: %v", prefix, err)
			return
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Errorf("list schemas %s*: %v", prefix, err)
		}
		for _, n := range names {
			if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{n}.Sanitize()+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", n, err)
			}
		}
	})
	return prefix
}
