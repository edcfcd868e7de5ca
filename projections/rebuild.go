package projections

import (
	"context"
	"errors"
	"time"

	"github.com/lexigram/events/platform"
)

// rebuild is one replay into a new generation. It runs beside the serving
// run, with a follower of its own, so that the read model keeps serving
// while it is rebuilt; its fields are what Status.Rebuild and the metrics
// report.
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

// rebuildReq is Manager.Rebuild's request to the serving run, which alone
// may start a rebuild: it knows the generation it serves.
type rebuildReq struct{ reply chan rebuildReply }

type rebuildReply struct {
	gen Generation
	err error
}

// swapReq is how a rebuild that has caught up meets the serving run: the
// serving run pauses and tells its position, the rebuild applies up to it
// and activates its generation, and the serving run carries on with the
// rebuild's sink.
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
