package projections

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lexigram/events/platform"
)

// StubOptions configure NewStub. The zero value works.
type StubOptions struct {
	Registry *platform.Registry // nil: platform.DefaultRegistry
	Logger   *slog.Logger       // nil: discard logs (a FAULTED projection's error comes back from Given and Settle)
	// Manager is the manager's options; Checkpoints, Leases and Logger
	// are the stub's. The zero value is the defaults, as in production.
	Manager Options
}

// Stub runs projections for users' unit tests without NATS: the
// production Manager, reading a platform.MemoryEventStore and keeping
// Handler checkpoints in a platform.MemoryCheckpointStore, so events are
// applied by the same code (types filtered, batches, checkpoints,
// FAULTED on an error, rebuilds) as in production. Given appends events
// and returns once every projection has applied them, so a test reads its
// read model right after. Close it when done.
type Stub struct {
	Manager     *Manager
	Store       *platform.MemoryEventStore
	Checkpoints *platform.MemoryCheckpointStore

	ctx    context.Context // the projections run until Close
	cancel context.CancelFunc
	err    error // the options New refused
	mu     sync.Mutex
	closed bool
}

// NewStub returns a stub with no projections.
func NewStub(opts StubOptions) *Stub {
	if opts.Registry == nil {
		opts.Registry = platform.DefaultRegistry
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Stub{
		Store:       platform.NewMemoryEventStore(platform.MemoryOptions{Registry: opts.Registry}),
		Checkpoints: platform.NewMemoryCheckpointStore(),
	}
	mo := opts.Manager
	mo.Checkpoints, mo.Leases, mo.Logger = s.Checkpoints, nil, opts.Logger
	m, err := New(s.Store, mo)
	if err != nil {
		// Only negative sizes fail New: the stub keeps a manager on the
		// defaults, so that nothing is nil, and Register reports why.
		s.err = fmt.Errorf("projections: stub: %w", err)
		m, _ = New(s.Store, Options{Checkpoints: s.Checkpoints, Logger: opts.Logger})
	}
	s.Manager = m
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Register adds a projection and starts it: it applies what the store
// holds already, then follows.
func (s *Stub) Register(p Projection) error {
	if s.err != nil {
		return s.err
	}
	if err := s.Manager.Register(p); err != nil {
		return err
	}
	return s.Manager.Start(s.ctx, p.Name)
}

// Given appends events (registered event values, or Envelopes for their
// metadata) to the aggregate, whatever its version, and returns once
// every projection has applied them.
func (s *Stub) Given(ctx context.Context, stream platform.StreamID, events ...any) (platform.AppendResult, error) {
	envs := make([]platform.Envelope, len(events))
	for i, e := range events {
		if env, ok := e.(platform.Envelope); ok {
			envs[i] = env
		} else {
			envs[i] = platform.Envelope{Event: e}
		}
	}
	res, err := s.Store.Append(ctx, stream, platform.Any(), envs)
	if err != nil {
		return platform.AppendResult{}, fmt.Errorf("projections: stub: append %d events to %s: %w", len(envs), stream, err)
	}
	return res, s.waitAll(ctx, res.LastPosition)
}

// Settle returns once every projection has applied every event the store
// holds, events appended to Store directly included; or the error of a
// projection that FAULTED on the way.
func (s *Stub) Settle(ctx context.Context) error {
	var last uint64
	for e, err := range s.Store.ReadAll(ctx, 0) {
		if err != nil {
			return fmt.Errorf("projections: stub: read the store: %w", err)
		}
		last = e.Position
	}
	return s.waitAll(ctx, last)
}

func (s *Stub) waitAll(ctx context.Context, pos uint64) error {
	if pos == 0 {
		return nil
	}
	for _, name := range s.Manager.Names() {
		if err := s.Manager.WaitFor(ctx, name, pos); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the projections, saving their checkpoints.
func (s *Stub) Close(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.closed = true
	s.mu.Unlock()
	if closed {
		return nil
	}
	err := s.Manager.Stop(ctx)
	s.cancel()
	return err
}
