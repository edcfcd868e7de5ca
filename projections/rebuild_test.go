package projections_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// genModel is a generational read model in memory: one set of positions
// per generation, and the generation readers see. It is the shape a KV
// read model takes: keys prefixed by generation and a pointer key.
type genModel struct {
	mu     sync.Mutex
	gens   map[projections.Generation]map[uint64]int
	active projections.Generation
	// gate, when set, holds the first event of that generation.
	gate     chan struct{}
	gateGen  projections.Generation
	gateOnce sync.Once
	gated    chan struct{}
	// swapCheck records, at each Activate, whether the new generation had
	// everything the old one had.
	swapProblems []string
	dropped      []projections.Generation
}

func newGenModel() *genModel {
	return &genModel{gens: map[projections.Generation]map[uint64]int{}, gated: make(chan struct{})}
}

func (m *genModel) Handle(ctx context.Context, gen projections.Generation, e platform.Envelope) error {
	if gen == m.gateGen && m.gate != nil {
		m.gateOnce.Do(func() { close(m.gated) })
		select {
		case <-m.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.gens[gen]
	if g == nil {
		return fmt.Errorf("generation %d was not prepared", gen)
	}
	g[e.Position]++
	return nil
}

func (m *genModel) Active(ctx context.Context) (projections.Generation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.active, nil
}

func (m *genModel) Prepare(ctx context.Context, gen projections.Generation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gens[gen] = map[uint64]int{}
	return nil
}

func (m *genModel) Activate(ctx context.Context, gen projections.Generation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.active; old != 0 && old != gen {
		for p := range m.gens[old] {
			if m.gens[gen][p] == 0 {
				m.swapProblems = append(m.swapProblems, fmt.Sprintf("generation %d lacked position %d of generation %d at the swap", gen, p, old))
			}
		}
	}
	m.active = gen
	return nil
}

func (m *genModel) Drop(ctx context.Context, gen projections.Generation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.gens, gen)
	m.dropped = append(m.dropped, gen)
	return nil
}

// read is what a reader sees: the active generation's positions.
func (m *genModel) read() (projections.Generation, map[uint64]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[uint64]int{}
	for p, n := range m.gens[m.active] {
		out[p] = n
	}
	return m.active, out
}

func TestRebuildWhileEventsArrive(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	appendOrders(t, n.store, "r", 50, 3) // 200 events
	model := newGenModel()
	m := n.manager(t, projections.Options{BatchSize: 10, RebuildBatchSize: 25, CheckpointInterval: 20})
	if err := m.Register(projections.Projection{Name: "gen", Handler: model}); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	waitState(t, m, "gen", projections.Live)
	if gen, seen := model.read(); gen != 1 || len(seen) != 200 {
		t.Fatalf("before the rebuild readers see generation %d with %d events", gen, len(seen))
	}

	// The rebuild is held at its first event while events keep coming.
	model.gate, model.gateGen = make(chan struct{}), 2
	gen, err := m.Rebuild(ctx, "gen")
	if err != nil || gen != 2 {
		t.Fatalf("Rebuild = %d, %v; want generation 2", gen, err)
	}
	if _, err := m.Rebuild(ctx, "gen"); err == nil {
		t.Fatal("a second Rebuild while one runs succeeded")
	}
	<-model.gated
	st := waitState(t, m, "gen", projections.Rebuilding)
	if st.Rebuild == nil || st.Rebuild.Generation != 2 || st.Rebuild.Total < 200 || st.Generation != 1 {
		t.Fatalf("status during the rebuild: %+v rebuild %+v", st, st.Rebuild)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range mt.GetLabel() {
				if l.GetName() == "state" {
					key += "/" + l.GetValue()
				}
			}
			got[key] = mt.GetGauge().GetValue()
		}
	}
	if got["lexigram_projection_state/REBUILDING"] != 1 || got["lexigram_projection_rebuild_total_events"] < 200 || got["lexigram_projection_generation"] != 1 {
		t.Fatalf("metrics during the rebuild: %v", got)
	}
	during := appendOrders(t, n.store, "d", 10, 1)
	// The old generation keeps serving, complete.
	if err := m.WaitFor(ctx, "gen", during); err != nil {
		t.Fatal(err)
	}
	if g, seen := model.read(); g != 1 || len(seen) != int(during) {
		t.Fatalf("during the rebuild readers see generation %d with %d events, want 1 with %d", g, len(seen), during)
	}

	// More arrive while it replays.
	appending := make(chan uint64)
	go func() {
		var last uint64
		for i := range 5 {
			last = appendOrders(t, n.store, fmt.Sprintf("late%d", i), 4, 0)
		}
		appending <- last
	}()
	close(model.gate)
	last := <-appending
	eventually(t, 10*time.Second, "the rebuild swaps in generation 2", func() bool {
		st, _ := m.Status(ctx, "gen")
		return st.Generation == 2 && st.Rebuild != nil && !st.Rebuild.Finished.IsZero()
	})
	if err := m.WaitFor(ctx, "gen", last); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, m, "gen", projections.Live)
	if st.Rebuild.Err != nil || st.Rebuild.Done < uint64(during) {
		t.Fatalf("rebuild outcome %+v", st.Rebuild)
	}
	g, seen := model.read()
	if g != 2 {
		t.Fatalf("readers see generation %d after the swap", g)
	}
	for _, p := range storedPositions(t, n.store) {
		if seen[p] != 1 {
			t.Fatalf("generation 2 has position %d %d times, want once", p, seen[p])
		}
	}
	model.mu.Lock()
	defer model.mu.Unlock()
	if len(model.swapProblems) > 0 {
		t.Fatalf("readers could see a half-built model: %v", model.swapProblems)
	}
	if len(model.dropped) != 1 || model.dropped[0] != 1 {
		t.Fatalf("dropped %v, want generation 1 after the swap", model.dropped)
	}
	cp, err := n.cps.LoadCheckpoint(ctx, "projection.gen.g2")
	if err != nil || cp.Position == 0 {
		t.Fatalf("generation 2's checkpoint %+v, %v", cp, err)
	}
}

func TestRebuildNeedsGenerational(t *testing.T) {
	ctx := testContext(t)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: registry})
	m, err := projections.New(store, projections.Options{Checkpoints: platform.NewMemoryCheckpointStore()})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Register(projections.Projection{Name: "plain", Handler: newRecorder()}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Rebuild(ctx, "plain"); err == nil {
		t.Fatal("Rebuild of a handler that is not Generational succeeded")
	}
}
