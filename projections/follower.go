package projections

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/lexigram/events/platform"
)

// follower applies one generation's events: the serving one (rb == nil) or
// a rebuild's. Both are the same loop, so that a rebuild catches up exactly
// as the serving run does; what is particular to rebuilds (starting one,
// the swap) is in rebuild.go.
type follower struct {
	p     *projection
	gen   Generation
	sink  sink
	batch int
	h     *runHandle // the serving run; nil for a rebuild

	// Serving run: the rebuild it started.
	child *rebuild
	// Rebuild: set once caught up: the serving run's position to reach
	// before swapping, and where to send the result.
	rb     *rebuild
	target uint64
	swap   *swapReq
}

func (f *follower) follow(ctx context.Context, after uint64) error {
	p := f.p
	r := p.m.startReader(ctx, p, after, f.batch)
	defer func() { r.stop() }()
	if f.rb == nil {
		defer f.endChild()
	}
	var pending *chunk
	for {
		var c chunk
		if pending != nil {
			c, pending = *pending, nil
		} else {
			var ctl <-chan *rebuildReq
			var swaps <-chan *swapReq
			var ended <-chan error
			if f.rb == nil {
				ctl = p.ctl
				if f.child != nil {
					swaps, ended = f.child.swaps, f.child.ended
				}
			}
			select {
			case c = <-r.ch:
			case <-ctx.Done():
				return f.finish()
			case req := <-ctl:
				req.reply <- f.startRebuild(ctx)
				continue
			case sw := <-swaps:
				if f.handOver(ctx, sw) {
					r.stop()
					r = p.m.startReader(ctx, p, f.sink.position(), f.batch)
				}
				continue
			case err := <-ended:
				f.child.end(err)
				f.child = nil
				continue
			}
		}
		switch {
		case c.err != nil:
			if ctx.Err() != nil {
				return f.finish()
			}
			return platform.Errorf(platform.CodeStoreUnavailable, "projection %q: read the store after position %d: %w", p.def.Name, f.sink.position(), c.err)
		case c.live:
			if err := f.caughtUp(ctx); err != nil {
				return err
			}
			continue
		}
		batch := c.events
	coalesce:
		for len(batch) < f.batch {
			select {
			case c2 := <-r.ch:
				if c2.err != nil || c2.live {
					pending = &c2
					break coalesce
				}
				batch = append(batch, c2.events...)
			default:
				break coalesce
			}
		}
		err := f.apply(ctx, batch)
		r.recycle(batch, f.batch)
		if err != nil {
			if ctx.Err() != nil {
				return f.finish()
			}
			return err
		}
		if f.swap != nil && f.sink.position() >= f.target {
			return f.complete(ctx)
		}
	}
}

// apply applies a batch of read events: those of the projection's types
// go to the handler, and the position moves past all of them.
func (f *follower) apply(ctx context.Context, batch []platform.Envelope) error {
	p := f.p
	events := batch
	if p.types != nil || slices.ContainsFunc(batch, noEvent) {
		events = make([]platform.Envelope, 0, len(batch))
		for _, e := range batch {
			if _, ok := p.types[e.Type]; (ok || p.types == nil) && !noEvent(e) {
				events = append(events, e)
			}
		}
	}
	to := batch[len(batch)-1].Position
	if p.m.opts.Sequential {
		p.m.seq.Lock()
	}
	err := f.sink.apply(ctx, events, len(batch), to)
	if p.m.opts.Sequential {
		p.m.seq.Unlock()
	}
	p.m.saw(to)
	if f.rb == nil {
		p.advance(f.sink.position())
		p.meter.add(len(batch))
	} else {
		f.rb.advance(f.sink.position(), len(batch))
	}
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, platform.ErrCheckpointConflict) {
			// Keep what was applied before the failure.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if ferr := f.sink.flush(fctx); ferr != nil {
				p.m.log.Warn("projection: could not save the checkpoint after a failure", "projection", p.def.Name, "err", ferr)
			}
			cancel()
		}
		return err
	}
	return nil
}

// noEvent reports whether a read envelope only moves the position: a
// retired event, or one that did not decode, skipped.
func noEvent(e platform.Envelope) bool { return e.Event == nil }

// finish ends a run whose context ended: a clean stop saves the
// checkpoint; an abrupt one, like a crash, does not.
func (f *follower) finish() error {
	if f.h != nil && f.h.clean.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.sink.flush(ctx); err != nil {
			f.p.m.log.Warn("projection: could not save the checkpoint on stop", "projection", f.p.def.Name, "err", err)
		}
	}
	return context.Canceled
}

// caughtUp is called when the reader has delivered everything stored
// when it started following.
func (f *follower) caughtUp(ctx context.Context) error {
	p := f.p
	if f.rb == nil {
		p.setState(Live)
		return nil
	}
	// A rebuild: ask the serving run to pause and tell its position.
	sw := &swapReq{target: make(chan uint64, 1), result: make(chan swapResult, 1)}
	select {
	case f.rb.swaps <- sw:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case f.target = <-sw.target:
		f.swap = sw
	case <-ctx.Done():
		return ctx.Err()
	}
	p.m.log.Info("projection rebuild caught up; swapping", "projection", p.def.Name, "generation", f.gen, "position", f.sink.position(), "serving_position", f.target)
	if f.sink.position() >= f.target {
		return f.complete(ctx)
	}
	return nil
}
