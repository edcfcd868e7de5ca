// Package jetstream is the event store on NATS JetStream.
//
// One stream (EVENTS by default) holds every event as one message on the
// subject <prefix>.<aggregate type>.<aggregate id token>, so the stream
// sequence is the global order and each aggregate's subject is its history.
// Envelope fields travel in headers (see envelope.go); the body is the event
// encoded by the store's codec. Lx-Id is the event ID. A retried append is
// never stored twice: one that names the version it writes is stopped by
// its expected sequence, and one that expects Any also carries its ID in
// Nats-Msg-Id, for the server's duplicate window (newMsg says why only
// those).
//
// Appends are optimistic: every append carries
// Nats-Expected-Last-Subject-Sequence, the sequence of the aggregate's last
// event when the caller decided. A single event is one publish; several
// events are one JetStream atomic batch (server 2.12+), all or nothing.
// With group commit (Options.GroupCommit, groupcommit.go) concurrent
// appends to different aggregates share one atomic batch, each keeping its
// own expected sequence and its own answer.
//
// Reading one aggregate creates no consumer: it pages through batched
// direct gets (server 2.11+; an ordered consumer on older servers). Any
// replica answers a direct get, so on a replicated stream a read first
// asks the leader for the aggregate's first and last positions (two small
// requests) and reads to the last, skipping what the leader has deleted:
// a read sees the appends and deletes made before it.
// ReadAll and Subscribe (the live tail) use an ordered consumer.
//
// # Hash chain
//
// Every event carries in Lx-Prev the platform.ChainHash of its
// aggregate's previous event as stored (empty for the first), so each
// aggregate's history is a hash chain: a lost, forged or altered event
// breaks it where it happened. Package audit (jetstream/audit, `lexigram
// audit`, the node's background scrubber) checks the chains, the
// versions and the global order. The hash of the event an append builds
// on comes from a bounded per-process cache that reads and appends fill,
// so an append after a load costs no extra round trip; a miss costs one
// direct get (Options.ChainCache, ChainStats; chain.go has the details).
//
// # Durability
//
// The store reports what an acknowledged append survives
// (platform.Durability): the stream's storage, replicas and persist mode
// from its configuration, and the fsync setting of the servers holding
// it, which is server-wide (jetstream { sync_interval }, default 2m;
// "always" fsyncs every write before the ack, on R>1 through the Raft
// log). The setting comes from Options.ServerSync when the caller knows
// it (an embedded server), else from the servers' VARZ, which only the
// system account answers (syncsettings.go); refused, the setting is
// "unknown" and says why, never guessed. It is computed when the store
// opens and by RefreshDurability, and every AppendResult carries the
// one in force, so appends make no extra round trip for it.
//
// Options.RequireDurability is the least level the store works with,
// each including the ones below it (platform.DurabilityLevel has the
// full definitions):
//
//   - any: whatever the stream gives;
//   - replicated: survives the crash or power loss of any one server:
//     file storage and 3 or more replicas (a quorum of 2 that outlives
//     one server; 2 replicas do not count), or fsync before ack;
//   - fsync: survives the power loss of every server: file storage and
//     sync_interval: always verified on every server holding the stream.
//
// An unknown sync setting never counts as fsync: it meets replicated
// through 3 replicas only. Below the level New fails with a
// platform.CodeDurability error naming what is in force and how to
// change it; a stream changed underneath (replicas lowered) is noticed
// by RefreshDurability, after which appends fail the same way until a
// refresh finds the level again.
package jetstream
