package sagas

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Options configure a Manager. The zero value works with a store given to
// NewManager: the work stream LEXIGRAM_SAGAS on lexigram.sagas.>, one
// replica, in memory; timers on file storage; five tries of each action
// and compensation.
type Options struct {
	Stream        string // the work stream; default "LEXIGRAM_SAGAS"
	SubjectPrefix string // its subjects' first tokens; default "lexigram.sagas"
	Replicas      int    // default 1
	// Storage is the timer stream's storage (zero: file).
	Storage jetstream.StorageType
	// DurableWork keeps the work stream on Storage too. By default it
	// is in memory: its messages only say which instance to move on
	// next, the instances are in the store, and a write to disk (an
	// fsync, on a server that syncs every write) per start would make
	// every saga slower. A server restart empties it; a manager that
	// finds it gone or new moves every unfinished instance on, as Run
	// does at start. Set DurableWork to spare a large backlog that
	// rescan, at one more disk write per start.
	DurableWork bool
	// Commands is the bus Context.Send dispatches on. Put the
	// handlers.Idempotency middleware on it so that a step run again
	// after a crash does not apply its commands twice.
	Commands *handlers.CommandBus
	// Services is handed to every step as Context.Services.
	Services any
	// Retry bounds and spaces the runs of an action or compensation that
	// failed with a retryable error.
	Retry Retry
	// AckWait is how long an instance whose process died waits before
	// another process resumes it. Default 30s. A step that runs longer
	// than this can be started a second time by another process: keep
	// steps shorter, or raise it.
	AckWait time.Duration
	// Concurrency is how many instances this process advances at once.
	// Default 16.
	Concurrency int

	// Events is the event store that saga types with StartOn or Wait
	// read (*jetstream.EventStore). Each such type has a durable handler
	// "saga-<type>" on it; ListenFrom is where it starts when first
	// created (nil: durable.FromNow, so that a new saga type does not
	// start an instance for every event already stored, as Axon's sagas
	// start at the head), DLQ its dead-letter queue (default durable's).
	Events     durable.Store
	ListenFrom *durable.Start
	DLQ        *durable.DLQ

	// TimerStream holds the durable timers of waits with deadlines
	// (default "LEXIGRAM_SAGA_TIMERS" on "lexigram.saga-timers.>"). They
	// are message schedules, which need nats-server 2.12 or newer.
	TimerStream        string
	TimerSubjectPrefix string

	Metrics *Metrics // nil: no metrics
	// TracerProvider, if set, gets a span per step run, linked to the
	// trace of what started the saga.
	TracerProvider trace.TracerProvider
	Logger         *slog.Logger // default slog.Default()
}

// Retry is the retry policy of steps. The zero value is 5 runs, the
// first retry after 1s, each wait twice the one before, at most 100s.
type Retry struct {
	Attempts   int
	Initial    time.Duration
	Multiplier float64
	Max        time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = 5
	}
	if r.Initial <= 0 {
		r.Initial = time.Second
	}
	if r.Multiplier < 1 {
		r.Multiplier = 2
	}
	if r.Max <= 0 {
		r.Max = 100 * r.Initial
	}
	return r
}

// delay is the wait before the run after the attempt-th.
func (r Retry) delay(attempt int) time.Duration {
	d := float64(r.Initial)
	for range attempt - 1 {
		d *= r.Multiplier
		if d >= float64(r.Max) {
			return r.Max
		}
	}
	return time.Duration(d)
}

// Manager runs saga instances: it starts them, advances them step by step
// and compensates them, in this process and alongside managers in others.
// Instances move on messages of a work stream of its own (never the event
// store's): each instance has one subject, a durable consumer shared by
// every manager delivers its messages, and an instance is acknowledged
// only when it rests (finished, waiting for a retry, or stuck), so a
// process that dies leaves it to another after AckWait.
type Manager struct {
	js    jetstream.JetStream
	store Store
	opts  Options
	log   *slog.Logger
	id    string // this manager's name as an instance's lease owner

	mu    sync.RWMutex
	kinds map[string]*kind

	stream jetstream.Stream
	// restore asks watchWork to check that the work stream still is the
	// one the consumers were made on.
	restore     chan struct{}
	resumed     chan struct{} // closed once Run listens, consumes and has resumed what was unfinished (Ready)
	resumedOnce sync.Once
	// What the server has: message schedules (2.12) for durable timers,
	// priority groups (2.11) for the exclusive event listeners.
	schedules, priorityGroups bool
	timers                    *timers // nil until Run opens it, if a type needs it
	tracer                    trace.Tracer
	keepTimers                bool // tests: leave ended waits' timers to fire stale

	// The seams a Stub drives the same steps through, without NATS (see
	// stub.go); nil in a manager from NewManager.
	//
	// clock is what the steps take for now: the stub's fake clock.
	clock func() time.Time
	// alarms set and cancel the timers of waits with deadlines in place
	// of the timer stream (m.timers).
	alarms alarms
	// mover moves instances on in place of the work stream.
	mover func(ctx context.Context, in Instance, why string) error
	// sink takes the commands steps send in place of Options.Commands.
	sink commandSink
}

