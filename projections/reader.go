package projections

import (
	"context"

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
func (m *Manager) read(ctx context.Context, after uint64, size int, out chan<- chunk, free <-chan []platform.Envelope) {
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
				send(chunk{err: err})
				return
			}
			buf = append(buf, e)
			n++
			pos = e.Position
			if len(buf) == size {
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
	for e, err := range m.src.Subscribe(ctx, pos) {
		if err != nil {
			send(chunk{err: err})
			return
		}
		if !send(chunk{events: []platform.Envelope{e}}) {
			return
		}
	}
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

func (m *Manager) startReader(ctx context.Context, after uint64, size int) *reader {
	rctx, cancel := context.WithCancel(ctx)
	r := &reader{ch: make(chan chunk, 4), free: make(chan []platform.Envelope, 8), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		m.read(rctx, after, size, r.ch, r.free)
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
