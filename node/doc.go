// Package node assembles the platform from a config.Config: the NATS
// connection (or the embedded server), the event store, snapshots and
// checkpoints, the command, query and event buses, durable event
// handlers, projections, sagas and bridges, with one lifecycle, as the
// seed's EventsModule and EventsProvider do. It and cmd/lexigram are the
// only packages that import every subsystem; the subsystems keep knowing
// only what they use of each other.
//
// A node has three phases:
//
//  1. Open boots what the configuration describes and fails fast with
//     an error that names the setting and the fix: it starts or connects
//     to NATS, opens the store (refusing one below
//     store.require_durability), the snapshot and checkpoint buckets,
//     the dead-letter queue, and the buses, serving commands and queries
//     over NATS micro.
//  2. The program registers: command and query handlers on Commands and
//     Queries (handlers.HandleCommand, HandleQuery), event handlers on
//     Events, durable handlers (Handle), projections (AddProjection) and
//     sagas (AddSaga).
//  3. Run starts what was registered (the event bus's feed, the durable
//     consumers, the projections with their leases, the saga manager and
//     the configured bridges) and, when its context ends, shuts down in
//     reverse: it stops taking work (bridges, then the remote buses, so
//     no new command arrives), lets the commands, events, steps and
//     messages under way finish within Options.ShutdownTimeout, and only
//     then drains the NATS connection and stops the embedded server. An
//     event is acknowledged only after its handler returned, so what a
//     shutdown cuts short is delivered again after the restart: nothing
//     acknowledged is lost.
//
// OpenInMemory is a node for examples and tests of a whole application:
// an embedded server without a listener, with memory storage. For unit
// tests of single handlers, see handlers.NewStub.
package node
