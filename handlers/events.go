package handlers

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/platform"
)

// EventOptions configure an EventBus. The zero value works: handlers of an
// event run in parallel, at most 16 at a time across the bus, each for at
// most 30s, and one failing handler does not stop the others.
type EventOptions struct {
	// Registry names event types: HandleEvent[E] looks E up in it.
	// nil: platform.DefaultRegistry.
	Registry *platform.Registry
	// Middleware is each handler's pipeline, outermost first. nil:
	// DefaultEventMiddleware(the options). Empty and non-nil: none.
	Middleware []Middleware

	// MaxConcurrentHandlers bounds the handlers running at once across the
	// bus (the seed's max_concurrent_handlers). 0: 16.
	MaxConcurrentHandlers int
	// HandlerTimeout bounds each handler call, its middleware included
	// (handler_timeout); past it the handler's outcome is
	// platform.ErrHandlerTimeout. 0: 30s; negative: none.
	HandlerTimeout time.Duration
	// Sequential runs an event's handlers one after another in
	// registration order instead of in parallel (parallel_dispatch: false).
	Sequential bool
	// StopOnError stops an event's dispatch at the first failing handler:
	// later handlers are skipped (sequential) or cancelled (parallel)
	// (continue_on_error: false).
	StopOnError bool
	// QueueSize is the capacity of each event type's channel between Run's
	// feeder and that type's drain goroutine. When it is full the feeder
	// waits, so a slow handler holds back reading from the store instead
	// of growing memory. 0: 64.
	QueueSize int
	// OnResult receives the result of every event Run dispatched, from the
	// type's drain goroutine. nil: failures are logged.
	OnResult func(DispatchResult)

	Logger         *slog.Logger         // nil: slog.Default()
	Metrics        *Metrics             // nil: no metrics
	TracerProvider trace.TracerProvider // nil: the global provider (otel.SetTracerProvider); none installed, no spans
	Retry          RetryOptions         // for the default middleware
	Breaker        *CircuitBreaker      // nil: a breaker with default settings for this bus
}

func (o *EventOptions) defaults() {
	if o.Registry == nil {
		o.Registry = platform.DefaultRegistry
	}
	if o.MaxConcurrentHandlers <= 0 {
		o.MaxConcurrentHandlers = 16
	}
	if o.HandlerTimeout == 0 {
		o.HandlerTimeout = 30 * time.Second
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 64
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Breaker == nil {
		o.Breaker = NewCircuitBreaker(BreakerOptions{})
	}
	if o.Retry.Metrics == nil {
		o.Retry.Metrics = o.Metrics
	}
	if o.Middleware == nil {
		o.Middleware = DefaultEventMiddleware(*o)
	}
}

// DefaultEventMiddleware is the default pipeline of each event handler,
// outermost first: Tracing → Validation → Logging → Metrics → Retry →
// CircuitBreaker → Recovery → handler (see DefaultMiddleware for why).
// The bus applies HandlerTimeout around it.
func DefaultEventMiddleware(o EventOptions) []Middleware {
	o.Middleware = []Middleware{}
	o.defaults()
	mw := []Middleware{Tracing(o.TracerProvider), Validation(), Logging(o.Logger)}
	if o.Metrics != nil {
		mw = append(mw, o.Metrics.Middleware())
	}
	return append(mw, Retry(o.Retry), o.Breaker.Middleware(), Recovery(o.Logger))
}

// DispatchResult is what became of one event: each handler's outcome in
// registration order.
type DispatchResult struct {
	EventID  string
	Type     string
	Position uint64
	Outcomes []HandlerOutcome
}

// HandlerOutcome is one handler's part in a dispatch.
type HandlerOutcome struct {
	Handler  string
	Err      error // nil: handled; else wraps platform.ErrEventHandler
	Skipped  bool  // not run: an earlier handler failed and StopOnError is set, or the dispatch was cancelled
	Duration time.Duration
}

// Err joins the failed handlers' errors; nil when every handler that ran
// succeeded.
func (r DispatchResult) Err() error {
	var errs []error
	for _, o := range r.Outcomes {
		if o.Err != nil {
			errs = append(errs, o.Err)
		}
	}
	return errors.Join(errs...)
}

// EventBus delivers stored events to in-process handlers: any number per
// event type, run in parallel. Run feeds it from the event store, so the
// events it delivers are exactly those appended, with no second publish;
// Dispatch delivers one event directly. For handlers that must not miss
// events across restarts, use the durable handlers (package
// handlers/durable).
type EventBus struct {
	o      EventOptions
	tracer *spanner
	names  *names
	sem    chan struct{}
	propag propagation.TextMapPropagator

	mu   sync.RWMutex
	subs map[string][]*subscriber // by event type; replaced, never changed in place

	prog    progress
	running atomic.Bool
	skipped atomic.Uint64
}

type subscriber struct {
	name  string
	h     EventHandlerFunc
	scope *Scope
}

// Handles reports whether any handler is registered, for a feeder that
// need not read the store for a bus with none.
func (b *EventBus) Handles() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs) > 0
}

