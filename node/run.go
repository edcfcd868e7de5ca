package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/handlers/durable"
)

// Run starts what was registered and the configured bridges, runs until
// ctx ends or a part fails for good, then shuts the node down (see the
// package documentation) and closes it. It returns nil after a shutdown
// that ctx asked for.
func (n *Node) Run(ctx context.Context) (err error) {
	n.mu.Lock()
	if n.running || n.closed {
		n.mu.Unlock()
		return errors.New("node: Run called twice, or after Close: open another node")
	}
	n.running = true
	specs, sagaManager := n.durables, n.sagas
	n.mu.Unlock()
	defer n.closeNATS()

	// Everything runs on contexts of its own, ended in order below, not
	// by ctx: ending a part's context is an abrupt stop.
	work := context.WithoutCancel(ctx)
	var sd shutdown
	defer func() {
		if stopErr := sd.run(n); err == nil {
			err = stopErr
		}
	}()
	for _, d := range specs {
		h, err := durable.New(work, n.js, n.store, d.name, d.handler, d.opts)
		if err != nil {
			return fmt.Errorf("start durable handler %q: %w", d.name, err)
		}
		sd.durables = append(sd.durables, h)
	}
	if len(n.projections.Names()) > 0 {
		if err := n.projections.Start(work); err != nil {
			return fmt.Errorf("start projections: %w", err)
		}
		sd.projections = true
	}
	failed := make(chan error, 2)
	if n.events.Handles() {
		// From the head: the bus is for what happens while the node runs;
		// durable handlers are for what must not be missed.
		st, err := n.store.State(work)
		if err != nil {
			return fmt.Errorf("read the event stream's head for the event bus: %w", err)
		}
		sd.bus = background(work, failed, "event bus", func(ctx context.Context) error { return n.events.Run(ctx, n.store, st.LastPosition) })
	}
	if sagaManager != nil {
		sd.sagas = background(work, failed, "saga manager", sagaManager.Run)
		// Ready means the saga listeners exist: an event appended after
		// it reaches them.
		select {
		case <-sagaManager.Ready():
		case err := <-failed:
			return err
		case <-ctx.Done():
			return nil
		}
	}
	if len(n.cfg.Bridges) > 0 {
		if sd.bridges, err = bridgeconfig.Start(work, n.js, n.cfg.Bridges, bridgeconfig.Options{Store: n.cfg.Store, Events: n.store, Logger: n.log}); err != nil {
			return err
		}
		n.mu.Lock()
		n.bridges = sd.bridges
		n.mu.Unlock()
	}
	close(n.ready)
	n.log.Info("node running", "durable_handlers", len(specs), "projections", len(n.projections.Names()), "sagas", sagaManager != nil, "bridges", len(n.cfg.Bridges))
	select {
	case <-ctx.Done():
		n.log.Info("node stopping")
		return nil
	case err := <-failed:
		n.log.Error("node stopping: a part failed", "error", err)
		return err
	}
}

// part is something Run runs in a goroutine: cancel ends it, done is
// closed when it returned.
type part struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// background runs fn until its context is cancelled; an error it returns
// before that goes to failed, named.
func background(ctx context.Context, failed chan<- error, name string, fn func(context.Context) error) *part {
	ctx, cancel := context.WithCancel(ctx)
	p := &part{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			select {
			case failed <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
	return p
}

// shutdown is what Run started, stopped in the order that loses nothing.
type shutdown struct {
	bridges     *bridgeconfig.Set
	sagas       *part
	projections bool
	durables    []*durable.Handler
	bus         *part
}

// run stops, within the node's ShutdownTimeout: the bridges and the
// remote buses first (no new work comes in), then the saga steps, the
// projections' batches, the durable handlers' events and the event bus's
// dispatches under way, each finished, not cut.
func (sd *shutdown) run(n *Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.opts.ShutdownTimeout)
	defer cancel()
	var errs []error
	if sd.bridges != nil {
		if err := sd.bridges.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop bridges: %w", err))
		}
	}
	if n.remote != nil {
		// New requests go to the other processes serving their types;
		// those under way are answered.
		if err := n.remote.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop serving commands and queries: %w", err))
		}
	}
	wait := func(p *part, what string) {
		if p == nil {
			return
		}
		p.cancel()
		select {
		case <-p.done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("stop %s: %w", what, ctx.Err()))
		}
	}
	wait(sd.sagas, "the saga manager")
	if sd.projections {
		if err := n.projections.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop projections: %w", err))
		}
	}
	for _, h := range sd.durables {
		if err := h.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop a durable handler: %w", err))
		}
	}
	wait(sd.bus, "the event bus")
	if len(errs) > 0 {
		n.log.Warn("node stopped with work cut short: it is delivered again after a restart", "error", errors.Join(errs...))
	} else {
		n.log.Info("node stopped")
	}
	return errors.Join(errs...)
}
