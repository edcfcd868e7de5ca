package sagas

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// StubOptions configure NewStub. The zero value works.
type StubOptions struct {
	Store Store // nil: NewMemoryStore()
	// Commands, when set, is the bus the steps' commands are dispatched
	// on (a handlers.Stub's, say). They are recorded either way (Sent).
	Commands *handlers.CommandBus
	// Reply answers the steps' commands when Commands is nil, so that a
	// test can make one fail (return sagas.Fail(err), or an error a
	// retry may cure). nil: every command succeeds with an empty result.
	Reply    func(ctx context.Context, c SentCommand) (handlers.CommandResult, error)
	Services any   // handed to every step as Context.Services
	Retry    Retry // as Options.Retry
	// Start is the fake clock's time at first. Zero: the real time now,
	// to the millisecond.
	Start time.Time
	// Timers make the waits' timers misbehave (simulate.Sim is one).
	// nil: every timer fires on time, and a cancelled one never.
	Timers  TimerFaults
	Metrics *Metrics     // nil: no metrics
	Logger  *slog.Logger // nil: discard logs
}

// TimerFaults decide how a Stub's timers misbehave, as the timer stream
// may: a fire that comes late (the server's schedule timer has a floor of
// about 250 ms, a manager may be down), and one that comes although its
// wait has ended (its cancel lost the race with the fire). simulate.Sim
// implements it from its seed.
type TimerFaults interface {
	// LateTimer is how long after due the timer of the instance fires.
	LateTimer(instance string, due time.Time) time.Duration
	// FireCancelled reports whether the timer of the instance, due at
	// due and cancelled, fires anyway.
	FireCancelled(instance string, due time.Time) bool
}

// StubTimer is a wait's timer on a Stub's clock.
type StubTimer struct {
	Instance   string
	SagaType   string
	Generation uint64    // the instance's generation when it was set: a fire of an older one is stale
	Due        time.Time // when the wait times out
	At         time.Time // when it fires: Due, or later (TimerFaults.LateTimer)
	Cancelled  bool      // its wait ended; it fires only because TimerFaults.FireCancelled said so
	seq        uint64
}

// Stub runs saga types without NATS, for users' unit tests: the steps,
// waits, deadlines and compensations are the Manager's own (the same
// stepper moves the instances on, in a MemoryStore by default), while the
// work stream, the event listeners and the timer stream are replaced by
// the stub's queue, Deliver and a fake clock that only Advance moves.
// Each call moves the instances on until they rest, then returns, so a
// test reads the outcome right after: Get or Find for the state and
// History, Sent for the commands in the order the steps sent them.
//
// Retries wait on the fake clock too: an action that failed with a
// retryable error runs again when Advance passes its delay. Use a stub
// from one goroutine; a step may call it (a command handler that starts
// another saga): what that sets off runs before the outer call returns.
type Stub struct {
	m      *Manager
	opts   StubOptions
	faults TimerFaults

	mu      sync.Mutex
	now     time.Time
	queue   []stubMove // to move now, in order
	later   []stubMove // retries, due at their time
	timers  map[string]StubTimer
	stale   []StubTimer // cancelled timers that fire anyway
	sent    []SentCommand
	seq     uint64
	events  uint64 // positions given to envelopes delivered without one
	driving bool
}

type stubMove struct {
	id      string
	started *Instance
	at      time.Time
	seq     uint64
}

// maxStubMoves bounds the moves of one call: past it the instances are
// taken to loop (a step that conflicts with itself), and the call fails.
const maxStubMoves = 100_000

