package platform_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/lexigram/events/platform"
)

type bundleV1 struct {
	Order string
	Cents int
}

// upOrder applies only the current versions: events that were not upcast
// on load would leave its state short.
type upOrder struct {
	platform.AggregateRoot
	State   upOrderState
	applied []any
	decline bool // UpcastSnapshot declines
}

type upOrderState struct {
	Cents   int
	Shipped int
	Orders  []string
}

// upOrderStateV1 is the state's shape under snapshot schema version 1.
type upOrderStateV1 struct {
	Amount int
	Orders []string
}

func (o *upOrder) AggregateType() string { return "uporder" }

func (o *upOrder) Apply(event any) {
	o.applied = append(o.applied, event)
	switch e := event.(type) {
	case placedV3:
		o.State.Cents += e.Cents
		o.State.Orders = append(o.State.Orders, e.Order)
	case shippedV1:
		o.State.Shipped++
	}
}

func (o *upOrder) SnapshotState() any         { return &o.State }
func (o *upOrder) SnapshotSchemaVersion() int { return 2 }

func (o *upOrder) UpcastSnapshot(from int, c platform.Codec, state []byte) (bool, error) {
	if from != 1 || o.decline {
		return false, nil
	}
	var old upOrderStateV1
	if err := c.Unmarshal(state, &old); err != nil {
		return false, err
	}
	o.State = upOrderState{Cents: old.Amount, Orders: old.Orders}
	return true, nil
}

var _ platform.SnapshotUpcaster = (*upOrder)(nil)

