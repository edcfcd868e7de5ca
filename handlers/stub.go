package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/lexigram/events/platform"
)

// StubOptions configure NewStub. The zero value works.
type StubOptions struct {
	Registry *platform.Registry // nil: platform.DefaultRegistry
	Logger   *slog.Logger       // nil: discard logs (failures are kept, see EventErrors)
	// Middleware replaces the buses' default pipelines when not nil.
	Middleware []Middleware
}

// Stub is everything in memory for users' unit tests (the seed's
// EventsModule.stub()): an in-memory event and snapshot store and the three
// buses wired together, the event bus fed by the store, so the events a
// command appends reach the event handlers. Close it when done.
type Stub struct {
	Buses
	Store     *platform.MemoryEventStore
	Snapshots *platform.MemorySnapshotStore

	cancel  context.CancelFunc
	done    chan error
	closing sync.Once
	runErr  error
	mu      sync.Mutex
	errs    []error
}

// NewStub starts a stub.
func NewStub(opts StubOptions) *Stub {
	if opts.Registry == nil {
		opts.Registry = platform.DefaultRegistry
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Stub{
		Store:     platform.NewMemoryEventStore(platform.MemoryOptions{Registry: opts.Registry}),
		Snapshots: platform.NewMemorySnapshotStore(),
		done:      make(chan error, 1),
	}
	o := Options{Registry: opts.Registry, Logger: opts.Logger, Middleware: opts.Middleware}
	s.Commands = NewCommandBus(o)
	s.Queries = NewQueryBus(o)
	s.Events = NewEventBus(EventOptions{Registry: opts.Registry, Logger: opts.Logger, Middleware: opts.Middleware,
		OnResult: func(r DispatchResult) {
			if err := r.Err(); err != nil {
				s.mu.Lock()
				s.errs = append(s.errs, err)
				s.mu.Unlock()
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- s.Events.Run(ctx, s.Store, 0) }()
	return s
}

// StubRepository returns a repository on the stub's stores.
func StubRepository[T platform.Aggregate](s *Stub, newAgg func() T) *platform.Repository[T] {
	return platform.NewRepository(s.Store, newAgg, platform.RepositoryOptions{Snapshots: s.Snapshots})
}

// Dispatch dispatches cmd and waits until the event handlers have seen
// the events it appended.
func (s *Stub) Dispatch(ctx context.Context, cmd any) (CommandResult, error) {
	res, err := s.Commands.Dispatch(ctx, cmd)
	if err != nil || res.Position == 0 {
		return res, err
	}
	return res, s.Events.WaitFor(ctx, res.Position)
}

// Settle waits until the event handlers have seen every event stored so far.
func (s *Stub) Settle(ctx context.Context) error {
	var last uint64
	for e, err := range s.Store.ReadAll(ctx, 0) {
		if err != nil {
			return fmt.Errorf("handlers: stub: read the store: %w", err)
		}
		last = e.Position
	}
	return s.Events.WaitFor(ctx, last)
}

// EventErrors joins the errors of the event handlers run so far.
func (s *Stub) EventErrors() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// Close stops feeding the event bus and waits for its handlers.
func (s *Stub) Close() error {
	s.closing.Do(func() {
		s.cancel()
		s.runErr = <-s.done
	})
	return s.runErr
}