// NewStub returns a stub with no saga types.
func NewStub(opts StubOptions) *Stub {
	if opts.Store == nil {
		opts.Store = NewMemoryStore()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	start := opts.Start
	if start.IsZero() {
		start = time.Now().UTC().Truncate(time.Millisecond)
	}
	s := &Stub{opts: opts, faults: opts.Timers, now: start, timers: map[string]StubTimer{}}
	mo := Options{Services: opts.Services, Retry: opts.Retry, Metrics: opts.Metrics, Logger: opts.Logger}.withDefaults()
	s.m = &Manager{
		store: opts.Store, opts: mo, log: mo.Logger, id: "stub", kinds: map[string]*kind{},
		schedules: true, resumed: make(chan struct{}),
		clock: s.Now, alarms: stubAlarms{s}, mover: s.move, sink: s.dispatch,
	}
	return s
}

// Register adds a saga type; the checks are the Manager's.
func (s *Stub) Register(t SagaType) error { return s.m.Register(t) }

// Store is where the stub keeps the instances.
func (s *Stub) Store() Store { return s.opts.Store }

// Now is the fake clock's time.
func (s *Stub) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Start starts an instance as Manager.Start does and moves it on until it
// rests; it returns the instance as it rests.
func (s *Stub) Start(ctx context.Context, sagaType, key string, data any) (Instance, error) {
	in, err := s.m.Start(ctx, sagaType, key, data)
	if err != nil {
		return Instance{}, err
	}
	if err := s.drive(ctx); err != nil {
		return Instance{}, err
	}
	return s.m.store.Load(ctx, in.ID)
}

// Deliver hands events to the saga types that start or wait on them, as
// their listeners do with the store's events, and moves the instances on
// until they rest. An envelope without a Position gets the next of the
// stub's own (positions identify events: one delivered twice is taken
// once), and without an ID one made from it. The first error is
// returned; an event no instance takes is not one (see NotFoundPolicy).
func (s *Stub) Deliver(ctx context.Context, events ...platform.Envelope) error {
	for _, env := range events {
		s.mu.Lock()
		if env.Position == 0 {
			s.events++
			env.Position = s.events
		} else {
			s.events = max(s.events, env.Position)
		}
		s.mu.Unlock()
		if env.ID == "" {
			env.ID = fmt.Sprintf("stub-event-%d", env.Position)
		}
		for _, k := range s.kinds() {
			if !k.listens() || !slices.Contains(k.aggregateTypes(), env.Stream.Type) {
				continue
			}
			if err := s.m.onEvent(ctx, k, env); err != nil {
				return fmt.Errorf("sagas: stub: deliver event %s (%s of %s) to saga type %q: %w", env.ID, env.Type, env.Stream, k.name, err)
			}
		}
		if err := s.drive(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Advance moves the fake clock on by d, firing the timers and running the
// retries that fall due on the way, each at its time and in time order.
func (s *Stub) Advance(ctx context.Context, d time.Duration) error {
	if d < 0 {
		return platform.Errorf(platform.CodeInvalidArgument, "sagas: stub: Advance(%v): the clock only goes forward; pass a positive duration", d)
	}
	s.mu.Lock()
	target := s.now.Add(d)
	s.mu.Unlock()
	for {
		s.mu.Lock()
		mv, t, ok := s.nextDue(target)
		if !ok {
			s.now = target
			s.mu.Unlock()
			return nil
		}
		if mv != nil {
			s.now = later(s.now, mv.at)
			s.queue = append(s.queue, *mv)
		} else {
			s.now = later(s.now, t.At)
		}
		s.mu.Unlock()
		if t != nil {
			k := s.m.kindOf(t.SagaType)
			if k == nil {
				continue
			}
			if err := s.m.fire(ctx, k, t.Instance, t.Generation); err != nil {
				return fmt.Errorf("sagas: stub: fire the timer of %s: %w", t.Instance, err)
			}
		}
		if err := s.drive(ctx); err != nil {
			return err
		}
	}
}

// nextDue takes the earliest retry or timer due by target, the earliest
// set first among equals; s.mu is held.
func (s *Stub) nextDue(target time.Time) (*stubMove, *StubTimer, bool) {
	type due struct {
		at  time.Time
		seq uint64
	}
	first := func(a, b due) bool { return a.at.Before(b.at) || a.at.Equal(b.at) && a.seq < b.seq }
	var best *due
	retry, stale, timer := -1, -1, ""
	consider := func(d due) bool {
		if d.at.After(target) || best != nil && !first(d, *best) {
			return false
		}
		best = &d
		retry, stale, timer = -1, -1, ""
		return true
	}
	for i, m := range s.later {
		if consider(due{m.at, m.seq}) {
			retry = i
		}
	}
	for i, t := range s.stale {
		if consider(due{t.At, t.seq}) {
			stale = i
		}
	}
	for id, t := range s.timers {
		if consider(due{t.At, t.seq}) {
			timer = id
		}
	}
	switch {
	case retry >= 0:
		mv := s.later[retry]
		s.later = slices.Delete(s.later, retry, retry+1)
		return &mv, nil, true
	case stale >= 0:
		t := s.stale[stale]
		s.stale = slices.Delete(s.stale, stale, stale+1)
		return nil, &t, true
	case timer != "":
		t := s.timers[timer]
		delete(s.timers, timer)
		return nil, &t, true
	}
	return nil, nil, false
}

// kinds are the registered types in name order, so that an event two
// types take reaches them in the same order every run.
func (s *Stub) kinds() []*kind {
	ks := s.m.registered()
	slices.SortFunc(ks, func(a, b *kind) int { return strings.Compare(a.name, b.name) })
	return ks
}

// Get returns an instance by its ID.
func (s *Stub) Get(ctx context.Context, id string) (Instance, error) { return s.m.store.Load(ctx, id) }

// Find returns the instance of a saga type with the association key.
func (s *Stub) Find(ctx context.Context, sagaType, key string) (Instance, error) {
	return s.m.store.FindByKey(ctx, sagaType, key)
}

// Sent returns the commands the steps sent so far, in order.
func (s *Stub) Sent() []SentCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

// Timers returns the timers set and not yet fired, those cancelled that
// will fire anyway included, earliest first.
func (s *Stub) Timers() []StubTimer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.stale)
	for _, t := range s.timers {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b StubTimer) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return int(a.seq) - int(b.seq)
	})
	return out
}

