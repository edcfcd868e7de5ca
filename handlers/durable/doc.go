// Package durable runs named event handlers that must not miss events, on
// JetStream durable pull consumers, with a dead-letter queue (DLQ) for the
// events they cannot handle.
//
// # Handlers
//
// New starts a handler: a func(ctx, platform.Envelope) error, the same
// signature as the event bus's handlers, so their middleware composes. Its
// name is the name of one durable consumer on the event store's stream,
// filtered on the subjects of the aggregate types it declares (one
// consumer, one filter per aggregate type; the store's subjects are per
// aggregate, not per event type). The event types it declares are routed
// by the Lx-Type and Lx-Schema headers and the registry: events that
// cannot read as one of those types are acknowledged without being
// decoded.
//
// # Schema versions
//
// Events are read as the store reads them: upcast to the current version
// of their type by the store's registry (platform.Upcast and the rest).
// One stored event may read as several (an event split on read): the
// handler gets each of them, in order, and the event is acknowledged once
// all were handled; a failure retries from the failed one when retrying
// in place (PerAggregateOrder), from the first after a redelivery. All of
// them carry the stored event's Version and Position, parts after the
// first an ID of their own (Envelope.Origin says which part). A retired
// event is acknowledged without a call.
//
// An event is acknowledged only after the handler returns nil. A failure is
// redelivered after Options.Backoff (NakWithDelay). The consumer's own
// BackOff setting is not used: JetStream makes its first value the ack wait
// of every first delivery, so a handler slower than the first retry delay
// would get its event delivered twice at once. AckWait covers a process
// that dies mid-event: the server redelivers to another process after it.
// MaxDeliver bounds the deliveries; an event that cannot decode, whose
// type or schema version is not registered, or whose handler returned
// Permanent(err) is terminated on the delivery that found out, without
// retries. With Options.SkipUndecodable an event that does not decode is
// acknowledged instead, logged and counted (outcome "undecodable").
//
// A panicking handler is a failure (platform.ErrHandlerPanic) like any
// other, never a crashed process. The handler's context carries the
// event's correlation ID, the event's ID as causation ID, and the W3C
// trace context the event was stored with (the "traceparent" metadata the
// command bus writes), so commands it sends continue the chain and its
// spans join the command's trace in whichever process handles the event.
// Options.TracerProvider adds a span per handler call.
//
// # Dead-letter queue
//
// Every event that ran out of deliveries or was terminated gets one entry
// per handler in the DLQ stream (LEXIGRAM_DLQ), on the subject
// <prefix>.<handler>.<event position>, holding the event's subject,
// headers and body, its position, the handler's name, the error, the
// delivery count and the time. The subject is the entry's identity: the
// stream keeps one message per subject, so an entry is written once per
// handler and event however often it is recorded.
//
// Two paths write entries. On the last delivery, or a permanent failure,
// the handler writes the entry itself, with its error, and then terminates
// the delivery. If its process dies before that, or the DLQ cannot be
// written, JetStream's MAX_DELIVERIES or MSG_TERMINATED advisory for the
// handler's consumer is the safety net: a second stream,
// LEXIGRAM_DLQ_ADVISORIES, captures those advisories (they are core NATS
// messages, sent only while someone listens), and every running instance
// of the handler consumes its own from a durable consumer. The advisory
// path fetches the event from the event stream by its sequence and writes
// the entry only if there is none yet (Nats-Expected-Last-Subject-Sequence
// 0), so it never overwrites the handler's error text; its Error says that
// the handler recorded none. When the handler did write the entry, its
// termination reason starts "in DLQ: " and the advisory path skips it:
// read late, after a replay or discard, it would bring the entry back.
//
// DLQ.List, Get, Replay, Discard and Size are the API of the CLI. Replay
// publishes the entry to <prefix>.<handler>.replay.<position> in the DLQ
// stream, which the running handler consumes alongside its events (a
// consumer of the same name on the DLQ stream); the event store is not
// written to, so no aggregate gets a second copy of an event. A replay
// that succeeds removes the entry; one that fails again replaces it with
// the new error and delivery count.
//
// # Scale and order
//
// Every process that starts a handler of the same name shares its
// consumer: JetStream balances the pulls, each event goes to one process
// at a time, and an event a dead process held is redelivered to another
// after AckWait; a slow handler in a live process keeps its event, its
// worker telling the server every AckWait/2 that it is still at work.
// Handlers must be idempotent: a process can die after handling an event
// and before its ack arrives, and an event that waits longer than AckWait
// in a process's buffers is delivered again. Ordered
// handlers should remember the last version they applied per aggregate
// (Envelope.Version, with Envelope.Origin.Part for an event split on
// read) and skip what they have seen.
//
// Within one process, Options.Concurrency runs several handler calls at
// once. With PerAggregateOrder the events are spread over the workers by
// a hash of their subject, so one aggregate's events are handled one at a
// time and in order while other aggregates proceed, and a failing event is
// retried in place (keeping the server informed with InProgress) rather
// than redelivered, because a redelivery would let the aggregate's next
// event overtake it.
//
// Per-aggregate order across processes needs each aggregate to belong to
// one process at a time. The options were:
//
//   - JetStream subject-mapping partitions (a stream subject transform
//     adding {{partition(n,...)}}), and orbit.go's static pcgroups, which
//     need that token: both change the subjects of the stored events,
//     which are the event store's contract (reads and the optimistic
//     concurrency checks use <prefix>.<type>.<id>), and fix the number of
//     partitions in the data.
//   - orbit.go's elastic pcgroups (v0.2.2): they work on any stream by
//     sourcing it into a second, work-queue stream with a partition token
//     added, and pin one member per partition with priority groups. That
//     stores and replicates every event a second time, renumbers positions
//     (the envelope's position would have to come back from the source
//     header), manages membership in a KV bucket that an operator edits to
//     add a process, names consumers after members, and would move the DLQ
//     advisories onto the copy.
//   - Priority groups: a pinned_client group on the handler's one consumer
//     makes one process at a time receive its events and the others stand
//     by, taking over once the pinned process has not pulled for PinnedTTL.
//
// This package takes priority groups (Options.Exclusive) together with the
// in-process partitioning above: per-aggregate order with parallelism
// across aggregates inside the active process, failover to a standby, and
// no second copy of the events. Its limit is that one process handles all
// of the handler's events at a time. Pinning is not strict exclusivity
// (ADR-42): around a failover, events in flight on the old process are
// redelivered and may interleave with the new process's, which idempotent
// handlers tolerate. When one process is not enough for an ordered
// handler, elastic pcgroups are the next step, at the cost above.
//
// # Start position
//
// Options.Start (FromBeginning, FromNow, After(position)) applies when the
// consumer is created. A consumer that already exists keeps its
// acknowledged position whatever Start says, because that position is the
// handler's progress and JetStream cannot move a consumer's start; New
// logs a warning when they differ. To start over, delete the consumer
// (nats consumer rm <stream> <handler>).
//
// # Stopping
//
// Handler.Stop stops pulling, hands the events pulled but not started back
// to the server at once (Nak) for other processes, and waits for the calls
// in flight. If its context ends first, it cancels the calls' context; their
// events come back after AckWait.
//
// # Metrics
//
// Metrics is a client_golang collector: deliveries by outcome (ok,
// skipped, retried, dead_lettered), dead letters by reason, handler call
// time, and, read from the server when scraped, the DLQ size and the
// consumer's lag (num_pending) and ack pending.
package durable
