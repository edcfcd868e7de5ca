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
type projection struct {
	m     *Manager
	def   Projection
	types map[string]struct{} // nil: every type
	gens  Generational        // nil: one generation only

	applied watch // the highest position applied; wakes WaitFor
	meter   meter // events read by the serving generation
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
		Position: p.applied.load(), Head: h.last, Read: p.meter.count(),
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
			p.fault(fmt.Errorf("acquire the lease of projection %q: %w", name, err))
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
		err = p.lead(lctx, h)
		cancel()
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
	p.applied.advance(pos)
	p.setState(CatchingUp)
	f := &follower{p: p, gen: gen, sink: s, batch: p.m.opts.BatchSize, h: h}
	return f.follow(ctx, pos)
}

func (p *projection) newSink(gen Generation) sink {
	if p.def.Batch != nil {
		return &txSink{b: p.def.Batch, gen: gen, interval: p.m.opts.CheckpointInterval}
	}
	return &kvSink{store: p.m.opts.Checkpoints, h: p.def.Handler, gen: gen, name: checkpointName(p.def.Name, gen), interval: p.m.opts.CheckpointInterval}
}

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

// follower applies one generation's events: the serving one (rb == nil) or
// a rebuild's.
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

type swapReq struct {
	target chan uint64     // the serving run's position; it waits meanwhile
	result chan swapResult // the rebuild's outcome
}

type swapResult struct {
	sink sink
	err  error
}

// errSwapped ends a rebuild's follower once its generation serves.
var errSwapped = errors.New("swapped")

