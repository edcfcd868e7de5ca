package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lexigram/events/platform"
)

// projection is one registered projection and its run in this process.
// It holds the lifecycle: Start and Stop, the loop that stands by for the
// lease, leads while it holds it and stands by again, and the state,
// position and generation that Status and WaitFor read. Applying events is
// the follower's work (follower.go), reading them the reader's (reader.go).
type projection struct {
	m     *Manager
	def   Projection
	types map[string]struct{} // nil: every type
	gens  Generational        // nil: one generation only

	applied watch         // the highest position applied; wakes WaitFor
	meter   meter         // events read by the serving generation
	skipped atomic.Uint64 // undecodable events skipped (SkipUndecodable)
	ctl     chan *rebuildReq

	mu     sync.Mutex
	state  State
	err    error
	active bool
	gen    Generation
	run    *runHandle // the current or last run; nil before the first Start
	rb     *rebuild   // the rebuild in progress or the last one
}

type runHandle struct {
	cancel context.CancelFunc
	clean  atomic.Bool // Stop asked: save the checkpoint and release the lease
	done   chan struct{}
}

func (p *projection) start(ctx context.Context) {
	p.mu.Lock()
	prev, ended := p.run, p.state == Faulted || p.state == Stopped
	p.mu.Unlock()
	if prev != nil && ended {
		// A run that faulted or stopped may not have returned yet: a
		// restart waits for it rather than taking it for a live one.
		select {
		case <-prev.done:
		case <-ctx.Done():
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.run != nil {
		select {
		case <-p.run.done:
		default:
			return // running
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	h := &runHandle{cancel: cancel, done: make(chan struct{})}
	p.run, p.state, p.err = h, Running, nil
	go p.loop(rctx, h)
}

func (p *projection) stop() {
	p.mu.Lock()
	h := p.run
	p.mu.Unlock()
	if h != nil {
		h.clean.Store(true)
		h.cancel()
	}
}

func (p *projection) wait(ctx context.Context) error {
	p.mu.Lock()
	h := p.run
	p.mu.Unlock()
	if h == nil {
		return nil
	}
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *projection) setState(s State) {
	p.mu.Lock()
	old := p.state
	p.state = s
	if s == CatchingUp || s == Live {
		p.err = nil // a transient error waited out
	}
	gen := p.gen
	p.mu.Unlock()
	if old != s {
		p.m.log.Info("projection state", "projection", p.def.Name, "state", string(s), "was", string(old), "generation", gen, "position", p.applied.load())
	}
	p.applied.kick()
}

// advance records a position the serving generation applied, and tells
// the processes standing by.
func (p *projection) advance(pos uint64) {
	p.applied.advance(pos)
	if relay, ok := p.m.leases.(ProgressRelay); ok {
		relay.Announce(p.def.Name, pos)
	}
}

func (p *projection) setActive(a bool) {
	p.mu.Lock()
	p.active = a
	p.mu.Unlock()
}

// pause waits out a transient error, which Status shows meanwhile as
// the projection's error; false means ctx ended first.
func (p *projection) pause(ctx context.Context, d time.Duration, err error) bool {
	p.setState(Running)
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
	p.m.log.Warn("projection: the store or the server is unavailable; trying again", "projection", p.def.Name, "in", d, "position", p.applied.load(), "err", err)
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *projection) fault(err error) {
	p.mu.Lock()
	p.state, p.err, p.active = Faulted, err, false
	p.mu.Unlock()
	p.m.log.Error("projection faulted", "projection", p.def.Name, "position", p.applied.load(), "err", err)
	p.applied.kick()
}

func (p *projection) status(h head, now time.Time) Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{
		Name: p.def.Name, State: p.state, Err: p.err, Active: p.active, Generation: p.gen,
		Position: p.applied.load(), Head: h.last, Read: p.meter.count(), Skipped: p.skipped.Load(),
	}
	s.Head = max(s.Head, s.Position)
	s.Lag = s.Head - s.Position
	if p.state == Live || p.state == CatchingUp {
		s.EventsPerSecond = p.meter.rate(now)
	}
	if rb := p.rb; rb != nil {
		pr := rb.progress(h, now)
		s.Rebuild = &pr
		if rb.finished.IsZero() && (p.state == Live || p.state == CatchingUp) {
			s.State = Rebuilding
		}
	}
	return s
}

// loop runs the projection until its context ends: it waits for the
// lease, applies events while it holds it, and stands by again when it
// loses it.
func (p *projection) loop(ctx context.Context, h *runHandle) {
	defer close(h.done)
	name := p.def.Name
	var wait retryWait
	for {
		p.setState(Running)
		// While another process applies the projection, its announced
		// positions let WaitFor here see the shared read model's progress.
		fctx, unfollow := context.WithCancel(ctx)
		if relay, ok := p.m.leases.(ProgressRelay); ok {
			if err := relay.Follow(fctx, name, p.applied.advance); err != nil {
				p.m.log.Warn("projection: cannot follow the active process's progress; WaitFor here waits until this process is active", "projection", name, "err", err)
			}
		}
		lease, err := p.m.leases.Acquire(ctx, name)
		unfollow()
		if err != nil {
			if ctx.Err() != nil {
				p.setState(Stopped)
				return
			}
			err = fmt.Errorf("acquire the lease of projection %q: %w", name, err)
			if transient(err) && p.pause(ctx, wait.after(false), err) {
				continue
			}
			p.fault(err)
			return
		}
		p.setActive(true)
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lease.Lost():
				cancel()
			case <-lctx.Done():
			}
		}()
		from := p.applied.load()
		err = p.lead(lctx, h)
		cancel()
		progressed := p.applied.load() > from
		p.setActive(false)
		lost := false
		select {
		case <-lease.Lost():
			lost = true
		default:
		}
		release := func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := lease.Release(rctx); err != nil {
				p.m.log.Warn("projection: could not release the lease; it expires by itself", "projection", name, "err", err)
			}
		}
		switch {
		case ctx.Err() != nil:
			if h.clean.Load() {
				release()
			}
			p.setState(Stopped)
			return
		case lost || errors.Is(err, platform.ErrCheckpointConflict):
			p.m.log.Warn("projection: another process applies it now; standing by", "projection", name, "err", err)
			release()
			wait.reset()
		case transient(err):
			release() // another process may fare better
			if !p.pause(ctx, wait.after(progressed), err) {
				p.setState(Stopped)
				return
			}
		default:
			release() // another process may fare better
			p.fault(err)
			return
		}
	}
}

