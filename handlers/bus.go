package handlers

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/platform"
)

// core is what the command and the query bus share: one handler per type,
// run in process or served and reached over NATS.
type core[R any] struct {
	kind      Kind
	o         Options
	tracer    *spanner
	spanNames *names
	chain     func(h call[Message, R], mw []Middleware) call[Message, R]
	encode    func(c platform.Codec, r R) ([]byte, error) // a served handler's reply

	// entries maps each type to its handler. Dispatches read it without a
	// lock; registrations (rare) replace it under mu.
	mu      sync.Mutex
	entries atomic.Pointer[map[string]*entry[R]]
}

type entry[R any] struct {
	h      call[Message, R]
	decode func(c platform.Codec, data []byte) (any, error)
	scope  *Scope
}

func newCore[R any](kind Kind, o Options, chain func(call[Message, R], []Middleware) call[Message, R], encode func(platform.Codec, R) ([]byte, error)) *core[R] {
	o.defaults()
	c := &core[R]{kind: kind, o: o, tracer: newSpanner(o.TracerProvider), spanNames: newNames("dispatch " + string(kind) + " "),
		chain: chain, encode: encode}
	c.entries.Store(&map[string]*entry[R]{})
	return c
}

// typeName returns the registered name of a message type.
func (c *core[R]) typeName(v any, what string) (string, error) {
	et, err := c.o.Registry.TypeOf(v)
	if err != nil {
		return "", platform.Errorf(platform.CodeOf(err), "%s %T: %w (handlers use the bus's Options.Registry)", what, v, err)
	}
	return et.Name, nil
}

// register adds the one handler of a type; scoped handlers also run the
// scope's middleware, inside the bus's.
func (c *core[R]) register(sc *Scope, name string, h call[Message, R], decode func(platform.Codec, []byte) (any, error), serve func(micro.Request)) error {
	if sc != nil {
		h = c.chain(h, sc.mw)
	}
	e := &entry[R]{h: c.chain(h, c.o.Middleware), decode: decode, scope: sc}
	c.mu.Lock()
	entries := *c.entries.Load()
	if prev, ok := entries[name]; ok {
		c.mu.Unlock()
		return platform.Errorf(platform.CodeDuplicateHandler, "%s %q already has a handler%s: a %s type takes exactly one handler per bus; remove one of them (several processes serving the same type share its load, which is not a duplicate)",
			c.kind, name, prev.scope.describe(), c.kind)
	}
	next := maps.Clone(entries)
	next[name] = e
	c.entries.Store(&next)
	c.mu.Unlock()
	if c.o.Remote != nil {
		if err := c.o.Remote.serve(c.kind, name, c, serve); err != nil {
			c.remove(name, e)
			return err
		}
	}
	if sc != nil {
		sc.onClose(func() { c.remove(name, e) })
	}
	return nil
}

func (c *core[R]) remove(name string, e *entry[R]) {
	c.mu.Lock()
	if entries := *c.entries.Load(); entries[name] == e {
		next := maps.Clone(entries)
		delete(next, name)
		c.entries.Store(&next)
	}
	c.mu.Unlock()
}

func (c *core[R]) lookup(name string) *entry[R] {
	return (*c.entries.Load())[name]
}

// Handles reports whether this bus has a handler of the type in process.
func (c *core[R]) Handles(typ string) bool { return c.lookup(typ) != nil }

// message builds the message for a value: its ID from a MessageID method
// or a new ULID, the correlation ID from ctx or else its own ID, the
// causation ID from ctx and, for a command, its idempotency key from an
// IdempotencyKey method or else from ctx. One type switch looks for both
// methods: it costs one cached lookup, two assertions cost two.
func newMessage(ctx context.Context, kind Kind, typ string, body any) Message {
	m := Message{Type: typ, Body: body, CorrelationID: platform.CorrelationID(ctx), CausationID: platform.CausationID(ctx)}
	switch b := body.(type) {
	case interface {
		MessageID() string
		IdempotencyKey() string
	}:
		m.ID = b.MessageID()
		if kind == KindCommand {
			m.IdempotencyKey = b.IdempotencyKey()
		}
	case interface{ MessageID() string }:
		m.ID = b.MessageID()
	case idempotencyKeyer:
		if kind == KindCommand {
			m.IdempotencyKey = b.IdempotencyKey()
		}
	}
	if kind == KindCommand && m.IdempotencyKey == "" && keysInContexts.Load() {
		m.IdempotencyKey = contextIdempotencyKey(ctx)
	}
	if m.ID == "" {
		m.ID = newID()
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.ID
	}
	return m
}

