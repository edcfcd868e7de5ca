// Package platform is the shared vocabulary of lexigram events: events and
// their envelope, aggregates and the repository that loads and saves them,
// the store interfaces (EventStore, SnapshotStore, CheckpointStore), errors
// with stable codes, codecs and the event-type registry.
//
// It also holds an in-memory implementation of each store, for unit tests of
// users' domain code; the JetStream-backed stores live in package jetstream
// and kvsnapshot. Every store passes the same conformance suite
// (platform/storetest).
//
// # Schema evolution
//
// The registry holds every version of every event type that may be
// stored, each with its own Go type, and upcasters between consecutive
// versions: Upcast (one event to one: a field renamed, a default added, a
// rename to another type name), UpcastMany (one to several, or none) and
// Retire (one to none); Registry.Rename maps a stored name onto another.
// The highest version of a name is the current one, the only one appends
// write. Every read decodes the stored version and upcasts it to the
// current one (Registry.DecodeEnvelope), so aggregates, projections and
// handlers only see current types; Envelope.Origin tells what was stored.
// Registry.Check, at start-up, finds versions that cannot be read;
// Registry.Resolve says how one stored (type, version) reads.
//
//	platform.MustRegister[OrderPlacedV1](reg, "order.placed", 1)
//	platform.MustRegister[OrderPlacedV2](reg, "order.placed", 2)
//	platform.MustUpcast(reg, func(e OrderPlacedV1) OrderPlacedV2 {
//		return OrderPlacedV2{Customer: e.Customer, Total: e.Amount} // Amount renamed
//	})
//
// docs/schema.md has the whole story and a worked example (v1 → v2 → v3
// split into two events, and a retired event), which
// Example_schemaEvolution runs.
//
// # Sealed payloads
//
// A registry may have a Sealer (Registry.SetSealer; package encryption
// provides one): appends then store sealed bodies, the envelope's KeyID
// naming the key, and reads open them before upcasting. An event whose
// data subject was forgotten reads with placeholders and
// Envelope.Shredded set.
//
// platform imports no other package of this module, so every other package
// can import it.
package platform
