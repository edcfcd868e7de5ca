// Package storetest is the conformance suite for implementations of
// platform.EventStore, platform.SnapshotStore and platform.CheckpointStore.
// Every store runs it from its own tests: the in-memory stores of package
// platform, the JetStream stores (one server with file storage, and a
// three-node cluster).
//
//	func TestEventStore(t *testing.T) {
//		storetest.TestEventStore(t, func(t *testing.T) storetest.Harness {
//			reg := platform.NewRegistry()
//			return storetest.Harness{
//				Store:    platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg}),
//				Registry: reg,
//			}
//		})
//	}
//
// # How the suite uses the stores
//
// Each suite runs its checks as subtests and calls newStore once per
// subtest, so no subtest depends on another and each may be run alone with
// go test -run. The store newStore returns must hold no events (no
// snapshots, no checkpoints) and nothing but the suite may write to it
// while the subtest runs: the suite checks, for example, that ReadAll
// yields exactly what it appended. Subtests do not call t.Parallel.
// Cleaning up is newStore's job (t.Cleanup).
//
// For TestEventStore, newStore must also return a fresh Registry per call,
// the one the store decodes with; the suite registers its own event types
// in it (names starting with "storetest."). Within a subtest every
// aggregate's type is unique to that subtest (it contains a ULID), so even
// a store that shares data between subtests sees no collisions.
//
// # What the suite expects beyond the interface comments
//
//   - Invalid arguments are errors matching platform.ErrInvalidArgument
//     (errors.Is), an unregistered event type matches
//     platform.ErrUnknownEventType, a version conflict is a
//     *platform.ConcurrencyError whose Actual is the stored version. A
//     failed append writes nothing. An event larger than
//     Harness.MaxEventSize is ErrInvalidArgument, and the message names
//     the limit.
//   - Correlation and causation IDs, whether set on the envelope or taken
//     from the context, are checked like event IDs and metadata values
//     (printable, at most 256 bytes). Text that passes the checks comes
//     back byte for byte, leading and trailing spaces included, and
//     metadata keys keep their case.
//   - Append with an already cancelled context fails with an error matching
//     context.Canceled and writes nothing.
//   - Appending from inside a ReadAll loop neither deadlocks nor keeps the
//     loop from ending.
//   - Delete and Truncate are idempotent: deleting an aggregate that has no
//     events, or truncating through a version already truncated, succeeds
//     and changes nothing. Truncating past the last version is
//     ErrInvalidArgument. Truncating through the last version keeps the
//     last event (see EventStore.Truncate).
//   - Read from the revision of a truncated event works (a repository
//     reads from its snapshot's revision, whose event Compact truncated).
//   - Reading an event whose type is not registered is an error matching
//     ErrUnknownEventType whose message names the type and the position
//     ("position N"); an event that does not decode into its registered
//     type matches ErrCorruptEvent and names the position.
//   - SnapshotStore.DeleteSnapshot of a missing snapshot succeeds; after a
//     delete, any version may be saved again. A snapshot's Time survives
//     at least to the millisecond.
//   - Invalid stream IDs and checkpoint names are ErrInvalidArgument in
//     every method that takes one.
//   - A store that implements platform.ChainReader keeps the hash chain
//     (platform/chain.go) through every kind of append, conflicts,
//     truncation, deletion and racing writers: each stored event's
//     previous-hash is the ChainHash of the one before it as stored, the
//     first event's is empty. Other stores skip that subtest.
package storetest
