package projections

import (
	"context"
	"errors"

	"github.com/lexigram/events/platform"
)

// txSink hands batches to a BatchHandler, which stores the position with
// them, in one transaction: each event takes effect exactly once, even
// when two instances overlap.
type txSink struct {
	b        BatchHandler
	gen      Generation
	interval int

	stored, pos uint64
	unsaved     int
}

func (s *txSink) load(ctx context.Context) (uint64, error) {
	pos, err := s.b.Position(ctx, s.gen)
	if err != nil {
		return 0, platform.Errorf(platform.CodeStoreUnavailable, "load the position of generation %d: %w", s.gen, err)
	}
	s.stored, s.pos = pos, pos
	return pos, nil
}

func (s *txSink) position() uint64 { return s.pos }

func (s *txSink) apply(ctx context.Context, events []platform.Envelope, read int, to uint64) error {
	if len(events) == 0 && s.unsaved+read < s.interval {
		// Nothing of ours: move on without a transaction.
		s.pos, s.unsaved = to, s.unsaved+read
		return nil
	}
	if err := s.write(ctx, Batch{From: s.stored, To: to, Events: events}); err != nil {
		return err
	}
	s.stored, s.pos, s.unsaved = to, to, 0
	return nil
}

func (s *txSink) write(ctx context.Context, b Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = platform.Errorf(platform.CodeHandlerPanic, "batch handler panicked on positions %d to %d: %v", b.From+1, b.To, r)
		}
	}()
	if err := s.b.ApplyBatch(ctx, s.gen, b); err != nil {
		if errors.Is(err, platform.ErrCheckpointConflict) {
			return err
		}
		return platform.Errorf(platform.CodeEventHandler, "apply the batch of positions %d to %d (%d events): %w", b.From+1, b.To, len(b.Events), err)
	}
	return nil
}

func (s *txSink) flush(ctx context.Context) error {
	if s.pos <= s.stored {
		return nil
	}
	if err := s.write(ctx, Batch{From: s.stored, To: s.pos}); err != nil {
		return err
	}
	s.stored, s.unsaved = s.pos, 0
	return nil
}

// reset: Generational.Prepare has set the position to 0 already.
func (s *txSink) reset(ctx context.Context) error {
	_, err := s.load(ctx)
	return err
}