// alarms are a wait's timers: set for the due time (replacing the
// instance's timer), and cancelled when the wait ends. The timer stream
// is one (timers.go), a Stub's fake clock another.
type alarms interface {
	schedule(ctx context.Context, in *Instance, due time.Time) error
	cancel(ctx context.Context, in *Instance) error
}

// now is the time the steps go by.
func (m *Manager) now() time.Time {
	if m.clock != nil {
		return m.clock()
	}
	return time.Now()
}

// NewManager opens the work stream (creating it if needed) for a manager
// keeping its instances in store.
func NewManager(ctx context.Context, js jetstream.JetStream, store Store, opts Options) (*Manager, error) {
	if store == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "sagas.NewManager: the store is nil: pass NewKVStore's, NewMemoryStore's or pgstore.New's")
	}
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	m := &Manager{js: js, store: store, opts: opts, log: opts.Logger, id: platform.NewEventID(), kinds: map[string]*kind{},
		restore:        make(chan struct{}, 1),
		resumed:        make(chan struct{}),
		schedules:      schedulesSupported(js),
		priorityGroups: lxjs.ServerAtLeast(js.Conn().ConnectedServerVersion(), 2, 11),
	}
	if opts.TracerProvider != nil {
		m.tracer = opts.TracerProvider.Tracer("github.com/lexigram/events/sagas")
	}
	var err error
	if m.stream, err = ensureWorkStream(ctx, js, opts); err != nil {
		return nil, err
	}
	if !m.schedules {
		m.log.WarnContext(ctx, "sagas: this NATS server has no message schedules: durable timeouts need nats-server 2.12 or newer, so saga types whose waits have deadlines are refused",
			"server", js.Conn().ConnectedServerVersion())
	}
	return m, nil
}

