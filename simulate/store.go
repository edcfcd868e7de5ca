package simulate

import (
	"context"

	"github.com/lexigram/events/platform"
)

// Store wraps inner so that, at the seed's Conflict odds, an append meets
// a concurrency conflict before anything is stored, as when another
// writer got there first: platform.Repository.Update then reloads the
// aggregate and runs the decision again, which must not repeat an effect
// outside the events it raises. Reads go to inner.
func (s *Sim) Store(inner platform.EventStore) platform.EventStore {
	return &conflictingStore{EventStore: inner, sim: s, streak: map[platform.StreamID]int{}}
}

type conflictingStore struct {
	platform.EventStore
	sim    *Sim
	streak map[platform.StreamID]int // conflicts in a row per aggregate
}

// maxStreak bounds the conflicts in a row on one aggregate, below
// Repository.Update's default retries: a simulated conflict should make
// the decision run again, not exhaust the retries.
const maxStreak = 2

func (c *conflictingStore) Append(ctx context.Context, stream platform.StreamID, expected platform.ExpectedVersion, events []platform.Envelope) (platform.AppendResult, error) {
	if c.streak[stream] < maxStreak && c.sim.chance(c.sim.faults.Conflict) {
		c.streak[stream]++
		var actual uint64
		for e, err := range c.EventStore.Read(ctx, stream, platform.Revision{}) {
			if err != nil {
				return platform.AppendResult{}, err
			}
			actual = e.Version
		}
		c.sim.note("append to %s (%d events): a concurrency conflict", stream, len(events))
		return platform.AppendResult{}, &platform.ConcurrencyError{Stream: stream, Expected: expected, Actual: actual}
	}
	c.streak[stream] = 0
	c.sim.note("append to %s (%d events)", stream, len(events))
	return c.EventStore.Append(ctx, stream, expected, events)
}
