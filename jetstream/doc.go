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
package jetstream
