package projections_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

func TestCatchUpOverHistoryThenLive(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	history := appendOrders(t, n.store, "old", 30, 9) // 300 events
	m := n.manager(t, projections.Options{CheckpointInterval: 50, BatchSize: 20})
	rec := newRecorder()
	if err := m.Register(projections.Projection{Name: "orders", Handler: rec}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	if err := m.WaitFor(ctx, "orders", history); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, m, "orders", projections.Live)
	if !slices.Equal(rec.positions(), storedPositions(t, n.store)) {
		t.Fatalf("applied %d positions, want the %d stored in order", rec.len(), history)
	}
	if st.Position != history || st.Head != history || st.Lag != 0 || !st.Active || st.Generation != 1 {
		t.Fatalf("status after catch-up = %+v, want position = head = %d, lag 0, active, generation 1", st, history)
	}

	live := appendOrders(t, n.store, "new", 5, 1)
	if err := m.WaitFor(ctx, "orders", live); err != nil {
		t.Fatal(err)
	}
	if got := rec.len(); got != int(live) {
		t.Fatalf("applied %d events, want %d", got, live)
	}
	// A clean stop saves the checkpoint at the last position.
	if err := m.Stop(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	cp, err := n.cps.LoadCheckpoint(ctx, "projection.orders.g1")
	if err != nil || cp.Position != live {
		t.Fatalf("checkpoint after stop = %+v, %v; want position %d", cp, err, live)
	}
	if st, _ := m.Status(ctx, "orders"); st.State != projections.Stopped || st.Active {
		t.Fatalf("after Stop: %+v", st)
	}
}

func TestMemoryStoreAndEventTypeFilter(t *testing.T) {
	ctx := testContext(t)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: registry})
	appendOrders(t, store, "a", 10, 2) // 10 placed, 20 items
	m, err := projections.New(store, projections.Options{Checkpoints: platform.NewMemoryCheckpointStore(), BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	if err := m.Register(projections.Projection{Name: "placed", EventTypes: []string{"order.placed"}, Handler: rec}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	last := appendOrders(t, store, "b", 1, 3) // the last event is an item: the position still moves
	if err := m.WaitFor(ctx, "placed", last); err != nil {
		t.Fatal(err)
	}
	if got := rec.len(); got != 11 {
		t.Fatalf("handled %d events, want the 11 order.placed", got)
	}
	st := waitState(t, m, "placed", projections.Live)
	if st.Head != last || st.Lag != 0 {
		t.Fatalf("memory store status %+v: want head %d (the highest position read), lag 0", st, last)
	}
}

func TestWaitFor(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	m := n.manager(t, projections.Options{})
	if err := m.Register(projections.Projection{Name: "p", Handler: newRecorder()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)

	t.Run("without deadline", func(t *testing.T) {
		done := make(chan error, 1)
		go func() { done <- m.WaitFor(context.Background(), "p", 3) }()
		select {
		case err := <-done:
			t.Fatalf("WaitFor returned %v before position 3 was stored", err)
		default:
		}
		appendOrders(t, n.store, "w", 1, 2) // positions 1 to 3
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			t.Fatal("WaitFor did not return once position 3 was applied")
		}
	})
	t.Run("deadline", func(t *testing.T) {
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		began := time.Now()
		err := m.WaitFor(dctx, "p", 1000)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "it is at 3") {
			t.Fatalf("WaitFor past the head = %v, want the deadline error naming position 3", err)
		}
		if took := time.Since(began); took > 5*time.Second {
			t.Fatalf("WaitFor took %v past its 100ms deadline", took)
		}
	})
	t.Run("unknown projection", func(t *testing.T) {
		if err := m.WaitFor(ctx, "nope", 1); !errors.Is(err, platform.ErrInvalidArgument) {
			t.Fatalf("WaitFor on an unknown projection = %v", err)
		}
	})
}

func TestHolesFromDeletedAggregates(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	appendOrders(t, n.store, "keep", 3, 2)
	appendOrders(t, n.store, "gone", 2, 2)
	appendOrders(t, n.store, "keep2", 1, 2)
	last := appendOrders(t, n.store, "tail", 1, 2) // the head, deleted below too
	for _, id := range []string{"gone-0", "gone-1", "tail-0"} {
		if err := n.store.Delete(ctx, platform.StreamID{Type: "order", ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	stored := storedPositions(t, n.store)
	if len(stored) != 12 || stored[len(stored)-1] >= last {
		t.Fatalf("setup: stored %v", stored)
	}
	m := n.manager(t, projections.Options{BatchSize: 4, CheckpointInterval: 5})
	rec := newRecorder()
	if err := m.Register(projections.Projection{Name: "holes", Handler: rec}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	// The head is a hole: the catch-up still ends.
	waitState(t, m, "holes", projections.Live)
	if !slices.Equal(rec.positions(), stored) {
		t.Fatalf("applied %v, want the stored %v", rec.positions(), stored)
	}
	next := appendOrders(t, n.store, "after", 1, 0)
	if err := m.WaitFor(ctx, "holes", next); err != nil {
		t.Fatal(err)
	}
	if got := rec.positions(); got[len(got)-1] != next || len(got) != len(stored)+1 {
		t.Fatalf("after the holes: applied %v", got)
	}
}

func TestHandlerErrorFaultsOnlyThatProjection(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	appendOrders(t, n.store, "a", 10, 0)
	m := n.manager(t, projections.Options{BatchSize: 3, CheckpointInterval: 4})
	good, bad := newRecorder(), newRecorder()
	var broken atomic.Bool
	broken.Store(true)
	bad.setHook(func(ctx context.Context, e platform.Envelope) error {
		if broken.Load() && e.Position == 7 {
			return errors.New("the read model's disk is full")
		}
		return nil
	})
	for name, h := range map[string]projections.Handler{"good": good, "bad": bad} {
		if err := m.Register(projections.Projection{Name: name, Handler: h}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	st := waitState(t, m, "bad", projections.Faulted)
	if !errors.Is(st.Err, platform.ErrEventHandler) || !strings.Contains(st.Err.Error(), "disk is full") || !strings.Contains(st.Err.Error(), "position 7") {
		t.Fatalf("faulted with %v, want the handler's error at position 7", st.Err)
	}
	if st.Position != 6 {
		t.Fatalf("faulted at position %d, want 6: everything before the failing event stays applied", st.Position)
	}
	// The other projection goes on, live.
	last := appendOrders(t, n.store, "b", 3, 0)
	if err := m.WaitFor(ctx, "good", last); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitFor(ctx, "bad", last); !errors.Is(err, platform.ErrProjectionBuild) || !strings.Contains(err.Error(), "FAULTED") {
		t.Fatalf("WaitFor on a faulted projection = %v, want an immediate ErrProjectionBuild", err)
	}
	// Fixed: it resumes from the failing event.
	broken.Store(false)
	if err := m.Start(ctx, "bad"); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitFor(ctx, "bad", last); err != nil {
		t.Fatal(err)
	}
	want := storedPositions(t, n.store)
	if got := bad.positions(); !slices.Equal(got, slices.Concat(want[:6], want[6:])) {
		t.Fatalf("the restarted projection applied %v, want %v", got, want)
	}
	waitState(t, m, "bad", projections.Live)
}

func TestCrashMidBatchResumesFromKVCheckpoint(t *testing.T) {
	ctx := testContext(t)
	srv := server(t)
	a := newNode(t, srv, false)
	last := appendOrders(t, a.store, "x", 20, 9) // 200 events
	const interval = 50

	// Process A applies into the middle of a batch past its second
	// checkpoint, then dies.
	crashAt := uint64(137)
	seen := newRecorder()
	reached := make(chan struct{})
	var once sync.Once
	seen.setHook(func(ctx context.Context, e platform.Envelope) error {
		if e.Position == crashAt {
			once.Do(func() { close(reached) })
			<-ctx.Done() // hangs in the middle of its batch until the crash
			return ctx.Err()
		}
		return nil
	})
	actx, crash := context.WithCancel(ctx)
	ma := a.manager(t, projections.Options{CheckpointInterval: interval, BatchSize: 30})
	if err := ma.Register(projections.Projection{Name: "crashy", Handler: seen}); err != nil {
		t.Fatal(err)
	}
	if err := ma.Start(actx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("process A never reached the crash point")
	}
	a.nc.Close() // the crash: no clean stop, no last checkpoint
	crash()
	if err := ma.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	b := newNode(t, srv, false)
	cp, err := b.cps.LoadCheckpoint(ctx, "projection.crashy.g1")
	if err != nil {
		t.Fatal(err)
	}
	if cp.Position == 0 || cp.Position >= crashAt {
		t.Fatalf("checkpoint after the crash at %d: %d; want a position saved before it", crashAt, cp.Position)
	}
	again := newRecorder()
	mb := b.manager(t, projections.Options{CheckpointInterval: interval, BatchSize: 30})
	if err := mb.Register(projections.Projection{Name: "crashy", Handler: again}); err != nil {
		t.Fatal(err)
	}
	if err := mb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, mb)
	if err := mb.WaitFor(ctx, "crashy", last); err != nil {
		t.Fatal(err)
	}
	got := again.positions()
	if got[0] != cp.Position+1 {
		t.Fatalf("B resumed at %d, want the position after the checkpoint, %d", got[0], cp.Position+1)
	}
	// Nothing skipped: A's events and B's together cover every position;
	// those between the checkpoint and the crash came twice.
	all := map[uint64]bool{}
	for _, p := range slices.Concat(seen.positions(), got) {
		all[p] = true
	}
	for p := uint64(1); p <= last; p++ {
		if !all[p] {
			t.Fatalf("position %d was never applied", p)
		}
	}
}

func TestSequentialProjectionsNeverOverlap(t *testing.T) {
	ctx := testContext(t)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: registry})
	last := appendOrders(t, store, "s", 20, 4)
	m, err := projections.New(store, projections.Options{Checkpoints: platform.NewMemoryCheckpointStore(), Sequential: true, BatchSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	var inside, most atomic.Int32
	for _, name := range []string{"one", "two", "three"} {
		h := projections.HandlerFunc(func(ctx context.Context, gen projections.Generation, e platform.Envelope) error {
			n := inside.Add(1)
			defer inside.Add(-1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			return nil
		})
		if err := m.Register(projections.Projection{Name: name, Handler: h}); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	for _, name := range m.Names() {
		if err := m.WaitFor(ctx, name, last); err != nil {
			t.Fatal(err)
		}
	}
	if most.Load() != 1 {
		t.Fatalf("%d handlers ran at once, want 1 with Sequential", most.Load())
	}
}

func TestMetrics(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	last := appendOrders(t, n.store, "m", 10, 1)
	m := n.manager(t, projections.Options{})
	if err := m.Register(projections.Projection{Name: "metered", Handler: newRecorder()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(projections.Projection{Name: "idle", Handler: newRecorder()}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx, "metered"); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	if err := m.WaitFor(ctx, "metered", last); err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "metered", projections.Live)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{} // "<metric>/<projection>[/<state>]"
	states := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			var proj, state string
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "projection":
					proj = l.GetValue()
				case "state":
					state = l.GetValue()
				}
			}
			v := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			if state != "" {
				states[proj+"/"+state] = v
				continue
			}
			values[mf.GetName()+"/"+proj] = v
		}
	}
	for k, want := range map[string]float64{
		"lexigram_projection_lag/idle": float64(last), "lexigram_projection_lag/metered": 0,
		"lexigram_projection_position/metered": float64(last), "lexigram_projection_position/idle": 0,
		"lexigram_projection_head/metered": float64(last), "lexigram_projection_events_read_total/metered": float64(last),
		"lexigram_projection_active/metered": 1, "lexigram_projection_generation/metered": 1,
	} {
		if got, ok := values[k]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	if states["metered/LIVE"] != 1 || states["idle/STOPPED"] != 1 || states["metered/STOPPED"] != 0 {
		t.Fatalf("state gauges %v", states)
	}
}

// conflictOnce is a checkpoint store whose first save meets another
// instance's write, as when two processes overlap around a lease expiry.
type conflictOnce struct {
	platform.CheckpointStore
	once sync.Once
}

func (c *conflictOnce) SaveCheckpoint(ctx context.Context, cp platform.Checkpoint) (platform.Checkpoint, error) {
	conflict := false
	c.once.Do(func() {
		// The other instance moves the checkpoint first.
		cur, err := c.CheckpointStore.LoadCheckpoint(ctx, cp.Name)
		if err == nil {
			cur.Position = 3
			_, err = c.CheckpointStore.SaveCheckpoint(ctx, cur)
		}
		conflict = err == nil
	})
	if conflict {
		return c.CheckpointStore.SaveCheckpoint(ctx, cp) // now stale: ErrCheckpointConflict
	}
	return c.CheckpointStore.SaveCheckpoint(ctx, cp)
}

func TestCheckpointConflictStandsByInsteadOfFaulting(t *testing.T) {
	ctx := testContext(t)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: registry})
	last := appendOrders(t, store, "c", 10, 1)
	cps := &conflictOnce{CheckpointStore: platform.NewMemoryCheckpointStore()}
	m, err := projections.New(store, projections.Options{Checkpoints: cps, CheckpointInterval: 5, BatchSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	if err := m.Register(projections.Projection{Name: "overlap", Handler: rec}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.WaitFor(ctx, "overlap", last); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status(ctx, "overlap"); st.State != projections.Stopped || st.Err != nil {
		t.Fatalf("after a checkpoint conflict: %+v, want a run that went on (STOPPED now, no error)", st)
	}
	// The conflict stopped it (at the next save, as saves run in the
	// background); it reloaded the other instance's checkpoint (3) and went
	// on from there to the end.
	got := rec.positions()
	restart := slices.Index(got[4:], 4) + 4 // the second time position 4 came
	if restart < 5 || !slices.Equal(got[restart:], storedPositions(t, store)[3:]) {
		t.Fatalf("applied %v: want a second run from position 4 to %d", got, last)
	}
	if cp, err := cps.LoadCheckpoint(ctx, "projection.overlap.g1"); err != nil || cp.Position != last {
		t.Fatalf("final checkpoint %+v, %v; want %d", cp, err, last)
	}
}
