package projections_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// The versions of the schema tests: placed v1 → v2 (a field renamed), a
// bundle split into a placed v1 (→ v2) and a shipped, a retired note.
type (
	upPlacedV1 struct{ Amount int }
	upPlacedV2 struct{ Cents int }
	upBundleV1 struct{ Amount int }
	upShipped  struct{ Via string }
	upNoteV1   struct{ Text string }
)

func registerUpFirst(t *testing.T, reg *platform.Registry) {
	t.Helper()
	platform.MustRegister[upPlacedV1](reg, "up.placed", 1)
	platform.MustRegister[upBundleV1](reg, "up.bundle", 1)
	platform.MustRegister[upNoteV1](reg, "up.note", 1)
}

func registerUpLater(t *testing.T, reg *platform.Registry) {
	t.Helper()
	platform.MustRegister[upPlacedV2](reg, "up.placed", 2)
	platform.MustRegister[upShipped](reg, "up.shipped", 1)
	platform.MustUpcast(reg, func(e upPlacedV1) upPlacedV2 { return upPlacedV2{Cents: e.Amount} })
	platform.MustUpcastMany(reg, func(e upBundleV1) []any { return []any{upPlacedV1(e), upShipped{Via: "post"}} })
	platform.MustRetire[upNoteV1](reg)
	if err := reg.Check(); err != nil {
		t.Fatal(err)
	}
}

// batches is a BatchHandler that keeps its position in memory and every
// batch it applied.
type batches struct {
	mu      sync.Mutex
	pos     uint64
	applied [][]platform.Envelope
}

func (b *batches) Position(ctx context.Context, gen projections.Generation) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pos, nil
}

func (b *batches) ApplyBatch(ctx context.Context, gen projections.Generation, batch projections.Batch) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if batch.From != b.pos {
		return platform.ErrCheckpointConflict
	}
	b.pos = batch.To
	if len(batch.Events) > 0 {
		b.applied = append(b.applied, append([]platform.Envelope(nil), batch.Events...))
	}
	return nil
}

func (b *batches) events() []any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []any
	for _, batch := range b.applied {
		for _, e := range batch {
			out = append(out, e.Event)
		}
	}
	return out
}