// move is the Manager's mover: a message on the work stream, here a
// place in the queue. A start message holds the instance as created, its
// first run counted, as on the work stream.
func (s *Stub) move(_ context.Context, in Instance, why string) error {
	mv := stubMove{id: in.ID}
	if why == "start" && in.Owner == startLease {
		held := in
		mv.started = &held
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	mv.seq = s.seq
	s.queue = append(s.queue, mv)
	return nil
}

// drive moves the queued instances on until none is left; a call made
// while the stub drives (from a step) leaves its moves to that drive.
func (s *Stub) drive(ctx context.Context) error {
	s.mu.Lock()
	if s.driving {
		s.mu.Unlock()
		return nil
	}
	s.driving = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.driving = false
		s.mu.Unlock()
	}()
	for n := 0; ; n++ {
		if n == maxStubMoves {
			return platform.Errorf(platform.CodeSagaExecution, "sagas: stub: the instances did not rest after %d moves: a step that conflicts with itself, or events delivered without end?", n)
		}
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return nil
		}
		mv := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		r := s.m.advance(ctx, mv.id, mv.started)
		if r.retryIn > 0 {
			s.mu.Lock()
			s.seq++
			s.later = append(s.later, stubMove{id: mv.id, at: s.now.Add(r.retryIn), seq: s.seq})
			s.mu.Unlock()
		}
	}
}

// dispatch is the Manager's command sink: record, then dispatch.
func (s *Stub) dispatch(ctx context.Context, c SentCommand) (handlers.CommandResult, error) {
	var res handlers.CommandResult
	var err error
	switch {
	case s.opts.Commands != nil:
		res, err = s.opts.Commands.Dispatch(ctx, c.Command)
	case s.opts.Reply != nil:
		res, err = s.opts.Reply(ctx, c)
	}
	c.Err = err
	s.mu.Lock()
	s.sent = append(s.sent, c)
	s.mu.Unlock()
	return res, err
}

// stubAlarms are the stub's timers, on its clock.
type stubAlarms struct{ s *Stub }

func (a stubAlarms) schedule(_ context.Context, in *Instance, due time.Time) error {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.timers[in.ID]; ok && t.Generation == in.Generation && t.Due.Equal(due) {
		return nil // set again by a wake with nothing new: as it was
	}
	at := due
	if s.faults != nil {
		at = at.Add(max(s.faults.LateTimer(in.ID, due), 0))
	}
	s.seq++
	s.timers[in.ID] = StubTimer{Instance: in.ID, SagaType: in.Type, Generation: in.Generation, Due: due, At: at, seq: s.seq}
	return nil
}

func (a stubAlarms) cancel(_ context.Context, in *Instance) error {
	s := a.s
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.timers[in.ID]
	if !ok {
		return nil
	}
	delete(s.timers, in.ID)
	if s.faults != nil && s.faults.FireCancelled(in.ID, t.Due) {
		t.Cancelled = true
		s.stale = append(s.stale, t)
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
