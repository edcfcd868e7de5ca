package projections

import (
	"context"
	"errors"

	"github.com/lexigram/events/platform"
)

// chunk is what the reader hands the applier.
type chunk struct {
	events []platform.Envelope
	live   bool // every event stored when the reader started following is in earlier chunks
	err    error
}

// read feeds out: history in passes of ReadAll (each up to the head when
// it starts) until a pass comes back short, then a live marker, then
// Subscribe. ReadAll passes give the catch-up an end even where the head
// is a hole, which Subscribe alone cannot tell.
//
// A chunk never ends between the envelopes one stored event reads as (an
// event split on read): the applier records a chunk's last position, and
// a position recorded before its last part would lose the rest after a
// restart.
func (m *Manager) read(ctx context.Context, p *projection, after uint64, size int, out chan<- chunk, free <-chan []platform.Envelope) {
	// Chunks the applier is done with come back through free: fewer
	// allocations during a long catch-up.
	newBuf := func() []platform.Envelope {
		select {
		case b := <-free:
			return b[:0]
		default:
			return make([]platform.Envelope, 0, size)
		}
	}
	send := func(c chunk) bool {
		select {
		case out <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	pos := after
	for {
		n := 0
		buf := newBuf()
		for e, err := range m.src.ReadAll(ctx, pos) {
			if err != nil {
				if e, err = p.skip(err); err != nil {
					send(chunk{err: err})
					return
				}
			}
			buf = append(buf, e)
			n++
			pos = e.Position
			if len(buf) >= size && e.EndsStored() {
				if !send(chunk{events: buf}) {
					return
				}
				buf = newBuf()
			}
		}
		if len(buf) > 0 && !send(chunk{events: buf}) {
			return
		}
		if n < size {
			break
		}
	}
	if !send(chunk{live: true}) {
		return
	}
	var parts []platform.Envelope
	for e, err := range m.src.Subscribe(ctx, pos) {
		if err != nil {
			if e, err = p.skip(err); err != nil {
				send(chunk{err: err})
				return
			}
		}
		if !e.EndsStored() {
			parts = append(parts, e) // the rest of the stored event follows at once
			continue
		}
		c := chunk{events: append(parts, e)}
		parts = nil
		if !send(c) {
			return
		}
	}
}

// skip turns the error of an event that does not decode into an envelope
// that only moves the position, if the projection skips such events;
// otherwise it returns the error.
func (p *projection) skip(err error) (platform.Envelope, error) {
	var de *platform.DecodeError
	if !p.def.SkipUndecodable || !errors.As(err, &de) {
		return platform.Envelope{}, err
	}
	p.skipped.Add(1)
	p.m.log.Warn("projection: an event that does not decode; skipped (SkipUndecodable)", "projection", p.def.Name,
		"position", de.Position, "stream", de.Stream.String(), "type", de.Type, "schema_version", de.SchemaVersion, "err", err)
	return platform.Envelope{Stream: de.Stream, Version: de.Version, Position: de.Position, Type: de.Type, SchemaVersion: de.SchemaVersion}, nil
}

// reader reads the global order in a goroutine of its own, a few chunks
// ahead of the applier, so that fetching and decoding the next events
// overlaps applying the current ones; it also tells the applier when it
// has caught up (chunk.live).
type reader struct {
	ch     chan chunk
	free   chan []platform.Envelope
	cancel context.CancelFunc
	done   chan struct{}
}

func (m *Manager) startReader(ctx context.Context, p *projection, after uint64, size int) *reader {
	rctx, cancel := context.WithCancel(ctx)
	r := &reader{ch: make(chan chunk, 4), free: make(chan []platform.Envelope, 8), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		m.read(rctx, p, after, size, r.ch, r.free)
	}()
	return r
}

// recycle hands a full-size chunk back to the reader once it is applied.
func (r *reader) recycle(b []platform.Envelope, size int) {
	if cap(b) != size {
		return
	}
	clear(b) // let the events go
	select {
	case r.free <- b:
	default:
	}
}

func (r *reader) stop() {
	r.cancel()
	<-r.done
}
