package pgmodel_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lexigram/events/internal/pgtest"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// selfTerminating counts positions, and once, at one position, has
// PostgreSQL end its own connection, as a server shutting down or an
// administrator's pg_terminate_backend does (SQLSTATE 57P01).
type selfTerminating struct {
	counter
	at   uint64
	done atomic.Bool
}

func (s *selfTerminating) Apply(ctx context.Context, tx pgx.Tx, e platform.Envelope) error {
	if e.Position == s.at && s.done.CompareAndSwap(false, true) {
		if _, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())"); err != nil {
			return err
		}
	}
	return s.counter.Apply(ctx, tx, e)
}

// A connection PostgreSQL terminates mid-batch is waited out: the
// projection takes another connection from its pool and applies every
// event once, instead of going FAULTED until someone starts it again.
func TestTerminatedConnectionIsWaitedOut(t *testing.T) {
	ctx := testContext(t)
	sch := pgtest.Schema(t)
	store, _ := newStore(t, server(t))
	last := appendOrders(t, store, "t", 10, 4) // 50 events
	model := &selfTerminating{at: 23}
	p := newProjection(t, pgtest.Pool(t), "terminated", model, sch)
	m := manager(t, store, projections.Options{BatchSize: 10})
	if err := m.Register(projections.Projection{Name: "terminated", Batch: p}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitFor(ctx, "terminated", last); err != nil {
		t.Fatal(err)
	}
	if !model.done.Load() {
		t.Fatal("the connection was never terminated: the test tested nothing")
	}
	check := pgtest.Conn(t)
	view := pgx.Identifier{sch, "event_count"}.Sanitize()
	if rows, most := queryInt(t, check, "SELECT count(*) FROM "+view), queryInt(t, check, "SELECT max(n) FROM "+view); rows != int64(last) || most != 1 {
		t.Fatalf("%d positions counted, at most %d times; want all %d once", rows, most, last)
	}
}
