package simulate

import (
	"context"
	"fmt"

	"github.com/lexigram/events/platform"
)

// maxAttempts bounds the deliveries of one event whose handler keeps
// failing: past it Deliver returns the handler's error, as a durable
// handler would dead-letter the event.
const maxAttempts = 20

// Deliver feeds events to handle as an at-least-once consumer under the
// seed's faults would: each aggregate's events in their order, the
// aggregates interleaved at random, events delivered again (duplicates,
// redeliveries after other aggregates' events, after a crash between
// handle's effect and the ack), and handle's errors retried. It returns
// nil once every event was acked, or handle's error for an event that
// failed maxAttempts times.
func (s *Sim) Deliver(ctx context.Context, events []platform.Envelope, handle func(context.Context, platform.Envelope) error) error {
	queues := map[platform.StreamID][]item{}
	var order []platform.StreamID // aggregates with events to deliver, first seen first: the rng picks among them deterministically
	for _, e := range events {
		if _, ok := queues[e.Stream]; !ok {
			order = append(order, e.Stream)
		}
		queues[e.Stream] = append(queues[e.Stream], item{e: e})
	}
	attempts := map[attemptKey]int{}
	for len(order) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		i := s.rng.IntN(len(order))
		agg := order[i]
		it := queues[agg][0]
		e := it.e
		done := func() {
			if queues[agg] = queues[agg][1:]; len(queues[agg]) == 0 {
				delete(queues, agg)
				order = append(order[:i], order[i+1:]...)
			}
		}
		if it.again {
			// Acked before: whatever the handler does now, nothing is
			// delivered again because of it.
			s.note("deliver %s v%d %s (position %d), again after a timeout", e.Stream, e.Version, e.Type, e.Position)
			if err := handle(ctx, e); err != nil {
				s.note("  failed (%v); it was acked before", err)
			}
			done()
			continue
		}
		if s.chance(s.faults.Fail) {
			s.note("deliver %s v%d: the call timed out before it ran: delivered again", e.Stream, e.Version)
			continue
		}
		key := attemptKey{e.Stream, e.Version, e.Position}
		attempts[key]++
		s.note("deliver %s v%d %s (position %d)", e.Stream, e.Version, e.Type, e.Position)
		if err := handle(ctx, e); err != nil {
			s.note("  failed: %v", err)
			if n := attempts[key]; n >= maxAttempts {
				return fmt.Errorf("%s version %d (%s) failed %d times: %w", e.Stream, e.Version, e.Type, n, err)
			}
			continue
		}
		if s.chance(s.faults.Crash) {
			s.note("  crash after the effect, before the ack: delivered again")
			continue
		}
		if s.chance(s.faults.Duplicate) {
			s.note("deliver %s v%d %s (position %d), a duplicate: its ack was lost", e.Stream, e.Version, e.Type, e.Position)
			if err := handle(ctx, e); err != nil {
				s.note("  failed (%v); it was acked before", err)
			}
		}
		if s.chance(s.faults.Redeliver) {
			// Delivered again later: after other aggregates' events, before
			// the next of its own.
			queues[agg][0].again = true
			continue
		}
		done()
	}
	return nil
}

type attemptKey struct {
	stream            platform.StreamID
	version, position uint64
}

// item is an event waiting for delivery; again marks one acked before.
type item struct {
	e     platform.Envelope
	again bool
}
