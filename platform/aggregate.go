package platform

import "time"

// Aggregate is what a Repository loads and saves: a type that embeds
// AggregateRoot, names its aggregate type, and applies events to its state.
//
//	type Order struct {
//		platform.AggregateRoot
//		State OrderState
//	}
//
//	func (o *Order) AggregateType() string { return "order" }
//
//	func (o *Order) Apply(event any) {
//		switch e := event.(type) {
//		case OrderPlaced:
//			o.State.Customer = e.Customer
//		case ItemAdded:
//			o.State.Items = append(o.State.Items, e.SKU)
//		}
//	}
//
//	func (o *Order) AddItem(sku string) error {
//		if o.State.Customer == "" {
//			return errors.New("place the order first")
//		}
//		platform.Raise(o, ItemAdded{SKU: sku})
//		return nil
//	}
type Aggregate interface {
	// AggregateType is the aggregate's type name; it is part of every
	// event's subject, so keep it stable.
	AggregateType() string
	// Apply changes the state for one event. It must not fail or do I/O:
	// it replays history as well as applying new events.
	Apply(event any)
	root() *AggregateRoot
}

// Snapshotter is implemented by aggregates that can be snapshotted.
type Snapshotter interface {
	// SnapshotState returns a pointer to the state to encode and to decode
	// into, e.g. &o.State. Keep AggregateRoot out of it.
	SnapshotState() any
	// SnapshotSchemaVersion is the version of the state's shape. Change it
	// when the shape changes: older snapshots are then ignored and the
	// aggregate is rebuilt from its events, unless the aggregate is a
	// SnapshotUpcaster too.
	SnapshotSchemaVersion() int
}

// SnapshotUpcaster is implemented by snapshotters that can read snapshots
// of an older state schema version.
type SnapshotUpcaster interface {
	// UpcastSnapshot fills the current state (what SnapshotState points
	// to) from state, encoded with codec under schema version from.
	// Returning false, or an error, declines: the repository then ignores
	// the snapshot and replays the events.
	UpcastSnapshot(from int, codec Codec, state []byte) (bool, error)
}

// AggregateRoot is embedded in every aggregate. It holds the aggregate's ID,
// its version and the events raised since it was loaded.
type AggregateRoot struct {
	id        string
	version   uint64   // including pending events
	persisted Revision // the last stored event
	pending   []Envelope
	// nextPart is the part expected next of the stored event at version,
	// while one split on read (Origin.Parts > 1) is half applied; 0 once
	// it is whole.
	nextPart int

	snapshotAt time.Time // when the loaded or last written snapshot was taken
}

// root is how the platform reaches the embedded root through Aggregate;
// its callers live in users' types, out of the linter's sight.
//
//lint:ignore U1000 called through the Aggregate interface
func (r *AggregateRoot) root() *AggregateRoot { return r }

// ID is the aggregate's ID.
func (r *AggregateRoot) ID() string { return r.id }

// SetID sets the ID of a new aggregate. The repository sets it on load.
func (r *AggregateRoot) SetID(id string) { r.id = id }

// Version is the version after the last applied event, pending ones included.
func (r *AggregateRoot) Version() uint64 { return r.version }

// Revision is the version and position of the last stored event.
func (r *AggregateRoot) Revision() Revision { return r.persisted }

// Pending returns the events raised and not yet saved.
func (r *AggregateRoot) Pending() []Envelope { return r.pending }

// PullEvents returns the pending events and clears them.
func (r *AggregateRoot) PullEvents() []Envelope {
	p := r.pending
	r.pending = nil
	return p
}

// Raise applies a new event to a and records it for the next save.
func Raise(a Aggregate, event any) {
	RaiseWith(a, Envelope{Event: event})
}

// RaiseWith is Raise with envelope fields set by the caller, such as
// Metadata.
func RaiseWith(a Aggregate, e Envelope) {
	a.Apply(e.Event)
	r := a.root()
	if e.ID == "" {
		// Assigned now so that saving again after a lost answer stores
		// the same events, which the store recognises, not copies.
		e.ID = NewEventID()
	}
	r.version++
	r.nextPart = 0
	e.Version = r.version
	r.pending = append(r.pending, e)
}

// LoadFromHistory applies stored events in order. Events already applied
// (a version at or below the aggregate's, or a part of a split event
// already applied) are skipped, and retired ones only move the version.
func LoadFromHistory(a Aggregate, events []Envelope) {
	for i := range events {
		applyStored(a, &events[i])
	}
}

// applyStored applies one read envelope. The envelopes an event split on
// read share its version: each is applied once, in order, and the
// aggregate's version is the stored one throughout, so that the next
// append expects it.
func applyStored(a Aggregate, e *Envelope) {
	r := a.root()
	if e.Version < r.version || e.Version == r.version && (r.nextPart == 0 || e.Origin.Part != r.nextPart) {
		return
	}
	if !e.Retired() {
		a.Apply(e.Event)
	}
	r.version = e.Version
	r.persisted = e.Revision()
	r.nextPart = 0
	if !e.EndsStored() {
		r.nextPart = e.Origin.Part + 1
	}
}

// markSaved records that the pending events are stored.
func (r *AggregateRoot) markSaved(res AppendResult) {
	r.pending = nil
	r.persisted = res.Revision()
}

// restore sets the root to a snapshot's revision.
func (r *AggregateRoot) restore(rev Revision) {
	r.version = rev.Version
	r.persisted = rev
	r.pending = nil
	r.nextPart = 0
}