// NewEventBus returns an event bus.
func NewEventBus(opts EventOptions) *EventBus {
	opts.defaults()
	return &EventBus{o: opts, tracer: newSpanner(opts.TracerProvider), names: newNames("dispatch event "),
		sem: make(chan struct{}, opts.MaxConcurrentHandlers), propag: propagation.TraceContext{},
		subs: map[string][]*subscriber{}, prog: progress{pending: map[uint64]int{}, changed: make(chan struct{})}}
}

// EventRegistrar is what HandleEvent registers with: an *EventBus or a
// *Scope.
type EventRegistrar interface {
	eventTarget() (*EventBus, *Scope)
}

func (b *EventBus) eventTarget() (*EventBus, *Scope) { return b, nil }

// HandleEvent registers fn, under a name unique for the event type, as one
// of the handlers of event type E (registered in the bus's registry).
func HandleEvent[E any](r EventRegistrar, name string, fn func(ctx context.Context, event E) error) error {
	b, _ := r.eventTarget()
	if b == nil {
		return platform.Errorf(platform.CodeInvalidArgument, "handlers.HandleEvent: the scope has no event bus: give NewScope one in Buses.Events")
	}
	var zero E
	et, err := b.o.Registry.TypeOf(zero)
	if err != nil {
		return platform.Errorf(platform.CodeOf(err), "handlers.HandleEvent %q: event %T: %w", name, zero, err)
	}
	return Subscribe(r, et.Name, name, func(ctx context.Context, env platform.Envelope) error {
		e, ok := env.Event.(E)
		if !ok {
			return platform.Errorf(platform.CodeInvalidArgument, "event %s (%s): the event is a %T, handler %s takes a %T", env.Type, env.ID, env.Event, name, zero)
		}
		return fn(ctx, e)
	})
}

// Subscribe registers h, under a name unique for the event type, as one of
// the handlers of the events stored as eventType; it sees whole envelopes.
func Subscribe(r EventRegistrar, eventType, name string, h EventHandlerFunc) error {
	b, sc := r.eventTarget()
	if b == nil {
		return platform.Errorf(platform.CodeInvalidArgument, "handlers.Subscribe: the scope has no event bus: give NewScope one in Buses.Events")
	}
	if name == "" {
		return platform.Errorf(platform.CodeInvalidArgument, "subscribe to %q: the handler name is empty: name it; names label its metrics, logs and outcomes", eventType)
	}
	if sc != nil {
		h = ChainEvent(h, sc.mw)
	}
	h = ChainEvent(h, b.o.Middleware)
	h = Timeout(b.o.HandlerTimeout).wrapEvent(h)
	s := &subscriber{name: name, h: h, scope: sc}
	b.mu.Lock()
	for _, prev := range b.subs[eventType] {
		if prev.name == name {
			b.mu.Unlock()
			return platform.Errorf(platform.CodeDuplicateHandler, "event %q already has a handler named %q%s: give each handler of a type its own name", eventType, name, prev.scope.describe())
		}
	}
	b.subs[eventType] = append(b.subs[eventType][:len(b.subs[eventType]):len(b.subs[eventType])], s)
	b.mu.Unlock()
	if sc != nil {
		sc.onClose(func() { b.remove(eventType, s) })
	}
	return nil
}

func (m Middleware) wrapEvent(h EventHandlerFunc) EventHandlerFunc {
	if m.Event == nil {
		return h
	}
	return m.Event(h)
}

func (b *EventBus) remove(eventType string, s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var kept []*subscriber
	for _, x := range b.subs[eventType] {
		if x != s {
			kept = append(kept, x)
		}
	}
	if len(kept) == 0 {
		delete(b.subs, eventType)
		return
	}
	b.subs[eventType] = kept
}

func (b *EventBus) handlersOf(eventType string) []*subscriber {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.subs[eventType]
}

// Dispatch runs the handlers of env's type and waits for them. Its error
// joins the handlers' errors, each a platform.ErrEventHandler with the
// handler's error as its cause.
func (b *EventBus) Dispatch(ctx context.Context, env platform.Envelope) (DispatchResult, error) {
	res := b.dispatch(ctx, env, b.handlersOf(env.Type))
	return res, res.Err()
}

