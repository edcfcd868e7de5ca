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
// platform imports no other package of this module, so every other package
// can import it.
package platform
