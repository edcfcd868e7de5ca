// Package sagas runs sagas: long-running processes of ordered steps, each
// an action with an optional compensation, whose state survives crashes
// and moves on in whichever process is up.
//
// A saga type is defined in plain typed Go (Define, Step), its instances
// kept in a Store (KVStore on a JetStream key-value bucket by default,
// pgstore for PostgreSQL, MemoryStore for unit tests), and a Manager
// drives them: it saves an instance before a step's effect and after its
// result, with compare-and-set on the instance's revision, so two
// processes never advance one instance at once and a crash between the
// save and the effect resumes at the right step. A step that fails for
// good runs the compensations of the steps before it, newest first, each
// once.
//
// # How instances move
//
// An instance's ID is InstanceID(type, key), so a type has one instance
// per association key and a store finds it by either without an index.
// Start creates the instance (idempotently per saga type and association
// key), with its first step's run counted and leased to the message it
// then publishes on the instance's subject in the manager's work stream
// (LEXIGRAM_SAGAS, <prefix>.run.<type>.<id>, a work queue of its own, never
// the event store's stream). That message holds the instance, so the
// manager taking it runs the first step without reading or writing it
// first: a saga of n steps costs one create and n compare-and-sets. The
// work stream is in memory unless Options.DurableWork: its messages only
// say what to move on, and a manager that finds it lost (a server
// restart) makes it again and moves every unfinished instance on. Each
// saga type has one durable consumer that
// every manager registering the type shares, so instances spread over the
// processes; within a process, one instance's messages go to one worker.
// The message is acknowledged when the instance rests: finished, stuck,
// or waiting for a retry (the message is redelivered after the retry's
// delay, to any process). While a step runs, the manager holds a lease on
// the instance (Owner, LeaseUntil, saved with every save) and tells the
// server it is still at work; when its process dies, the message comes
// back after Options.AckWait and another manager resumes the instance once
// the lease has run out. Run, as it starts, also sends every unfinished
// instance of its types a message, so a cluster stopped entirely picks up
// where it was. And every AckWait a running manager sweeps for instances
// created but never moved on, whose start message never reached the
// server (Start returns once the instance is stored, without waiting for
// that message: its process may die before it is stored, or the server
// refuse it): the KV store reads only the headers of the
// records written in the window before last, each instance's last record
// once; the other stores List their STARTED instances.
//
// # Steps that run twice
//
// The run of a step is saved before it starts, so a crash during it runs
// it again. Context.Send gives each command a step sends an idempotency key
// (the instance, the step, undo or do, its place in the step), the same in
// every run: with handlers.Idempotency on the command bus the second run
// gets the first run's result. Other effects of a step must bear being
// done twice.
//
// # Events: starting and waiting
//
// A type can start on events (StartOn with When: an event of a Go type
// from aggregates of a type gives the association key and the data) and
// wait for them (Wait with On: the step rests until an event whose key is
// the instance's comes). Each such type has one durable handler of
// handlers/durable, "saga-<type>", on the event store (Options.Events),
// shared by every manager and read by one of them at a time (a pinned
// priority group) in the store's order, so a saga's start is handled
// before the events that continue it. A delivered event goes into the
// instance's Inbox (compare-and-set, never twice: the event's position is
// its identity) and wakes the instance; the wait takes the first event of
// its type from the inbox, so an event that overtakes the step that asked
// for it is not lost. An event for no instance, or a finished one,
// follows the type's NotFoundPolicy (counted and ignored, or put in the
// DLQ); one for an instance with no wait ahead for it is counted and
// logged. A manager advancing an instance whose record gained an event
// meanwhile merges it rather than running its step again.
//
// # Deadlines and timers
//
// Within bounds a step and Deadline the whole saga; past either, the
// instance goes TimedOut and compensates. An action's deadline is checked
// on each of its runs (its context carries it, its retries' delays are
// cut to it). A wait's is a durable timer: a JetStream message schedule
// (nats-server 2.12 or newer) in a stream of its own, LEXIGRAM_SAGA_TIMERS
// (see timers.go for why not the event store's nor the work stream), one
// per waiting instance, fired into the same stream and consumed by the
// managers. A fire carries the instance's generation, which grows when a
// wait ends: a fire whose wait has ended (a cancel lost the race) is
// ignored and counted. A timer that falls due while no manager runs fires
// when one starts. The schedule's time has milliseconds, rounded up (not
// nats.go's whole seconds), and the server's schedule timer has a floor
// of about 250 ms: a timeout comes a few to about 250 ms late, never
// early (docs/benchmarks.md, saga.timeout.lateness). The lateness does
// not change outcomes: a delivered event keeps when it came
// (Received.At), and a wait takes it only if that was before the
// deadline, so an event that comes after it, before the late timer,
// times the saga out as an on-time timer would have.
//
// A Stub (stub.go) runs saga types without NATS for users' unit tests:
// the same steps, moved on by its queue, with events handed over by
// Deliver and the timers on a fake clock that Advance moves; its
// TimerFaults (simulate.Sim is one) make timers late or fire after
// their cancel.
//
// On an older server, NewManager logs that durable timeouts need 2.12
// and Register refuses a type whose waits have deadlines
// (platform.ErrUnsupported); everything else works. A fallback on delayed
// redelivery was the other choice: it would time out only while a process
// holds the instance's message, which a cluster restart or a redelivery
// limit can lose, and an error at Register is easier to act on than a
// timeout that silently does not come.
//
// # Observability
//
// Options.Metrics (NewMetrics, a Prometheus collector) counts instances
// by outcome, events by outcome and stale timer fires per type, and times
// steps; Options.TracerProvider gives a span per step run, linked to the
// trace of what started the saga (Instance.Trace).
package sagas
