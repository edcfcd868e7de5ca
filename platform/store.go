package platform

import (
	"context"
	"fmt"
	"iter"
	"time"
)

// StreamID names one aggregate's history: its type and its ID.
type StreamID struct {
	Type string // aggregate type, e.g. "order"
	ID   string // any string the application chooses, e.g. a UUID or an e-mail address
}

func (s StreamID) String() string { return fmt.Sprintf("%s/%q", s.Type, s.ID) }

// Revision is a point in one aggregate's history: the version of an event
// and the store position that holds it. Position 0 means unknown.
type Revision struct {
	Version  uint64
	Position uint64
}

// Envelope is one event with everything the store knows about it.
//
// On Append the caller sets Event and, optionally, ID, CorrelationID,
// CausationID and Metadata; the store fills in the rest. On Read every field
// is set.
type Envelope struct {
	ID            string // unique and time-sortable (a ULID); doubles as the de-duplication key
	Type          string // registered event type name, e.g. "order.item-added"
	SchemaVersion int    // the registered schema version of Type
	Stream        StreamID
	Version       uint64 // 1-based, contiguous within the aggregate
	Position      uint64 // global order across all aggregates (the JetStream stream sequence)
	Time          time.Time
	CorrelationID string
	CausationID   string
	Metadata      map[string]string
	Event         any    // the decoded event value, e.g. ItemAdded{...}; nil for a retired event (Retired)
	Origin        Origin // on Read: the stored type and version, when the registry upcast the event
	// KeyID names the data key the stored body is sealed with (Sealer);
	// "" if it is stored as encoded. Set by the store.
	KeyID string
	// Shredded reports, on Read, that the event's data key was deleted
	// (its data subject forgotten): Event holds placeholders in place of
	// what was sealed (see package encryption).
	Shredded bool
}

// Revision returns the envelope's place in its aggregate's history.
func (e *Envelope) Revision() Revision { return Revision{Version: e.Version, Position: e.Position} }

// AppendResult says where an append landed, and how durably.
type AppendResult struct {
	FirstVersion  uint64
	LastVersion   uint64
	FirstPosition uint64
	LastPosition  uint64
	// Durability is what the append survives, as the store knew it when
	// the append was sent: "fsync before ack on 3 replicas", "in memory
	// only".
	Durability Durability
}

// Revision is the aggregate's revision after the append.
func (r AppendResult) Revision() Revision {
	return Revision{Version: r.LastVersion, Position: r.LastPosition}
}

// EventStore keeps every aggregate's history and the global order of all
// events. Implementations: MemoryEventStore here, jetstream.EventStore.
//
// Reads decode every event with the store's registry, upcast to its
// current version (Registry.DecodeEnvelope). An event that does not decode
// is yielded as a *DecodeError, after which the iteration goes on if the
// caller asks for more; any other error ends it.
type EventStore interface {
	// Append stores events at the end of the aggregate's history, all or
	// nothing, if the aggregate's version matches expected. A mismatch is a
	// *ConcurrencyError.
	Append(ctx context.Context, stream StreamID, expected ExpectedVersion, events []Envelope) (AppendResult, error)

	// Read yields the aggregate's events after the given revision, in
	// version order. The zero Revision reads from the first event. Giving
	// after.Position lets the store start right there instead of skipping
	// over older events.
	Read(ctx context.Context, stream StreamID, after Revision) iter.Seq2[Envelope, error]

	// ReadAll yields every event with a position greater than after, in
	// global order, up to the last event stored when the call started.
	// Positions of deleted events are skipped.
	ReadAll(ctx context.Context, after uint64) iter.Seq2[Envelope, error]

	// Delete removes the aggregate's whole history. A later append with
	// NoStream starts it again at version 1.
	Delete(ctx context.Context, stream StreamID) error

	// Truncate removes the aggregate's events up to and including through,
	// typically the revision of a snapshot. Later versions are kept and
	// keep their numbers. The last event always stays, even when through
	// names it: it carries the version later appends continue from.
	Truncate(ctx context.Context, stream StreamID, through Revision) error
}

// Snapshot is an aggregate's encoded state at one revision.
type Snapshot struct {
	Stream        StreamID
	Revision      Revision // the last event the state includes
	SchemaVersion int      // the aggregate's snapshot schema version when it was taken
	Codec         string   // the codec that encoded State
	State         []byte
	Time          time.Time
}

// SnapshotStore keeps the latest snapshot of each aggregate.
type SnapshotStore interface {
	// SaveSnapshot stores s unless the store already holds a snapshot of
	// the same or a later version for that aggregate; then it does nothing
	// and returns nil, so an older snapshot never replaces a newer one.
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the latest snapshot, or ok == false if there is none.
	LoadSnapshot(ctx context.Context, stream StreamID) (s Snapshot, ok bool, err error)
	DeleteSnapshot(ctx context.Context, stream StreamID) error
}

// Checkpoint is a named reader's position in the global order, with the
// revision that compare-and-set needs.
type Checkpoint struct {
	Name     string
	Position uint64
	Revision uint64 // 0: no checkpoint stored yet
}

// CheckpointStore keeps projections' and handlers' positions.
type CheckpointStore interface {
	// LoadCheckpoint returns the checkpoint, or one with Position and
	// Revision 0 if none is stored.
	LoadCheckpoint(ctx context.Context, name string) (Checkpoint, error)
	// SaveCheckpoint stores position if the stored revision still equals
	// cp.Revision, and returns the checkpoint with its new revision.
	// Otherwise it fails with ErrCheckpointConflict: another instance
	// moved it.
	SaveCheckpoint(ctx context.Context, cp Checkpoint) (Checkpoint, error)
}
