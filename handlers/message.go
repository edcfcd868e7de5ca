package handlers

import (
	"context"

	"github.com/lexigram/events/platform"
)

// Kind says which bus a message travels on; it labels logs, metrics and spans.
type Kind string

// The three kinds of message.
const (
	KindCommand Kind = "command"
	KindQuery   Kind = "query"
	KindEvent   Kind = "event"
)

// Message is a command or a query on its way to its handler.
type Message struct {
	ID            string // unique per dispatch; a command's ID becomes the causation ID of the events it produces
	Type          string // the registered type name, e.g. "order.place"
	Body          any    // the command or query value, e.g. PlaceOrder{...}
	CorrelationID string // shared by everything one request set off
	CausationID   string // the message that caused this one, if any
	// IdempotencyKey names a command's effect: with the Idempotency
	// middleware, commands that share a key are applied once and the
	// repeats get the first one's result. It comes from the command's
	// IdempotencyKey method or else from WithIdempotencyKey; "": none, the
	// command runs every time. Queries have none.
	IdempotencyKey string
}

// CommandResult says what a command changed. With the Transaction
// middleware it is built from the saves of the aggregates the handler
// changed; several aggregates give several Changes, and the top-level
// fields are those of the last one. The events have every envelope field
// but Time, which the store keeps to itself; a caller in another process
// gets a nil Event for an event type its registry lacks.
type CommandResult struct {
	Aggregate platform.StreamID // the (last) aggregate saved; zero if the command changed nothing
	Version   uint64            // its version after the save
	Position  uint64            // the global position of the last event appended
	Events    []platform.Envelope
	Changes   []Change // one per aggregate saved, in save order
}

// Change is one aggregate's save within a command.
type Change struct {
	Aggregate platform.StreamID
	Result    platform.AppendResult
}

// CommandHandlerFunc handles one command. Middleware wraps it.
type CommandHandlerFunc func(ctx context.Context, cmd Message) (CommandResult, error)

// QueryHandlerFunc handles one query and returns its result.
type QueryHandlerFunc func(ctx context.Context, q Message) (any, error)

// EventHandlerFunc handles one stored event. The durable handlers share
// this signature, so the same event middleware serves both.
type EventHandlerFunc func(ctx context.Context, event platform.Envelope) error

// CommandMiddleware wraps a command handler: call next, or don't.
type CommandMiddleware func(next CommandHandlerFunc) CommandHandlerFunc

// QueryMiddleware wraps a query handler.
type QueryMiddleware func(next QueryHandlerFunc) QueryHandlerFunc

// EventMiddleware wraps an event handler.
type EventMiddleware func(next EventHandlerFunc) EventHandlerFunc

// Middleware is one step of the pipelines, for whichever buses it applies
// to: each bus uses its own field and skips a nil one. Write your own as
//
//	handlers.Middleware{Name: "audit", Command: func(next handlers.CommandHandlerFunc) handlers.CommandHandlerFunc {
//		return func(ctx context.Context, cmd handlers.Message) (handlers.CommandResult, error) {
//			audit(ctx, cmd)
//			return next(ctx, cmd)
//		}
//	}}
type Middleware struct {
	Name    string
	Command CommandMiddleware
	Query   QueryMiddleware
	Event   EventMiddleware
}

// chain applies mw so that mw[0] is the outermost step.
func chainCommand(h CommandHandlerFunc, mw []Middleware) CommandHandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i].Command != nil {
			h = mw[i].Command(h)
		}
	}
	return h
}

func chainQuery(h QueryHandlerFunc, mw []Middleware) QueryHandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i].Query != nil {
			h = mw[i].Query(h)
		}
	}
	return h
}

// ChainEvent wraps h in the event steps of mw, mw[0] outermost. The
// durable handlers use it to run the same middleware.
func ChainEvent(h EventHandlerFunc, mw []Middleware) EventHandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i].Event != nil {
			h = mw[i].Event(h)
		}
	}
	return h
}

// The built-in middleware is written once over this generic shape and
// instantiated for each bus.
type call[M, R any] func(ctx context.Context, m M) (R, error)
type step[M, R any] func(next call[M, R]) call[M, R]

// info describes a message to a generic step.
type info[M any] func(ctx context.Context, m M) (typ, id string)

func messageInfo(_ context.Context, m Message) (string, string) { return m.Type, m.ID }

func eventInfo(_ context.Context, e platform.Envelope) (string, string) { return e.Type, e.ID }

func commandStep(s step[Message, CommandResult]) CommandMiddleware {
	return func(next CommandHandlerFunc) CommandHandlerFunc {
		return CommandHandlerFunc(s(call[Message, CommandResult](next)))
	}
}

func queryStep(s step[Message, any]) QueryMiddleware {
	return func(next QueryHandlerFunc) QueryHandlerFunc {
		return QueryHandlerFunc(s(call[Message, any](next)))
	}
}

func eventStep(s step[platform.Envelope, struct{}]) EventMiddleware {
	return func(next EventHandlerFunc) EventHandlerFunc {
		h := s(func(ctx context.Context, e platform.Envelope) (struct{}, error) { return struct{}{}, next(ctx, e) })
		return func(ctx context.Context, e platform.Envelope) error {
			_, err := h(ctx, e)
			return err
		}
	}
}

type ctxKey int

const (
	messageKey ctxKey = iota
	handlerKey
)

// MessageFrom returns the command or query being handled, for handlers
// that need its ID or correlation ID.
func MessageFrom(ctx context.Context) (Message, bool) {
	d, ok := ctx.Value(messageKey).(*dispatch)
	if !ok {
		return Message{}, false
	}
	return d.msg, true
}

// HandlerName returns the name of the event handler running, or "".
func HandlerName(ctx context.Context) string {
	s, _ := ctx.Value(handlerKey).(string)
	return s
}

// WithHandlerName names the handler that runs with ctx, for event
// middleware's logs, metrics and spans. The event bus sets it.
func WithHandlerName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, handlerKey, name)
}