func (b *EventBus) dispatch(ctx context.Context, env platform.Envelope, subs []*subscriber) DispatchResult {
	res := DispatchResult{EventID: env.ID, Type: env.Type, Position: env.Position, Outcomes: make([]HandlerOutcome, len(subs))}
	if len(subs) == 0 {
		return res
	}
	// The event's trace context, stored by the command that produced it,
	// makes this dispatch part of the command's trace.
	if tp := env.Metadata["traceparent"]; tp != "" && !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = b.propag.Extract(ctx, propagation.MapCarrier(env.Metadata))
	}
	ctx, span := b.tracer.start(ctx, b.names.get(env.Type), consumer)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("lexigram.kind", string(KindEvent)), attribute.String("lexigram.type", env.Type),
			attribute.String("lexigram.id", env.ID), attribute.Int64("lexigram.position", int64(env.Position)), attribute.Int("lexigram.handlers", len(subs)))
	}
	if env.CorrelationID != "" {
		ctx = platform.WithCorrelationID(ctx, env.CorrelationID)
	}
	if env.ID != "" {
		ctx = platform.WithCausationID(ctx, env.ID) // what the handlers append was caused by this event
	}
	switch {
	case b.o.Sequential || len(subs) == 1:
		failed := false
		for i, s := range subs {
			if (failed && b.o.StopOnError) || ctx.Err() != nil {
				res.Outcomes[i] = HandlerOutcome{Handler: s.name, Skipped: true}
				continue
			}
			res.Outcomes[i] = b.call(ctx, s, env)
			failed = failed || res.Outcomes[i].Err != nil
		}
	default:
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for i, s := range subs {
			wg.Go(func() {
				select {
				case b.sem <- struct{}{}:
				case <-ctx.Done():
					res.Outcomes[i] = HandlerOutcome{Handler: s.name, Skipped: true}
					return
				}
				defer func() { <-b.sem }()
				if ctx.Err() != nil {
					res.Outcomes[i] = HandlerOutcome{Handler: s.name, Skipped: true}
					return
				}
				res.Outcomes[i] = b.callHeld(ctx, s, env)
				if res.Outcomes[i].Err != nil && b.o.StopOnError {
					cancel()
				}
			})
		}
		wg.Wait()
		cancel()
	}
	endSpan(span, res.Err())
	return res
}

// call runs one handler, holding a slot of MaxConcurrentHandlers.
func (b *EventBus) call(ctx context.Context, s *subscriber, env platform.Envelope) HandlerOutcome {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return HandlerOutcome{Handler: s.name, Skipped: true}
	}
	defer func() { <-b.sem }()
	return b.callHeld(ctx, s, env)
}

func (b *EventBus) callHeld(ctx context.Context, s *subscriber, env platform.Envelope) (out HandlerOutcome) {
	out.Handler = s.name
	start := time.Now()
	defer func() {
		if p := recover(); p != nil { // middleware without Recovery must not crash the process
			out.Err = panicError(KindEvent, env.Type, env.ID, p)
		}
		if out.Err != nil && !errors.Is(out.Err, platform.ErrEventHandler) {
			out.Err = platform.Errorf(platform.CodeEventHandler, "event %s (%s, position %d), handler %s failed: %w", env.Type, env.ID, env.Position, s.name, out.Err)
		}
		out.Duration = time.Since(start)
	}()
	out.Err = s.h(WithHandlerName(ctx, s.name), env)
	return out
}

// Subscriber is the event store as the event bus reads it: every event
// after a position, then each new one, until ctx ends. Both stores have it.
type Subscriber interface {
	Subscribe(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error]
}

