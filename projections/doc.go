// Package projections builds read models from the event store's global
// order. See docs/projections.md for the whole story; in short:
//
//   - A [Manager] runs registered projections, each in its own goroutine:
//     it reads from the projection's checkpoint in global order (ReadAll
//     passes to catch up, then Subscribe to follow), hands each event of the
//     projection's types to its handler, and reports state (STOPPED,
//     RUNNING, CATCHING_UP, LIVE, FAULTED, REBUILDING), position, head, lag
//     and events/s through Status and a Prometheus collector. An error of
//     the projection's own (its handler's, an event that does not decode)
//     stops it in FAULTED until Start; the store, the NATS server or the
//     network unavailable (a transient error, retry.go) is waited out in
//     RUNNING, the error in Status, and the projection goes on from its
//     checkpoint with a backoff of 200ms doubling to 30s.
//   - A [Handler] gets events one at a time; its checkpoint lives in a
//     platform.CheckpointStore (JetStream KV) and is saved every
//     CheckpointInterval events and on Stop, so after a crash the events
//     since the last checkpoint come again: handlers must be idempotent.
//   - A [BatchHandler] stores its position in the same transaction as its
//     rows, for exactly-once effect; package pgmodel is one on PostgreSQL.
//   - [Generational] read models can be rebuilt next to the serving copy
//     and swapped in atomically once caught up ([Manager.Rebuild]).
//   - [KVLeases] make one process apply a projection's events when several
//     run it; another takes over within the lease TTL when it dies, and the
//     processes standing by follow its progress ([ProgressRelay]).
//   - [Manager.WaitFor] waits, without polling, until a projection has
//     applied a position: read-your-writes after a command.
//   - A [Stub] runs projections in users' unit tests without NATS: the
//     same Manager on in-memory stores, where Given returns once every
//     projection has applied the events it appends.
package projections
