package platform_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/lexigram/events/platform"
)

// The Order aggregate of the tests.
type (
	OrderPlaced struct{ Customer string }
	ItemAdded   struct {
		SKU string
		Qty int
	}
	OrderState struct {
		Customer string
		Items    []string
		Qty      int
	}
	Order struct {
		platform.AggregateRoot
		State OrderState
		// Applied counts the events Apply saw since the aggregate was
		// made; a snapshot restores State but not Applied.
		Applied int
		// Schema is the snapshot schema version; 0 means 1.
		Schema int
	}
)

func (o *Order) AggregateType() string { return "order" }

func (o *Order) Apply(event any) {
	o.Applied++
	switch e := event.(type) {
	case OrderPlaced:
		o.State.Customer = e.Customer
	case ItemAdded:
		o.State.Items = append(o.State.Items, e.SKU)
		o.State.Qty += e.Qty
	}
}

func (o *Order) SnapshotState() any { return &o.State }

func (o *Order) SnapshotSchemaVersion() int { return max(o.Schema, 1) }

// Counter is an aggregate that cannot be snapshotted.
type Counter struct {
	platform.AggregateRoot
	N int
}

func (c *Counter) AggregateType() string { return "counter" }
func (c *Counter) Apply(any)             { c.N++ }

// logRecorder is a slog.Handler that keeps the messages.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func (l *logRecorder) has(substr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, substr) {
			return true
		}
	}
	return false
}

// fixture is one test's stores.
type fixture struct {
	t      *testing.T
	events *platform.MemoryEventStore
	snaps  *platform.MemorySnapshotStore
	logs   *logRecorder
}

func newFixture(t *testing.T) *fixture {
	reg := platform.NewRegistry()
	platform.MustRegister[OrderPlaced](reg, "order.placed", 1)
	platform.MustRegister[ItemAdded](reg, "order.item-added", 1)
	return &fixture{
		t:      t,
		events: platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg}),
		snaps:  platform.NewMemorySnapshotStore(),
		logs:   &logRecorder{},
	}
}

// repo returns a repository over the fixture's event store with opts;
// schema is the snapshot schema version of the aggregates it makes.
func (f *fixture) repo(opts platform.RepositoryOptions, schema int) *platform.Repository[*Order] {
	return f.repoOn(f.events, opts, schema)
}

func (f *fixture) repoOn(store platform.EventStore, opts platform.RepositoryOptions, schema int) *platform.Repository[*Order] {
	if opts.Logger == nil {
		opts.Logger = slog.New(f.logs)
	}
	return platform.NewRepository(store, func() *Order { return &Order{Schema: schema} }, opts)
}

// snapshotting returns options with the fixture's snapshot store and
// count-based snapshots every n events (-1: off).
func (f *fixture) snapshotting(n int) platform.RepositoryOptions {
	return platform.RepositoryOptions{Snapshots: f.snaps, SnapshotPolicy: platform.SnapshotPolicy{EveryEvents: n}}
}

// build creates order id with a placed event and then saves of the given
// sizes of item events. It returns the total number of events.
func build(t *testing.T, repo *platform.Repository[*Order], id string, saves ...int) int {
	t.Helper()
	total := 0
	for i, n := range saves {
		_, _, err := repo.Update(t.Context(), id, func(o *Order) error {
			for j := range n {
				if i == 0 && j == 0 {
					platform.Raise(o, OrderPlaced{Customer: "ann"})
					continue
				}
				platform.Raise(o, ItemAdded{SKU: fmt.Sprintf("sku-%d-%d", i, j), Qty: j + 1})
			}
			return nil
		})
		if err != nil {
			t.Fatalf("save %d of %s: %v", i, id, err)
		}
		total += n
	}
	return total
}

func mustLoad(t *testing.T, repo *platform.Repository[*Order], id string) *Order {
	t.Helper()
	o, err := repo.Load(t.Context(), id)
	if err != nil {
		t.Fatalf("Load(%s): %v", id, err)
	}
	return o
}