func (f *follower) follow(ctx context.Context, after uint64) error {
	p := f.p
	r := p.m.startReader(ctx, after, f.batch)
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
					r = p.m.startReader(ctx, f.sink.position(), f.batch)
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
	if p.types != nil {
		events = make([]platform.Envelope, 0, len(batch))
		for _, e := range batch {
			if _, ok := p.types[e.Type]; ok {
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

// complete makes the rebuilt generation the one readers see.
func (f *follower) complete(ctx context.Context) error {
	err := f.sink.flush(ctx)
	if err == nil {
		err = f.p.gens.Activate(ctx, f.gen)
	}
	f.swap.result <- swapResult{sink: f.sink, err: err}
	if err != nil {
		return platform.Errorf(platform.CodeProjectionBuild, "projection %q: activate rebuilt generation %d: %w", f.p.def.Name, f.gen, err)
	}
	return errSwapped
}

// handOver pauses the serving run while its rebuild catches up with it,
// and switches to the new generation if the rebuild activated it.
func (f *follower) handOver(ctx context.Context, sw *swapReq) bool {
	p := f.p
	sw.target <- f.sink.position()
	var res swapResult
	select {
	case res = <-sw.result:
	case <-ctx.Done():
		return false
	}
	if res.err != nil {
		return false
	}
	old := f.gen
	f.gen, f.sink = f.child.gen, res.sink
	p.mu.Lock()
	p.gen = f.gen
	p.mu.Unlock()
	p.advance(f.sink.position())
	p.m.log.Info("projection rebuilt: readers see the new generation", "projection", p.def.Name, "generation", f.gen, "position", f.sink.position(), "replaced", old)
	if err := p.gens.Drop(ctx, old); err != nil {
		p.m.log.Warn("projection: could not drop the replaced generation", "projection", p.def.Name, "generation", old, "err", err)
	}
	return true
}

// startRebuild starts a rebuild into the next generation.
func (f *follower) startRebuild(ctx context.Context) rebuildReply {
	p := f.p
	if f.child != nil {
		return rebuildReply{err: platform.Errorf(platform.CodeProjectionBuild, "rebuild projection %q: generation %d is being built already: wait for it", p.def.Name, f.child.gen)}
	}
	gen := f.gen + 1
	cctx, cancel := context.WithCancel(ctx)
	rb := &rebuild{p: p, gen: gen, started: time.Now(), cancel: cancel, swaps: make(chan *swapReq), ended: make(chan error, 1), lastLog: time.Now()}
	h := p.m.head(ctx)
	rb.headAtStart, rb.eventsAtStart, rb.counted = h.last, h.events, h.counted
	p.mu.Lock()
	p.rb = rb
	p.mu.Unlock()
	f.child = rb
	p.m.log.Info("projection rebuild started", "projection", p.def.Name, "generation", gen, "serving", f.gen, "head", h.last)
	go func() { rb.ended <- rb.run(cctx) }()
	return rebuildReply{gen: gen}
}

// endChild stops a rebuild when the serving run ends.
func (f *follower) endChild() {
	if f.child == nil {
		return
	}
	f.child.cancel()
	f.child.end(<-f.child.ended)
	f.child = nil
}

// rebuild is one replay into a new generation.
type rebuild struct {
	p      *projection
	gen    Generation
	cancel context.CancelFunc
	swaps  chan *swapReq
	ended  chan error

	// guarded by p.mu
	started                    time.Time
	headAtStart, eventsAtStart uint64
	counted                    bool
	pos, done                  uint64
	meter                      meter
	finished                   time.Time
	err                        error
	lastLog                    time.Time
}

func (rb *rebuild) run(ctx context.Context) error {
	p := rb.p
	if err := p.gens.Prepare(ctx, rb.gen); err != nil {
		return platform.Errorf(platform.CodeProjectionBuild, "projection %q: prepare generation %d: %w", p.def.Name, rb.gen, err)
	}
	s := p.newSink(rb.gen)
	if err := s.reset(ctx); err != nil {
		return err
	}
	f := &follower{p: p, gen: rb.gen, sink: s, batch: p.m.opts.RebuildBatchSize, rb: rb}
	return f.follow(ctx, 0)
}

func (rb *rebuild) advance(pos uint64, n int) {
	p := rb.p
	rb.meter.add(n)
	p.mu.Lock()
	rb.pos, rb.done = pos, rb.done+uint64(n)
	logNow := time.Since(rb.lastLog) >= 5*time.Second
	if logNow {
		rb.lastLog = time.Now()
	}
	p.mu.Unlock()
	if logNow {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		pr := rb.progressLocked(p.m.head(ctx), time.Now())
		cancel()
		p.m.log.Info("projection rebuild progress", "projection", p.def.Name, "generation", rb.gen,
			"done", pr.Done, "total", pr.Total, "position", pr.Position, "events_per_second", int(pr.EventsPerSecond), "remaining", pr.Remaining.Round(time.Second))
	}
}

// end records how the rebuild ended.
func (rb *rebuild) end(err error) {
	p := rb.p
	if errors.Is(err, errSwapped) {
		err = nil
	}
	p.mu.Lock()
	rb.finished, rb.err = time.Now(), err
	p.mu.Unlock()
	if err != nil {
		p.m.log.Error("projection rebuild abandoned; the serving generation stays", "projection", p.def.Name, "generation", rb.gen, "err", err)
	}
	// A rebuild stopped with its run (a stop, a lost lease) leaves its
	// copy for the next Prepare: another process may be building the same
	// generation by now.
	if err != nil && !errors.Is(err, context.Canceled) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if derr := p.gens.Drop(ctx, rb.gen); derr != nil {
			p.m.log.Warn("projection: could not drop the abandoned generation", "projection", p.def.Name, "generation", rb.gen, "err", derr)
		}
	}
	p.applied.kick()
}

func (rb *rebuild) progress(h head, now time.Time) Progress {
	return rb.progressFields(h, now)
}

// progressLocked is progress for callers not holding p.mu.
func (rb *rebuild) progressLocked(h head, now time.Time) Progress {
	rb.p.mu.Lock()
	defer rb.p.mu.Unlock()
	return rb.progressFields(h, now)
}

// progressFields needs p.mu held.
func (rb *rebuild) progressFields(h head, now time.Time) Progress {
	pr := Progress{Generation: rb.gen, Started: rb.started, Position: rb.pos, Done: rb.done, Finished: rb.finished, Err: rb.err}
	if rb.finished.IsZero() {
		pr.EventsPerSecond = rb.meter.rate(now)
	}
	if rb.counted && h.counted {
		// Events stored since the start add to the total; deleted ones
		// are not subtracted, so this errs on the high side.
		pr.Total = rb.eventsAtStart + h.last - min(h.last, rb.headAtStart)
		pr.Total = max(pr.Total, pr.Done)
	}
	if pr.Total > 0 && pr.EventsPerSecond > 0 {
		pr.Remaining = time.Duration(float64(pr.Total-pr.Done) / pr.EventsPerSecond * float64(time.Second))
	}
	return pr
}

// sink is where one generation's events go and where its position is kept.
type sink interface {
	load(ctx context.Context) (uint64, error)
	position() uint64
	// apply hands events (those of the projection's types among read
	// events) to the handler and moves the position to to.
	apply(ctx context.Context, events []platform.Envelope, read int, to uint64) error
	flush(ctx context.Context) error
	reset(ctx context.Context) error
}

// kvSink applies events one at a time and keeps the position in the
// manager's CheckpointStore.
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

// txSink hands batches to a BatchHandler, which stores the position with
// them.
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

// watch is a position that waiters can wait on without polling: every
// advance closes the channel they hold.
type watch struct {
	mu   sync.Mutex
	pos  uint64
	wake chan struct{}
}

func (w *watch) advance(pos uint64) {
	w.mu.Lock()
	if pos > w.pos {
		w.pos = pos
		w.kickLocked()
	}
	w.mu.Unlock()
}

// kick wakes the waiters without moving: the state changed.
func (w *watch) kick() {
	w.mu.Lock()
	w.kickLocked()
	w.mu.Unlock()
}

func (w *watch) kickLocked() {
	if w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
}

func (w *watch) load() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

func (w *watch) wait() (uint64, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake == nil {
		w.wake = make(chan struct{})
	}
	return w.pos, w.wake
}

// meter counts events and tells their recent rate.
type meter struct {
	mu      sync.Mutex
	total   uint64
	samples [16]sample // ring; a sample at most every half second
	n, next int
}

type sample struct {
	t     time.Time
	total uint64 // the count before the events added at t
}

const rateWindow = 10 * time.Second

func (m *meter) add(n int) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	last := m.samples[(m.next+len(m.samples)-1)%len(m.samples)]
	if m.n == 0 || now.Sub(last.t) >= rateWindow/time.Duration(len(m.samples)) {
		m.samples[m.next] = sample{t: now, total: m.total}
		m.next = (m.next + 1) % len(m.samples)
		m.n = min(m.n+1, len(m.samples))
	}
	m.total += uint64(n)
}

func (m *meter) count() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// rate is the events per second over about the last ten seconds.
func (m *meter) rate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := m.n; i > 0; i-- {
		s := m.samples[(m.next-i+len(m.samples))%len(m.samples)]
		if now.Sub(s.t) <= rateWindow {
			return float64(m.total-s.total) / max(now.Sub(s.t), time.Second).Seconds()
		}
	}
	return 0
}