// A projection reads events upcast to their current versions, during
// catch-up and live: a stored event split in two is two events that
// never straddle two batches (the position stored with a batch would
// lose the second part on a restart), and a retired event moves the
// position, so WaitFor on it returns.
func TestProjectionReadsUpcastEvents(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	reg := platform.NewRegistry()
	registerUpFirst(t, reg)
	store, err := lxjs.New(ctx, n.js, lxjs.Options{Stream: "UPCAST", SubjectPrefix: "upcast", Registry: reg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// An earlier release, still running, that knows only the first versions.
	oldReg := platform.NewRegistry()
	registerUpFirst(t, oldReg)
	old, err := lxjs.New(ctx, n.js, lxjs.Options{Stream: "UPCAST", SubjectPrefix: "upcast", Registry: oldReg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	appendUp := func(id string, evs ...any) uint64 {
		t.Helper()
		envs := make([]platform.Envelope, len(evs))
		for i, e := range evs {
			envs[i].Event = e
		}
		res, err := old.Append(ctx, platform.StreamID{Type: "up", ID: id}, platform.Any(), envs)
		if err != nil {
			t.Fatal(err)
		}
		return res.LastPosition
	}
	appendUp("a", upPlacedV1{Amount: 1}, upBundleV1{Amount: 2}, upPlacedV1{Amount: 3}, upBundleV1{Amount: 4})
	history := appendUp("b", upNoteV1{Text: "retired"}) // the head is a retired event
	registerUpLater(t, reg)

	m, err := projections.New(store, projections.Options{Checkpoints: n.cps, BatchSize: 2, CheckpointInterval: 1, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := &batches{}
	rec := newRecorder()
	var handled []any
	var mu sync.Mutex
	rec.setHook(func(ctx context.Context, e platform.Envelope) error {
		mu.Lock()
		handled = append(handled, e.Event)
		mu.Unlock()
		return nil
	})
	for _, p := range []projections.Projection{{Name: "batched", Batch: b}, {Name: "single", Handler: rec}} {
		if err := m.Register(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	for _, name := range []string{"batched", "single"} {
		if err := m.WaitFor(ctx, name, history); err != nil {
			t.Fatalf("WaitFor(%s, the retired head %d): %v", name, history, err)
		}
		waitState(t, m, name, projections.Live)
	}
	live := appendUp("c", upBundleV1{Amount: 5}, upNoteV1{Text: "retired too"})
	for _, name := range []string{"batched", "single"} {
		if err := m.WaitFor(ctx, name, live); err != nil {
			t.Fatalf("WaitFor(%s, %d) on live events: %v", name, live, err)
		}
	}

	ship := upShipped{Via: "post"}
	want := []any{upPlacedV2{1}, upPlacedV2{2}, ship, upPlacedV2{3}, upPlacedV2{4}, ship, upPlacedV2{5}, ship}
	if got := b.events(); !reflect.DeepEqual(got, want) {
		t.Fatalf("batch projection applied %#v, want %#v", got, want)
	}
	mu.Lock()
	if !reflect.DeepEqual(handled, want) {
		t.Fatalf("projection handled %#v, want %#v", handled, want)
	}
	mu.Unlock()
	b.mu.Lock()
	for i, batch := range b.applied {
		if last := batch[len(batch)-1]; !last.EndsStored() {
			t.Errorf("batch %d ends with part %d of %d of the event at %d: the rest is in the next batch", i, last.Origin.Part, last.Origin.Parts, last.Position)
		}
	}
	pos := b.pos
	b.mu.Unlock()
	if pos != live {
		t.Fatalf("batch projection's stored position %d, want %d", pos, live)
	}
	if err := m.Stop(ctx, "single"); err != nil {
		t.Fatal(err)
	}
	if cp, err := n.cps.LoadCheckpoint(ctx, "projection.single.g1"); err != nil || cp.Position != live {
		t.Fatalf("checkpoint after stop = %+v, %v; want the retired last position %d", cp, err, live)
	}
}

// SkipUndecodable moves a projection past events that do not decode,
// logged and counted; without it, the projection faults naming the event.
func TestProjectionSkipUndecodable(t *testing.T) {
	ctx := testContext(t)
	n := newNode(t, server(t), false)
	appendOrders(t, n.store, "a", 2, 0)
	subject, err := n.store.Subject(platform.StreamID{Type: "order", ID: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	poison := func() uint64 {
		t.Helper()
		ack, err := n.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: []byte{0x80},
			Header: nats.Header{"Lx-Type": {"order.vanished"}, "Lx-Version": {"1"}, "Lx-Schema": {"1"}, "Lx-Codec": {"msgpack"}}})
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	bad := poison()
	history := appendOrders(t, n.store, "b", 2, 0)

	m := n.manager(t, projections.Options{BatchSize: 2})
	skipper, strict := newRecorder(), newRecorder()
	for _, p := range []projections.Projection{{Name: "skipper", Handler: skipper, SkipUndecodable: true}, {Name: "strict", Handler: strict}} {
		if err := m.Register(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	stopAll(t, m)
	if err := m.WaitFor(ctx, "skipper", history); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, m, "strict", projections.Faulted)
	if !errors.Is(st.Err, platform.ErrUnknownEventType) || !strings.Contains(st.Err.Error(), "order.vanished") || st.Position >= bad {
		t.Fatalf("strict projection: %+v; want FAULTED before position %d with an error naming order.vanished", st, bad)
	}
	waitState(t, m, "skipper", projections.Live)
	later := poison()
	last := appendOrders(t, n.store, "c", 1, 0)
	if err := m.WaitFor(ctx, "skipper", last); err != nil {
		t.Fatal(err)
	}
	st, err = m.Status(ctx, "skipper")
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped != 2 || st.Position != last {
		t.Fatalf("skipper status %+v; want 2 skipped (%d and %d), position %d", st, bad, later, last)
	}
	for _, p := range skipper.positions() {
		if p == bad || p == later {
			t.Fatalf("the handler got the undecodable event at %d", p)
		}
	}
	if got := skipper.len(); got != 5 {
		t.Fatalf("skipper handled %d events, want the 5 good ones", got)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector())
	const want = `
# HELP lexigram_projection_events_skipped_total Events that did not decode, skipped by the projection (SkipUndecodable) since this process started it.
# TYPE lexigram_projection_events_skipped_total counter
lexigram_projection_events_skipped_total{projection="skipper"} 2
lexigram_projection_events_skipped_total{projection="strict"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lexigram_projection_events_skipped_total"); err != nil {
		t.Fatal(err)
	}
}
