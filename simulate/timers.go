package simulate

import "time"

// A Sim makes the timers of sagas.Stub misbehave as the timer stream
// may (it is a sagas.TimerFaults: pass it as sagas.StubOptions.Timers).
// A timer that fires late must still time the wait out, once; a timer
// that fires after its wait ended must change nothing. Both are the saga
// engine's to get right, and a saga's steps' to bear: a deadline that
// comes late meets an instance that may have moved on.

// LateTimer is how long after due the timer of the instance fires: at
// the LateTimer odds, a random time up to MaxLate; otherwise 0.
func (s *Sim) LateTimer(instance string, due time.Time) time.Duration {
	if !s.chance(s.faults.LateTimer) {
		return 0
	}
	late := time.Duration(1 + s.rng.Int64N(int64(s.maxLate())))
	s.note("timer of %s due %s: fires %v late", instance, due.Format(time.RFC3339Nano), late)
	return late
}

// FireCancelled reports, at the FireCancelled odds, that the cancelled
// timer of the instance fires anyway.
func (s *Sim) FireCancelled(instance string, due time.Time) bool {
	if !s.chance(s.faults.FireCancelled) {
		return false
	}
	s.note("timer of %s due %s: cancelled, fires anyway (the cancel lost the race)", instance, due.Format(time.RFC3339Nano))
	return true
}

// Duration is a random duration in [0, max), for a scenario's own
// choices of time (when a reply comes, how far to move a clock), so that
// they too are the seed's. It is noted in the trace with why.
func (s *Sim) Duration(max time.Duration, why string) time.Duration {
	if max <= 0 {
		return 0
	}
	d := time.Duration(s.rng.Int64N(int64(max)))
	s.note("%s: %v", why, d)
	return d
}

func (s *Sim) maxLate() time.Duration {
	if s.faults.MaxLate > 0 {
		return s.faults.MaxLate
	}
	return DefaultMaxLate
}
