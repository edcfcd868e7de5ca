package pgmodel_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lexigram/events/internal/pgtest"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/projections/pgmodel"
)

// orderSummary is the seed's OrderSummaryProjection: one row per order.
// The plain INSERT is safe because each event is applied exactly once.
type orderSummary struct {
	// gate, when armed, holds the event at position 1: only a rebuild
	// reads it again.
	mu    sync.Mutex
	gate  chan struct{}
	gated chan struct{}
}

func (*orderSummary) Tables() []string { return []string{"order_summary"} }

func (*orderSummary) Create(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `CREATE TABLE order_summary (
		id       text PRIMARY KEY,
		customer text NOT NULL,
		total    bigint NOT NULL,
		items    int NOT NULL DEFAULT 0)`)
	return err
}

func (o *orderSummary) Apply(ctx context.Context, tx pgx.Tx, e platform.Envelope) error {
	o.mu.Lock()
	gate, gated := o.gate, o.gated
	o.mu.Unlock()
	if gate != nil && e.Position == 1 {
		close(gated)
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	switch ev := e.Event.(type) {
	case OrderPlaced:
		_, err := tx.Exec(ctx, "INSERT INTO order_summary (id, customer, total) VALUES ($1, $2, $3)", e.Stream.ID, ev.Customer, 0)
		return err
	case ItemAdded:
		_, err := tx.Exec(ctx, "UPDATE order_summary SET total = total + $2, items = items + 1 WHERE id = $1", e.Stream.ID, ev.Price)
		return err
	}
	return nil
}

func TestOrderSummaryCatchUpThenLive(t *testing.T) {
	ctx := testContext(t)
	conn, reader := pgtest.Conn(t), pgtest.Conn(t)
	sch := pgtest.Schema(t)
	store, _ := newStore(t, server(t))
	history := appendOrders(t, store, "h", 40, 4) // 200 events
	p := newProjection(t, conn, "order_summary", &orderSummary{}, sch)
	m := manager(t, store, projections.Options{BatchSize: 25})
	if err := m.Register(projections.Projection{Name: "order_summary", EventTypes: []string{"order.placed", "order.item-added"}, Batch: p}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitFor(ctx, "order_summary", history); err != nil {
		t.Fatal(err)
	}
	view := p.View("order_summary")
	if n, total := queryInt(t, reader, "SELECT count(*) FROM "+view), queryInt(t, reader, "SELECT sum(total) FROM "+view); n != 40 || total != 40*(1+2+3+4) {
		t.Fatalf("after the catch-up %s has %d orders totalling %d; want 40 totalling %d", view, n, total, 40*10)
	}
	if pos := queryInt(t, reader, "SELECT position FROM "+pgx.Identifier{sch, pgmodel.DefaultCheckpointTable}.Sanitize()+" WHERE name = 'order_summary' AND active"); pos != int64(history) {
		t.Fatalf("stored position %d, want %d", pos, history)
	}
	live := appendOrders(t, store, "l", 3, 1)
	if err := m.WaitFor(ctx, "order_summary", live); err != nil {
		t.Fatal(err)
	}
	if n := queryInt(t, reader, "SELECT count(*) FROM "+view+" WHERE id LIKE 'l-%' AND items = 1"); n != 3 {
		t.Fatalf("live orders in the view: %d, want 3", n)
	}
}

// counter counts how often each position was applied.
type counter struct {
	hook func(ctx context.Context, e platform.Envelope) error
}

func (*counter) Tables() []string { return []string{"event_count"} }

func (*counter) Create(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, "CREATE TABLE event_count (position bigint PRIMARY KEY, n int NOT NULL)")
	return err
}

func (c *counter) Apply(ctx context.Context, tx pgx.Tx, e platform.Envelope) error {
	if c.hook != nil {
		if err := c.hook(ctx, e); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, "INSERT INTO event_count VALUES ($1, 1) ON CONFLICT (position) DO UPDATE SET n = event_count.n + 1", int64(e.Position))
	return err
}

func TestCrashMidBatchNothingSkippedNothingTwice(t *testing.T) {
	ctx := testContext(t)
	sch := pgtest.Schema(t)
	srv := server(t)
	storeA, jsA := newStore(t, srv)
	last := appendOrders(t, storeA, "c", 20, 9) // 200 events

	// Process A dies inside the batch of positions 121 to 150.
	connA := pgtest.Conn(t)
	reached, crash := make(chan struct{}), make(chan struct{})
	pA := newProjection(t, connA, "counted", &counter{hook: func(ctx context.Context, e platform.Envelope) error {
		if e.Position == 137 {
			close(reached)
			<-crash
			return errors.New("the process is gone")
		}
		return nil
	}}, sch)
	actx, cancel := context.WithCancel(ctx)
	mA := manager(t, storeA, projections.Options{BatchSize: 30})
	if err := mA.Register(projections.Projection{Name: "counted", Batch: pA}); err != nil {
		t.Fatal(err)
	}
	if err := mA.Start(actx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("process A never reached position 137")
	}
	// The crash: both connections drop mid-transaction, nothing is
	// stopped cleanly.
	_ = connA.PgConn().Conn().Close()
	jsA.Conn().Close()
	cancel()
	close(crash)

	check := pgtest.Conn(t)
	view := pgx.Identifier{sch, "event_count"}.Sanitize()
	ckpt := pgx.Identifier{sch, pgmodel.DefaultCheckpointTable}.Sanitize()
	eventually(t, 10*time.Second, "A's transaction rolled back", func() bool {
		return queryInt(t, check, "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%event_count%'") == 0
	})
	stored := queryInt(t, check, "SELECT position FROM "+ckpt+" WHERE name = 'counted' AND generation = 1")
	if rows := queryInt(t, check, "SELECT count(*) FROM "+view); stored != 120 || rows != 120 {
		t.Fatalf("after the crash: position %d and %d rows; want 120 and 120 (the batches before the one in flight)", stored, rows)
	}

	storeB, _ := newStore(t, srv)
	pB := newProjection(t, pgtest.Conn(t), "counted", &counter{}, sch)
	mB := manager(t, storeB, projections.Options{BatchSize: 30})
	if err := mB.Register(projections.Projection{Name: "counted", Batch: pB}); err != nil {
		t.Fatal(err)
	}
	if err := mB.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mB.WaitFor(ctx, "counted", last); err != nil {
		t.Fatal(err)
	}
	if rows, most, least := queryInt(t, check, "SELECT count(*) FROM "+view), queryInt(t, check, "SELECT max(n) FROM "+view), queryInt(t, check, "SELECT min(n) FROM "+view); rows != int64(last) || most != 1 || least != 1 {
		t.Fatalf("after the resume: %d positions counted %d to %d times; want all %d exactly once", rows, least, most, last)
	}
}

func TestOverlappingInstanceAppliesNothing(t *testing.T) {
	ctx := testContext(t)
	sch := pgtest.Schema(t)
	check := pgtest.Conn(t)
	a := newProjection(t, pgtest.Conn(t), "overlap", &counter{}, sch)
	b := newProjection(t, pgtest.Conn(t), "overlap", &counter{}, sch)
	if err := a.Prepare(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Activate(ctx, 1); err != nil {
		t.Fatal(err)
	}
	evs := func(from, to uint64) []platform.Envelope {
		var out []platform.Envelope
		for p := from; p <= to; p++ {
			out = append(out, platform.Envelope{Position: p, Type: "x"})
		}
		return out
	}
	if err := a.ApplyBatch(ctx, 1, projections.Batch{From: 0, To: 5, Events: evs(1, 5)}); err != nil {
		t.Fatal(err)
	}
	// b loaded position 0 before a moved it: its batch is refused whole.
	err := b.ApplyBatch(ctx, 1, projections.Batch{From: 0, To: 3, Events: evs(1, 3)})
	if !errors.Is(err, platform.ErrCheckpointConflict) {
		t.Fatalf("overlapping ApplyBatch = %v, want ErrCheckpointConflict", err)
	}
	view := pgx.Identifier{sch, "event_count"}.Sanitize()
	if rows, most := queryInt(t, check, "SELECT count(*) FROM "+view), queryInt(t, check, "SELECT max(n) FROM "+view); rows != 5 || most != 1 {
		t.Fatalf("after the refused batch: %d rows, max count %d; want 5 rows counted once", rows, most)
	}
	if pos, err := b.Position(ctx, 1); err != nil || pos != 5 {
		t.Fatalf("Position = %d, %v; want 5", pos, err)
	}
	if err := a.Drop(ctx, 1); err == nil {
		t.Fatal("Drop of the active generation succeeded")
	}
	if err := a.Activate(ctx, 7); err == nil {
		t.Fatal("Activate of a generation never prepared succeeded")
	}
	if gen, err := b.Active(ctx); err != nil || gen != 1 {
		t.Fatalf("Active = %d, %v after the refused Activate; want 1", gen, err)
	}
}

func TestRebuildSwapsAtomically(t *testing.T) {
	ctx := testContext(t)
	sch := pgtest.Schema(t)
	store, _ := newStore(t, server(t))
	appendOrders(t, store, "r", 60, 2) // 180 events
	model := &orderSummary{}
	p := newProjection(t, newPool(t, 2), "summary", model, sch)
	m := manager(t, store, projections.Options{BatchSize: 20, RebuildBatchSize: 50})
	if err := m.Register(projections.Projection{Name: "summary", Batch: p}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	view := p.View("order_summary")
	ckpt := pgx.Identifier{sch, pgmodel.DefaultCheckpointTable}.Sanitize()
	check := pgtest.Conn(t)
	eventually(t, 10*time.Second, "60 orders in the view", func() bool {
		var n int64
		err := check.QueryRow(ctx, "SELECT count(*) FROM "+view).Scan(&n)
		return err == nil && n == 60 // the view appears when the manager has started
	})

	// A reader queries the view throughout: the order count never goes
	// down, which a half-built model would show.
	readerConn := pgtest.Conn(t)
	stop, readerDone := make(chan struct{}), make(chan error, 1)
	var reads int
	go func() {
		prev := int64(0)
		for {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			var n int64
			if err := readerConn.QueryRow(ctx, "SELECT count(*) FROM "+view).Scan(&n); err != nil {
				readerDone <- fmt.Errorf("read %d: %w", reads, err)
				return
			}
			if n < prev {
				readerDone <- fmt.Errorf("read %d: %d orders after %d", reads, n, prev)
				return
			}
			prev = n
			reads++
		}
	}()

	model.mu.Lock()
	model.gate, model.gated = make(chan struct{}), make(chan struct{})
	model.mu.Unlock()
	gen, err := m.Rebuild(ctx, "summary")
	if err != nil || gen != 2 {
		t.Fatalf("Rebuild = %d, %v", gen, err)
	}
	<-model.gated
	during := appendOrders(t, store, "d", 10, 0)
	if err := m.WaitFor(ctx, "summary", during); err != nil {
		t.Fatal(err)
	}
	if n, active := queryInt(t, check, "SELECT count(*) FROM "+view), queryInt(t, check, "SELECT generation FROM "+ckpt+" WHERE name = 'summary' AND active"); n != 70 || active != 1 {
		t.Fatalf("during the rebuild the view has %d orders from generation %d; want 70 from 1", n, active)
	}
	appended := make(chan uint64)
	go func() {
		var last uint64
		for i := range 4 {
			last = appendOrders(t, store, fmt.Sprintf("late%d", i), 5, 1)
		}
		appended <- last
	}()
	model.mu.Lock()
	close(model.gate)
	model.gate = nil
	model.mu.Unlock()
	last := <-appended
	eventually(t, 15*time.Second, "generation 2 swapped in", func() bool {
		st, _ := m.Status(ctx, "summary")
		return st.Generation == 2 && st.Rebuild != nil && !st.Rebuild.Finished.IsZero()
	})
	if err := m.WaitFor(ctx, "summary", last); err != nil {
		t.Fatal(err)
	}
	close(stop)
	if err := <-readerDone; err != nil {
		t.Fatalf("reader: %v", err)
	}
	if reads == 0 {
		t.Fatal("the reader never read")
	}
	if n, active := queryInt(t, check, "SELECT count(*) FROM "+view), queryInt(t, check, "SELECT generation FROM "+ckpt+" WHERE name = 'summary' AND active"); n != 90 || active != 2 {
		t.Fatalf("after the rebuild the view has %d orders from generation %d; want 90 from 2", n, active)
	}
	if items := queryInt(t, check, "SELECT sum(items) FROM "+view); items != 60*2+20 {
		t.Fatalf("after the rebuild the view counts %d items, want %d", items, 60*2+20)
	}
	if old := queryInt(t, check, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", sch+"_summary_g1"); old != 0 {
		t.Fatal("generation 1's schema is still there after the swap")
	}
	t.Logf("the reader read the view %d times during the rebuild", reads)
}