// sameOrder fails unless two loads of an order agree on everything but
// Applied.
func sameOrder(t *testing.T, what string, got, want *Order) {
	t.Helper()
	switch {
	case !reflect.DeepEqual(got.State, want.State):
		t.Fatalf("%s: State %+v, want %+v", what, got.State, want.State)
	case got.Version() != want.Version() || got.Revision() != want.Revision():
		t.Fatalf("%s: version %d revision %+v, want %d and %+v", what, got.Version(), got.Revision(), want.Version(), want.Revision())
	case got.ID() != want.ID() || len(got.Pending()) != 0:
		t.Fatalf("%s: ID %q with %d pending events", what, got.ID(), len(got.Pending()))
	}
}

func countAll(t *testing.T, s platform.EventStore) int {
	t.Helper()
	n := 0
	for _, err := range s.ReadAll(t.Context(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestRepositorySaveLoad(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(platform.RepositoryOptions{}, 1)
	ctx := t.Context()

	o := &Order{}
	o.SetID("o-1")
	platform.Raise(o, OrderPlaced{Customer: "ann"})
	platform.Raise(o, ItemAdded{SKU: "a", Qty: 2})
	if o.Version() != 2 || len(o.Pending()) != 2 || o.Revision() != (platform.Revision{}) {
		t.Fatalf("after two raises: version %d, %d pending, revision %+v", o.Version(), len(o.Pending()), o.Revision())
	}
	res, err := repo.Save(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.FirstVersion != 1 || res.LastVersion != 2 || len(o.Pending()) != 0 || o.Revision() != res.Revision() {
		t.Fatalf("Save = %+v; afterwards %d pending, revision %+v", res, len(o.Pending()), o.Revision())
	}

	got := mustLoad(t, repo, "o-1")
	sameOrder(t, "Load after Save", got, o)
	if got.State.Customer != "ann" || got.State.Qty != 2 || got.Applied != 2 {
		t.Fatalf("loaded %+v (applied %d)", got.State, got.Applied)
	}

	platform.Raise(got, ItemAdded{SKU: "b", Qty: 1})
	if res, err = repo.Save(ctx, got); err != nil || res.FirstVersion != 3 {
		t.Fatalf("second Save = %+v, %v", res, err)
	}
	again := mustLoad(t, repo, "o-1")
	sameOrder(t, "Load after the second Save", again, got)
	if !reflect.DeepEqual(again.State.Items, []string{"a", "b"}) {
		t.Fatalf("items %v", again.State.Items)
	}

	// The stale copy conflicts and keeps its pending events.
	stale := o.Revision()
	platform.Raise(o, ItemAdded{SKU: "c", Qty: 1})
	_, err = repo.Save(ctx, o)
	var ce *platform.ConcurrencyError
	if !errors.As(err, &ce) || ce.Actual != 3 {
		t.Fatalf("Save of a stale aggregate: %v, want a ConcurrencyError at version 3", err)
	}
	if len(o.Pending()) != 1 || o.Revision() != stale || o.Version() != 3 {
		t.Fatalf("after the conflict: %d pending, revision %+v, version %d", len(o.Pending()), o.Revision(), o.Version())
	}
}

func TestRepositoryLoadUnknown(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(f.snapshotting(10), 1)
	_, err := repo.Load(t.Context(), "nobody")
	mustFail(t, "Load of an unknown aggregate", err, platform.ErrStreamNotFound, "nobody")
	if platform.CodeOf(err) != platform.CodeStreamNotFound {
		t.Fatalf("CodeOf = %q", platform.CodeOf(err))
	}
	_, err = repo.Load(t.Context(), "")
	mustFail(t, "Load with an empty ID", err, platform.ErrInvalidArgument)
}

func TestRepositoryUpdateRetriesAfterConflict(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(platform.RepositoryOptions{}, 1)
	build(t, repo, "o", 1)
	calls := 0
	o, res, err := repo.Update(t.Context(), "o", func(o *Order) error {
		calls++
		if calls == 1 {
			// Another writer saves between our load and our save.
			other := mustLoad(t, repo, "o")
			platform.Raise(other, ItemAdded{SKU: "theirs", Qty: 1})
			if _, err := repo.Save(t.Context(), other); err != nil {
				t.Errorf("the conflicting save: %v", err)
			}
		}
		platform.Raise(o, ItemAdded{SKU: "mine", Qty: 1})
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if calls != 2 {
		t.Fatalf("fn ran %d times, want 2", calls)
	}
	if res.FirstVersion != 3 || !reflect.DeepEqual(o.State.Items, []string{"theirs", "mine"}) {
		t.Fatalf("Update = %+v, items %v", res, o.State.Items)
	}
	sameOrder(t, "Load after Update", mustLoad(t, repo, "o"), o)
}

func TestRepositoryUpdateGivesUp(t *testing.T) {
	for _, c := range []struct{ retries, calls int }{{2, 3}, {0, 4}, {-1, 1}} {
		t.Run(fmt.Sprint("retries=", c.retries), func(t *testing.T) {
			f := newFixture(t)
			repo := f.repo(platform.RepositoryOptions{UpdateRetries: c.retries}, 1)
			build(t, repo, "o", 1)
			calls := 0
			_, _, err := repo.Update(t.Context(), "o", func(o *Order) error {
				calls++
				// Every attempt loses to another writer.
				if _, err := f.events.Append(t.Context(), platform.StreamID{Type: "order", ID: "o"}, platform.Any(),
					[]platform.Envelope{{Event: ItemAdded{SKU: "theirs"}}}); err != nil {
					t.Errorf("the conflicting append: %v", err)
				}
				platform.Raise(o, ItemAdded{SKU: "mine"})
				return nil
			})
			var ce *platform.ConcurrencyError
			if !errors.Is(err, platform.ErrConcurrency) || !errors.As(err, &ce) {
				t.Fatalf("Update = %v, want a concurrency conflict", err)
			}
			if calls != c.calls {
				t.Fatalf("fn ran %d times, want %d (UpdateRetries %d)", calls, c.calls, c.retries)
			}
			if o := mustLoad(t, repo, "o"); o.Version() != uint64(1+c.calls) || strings.Contains(fmt.Sprint(o.State.Items), "mine") {
				t.Fatalf("after giving up: version %d, items %v", o.Version(), o.State.Items)
			}
		})
	}
}

func TestRepositoryUpdate(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(platform.RepositoryOptions{}, 1)
	// A new aggregate gets its ID and starts at version 1.
	o, res, err := repo.Update(t.Context(), "new", func(o *Order) error {
		if o.ID() != "new" || o.Version() != 0 {
			return fmt.Errorf("fn got ID %q at version %d", o.ID(), o.Version())
		}
		platform.Raise(o, OrderPlaced{Customer: "ann"})
		return nil
	})
	if err != nil || res.FirstVersion != 1 || o.State.Customer != "ann" {
		t.Fatalf("Update of a new aggregate = %+v, %+v, %v", o, res, err)
	}
	// An error from fn saves nothing and comes back as is.
	boom := errors.New("boom")
	_, _, err = repo.Update(t.Context(), "new", func(o *Order) error {
		platform.Raise(o, ItemAdded{SKU: "x"})
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update with a failing fn = %v", err)
	}
	if got := mustLoad(t, repo, "new"); got.Version() != 1 {
		t.Fatalf("a failed fn saved events: version %d", got.Version())
	}
}

func TestRepositorySaveNothingPending(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(f.snapshotting(1), 1)
	build(t, repo, "o", 3)
	if err := repo.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := countAll(t, f.events)
	o := mustLoad(t, repo, "o")
	rev := o.Revision()
	for _, a := range []*Order{o, {}} {
		res, err := repo.Save(t.Context(), a)
		if err != nil || res != (platform.AppendResult{}) {
			t.Fatalf("Save with nothing pending = %+v, %v; want a no-op", res, err)
		}
	}
	if countAll(t, f.events) != before || o.Revision() != rev {
		t.Fatal("Save with nothing pending changed something")
	}
}

func TestRepositoryCorrelationFromContext(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(platform.RepositoryOptions{}, 1)
	ctx := platform.WithCausationID(platform.WithCorrelationID(t.Context(), "req-1"), "cmd-1")
	_, _, err := repo.Update(ctx, "o", func(o *Order) error {
		platform.Raise(o, OrderPlaced{Customer: "ann"})
		platform.RaiseWith(o, platform.Envelope{Event: ItemAdded{SKU: "a"}, CausationID: "own", Metadata: map[string]string{"user": "u1"}})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []platform.Envelope
	for e, err := range f.events.Read(t.Context(), platform.StreamID{Type: "order", ID: "o"}, platform.Revision{}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	if len(got) != 2 {
		t.Fatalf("%d events stored", len(got))
	}
	if got[0].CorrelationID != "req-1" || got[0].CausationID != "cmd-1" {
		t.Fatalf("first event: correlation %q causation %q", got[0].CorrelationID, got[0].CausationID)
	}
	if got[1].CorrelationID != "req-1" || got[1].CausationID != "own" || got[1].Metadata["user"] != "u1" {
		t.Fatalf("second event: correlation %q causation %q metadata %v", got[1].CorrelationID, got[1].CausationID, got[1].Metadata)
	}
}

func TestRepositorySnapshotEveryEvents(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(f.snapshotting(10), 1)
	total := build(t, repo, "o", 7, 7, 7, 4)
	if err := repo.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	snap, ok, err := f.snaps.LoadSnapshot(t.Context(), platform.StreamID{Type: "order", ID: "o"})
	if err != nil || !ok {
		t.Fatalf("no snapshot after %d events in saves of 7, 7, 7, 4 with EveryEvents 10: %v", total, err)
	}
	if snap.Revision.Version < 20 || snap.Revision.Version > 25 || snap.Revision.Position == 0 ||
		snap.SchemaVersion != 1 || snap.Codec != "msgpack" || snap.Time.IsZero() {
		t.Fatalf("snapshot %+v: want one at a version from 20 to 25 with its position, schema 1, msgpack, a time", snap)
	}
	withSnap := mustLoad(t, repo, "o")
	plain := mustLoad(t, f.repo(platform.RepositoryOptions{}, 1), "o")
	sameOrder(t, "load with a snapshot vs without", withSnap, plain)
	if plain.Applied != total || withSnap.Applied != total-int(snap.Revision.Version) {
		t.Fatalf("applied %d events with the snapshot at %d and %d without; want %d and %d",
			withSnap.Applied, snap.Revision.Version, plain.Applied, total-int(snap.Revision.Version), total)
	}
}

func TestRepositorySnapshotInterval(t *testing.T) {
	f := newFixture(t)
	opts := f.snapshotting(-1)
	opts.SnapshotPolicy.Interval = time.Hour
	repo := f.repo(opts, 1)
	stream := platform.StreamID{Type: "order", ID: "o"}
	build(t, repo, "o", 2)
	if err := repo.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	// There was no snapshot: the first save takes one.
	if snap, ok, _ := f.snaps.LoadSnapshot(t.Context(), stream); !ok || snap.Revision.Version != 2 {
		t.Fatalf("after the first save: snapshot %+v, %v; want one at version 2", snap, ok)
	}
	// The loaded snapshot is fresh: the next save takes none.
	build(t, repo, "o", 0, 3)
	if err := repo.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if snap, _, _ := f.snaps.LoadSnapshot(t.Context(), stream); snap.Revision.Version != 2 {
		t.Fatalf("a save within the interval took a snapshot at version %d", snap.Revision.Version)
	}
}

func TestRepositorySnapshotSchemaChange(t *testing.T) {
	f := newFixture(t)
	v1 := f.repo(f.snapshotting(-1), 1)
	build(t, v1, "o", 12)
	if err := v1.Snapshot(t.Context(), mustLoad(t, v1, "o")); err != nil {
		t.Fatal(err)
	}
	build(t, v1, "o", 0, 3)
	if o := mustLoad(t, v1, "o"); o.Applied != 3 {
		t.Fatalf("the same schema applied %d events on top of the snapshot, want 3", o.Applied)
	}
	v2 := f.repo(f.snapshotting(-1), 2)
	got := mustLoad(t, v2, "o")
	if got.Applied != 15 {
		t.Fatalf("a snapshot of schema 1 was used by schema 2: %d events applied, want all 15", got.Applied)
	}
	sameOrder(t, "schema 2 load vs schema 1 load", got, mustLoad(t, v1, "o"))
}

func TestRepositoryCorruptSnapshot(t *testing.T) {
	good, err := msgpack.Marshal(OrderState{Customer: "evil", Items: []string{"x", "y", "z"}, Qty: 99})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		codec string
		state []byte
	}{
		"garbage":        {"msgpack", []byte{0xc1, 0x00}},
		"half-decodable": {"msgpack", good[:len(good)-6]},
		"empty":          {"msgpack", nil},
		"unknown codec":  {"gob", good},
		"wrong codec":    {"json", good},
	}
	for name, c := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			f := newFixture(t)
			repo := f.repo(f.snapshotting(-1), 1)
			total := build(t, repo, "o", 4, 3)
			want := mustLoad(t, f.repo(platform.RepositoryOptions{}, 1), "o")
			err := f.snaps.SaveSnapshot(t.Context(), platform.Snapshot{
				Stream: platform.StreamID{Type: "order", ID: "o"}, Revision: want.Revision(),
				SchemaVersion: 1, Codec: c.codec, State: c.state, Time: time.Now(),
			})
			if err != nil {
				t.Fatal(err)
			}
			got := mustLoad(t, repo, "o")
			sameOrder(t, "load with a corrupt snapshot", got, want)
			if got.Applied != total {
				t.Fatalf("applied %d events, want a full replay of %d", got.Applied, total)
			}
			if !f.logs.has("snapshot undecodable") {
				t.Fatalf("the corrupt snapshot was not logged: %v", f.logs.msgs)
			}
		})
	}
}

// failingSnapshots is a SnapshotStore whose every call fails.
type failingSnapshots struct{ saves, loads atomic.Int64 }

func (f *failingSnapshots) SaveSnapshot(context.Context, platform.Snapshot) error {
	f.saves.Add(1)
	return platform.Errorf(platform.CodeStoreUnavailable, "snapshot store down")
}

func (f *failingSnapshots) LoadSnapshot(context.Context, platform.StreamID) (platform.Snapshot, bool, error) {
	f.loads.Add(1)
	return platform.Snapshot{}, false, platform.Errorf(platform.CodeStoreUnavailable, "snapshot store down")
}

func (f *failingSnapshots) DeleteSnapshot(context.Context, platform.StreamID) error {
	return platform.Errorf(platform.CodeStoreUnavailable, "snapshot store down")
}

func TestRepositoryFailingSnapshotStore(t *testing.T) {
	f := newFixture(t)
	snaps := &failingSnapshots{}
	repo := f.repo(platform.RepositoryOptions{Snapshots: snaps, SnapshotPolicy: platform.SnapshotPolicy{EveryEvents: 1}}, 1)
	total := build(t, repo, "o", 2, 2, 2) // Update loads and saves: every call meets the failing store
	if err := repo.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if snaps.saves.Load() == 0 || snaps.loads.Load() == 0 {
		t.Fatalf("the repository never used the snapshot store (%d saves, %d loads)", snaps.saves.Load(), snaps.loads.Load())
	}
	o := mustLoad(t, repo, "o")
	if o.Version() != uint64(total) || o.Applied != total {
		t.Fatalf("load with a failing snapshot store: version %d, applied %d; want %d", o.Version(), o.Applied, total)
	}
	if !f.logs.has("snapshot write failed") || !f.logs.has("snapshot unreadable") {
		t.Fatalf("the failures were not logged: %v", f.logs.msgs)
	}
	// An explicit snapshot reports the failure.
	if err := repo.Snapshot(t.Context(), o); !errors.Is(err, platform.ErrStoreUnavailable) {
		t.Fatalf("Snapshot with a failing store = %v", err)
	}
}

func TestRepositoryCompact(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(f.snapshotting(-1), 1)
	stream := platform.StreamID{Type: "order", ID: "o"}
	total := build(t, repo, "o", 10, 10, 5)
	before := mustLoad(t, repo, "o")
	if err := repo.Compact(t.Context(), before); err != nil {
		t.Fatal(err)
	}
	snap, ok, err := f.snaps.LoadSnapshot(t.Context(), stream)
	if err != nil || !ok || snap.Revision != before.Revision() {
		t.Fatalf("snapshot after Compact: %+v, %v, %v; want one at %+v", snap, ok, err, before.Revision())
	}
	var versions []uint64
	for e, err := range f.events.Read(t.Context(), stream, platform.Revision{}) {
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, e.Version)
	}
	if !reflect.DeepEqual(versions, []uint64{uint64(total)}) {
		t.Fatalf("events left after Compact: versions %v, want only the last, %d", versions, total)
	}
	after := mustLoad(t, repo, "o")
	sameOrder(t, "Load after Compact", after, before)
	if after.Applied != 0 {
		t.Fatalf("Load after Compact applied %d events, want 0", after.Applied)
	}
	// The aggregate lives on.
	build(t, repo, "o", 0, 2)
	o := mustLoad(t, repo, "o")
	if o.Version() != uint64(total+2) || o.Applied != 2 || len(o.State.Items) != total-1+2 {
		t.Fatalf("after Compact and two more events: version %d, applied %d, %d items", o.Version(), o.Applied, len(o.State.Items))
	}
	// Compacting again is fine, and pending events are refused.
	if err := repo.Compact(t.Context(), o); err != nil {
		t.Fatalf("second Compact: %v", err)
	}
	platform.Raise(o, ItemAdded{SKU: "pending"})
	if err := repo.Compact(t.Context(), o); !errors.Is(err, platform.ErrInvalidArgument) {
		t.Fatalf("Compact with pending events = %v, want ErrInvalidArgument", err)
	}
}

// countingStore counts the events Read yields and records where reads start.
type countingStore struct {
	platform.EventStore
	mu     sync.Mutex
	afters []platform.Revision
	read   int
}

func (c *countingStore) Read(ctx context.Context, stream platform.StreamID, after platform.Revision) iter.Seq2[platform.Envelope, error] {
	c.mu.Lock()
	c.afters = append(c.afters, after)
	c.mu.Unlock()
	return func(yield func(platform.Envelope, error) bool) {
		for e, err := range c.EventStore.Read(ctx, stream, after) {
			c.mu.Lock()
			c.read++
			c.mu.Unlock()
			if !yield(e, err) {
				return
			}
		}
	}
}

func TestRepositoryLoadReadsOnlyAfterSnapshot(t *testing.T) {
	f := newFixture(t)
	counting := &countingStore{EventStore: f.events}
	repo := f.repoOn(counting, f.snapshotting(-1), 1)
	build(t, repo, "o", 10, 10, 10)
	snapped := mustLoad(t, repo, "o")
	if err := repo.Snapshot(t.Context(), snapped); err != nil {
		t.Fatal(err)
	}
	build(t, repo, "o", 0, 5)

	counting.read, counting.afters = 0, nil
	o := mustLoad(t, repo, "o")
	if counting.read != 5 || len(counting.afters) != 1 || counting.afters[0] != snapped.Revision() {
		t.Fatalf("Load read %d events starting after %v; want 5 after the snapshot's revision %+v",
			counting.read, counting.afters, snapped.Revision())
	}
	if o.Version() != 35 || o.Applied != 5 {
		t.Fatalf("loaded version %d, applied %d; want 35 and 5", o.Version(), o.Applied)
	}
	counting.read = 0
	sameOrder(t, "load without snapshots", mustLoad(t, f.repoOn(counting, platform.RepositoryOptions{}, 1), "o"), o)
	if counting.read != 35 {
		t.Fatalf("a load without snapshots read %d events, want 35", counting.read)
	}
}

func TestRepositorySnapshotErrors(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	repo := f.repo(f.snapshotting(-1), 1)
	build(t, repo, "o", 3)
	o := mustLoad(t, repo, "o")

	noStore := f.repo(platform.RepositoryOptions{}, 1)
	mustFail(t, "Snapshot without a snapshot store", noStore.Snapshot(ctx, o), platform.ErrInvalidArgument, "RepositoryOptions.Snapshots")

	fresh := &Order{}
	fresh.SetID("fresh")
	mustFail(t, "Snapshot of an aggregate never saved", repo.Snapshot(ctx, fresh), platform.ErrInvalidArgument)

	platform.Raise(o, ItemAdded{SKU: "x"})
	mustFail(t, "Snapshot with pending events", repo.Snapshot(ctx, o), platform.ErrInvalidArgument, "save first")

	counters := platform.NewRepository(f.events, func() *Counter { return &Counter{} },
		platform.RepositoryOptions{Snapshots: f.snaps, Logger: slog.New(f.logs)})
	c := &Counter{}
	c.SetID("c")
	platform.Raise(c, OrderPlaced{})
	if _, err := counters.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	mustFail(t, "Snapshot of an aggregate without Snapshotter", counters.Snapshot(ctx, c), platform.ErrInvalidArgument, "Snapshotter")
	if _, ok, _ := f.snaps.LoadSnapshot(ctx, platform.StreamID{Type: "order", ID: "o"}); ok {
		t.Fatal("a refused snapshot was stored")
	}
}

func TestRepositoryDelete(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(f.snapshotting(-1), 1)
	stream := platform.StreamID{Type: "order", ID: "o"}
	build(t, repo, "o", 5)
	if err := repo.Snapshot(t.Context(), mustLoad(t, repo, "o")); err != nil {
		t.Fatal(err)
	}
	build(t, repo, "keep", 2)
	if err := repo.Delete(t.Context(), "o"); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Load(t.Context(), "o"); !errors.Is(err, platform.ErrStreamNotFound) {
		t.Fatalf("Load after Delete = %v, want ErrStreamNotFound", err)
	}
	if _, ok, _ := f.snaps.LoadSnapshot(t.Context(), stream); ok {
		t.Fatal("the snapshot survived Delete")
	}
	if o := mustLoad(t, repo, "keep"); o.Version() != 2 {
		t.Fatalf("another aggregate is at version %d after Delete", o.Version())
	}
	o, res, err := repo.Update(t.Context(), "o", func(o *Order) error {
		platform.Raise(o, OrderPlaced{Customer: "bob"})
		return nil
	})
	if err != nil || res.FirstVersion != 1 || o.State.Customer != "bob" || len(o.State.Items) != 0 {
		t.Fatalf("re-creating after Delete: %+v, %+v, %v", o.State, res, err)
	}
}

// The scenarios below lose or corrupt aggregates today; see the comments.

// A snapshot of an old schema at the aggregate's current version makes
// Compact lose the aggregate: SaveSnapshot ignores the new-schema snapshot
// (same version), Truncate removes the events, and Load then ignores the
// old-schema snapshot and replays only the last event. Compact may refuse
// (return an error) or replace the snapshot, but must not lose state.
func TestRepositoryCompactAfterSchemaChangeKeepsState(t *testing.T) {
	f := newFixture(t)
	v1 := f.repo(f.snapshotting(-1), 1)
	build(t, v1, "o", 5, 5)
	if err := v1.Snapshot(t.Context(), mustLoad(t, v1, "o")); err != nil {
		t.Fatal(err)
	}

	v2 := f.repo(f.snapshotting(-1), 2) // deployed with a new snapshot shape
	before := mustLoad(t, v2, "o")
	if err := v2.Compact(t.Context(), before); err != nil {
		t.Logf("Compact refused: %v", err)
	}
	after, err := v2.Load(t.Context(), "o")
	if err != nil {
		t.Fatalf("Load after Compact: %v", err)
	}
	sameOrder(t, "Load after Compact under a new snapshot schema", after, before)
}

// Once Compact has truncated the history, a load without a usable snapshot
// (lost, expired, or of another schema) replays only what is left and
// returns a wrong state without an error. Load should notice that the
// first event it reads is not the one after its starting revision.
func TestRepositoryLoadNoticesTruncatedHistory(t *testing.T) {
	f := newFixture(t)
	repo := f.repo(f.snapshotting(-1), 1)
	build(t, repo, "o", 5, 5)
	if err := repo.Compact(t.Context(), mustLoad(t, repo, "o")); err != nil {
		t.Fatal(err)
	}
	build(t, repo, "o", 0, 3)
	want := mustLoad(t, repo, "o")
	if err := f.snaps.DeleteSnapshot(t.Context(), platform.StreamID{Type: "order", ID: "o"}); err != nil {
		t.Fatal(err)
	}
	got, err := repo.Load(t.Context(), "o")
	if err == nil && !reflect.DeepEqual(got.State, want.State) {
		t.Fatalf("Load without the snapshot that covers the truncated events returned state %+v at version %d without an error; the true state is %+v",
			got.State, got.Version(), want.State)
	}
}

// gatedSnapshots holds SaveSnapshot until released.
type gatedSnapshots struct {
	*platform.MemorySnapshotStore
	entered chan struct{}
	release chan struct{}
	deleted chan struct{}
}

func (g *gatedSnapshots) SaveSnapshot(ctx context.Context, s platform.Snapshot) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.release
	return g.MemorySnapshotStore.SaveSnapshot(ctx, s)
}

func (g *gatedSnapshots) DeleteSnapshot(ctx context.Context, s platform.StreamID) error {
	err := g.MemorySnapshotStore.DeleteSnapshot(ctx, s)
	select {
	case g.deleted <- struct{}{}:
	default:
	}
	return err
}

// A background snapshot write still in flight when Delete runs lands after
// DeleteSnapshot, so the deleted aggregate's snapshot outlives it. When the
// ID is used again, Load restores the old state at the old version and
// every save conflicts: the aggregate cannot be created again.
func TestRepositoryDeleteWithSnapshotInFlight(t *testing.T) {
	f := newFixture(t)
	gated := &gatedSnapshots{MemorySnapshotStore: f.snaps,
		entered: make(chan struct{}, 1), release: make(chan struct{}), deleted: make(chan struct{}, 1)}
	repo := f.repo(platform.RepositoryOptions{Snapshots: gated, SnapshotPolicy: platform.SnapshotPolicy{EveryEvents: 5}}, 1)
	build(t, repo, "o", 5) // takes a snapshot at version 5 in the background
	<-gated.entered        // the write has started and waits

	deleted := make(chan error, 1)
	go func() { deleted <- repo.Delete(t.Context(), "o") }()
	// Today Delete calls DeleteSnapshot at once. A fixed Delete may
	// instead wait for the write, which waits for release: the timeout
	// only keeps that version of the test from blocking, and the
	// assertions below hold either way.
	select {
	case <-gated.deleted:
	case <-time.After(time.Second):
	}
	close(gated.release)
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	if err := repo.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	o, _, err := repo.Update(t.Context(), "o", func(o *Order) error {
		platform.Raise(o, OrderPlaced{Customer: "bob"})
		return nil
	})
	if err != nil {
		t.Fatalf("creating the aggregate again after Delete: %v", err)
	}
	got := mustLoad(t, repo, "o")
	if got.Version() != 1 || got.State.Customer != "bob" || len(got.State.Items) != 0 {
		t.Fatalf("after Delete and re-creation: version %d state %+v; want version 1 with only bob's order (%+v)",
			got.Version(), got.State, o.State)
	}
}