// lead applies events while this process holds the lease.
func (p *projection) lead(ctx context.Context, h *runHandle) error {
	gen := Generation(1)
	if g := p.gens; g != nil {
		var err error
		if gen, err = g.Active(ctx); err != nil {
			return platform.Errorf(platform.CodeProjectionBuild, "projection %q: read the active generation: %w", p.def.Name, err)
		}
		if gen == 0 {
			gen = 1
			if err := g.Prepare(ctx, gen); err != nil {
				return platform.Errorf(platform.CodeProjectionBuild, "projection %q: prepare generation 1: %w", p.def.Name, err)
			}
		}
		// Also finishes a swap that a crash interrupted.
		if err := g.Activate(ctx, gen); err != nil {
			return platform.Errorf(platform.CodeProjectionBuild, "projection %q: activate generation %d: %w", p.def.Name, gen, err)
		}
	}
	p.mu.Lock()
	p.gen = gen
	p.mu.Unlock()
	s := p.newSink(gen)
	pos, err := s.load(ctx)
	if err != nil {
		return err
	}
	// Announced too: a standby whose question fell between two holders
	// learns from this where the new one starts, even if nothing follows.
	p.advance(pos)
	p.setState(CatchingUp)
	f := &follower{p: p, gen: gen, sink: s, batch: p.m.opts.BatchSize, h: h}
	return f.follow(ctx, pos)
}