func (o Options) withDefaults() Options {
	if o.Stream == "" {
		o.Stream = "LEXIGRAM_SAGAS"
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = "lexigram.sagas"
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.TimerStream == "" {
		o.TimerStream = "LEXIGRAM_SAGA_TIMERS"
	}
	if o.TimerSubjectPrefix == "" {
		o.TimerSubjectPrefix = "lexigram.saga-timers"
	}
	if o.ListenFrom == nil {
		o.ListenFrom = &durable.FromNow
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Retry = o.Retry.withDefaults()
	return o
}

func (o Options) validate() error {
	if o.AckWait < time.Second {
		return platform.Errorf(platform.CodeInvalidArgument, "sagas.Options.AckWait is %v: at least 1s, or 0 for 30s", o.AckWait)
	}
	return nil
}

// Register adds a saga type. Register all of them before Run.
func (m *Manager) Register(t SagaType) error {
	k, err := t.kind()
	if err != nil {
		return err
	}
	if k.needsTimers() && !m.schedules {
		return platform.Errorf(platform.CodeUnsupported,
			"saga type %q waits with a deadline (Within or Deadline), and its durable timers are JetStream message schedules, which need nats-server 2.12 or newer; this server is %s: upgrade it, or define the type's waits without deadlines",
			k.name, m.js.Conn().ConnectedServerVersion())
	}
	if k.listens() && m.opts.Events == nil && m.mover == nil {
		return platform.Errorf(platform.CodeInvalidArgument,
			"saga type %q starts or waits on events, and sagas.Options.Events is nil: pass the event store (*jetstream.EventStore)", k.name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.kinds[k.name]; dup {
		return platform.Errorf(platform.CodeDuplicateHandler, "saga type %q is registered already", k.name)
	}
	m.kinds[k.name] = k
	return nil
}

func (m *Manager) kindOf(name string) *kind {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.kinds[name]
}

// Start starts an instance of the saga type for the association key with
// data (of the type's data type), correlated with ctx's correlation ID
// and caused by its causation ID. Starting again for a key that has an
// instance returns that instance and starts nothing. The instance runs
// in whichever process runs a Manager. Start returns once the instance is
// stored; its start message may still be on its way (a process that dies
// meanwhile leaves it to a running manager's start sweep, within two
// AckWaits).
func (m *Manager) Start(ctx context.Context, sagaType, key string, data any) (Instance, error) {
	k := m.kindOf(sagaType)
	if k == nil {
		return Instance{}, platform.Errorf(platform.CodeInvalidArgument, "start saga %q: no such saga type is registered: call Register first", sagaType)
	}
	if key == "" {
		return Instance{}, platform.Errorf(platform.CodeInvalidArgument, "start saga %q: the association key is empty", sagaType)
	}
	raw, err := k.encode(data)
	if err != nil {
		return Instance{}, err
	}
	now := m.now().UTC()
	// Created with its first run counted and leased to the start
	// message, so that the manager that takes the message runs the first
	// step without a write of its own.
	in := Instance{
		ID: InstanceID(sagaType, key), Type: sagaType, Key: key, State: Started, Attempt: 1, Data: raw,
		CorrelationID: platform.CorrelationID(ctx), CausationID: platform.CausationID(ctx),
		Trace: traceOf(ctx), Owner: startLease, LeaseUntil: now.Add(m.opts.AckWait),
		Created: now, Updated: now,
	}
	if in.CorrelationID == "" {
		in.CorrelationID = in.ID
	}
	if k.deadline > 0 {
		in.Deadline = now.Add(k.deadline)
	}
	stored, created, err := m.store.Create(ctx, in)
	if err != nil {
		return Instance{}, err
	}
	why := "start"
	switch {
	case created:
		m.opts.Metrics.instance(sagaType, "started")
	case stored.State != Started:
		return stored, nil
	default:
		// Created but not yet moved: its first process may have died
		// between the two writes. The start message's lease is not this
		// message's to take.
		why = "resume"
	}
	if why == "start" {
		err = m.sendStart(ctx, stored)
	} else {
		err = m.kick(ctx, stored, why)
	}
	if err != nil {
		return Instance{}, err
	}
	return stored, nil
}

// Get returns an instance by its ID.
func (m *Manager) Get(ctx context.Context, id string) (Instance, error) { return m.store.Load(ctx, id) }

// Find returns the instance of a saga type with the association key.
func (m *Manager) Find(ctx context.Context, sagaType, key string) (Instance, error) {
	return m.store.FindByKey(ctx, sagaType, key)
}

// Run advances instances until ctx ends, then waits for the steps under
// way to finish. As it starts it moves on every instance of a registered
// type that is not resting, which resumes those a stopped cluster left;
// then, every AckWait, those whose start message never reached the
// server (sweep.go).
func (m *Manager) Run(ctx context.Context) error {
	w := &workers{nc: m.js.Conn()}
	defer w.stop()
	// The events first: a step's command can raise the event that the
	// step after it waits for, and a listener created after that event
	// (from now, by default) would never see it.
	if err := m.listenAll(ctx, w); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	if err := m.consume(ctx, w); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	// The sweep takes over from where the resume reads: what is created
	// after this is in its windows.
	sweepFrom := m.sweepPosition(ctx)
	if err := m.resumeAll(ctx); err != nil && !errors.Is(err, context.Canceled) {
		m.log.WarnContext(ctx, "sagas: could not move on every unfinished instance at start; each moves on its next message", "error", err)
	}
	m.resumedOnce.Do(func() { close(m.resumed) })
	swept := make(chan struct{})
	go func() { defer close(swept); m.sweepStarts(ctx, sweepFrom) }()
	defer func() { <-swept }()
	m.watchWork(ctx, w)
	return nil
}

// Ready is closed once Run has started everything: the event listeners
// (from now, by default: an event appended before them does not reach
// them), the work consumers, and the moves of every unfinished instance.
// It stays open if Run fails before that.
func (m *Manager) Ready() <-chan struct{} { return m.resumed }

// listenAll starts, for each type, the consumer of its timers' fires and
// the durable handler of the events it starts or waits on.
func (m *Manager) listenAll(ctx context.Context, w *workers) error {
	for _, k := range m.registered() {
		if k.needsTimers() {
			if m.timers == nil {
				t, err := openTimers(ctx, m.js, m.opts)
				if err != nil {
					return err
				}
				m.mu.Lock()
				m.timers, m.alarms = t, t
				m.mu.Unlock()
			}
			cc, err := m.consumeFires(ctx, k)
			if err != nil {
				return err
			}
			w.consumes = append(w.consumes, cc)
		}
		if k.listens() {
			h, err := m.listen(ctx, k)
			if err != nil {
				return err
			}
			w.listeners = append(w.listeners, h)
		}
	}
	return nil
}

func (m *Manager) registered() []*kind {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*kind, 0, len(m.kinds))
	for _, k := range m.kinds {
		out = append(out, k)
	}
	return out
}

// resumeAll sends every unfinished instance of a registered type its next
// message.
func (m *Manager) resumeAll(ctx context.Context) error {
	return m.eachListed(ctx, []State{Started, Running, Failed, TimedOut, Compensating}, func(in Instance) error {
		return m.kick(ctx, in, "resume")
	})
}

// eachListed calls f with every instance of a registered type in one of
// the states, a page of the store's List at a time, until f fails.
func (m *Manager) eachListed(ctx context.Context, states []State, f func(Instance) error) error {
	for _, k := range m.registered() {
		q := Query{Type: k.name, States: states, Limit: 500}
		for {
			page, err := m.store.List(ctx, q)
			if err != nil {
				return err
			}
			for _, in := range page {
				if err := f(in); err != nil {
					return err
				}
			}
			if len(page) < q.Limit {
				break
			}
			q.After = page[len(page)-1].ID
		}
	}
	return nil
}
