//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lexigram/events/internal/pgtest"
	"github.com/lexigram/events/platform"
)

// pgSchema creates a schema unique to the run, dropped with the
// projection's generation schemas made from its name when the test ends.
func pgSchema(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	name := pgtest.Schema(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create schema %s: %v", name, err)
	}
	return name
}

// calls counts a consumer's handler calls per key, from the goroutines
// that call it.
type calls struct {
	mu sync.Mutex
	n  map[string]int
}

func newCalls() *calls { return &calls{n: map[string]int{}} }

func (c *calls) add(key string) {
	c.mu.Lock()
	c.n[key]++
	c.mu.Unlock()
}

func (c *calls) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// valuesModel is the exactly-once read model, a pgmodel.Model: one row
// per event value with the times it was applied (an upsert, so that a
// second apply shows as 2 instead of failing the batch), and a counter of
// every apply. pgmodel stores the position in the same transaction.
type valuesModel struct {
	calls *calls
}

const (
	valuesTable  = "faults_values"
	appliesTable = "faults_applies"
)

func (valuesModel) Tables() []string { return []string{valuesTable, appliesTable} }

func (valuesModel) Create(ctx context.Context, tx pgx.Tx) error {
	for _, q := range []string{
		"CREATE TABLE " + valuesTable + " (value text PRIMARY KEY, stream text NOT NULL, position bigint NOT NULL, applies int NOT NULL)",
		"CREATE TABLE " + appliesTable + " (one int PRIMARY KEY CHECK (one = 1), n bigint NOT NULL)",
		"INSERT INTO " + appliesTable + " VALUES (1, 0)",
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

func (m valuesModel) Apply(ctx context.Context, tx pgx.Tx, e platform.Envelope) error {
	v := valueOf(e)
	m.calls.add(v) // counted whether or not the transaction commits
	if _, err := tx.Exec(ctx, "INSERT INTO "+valuesTable+" (value, stream, position, applies) VALUES ($1, $2, $3, 1) "+
		"ON CONFLICT (value) DO UPDATE SET applies = "+valuesTable+".applies + 1", v, e.Stream.String(), int64(e.Position)); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "UPDATE "+appliesTable+" SET n = n + 1")
	return err
}

// pgEffects is the durable handler's effect in PostgreSQL: each event
// handled records its ID (the idempotency key) and, only when the key is
// new, adds one to its aggregate's counter, in one transaction. A
// redelivery finds the key and changes nothing.
type pgEffects struct {
	pool            *pgxpool.Pool
	handled, counts string // qualified table names
	calls           *calls
}

func newPGEffects(ctx context.Context, pool *pgxpool.Pool, schema string) (*pgEffects, error) {
	e := &pgEffects{pool: pool, calls: newCalls(),
		handled: pgx.Identifier{schema, "handled"}.Sanitize(), counts: pgx.Identifier{schema, "effects"}.Sanitize()}
	for _, q := range []string{
		"CREATE TABLE " + e.handled + " (event_id text PRIMARY KEY, stream text NOT NULL, position bigint NOT NULL)",
		"CREATE TABLE " + e.counts + " (stream text PRIMARY KEY, n bigint NOT NULL)",
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("create the durable handler's tables: %w", err)
		}
	}
	return e, nil
}

func (p *pgEffects) handle(ctx context.Context, e platform.Envelope) error {
	p.calls.add(e.ID)
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	tag, err := tx.Exec(ctx, "INSERT INTO "+p.handled+" (event_id, stream, position) VALUES ($1, $2, $3) ON CONFLICT (event_id) DO NOTHING",
		e.ID, e.Stream.String(), int64(e.Position))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		if _, err := tx.Exec(ctx, "INSERT INTO "+p.counts+" (stream, n) VALUES ($1, 1) ON CONFLICT (stream) DO UPDATE SET n = "+p.counts+".n + 1",
			e.Stream.String()); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// queryCounts runs a query of (text, bigint) rows into a map.
func queryCounts(ctx context.Context, pool *pgxpool.Pool, sql string) (map[string]int64, error) {
	rows, err := pool.Query(ctx, sql)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sql, err)
	}
	out := map[string]int64{}
	var k string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&k, &n}, func() error {
		out[k] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sql, err)
	}
	return out, nil
}
