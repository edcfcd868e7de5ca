// Package faults is the fault-injection suite: writers append unique
// values through the repository to an event store on NATS JetStream
// while a schedule injects faults, and a checker then reads everything
// back and holds it against a ledger of every append and its answer.
//
// `make test-faults` runs it (go test -tags faults ./faults/; the tests
// carry the build tag so that `make test` leaves them out). The
// scenarios:
//
//   - a three-node cluster in the test process, an R3 stream, whose
//     routes and client connections all pass through proxies (Proxy):
//     stream-leader step-down, a node shut down and restarted on its
//     store, the clients' connections cut, one node partitioned from the
//     other two (its routes cut both ways), and faults overlapping: a
//     partition held 4s or longer has the clients' connections cut in its
//     middle;
//   - a server in a child process (the test binary itself, serving an
//     embedded nats-server that fsyncs before it acknowledges), an R1
//     stream: SIGKILL and restart on the same store, client connections
//     cut;
//   - both with group commit off and on (jetstream.Options.GroupCommit);
//   - writers paired on aggregates while the stream leader is
//     partitioned, for the store's answers in doubt (no false conflict);
//   - consumers of the cluster's events under the same schedule, each on
//     a client connection of its own through the client proxies: a
//     projection into PostgreSQL (pgmodel, position and rows in one
//     transaction: each event applied exactly once), a projection into
//     a KV bucket with a KV checkpoint (at least once, its handler
//     idempotent: each event present once, redeliveries counted), and a
//     durable handler recording each event in PostgreSQL under its ID as
//     idempotency key (handled at least once, its effect once, nothing
//     in the DLQ). Once healed and caught up with the stream's last
//     event, CheckEffects holds each one's effects against the stream
//     read back and the ledger: nothing skipped, doubled or invented. It
//     needs PostgreSQL (skipped without it, failed under CI=true).
//
// The checker (Check) finds lost and misplaced acknowledged events,
// events or values stored twice, atomic appends stored in part, false
// conflicts, events no append wrote, version gaps and forks, and
// disagreements between an aggregate's read and the global order, and
// runs the integrity audit (jetstream/audit). Recorder is the ledger;
// FormatTable prints the summary: faults injected, appends attempted,
// acknowledged, conflicts, errors, lost, duplicated, and the longest
// time no writer got an acknowledgement; FormatConsumerTable the
// consumers': events, handler calls, redeliveries, skipped, duplicated
// effects, restarts after FAULTED, and how soon each caught up.
//
// # Replaying a seed
//
// Every run prints its seed; a failing scenario prints it again with the
// command to replay it:
//
//	LEXIGRAM_FAULT_SEED=1234 go test -tags faults -count=1 -run 'TestClusterFaults/single-appends' -v ./faults/
//
// The seed fixes the schedule (which faults, in which order, on which
// node, with which pauses and holds) and each writer's choices
// (aggregates, batch sizes); the interleaving of writers, elections and
// the network is the machine's, so a replay repeats the schedule, not
// every timing.
package faults
