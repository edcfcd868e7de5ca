// Package sagatest is the conformance suite of sagas.Store: every store
// (sagas.MemoryStore, sagas.KVStore, pgstore.Store) runs it in its tests,
// and so should any other. It checks what the saga manager relies on:
// that an instance comes back as it was stored, that Create starts one
// instance per type and association key however many callers race, that
// Save never loses an update, that List pages in ID order, and that a
// record that no longer decodes is reported, listed as parked and can be
// written over.
//
// The suite accepts what a store's encoding may change without changing
// meaning: times are compared with time.Time.Equal, and Data as JSON
// values (PostgreSQL's jsonb, for one, reorders keys and drops white
// space). Revisions only have to grow: KVStore's grow with every write to
// its bucket, not by one.
package sagatest