// evolvedStore returns a memory store holding one order's history as an
// earlier release wrote it (placed v1, a bundle, placed v1, a note), and
// its registry, now holding the later release's versions: placed up to
// v3, the bundle split into placed v1 (→ v3) and shipped, the note retired.
func evolvedStore(t *testing.T) (*platform.MemoryEventStore, *platform.Registry) {
	t.Helper()
	reg := platform.NewRegistry()
	platform.MustRegister[placedV1](reg, "order.placed", 1)
	platform.MustRegister[bundleV1](reg, "order.bundle", 1)
	platform.MustRegister[noteV1](reg, "order.note", 1)
	store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg})
	_, err := store.Append(t.Context(), platform.StreamID{Type: "uporder", ID: "o"}, platform.NoStream(), []platform.Envelope{
		{Event: placedV1{Order: "a", Amount: 100}},
		{Event: bundleV1{Order: "b", Cents: 20}},
		{Event: placedV1{Order: "c", Amount: 3}},
		{Event: noteV1{Text: "retired later"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	platform.MustRegister[placedV2](reg, "order.placed", 2)
	platform.MustRegister[placedV3](reg, "order.placed", 3)
	platform.MustRegister[shippedV1](reg, "order.shipped", 1)
	platform.MustUpcast(reg, v1ToV2)
	platform.MustUpcast(reg, v2ToV3)
	platform.MustUpcastMany(reg, func(b bundleV1) []any {
		return []any{placedV1{Order: b.Order, Amount: b.Cents}, shippedV1{Order: b.Order}}
	})
	platform.MustRetire[noteV1](reg)
	if err := reg.Check(); err != nil {
		t.Fatal(err)
	}
	return store, reg
}

var evolvedApplied = []any{
	placedV3{Order: "a", Cents: 100, Currency: "EUR"},
	placedV3{Order: "b", Cents: 20, Currency: "EUR"},
	shippedV1{Order: "b"},
	placedV3{Order: "c", Cents: 3, Currency: "EUR"},
}

func TestRepositoryLoadsUpcastHistory(t *testing.T) {
	store, _ := evolvedStore(t)
	repo := platform.NewRepository(store, func() *upOrder { return &upOrder{} }, platform.RepositoryOptions{})
	o, err := repo.Load(t.Context(), "o")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.applied, evolvedApplied) {
		t.Fatalf("Load applied %#v, want %#v", o.applied, evolvedApplied)
	}
	// The retired last event still counts: the aggregate is at the stored
	// version 4, and the next save expects it.
	if o.Version() != 4 || o.Revision().Version != 4 || o.Revision().Position != 4 {
		t.Fatalf("loaded at version %d, revision %+v; want version 4 at position 4", o.Version(), o.Revision())
	}
	platform.Raise(o, placedV3{Order: "d", Cents: 1, Currency: "EUR"})
	res, err := repo.Save(t.Context(), o)
	if err != nil || res.FirstVersion != 5 {
		t.Fatalf("Save after an upcast load = %+v, %v; want version 5 without a conflict", res, err)
	}
	_, _, err = repo.Update(t.Context(), "o", func(o *upOrder) error {
		if o.State.Cents != 124 || o.State.Shipped != 1 || len(o.State.Orders) != 4 {
			return errors.New("reloaded state is wrong")
		}
		platform.Raise(o, shippedV1{Order: "d"})
		return nil
	})
	if err != nil {
		t.Fatalf("Update on the upcast history: %v", err)
	}
}

func TestLoadFromHistoryAppliesSplitPartsOnce(t *testing.T) {
	store, _ := evolvedStore(t)
	var history []platform.Envelope
	for e, err := range store.Read(t.Context(), platform.StreamID{Type: "uporder", ID: "o"}, platform.Revision{}) {
		if err != nil {
			t.Fatal(err)
		}
		history = append(history, e)
	}
	if len(history) != 5 {
		t.Fatalf("Read yields %d envelopes for 4 stored events, want 5 (a split in two, a retired marker)", len(history))
	}
	o := &upOrder{}
	platform.LoadFromHistory(o, history)
	platform.LoadFromHistory(o, history)      // again: all applied already
	platform.LoadFromHistory(o, history[1:3]) // the split's parts again
	platform.LoadFromHistory(o, history[2:3]) // its second part alone
	if !reflect.DeepEqual(o.applied, evolvedApplied) || o.Version() != 4 {
		t.Fatalf("LoadFromHistory applied %#v (version %d), want %#v once (version 4)", o.applied, o.Version(), evolvedApplied)
	}
	// Halfway through a split, the next part is still applied.
	half := &upOrder{}
	platform.LoadFromHistory(half, history[:2])
	platform.LoadFromHistory(half, history[2:])
	if !reflect.DeepEqual(half.applied, evolvedApplied) {
		t.Fatalf("LoadFromHistory in two halves applied %#v", half.applied)
	}
}

func TestSnapshotStateUpcast(t *testing.T) {
	store, _ := evolvedStore(t)
	snaps := platform.NewMemorySnapshotStore()
	stream := platform.StreamID{Type: "uporder", ID: "o"}
	old, err := platform.Msgpack.Marshal(upOrderStateV1{Amount: 120, Orders: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot of schema version 1 at version 3 (position 3).
	if err := snaps.SaveSnapshot(t.Context(), platform.Snapshot{Stream: stream, Revision: platform.Revision{Version: 3, Position: 3},
		SchemaVersion: 1, Codec: "msgpack", State: old}); err != nil {
		t.Fatal(err)
	}
	load := func(decline bool) *upOrder {
		t.Helper()
		repo := platform.NewRepository(store, func() *upOrder { return &upOrder{decline: decline} }, platform.RepositoryOptions{Snapshots: snaps})
		o, err := repo.Load(context.Background(), "o")
		if err != nil {
			t.Fatal(err)
		}
		if o.Version() != 4 {
			t.Fatalf("loaded at version %d, want 4", o.Version())
		}
		return o
	}
	// Upcast: the state comes from the snapshot; only version 4 (retired)
	// is read after it, and applies nothing.
	o := load(false)
	if len(o.applied) != 0 || o.State.Cents != 120 || !reflect.DeepEqual(o.State.Orders, []string{"a", "b"}) {
		t.Fatalf("load with a state upcaster applied %v, state %+v; want the snapshot's state and nothing applied", o.applied, o.State)
	}
	// Declined: ignored and rebuilt from the events.
	o = load(true)
	if !reflect.DeepEqual(o.applied, evolvedApplied) || o.State.Cents != 123 {
		t.Fatalf("load with a declining state upcaster applied %v, state %+v; want a full replay", o.applied, o.State)
	}
}
