// Package kvsnapshot keeps aggregate snapshots and reader checkpoints in
// JetStream key-value buckets: [SnapshotStore] implements
// platform.SnapshotStore and [CheckpointStore] implements
// platform.CheckpointStore.
//
// # Snapshots
//
// Bucket "lexigram_snapshots" by default, history 1. The key of an aggregate
// is "<aggregate type>.<jetstream.EncodeToken(id)>", so any ID is a valid key
// and no two IDs share one. The value is a msgpack map:
//
//	"version"  uint64     the aggregate version the state includes
//	"position" uint64     the store position of that event
//	"schema"   int        the aggregate's snapshot schema version
//	"codec"    string     the codec that encoded the state
//	"time"     timestamp  when the snapshot was taken (read back in UTC)
//	"state"    bin        the encoded state, or nil when stored as an object
//	"object"   string     name of the object holding the state, if any
//	"size"     int        the object's size in bytes
//	"sha256"   bin        the object's SHA-256 digest
//	"key"      string     the data key the state is sealed with, if any
//
// With SnapshotOptions.Sealer (the encryption key ring) the state is
// sealed with the aggregate's data key before it is stored, inline or as
// an object; a snapshot whose key was forgotten loads as none.
//
// An older snapshot never replaces a newer one: SaveSnapshot reads the entry,
// does nothing if it holds the same or a later version, and otherwise writes
// with compare-and-set on the entry's revision, deciding again after every
// conflict. A value that does not decode counts as no snapshot when saving,
// and as a platform.CodeCorruptEvent error when loading, so the repository
// replays from events.
//
// # Large snapshots
//
// A KV value must fit in one NATS message (the server's max_payload, 1 MB by
// default). A snapshot whose value would not fit (or exceeds
// SnapshotOptions.MaxInlineSize) keeps its state in the object store bucket
// "<bucket>_large", created on first need, and its KV entry holds the other
// fields plus the object's name, size and digest. The entry stays the single
// point of truth: the object is written first under a name used once, and
// only then published by the compare-and-set on the entry, so a reader never
// sees a pointer to a half-written object and concurrent savers cannot
// overwrite each other's state. The object a replaced or deleted entry
// pointed to is deleted afterwards, and an object whose entry lost the race
// is deleted at once.
//
// We chose this over refusing large snapshots because refusing would
// silently disable snapshots for exactly the aggregates that need them most.
// Costs: a large save takes an extra upload; each deleted object leaves a
// small delete marker in the object bucket; and a crash between upload and
// publish leaves an unreferenced object behind, which wastes space but is
// never read.
//
// # Checkpoints
//
// Bucket "lexigram_checkpoints" by default, history 1. The key is the
// checkpoint name (platform.ValidateCheckpointName, and no leading, trailing
// or doubled '.', which KV keys forbid). The value is the position as
// decimal ASCII text, so `nats kv get` shows it. Checkpoint.Revision is the
// KV revision of the entry; SaveCheckpoint creates the key when it is 0 and
// otherwise updates it only at that revision.
package kvsnapshot
