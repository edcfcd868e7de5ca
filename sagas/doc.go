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
// Start creates the instance (idempotently per saga type and association
// key) and publishes a message on its subject in the manager's work stream
// (LEXIGRAM_SAGAS, <prefix>.run.<type>.<id>, a work queue of its own, never
// the event store's stream). Each saga type has one durable consumer that
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
// where it was.
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
// # Not yet
//
// Steps that wait for a correlated event, starting a saga by an event
// type, durable timeouts on message schedules, the operator API and CLI,
// metrics and tracing are still to come.
package sagas
