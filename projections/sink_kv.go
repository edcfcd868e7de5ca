package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/lexigram/events/platform"
)

// kvSink applies events one at a time and keeps the position in the
// manager's CheckpointStore. A Handler cannot store the position with its
// writes, so the checkpoint trails them, saved every CheckpointInterval
// events, and the events since the last save come again after a crash.
type kvSink struct {
	store    platform.CheckpointStore
	h        Handler
	gen      Generation
	name     string
	interval int

	cp      platform.Checkpoint // as last saved
	pos     uint64
	unsaved int
	// saving is the interval save in flight, if any: the next save or
	// flush waits for it, so the applier does not wait for the KV round
	// trip in between.
	saving chan savedCheckpoint
}

type savedCheckpoint struct {
	cp  platform.Checkpoint
	err error
}

func (s *kvSink) load(ctx context.Context) (uint64, error) {
	cp, err := s.store.LoadCheckpoint(ctx, s.name)
	if err != nil {
		return 0, platform.Errorf(platform.CodeStoreUnavailable, "load checkpoint %q: %w", s.name, err)
	}
	s.cp, s.pos = cp, cp.Position
	return s.pos, nil
}

func (s *kvSink) position() uint64 { return s.pos }

func (s *kvSink) apply(ctx context.Context, events []platform.Envelope, read int, to uint64) error {
	for i := range events {
		if err := handle(ctx, s.h, s.gen, &events[i]); err != nil {
			s.pos = events[i].Position - 1 // everything before it is done
			return err
		}
	}
	s.pos = to
	s.unsaved += read
	if s.unsaved >= s.interval {
		return s.saveAsync(ctx)
	}
	return nil
}

// saveAsync starts saving the position once the previous save is done.
// A failure (a conflict) is returned by the next save or flush.
func (s *kvSink) saveAsync(ctx context.Context) error {
	cp, due, err := s.due()
	if !due {
		return err
	}
	done := make(chan savedCheckpoint, 1)
	// The save outlives a stop of the run: cancelled half-way, it could
	// land without our knowing its revision, and the stop's own save of
	// the final position would then fail its compare-and-set.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	go func() {
		defer cancel()
		saved, err := s.store.SaveCheckpoint(sctx, cp)
		done <- savedCheckpoint{cp: saved, err: err}
	}()
	s.saving, s.unsaved = done, 0
	return nil
}

// due waits for the save in flight and returns the checkpoint at the
// run's position, unless that position is saved already.
func (s *kvSink) due() (platform.Checkpoint, bool, error) {
	if err := s.await(); err != nil {
		return platform.Checkpoint{}, false, err
	}
	if s.pos == s.cp.Position {
		return platform.Checkpoint{}, false, nil
	}
	cp := s.cp
	cp.Position = s.pos
	return cp, true, nil
}

func (s *kvSink) await() error {
	if s.saving == nil {
		return nil
	}
	r := <-s.saving
	s.saving = nil
	if r.err != nil {
		return fmt.Errorf("save checkpoint %q: %w", s.name, r.err)
	}
	s.cp = r.cp
	return nil
}

func handle(ctx context.Context, h Handler, gen Generation, e *platform.Envelope) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = platform.Errorf(platform.CodeHandlerPanic, "handler panicked on event %s (%s version %d) at position %d: %v", e.Type, e.Stream, e.Version, e.Position, r)
		}
	}()
	if err := h.Handle(ctx, gen, *e); err != nil {
		return platform.Errorf(platform.CodeEventHandler, "handle event %s (%s version %d) at position %d: %w", e.Type, e.Stream, e.Version, e.Position, err)
	}
	return nil
}

func (s *kvSink) flush(ctx context.Context) error {
	cp, due, err := s.due()
	if !due {
		return err
	}
	saved, err := s.store.SaveCheckpoint(ctx, cp)
	if err != nil {
		return fmt.Errorf("save checkpoint %q at position %d: %w", s.name, s.pos, err)
	}
	s.cp, s.unsaved = saved, 0
	return nil
}

func (s *kvSink) reset(ctx context.Context) error {
	if _, err := s.load(ctx); err != nil {
		return err
	}
	s.pos = 0
	if s.cp.Position == 0 {
		return nil
	}
	return s.flush(ctx)
}
