// Package simulate tests users' handlers, projections and sagas under the
// faults production gives them, deterministically from a seed.
//
// A durable consumer delivers at least once: an event can come twice in
// a row (an ack lost), again after other aggregates' events (a
// redelivery after a timeout), after a crash between the handler's
// effect and its ack, and events of different aggregates interleave in
// any order (one aggregate's never do). An append can meet a concurrency
// conflict, so a command handler's decision runs again on a reloaded
// aggregate. Code that is right under those faults is idempotent, keeps
// its effects inside what the store and its checkpoints record, and
// does not assume an order across aggregates.
//
// Check runs a scenario once per seed, many seeds, each with a fresh
// world the scenario builds, and fails the test at the first seed whose
// scenario returns an error, with that seed's trace of faults and the
// command that replays it alone:
//
//	simulate.Check(t, simulate.Options{}, func(s *simulate.Sim) error {
//		model := newReadModel()
//		if err := s.Deliver(ctx, events, model.Apply); err != nil {
//			return err
//		}
//		return model.Equal(expected)
//	})
//
// Within a scenario, Deliver feeds events to a handler as such a
// consumer would, and Store wraps an event store so that appends meet
// conflicts (Repository.Update then reloads and decides again). The
// faults and their odds are in Faults; the zero value gives each a fair
// chance. LEXIGRAM_SIMULATE_SEED=N runs only seed N.
//
// Sagas run in a sagas.Stub (the manager's own steps on a fake clock),
// with the Sim as its TimerFaults: a wait's deadline fires late, and a
// timer whose wait ended fires anyway, as the timer stream may do; the
// engine must time a wait out once and ignore a stale fire. Deliver the
// store's events to the stub's Deliver, and Duration gives a scenario
// seeded times (when a reply comes, how far to move the clock).
// examples/orders/simulate_test.go runs all of it over the example
// domain's command handlers, projection and saga.
//
// What it does not simulate: network partitions and a store losing
// acknowledged writes (the fault suite, `make test-faults`, covers the
// platform's side of those).
package simulate
