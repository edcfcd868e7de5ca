// Package encryption seals event payloads with AES-256-GCM and shreds
// them by forgetting keys.
//
// A [Keyring] is a platform.Sealer: Open sets it on a registry, and every
// store on that registry (the JetStream store, the memory store) seals
// each event body before it is stored and opens it when read, before the
// registry's upcasters run, so they see plain events. Each data subject
// has a data key of its own: by default the aggregate ([AggregateSubject]),
// or the value of the event's string field tagged `lexigram:"subject"`
// (a customer ID across several aggregates). Data keys are made with
// crypto/rand on a subject's first event and stored in the KV bucket
// LEXIGRAM_KEYS, wrapped by a master key from a [KeyProvider] ([FileKeys],
// [EnvKeys], or a KMS's), with create and compare-and-set so that
// concurrent first appends agree on one key. Unwrapped keys are cached.
//
// What is sealed ([Mode]): in ModeFields, the default, the fields tagged
// `lexigram:"personal"` only, so the rest of the event stays readable in
// the stream (`nats stream get`), to tools and after shredding; in
// ModeWhole, the whole body. The stored event's Lx-Key header (and
// Envelope.KeyID) names the data key; a process without the key ring
// reads such an event as a CodeConfigConflict error naming the key, never
// as garbage.
//
// The bucket holds a key check per master key: Open fails with a clear
// error, naming the key and the fix, when the provider lacks a master key
// that wrapped data keys, or holds other key material under its ID.
//
// [Keyring.Forget] erases a subject's data key and leaves a tombstone:
// its events then read with personal string fields set to [Placeholder]
// ("[forgotten]") and other personal fields zero, whole-sealed events as
// their type's zero value, and Envelope.Shredded set; never a cipher
// error. Forget appends [SubjectForgotten] so that projections can react.
// [Keyring.Rewrap] moves data keys to a new master key in place.
// Dead letters of durable handlers keep an event's stored bytes and
// headers, so they stay sealed and shred with it.
// The ring is also a kvsnapshot.Sealer: snapshots are sealed with the
// aggregate's key and load as none once it is forgotten.
// docs/encryption.md has the whole story, and what shredding cannot reach.
package encryption