// Run feeds the bus from the store: every event after position after, then
// each one appended, until ctx ends (Run then returns nil) or the store
// fails (Run returns its error). Each event type with handlers has its own
// bounded channel and drain goroutine: events of one type are handled in
// position order, types concurrently, and a full channel makes the feeder
// wait: memory stays bounded, and a type whose handlers fall behind by more
// than QueueSize events holds back the other types too, as one reader of
// the store must. Events of types without handlers are skipped, and so
// are events that do not decode (logged, counted in Skipped). A bus runs
// one feed at a time.
func (b *EventBus) Run(ctx context.Context, src Subscriber, after uint64) error {
	if !b.running.CompareAndSwap(false, true) {
		return platform.Errorf(platform.CodeInvalidArgument, "handlers: EventBus.Run is already running: feed a bus from one store once; make another bus for another feed")
	}
	defer b.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queues := map[string]*queue{}
	var wg sync.WaitGroup
	defer func() {
		for _, q := range queues {
			close(q.ch)
		}
		wg.Wait()
	}()
	for env, err := range src.Subscribe(ctx, after) {
		var undecodable *platform.DecodeError
		if errors.As(err, &undecodable) {
			b.skip(undecodable)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("handlers: event bus: read the store after position %d: %w", after, err)
		}
		after = env.Position
		b.prog.fed(env.Position)
		if env.Retired() || len(b.handlersOf(env.Type)) == 0 {
			b.prog.done(env.Position)
			continue
		}
		q, ok := queues[env.Type]
		if !ok {
			q = &queue{ch: make(chan platform.Envelope, b.o.QueueSize), gauge: b.gauge(env.Type)}
			queues[env.Type] = q
			wg.Go(func() { b.drain(ctx, q) })
		}
		select {
		case q.ch <- env:
			q.gauge.Inc() // may follow the drain's Dec: the gauge is exact once both ran
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// skip passes over an event that does not decode: another service's type
// in a shared stream, or a version this build does not know. The bus is
// for what happens while the node runs, so such an event is logged and
// skipped rather than stopping it; a handler that must see every event is
// a durable one (handlers/durable), which dead-letters it instead.
func (b *EventBus) skip(de *platform.DecodeError) {
	b.prog.fed(de.Position)
	b.prog.done(de.Position)
	b.skipped.Add(1)
	if len(b.handlersOf(de.Type)) > 0 {
		b.o.Logger.Warn("handlers: event bus: an event its handlers would take does not decode: skipped", "type", de.Type,
			"schema_version", de.SchemaVersion, "position", de.Position, "error", de.Err)
		return
	}
	b.o.Logger.Debug("handlers: event bus: an event that does not decode and has no handlers here: skipped", "type", de.Type, "position", de.Position)
}

// Skipped is how many events Run passed over because they did not decode.
func (b *EventBus) Skipped() uint64 { return b.skipped.Load() }

// queue is one event type's bounded channel.
type queue struct {
	ch    chan platform.Envelope
	gauge interface {
		Inc()
		Dec()
	} // events queued, a Prometheus gauge or nothing
}

func (b *EventBus) drain(ctx context.Context, q *queue) {
	for env := range q.ch {
		q.gauge.Dec()
		if ctx.Err() != nil {
			continue // shutting down: the rest are not handled
		}
		res := b.dispatch(ctx, env, b.handlersOf(env.Type))
		switch {
		case b.o.OnResult != nil:
			b.o.OnResult(res)
		case res.Err() != nil:
			b.o.Logger.Warn("handlers: event handlers failed", "type", env.Type, "id", env.ID, "position", env.Position, "error", res.Err())
		}
		b.prog.done(env.Position)
	}
}

type noGauge struct{}

func (noGauge) Inc() {}
func (noGauge) Dec() {}

func (b *EventBus) gauge(typ string) interface {
	Inc()
	Dec()
} {
	if b.o.Metrics == nil {
		return noGauge{}
	}
	return b.o.Metrics.queued.WithLabelValues(typ)
}

// WaitFor waits until Run has dispatched every event up to position pos,
// e.g. a CommandResult's Position, or ctx ends.
func (b *EventBus) WaitFor(ctx context.Context, pos uint64) error {
	for {
		ch, reached := b.prog.reached(pos)
		if reached {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("handlers: wait for the event bus to reach position %d: %w", pos, ctx.Err())
		}
	}
}

// progress tracks which fed positions are dispatched, so WaitFor knows the
// position below which everything is done.
type progress struct {
	mu      sync.Mutex
	last    uint64         // highest position fed
	pending map[uint64]int // fed, not yet dispatched: how many envelopes (an event split on read shares its position)
	changed chan struct{}  // closed and replaced on every change
}

func (p *progress) fed(pos uint64) {
	p.mu.Lock()
	p.last = max(p.last, pos)
	p.pending[pos]++
	p.notify()
	p.mu.Unlock()
}

func (p *progress) done(pos uint64) {
	p.mu.Lock()
	if p.pending[pos]--; p.pending[pos] <= 0 {
		delete(p.pending, pos)
	}
	p.notify()
	p.mu.Unlock()
}

func (p *progress) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *progress) reached(pos uint64) (<-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last < pos {
		return p.changed, false
	}
	for q := range p.pending {
		if q <= pos {
			return p.changed, false
		}
	}
	return p.changed, true
}