// Span start options, made once: each call's would allocate.
var (
	client   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	server   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
	consumer = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
)

// startSpan starts the dispatch span, the parent of the handler's span
// here or in another process.
func (c *core[R]) startSpan(ctx context.Context, m Message) (context.Context, trace.Span) {
	if c.tracer.off() {
		return ctx, noSpan
	}
	ctx, span := c.tracer.start(ctx, c.spanNames.get(m.Type), client)
	if span.IsRecording() {
		span.SetAttributes(attribute.String("lexigram.kind", string(c.kind)), attribute.String("lexigram.type", m.Type),
			attribute.String("lexigram.id", m.ID), attribute.String("lexigram.correlation_id", m.CorrelationID))
	}
	return ctx, span
}

// run runs the handler's pipeline in this process.
func (c *core[R]) run(ctx context.Context, e *entry[R], m Message) (r R, err error) {
	ctx = newDispatch(ctx, m, &c.o, c.kind == KindCommand)
	defer func() {
		if p := recover(); p != nil { // a pipeline without Recovery must not crash the process
			err = panicError(c.kind, m.Type, m.ID, p)
		}
		if err != nil {
			err = c.wrap(ctx, m, err)
		}
	}()
	return e.h(ctx, m)
}

// wrap gives a handler's error the bus's code, keeping it as the cause.
func (c *core[R]) wrap(ctx context.Context, m Message, err error) error {
	code := execCode(c.kind)
	if platform.CodeOf(err) == code {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, platform.ErrHandlerTimeout) && ctx.Err() != nil {
		err = platform.Errorf(platform.CodeHandlerTimeout, "%s %s (%s) ran past its deadline: %w", c.kind, m.Type, m.ID, err)
	}
	return platform.Errorf(code, "%s %s (%s) failed: %w", c.kind, m.Type, m.ID, err)
}

func (c *core[R]) noHandler(typ string) error {
	if c.o.Remote == nil {
		return platform.Errorf(platform.CodeNoHandler, "%s %q has no handler in this process and the bus has no Remote: register one with handlers.Handle%s, or give the bus a Remote to reach other processes",
			c.kind, typ, titleKind(c.kind))
	}
	return platform.Errorf(platform.CodeNoHandler, "%s %q has no handler here: register one with handlers.Handle%s", c.kind, typ, titleKind(c.kind))
}

// send sends a message to the process that serves its type.
func (c *core[R]) send(ctx context.Context, m Message) (*nats.Msg, error) {
	if c.o.Remote == nil {
		return nil, c.noHandler(m.Type)
	}
	data, err := c.o.Codec.Marshal(m.Body)
	if err != nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "%s %s: encode with %s: %w", c.kind, m.Type, c.o.Codec.Name(), err)
	}
	return c.o.Remote.request(ctx, c.kind, m, c.o.Codec, data)
}

// served handles one request of a type from another process.
func (c *core[R]) served(typ string) func(micro.Request) {
	return func(req micro.Request) {
		r := c.o.Remote
		r.running.enter()
		defer r.running.leave()
		in, err := r.incoming(req, typ)
		defer in.deadline.stop()
		codec, m := in.codec, in.msg
		if err != nil {
			r.respondError(req, codec, err)
			return
		}
		e := c.lookup(typ)
		if e == nil {
			r.respondError(req, codec, c.noHandler(typ))
			return
		}
		if m.Body, err = e.decode(codec, in.body); err != nil {
			r.respondError(req, codec, platform.Errorf(platform.CodeInvalidArgument, "%s %s (%s): decode the body with %s: %w (is the sender's type the same as this process's?)",
				c.kind, typ, m.ID, codec.Name(), err))
			return
		}
		res, err := c.run(in.ctx, e, m)
		if err != nil {
			r.respondError(req, codec, err)
			return
		}
		data, err := c.encode(codec, res)
		if err != nil {
			r.respondError(req, codec, platform.Errorf(execCode(c.kind), "%s %s (%s): encode the result with %s: %w", c.kind, typ, m.ID, codec.Name(), err))
			return
		}
		r.respond(req, data)
	}
}

func decoder[T any](c platform.Codec, data []byte) (any, error) {
	var v T
	err := c.Unmarshal(data, &v)
	return v, err
}
