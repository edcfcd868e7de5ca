package handlers

import (
	"context"

	"github.com/lexigram/events/platform"
)

// QueryBus routes each query to its one handler, in this process or, with
// a Remote, in whichever process serves its type.
type QueryBus struct {
	c *core[any]
}

// NewQueryBus returns a query bus. The Transaction middleware does
// nothing for queries.
func NewQueryBus(opts Options) *QueryBus {
	return &QueryBus{c: newCore(KindQuery, opts,
		func(h call[Message, any], mw []Middleware) call[Message, any] {
			return call[Message, any](chainQuery(QueryHandlerFunc(h), mw))
		},
		func(c platform.Codec, v any) ([]byte, error) { return c.Marshal(v) })}
}

// QueryRegistrar is what HandleQuery registers with: a *QueryBus or a
// *Scope.
type QueryRegistrar interface {
	queryTarget() (*QueryBus, *Scope)
}

func (b *QueryBus) queryTarget() (*QueryBus, *Scope) { return b, nil }

// HandleQuery registers fn as the handler of query type Q, which must be
// registered in the bus's registry. Its result type R must encode with the
// bus's codec when callers are in other processes.
func HandleQuery[Q, R any](r QueryRegistrar, fn func(ctx context.Context, q Q) (R, error)) error {
	b, sc := r.queryTarget()
	if b == nil {
		return platform.Errorf(platform.CodeInvalidArgument, "handlers.HandleQuery: the scope has no query bus: give NewScope one in Buses.Queries")
	}
	var zero Q
	name, err := b.c.typeName(zero, "handlers.HandleQuery: query")
	if err != nil {
		return err
	}
	h := func(ctx context.Context, m Message) (any, error) {
		q, ok := m.Body.(Q)
		if !ok {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "query %s: the body is a %T, the handler takes a %T", m.Type, m.Body, zero)
		}
		return fn(ctx, q)
	}
	return b.c.register(sc, name, h, decoder[Q], b.c.served(name))
}

// Ask runs query q and returns its result as an R. A query nobody handles
// is platform.ErrNoHandler; a failing handler's error is wrapped in
// platform.ErrQueryExecution; a handler whose result is not an R is
// platform.ErrInvalidArgument.
func Ask[R any](ctx context.Context, b *QueryBus, q any) (R, error) {
	var zero R
	name, err := b.c.typeName(q, "ask query")
	if err != nil {
		return zero, err
	}
	m := newMessage(ctx, KindQuery, name, q)
	ctx, span := b.c.startSpan(ctx, m)
	r, err := ask[R](ctx, b, m)
	endSpan(span, err)
	return r, err
}

func ask[R any](ctx context.Context, b *QueryBus, m Message) (R, error) {
	var zero R
	if e := b.c.lookup(m.Type); e != nil {
		v, err := b.c.run(ctx, e, m)
		if err != nil {
			return zero, err
		}
		r, ok := v.(R)
		if !ok && v != nil {
			return zero, platform.Errorf(platform.CodeInvalidArgument, "query %s returns a %T, not the %T asked for: ask for the handler's result type", m.Type, v, zero)
		}
		return r, nil
	}
	resp, err := b.c.send(ctx, m)
	if err != nil {
		return zero, err
	}
	var r R
	if err := b.c.o.Codec.Unmarshal(resp.Data, &r); err != nil {
		return zero, platform.Errorf(platform.CodeQueryExecution, "query %s (%s): decode the result as %T: %w", m.Type, m.ID, zero, err)
	}
	return r, nil
}

// Handles reports whether a handler of the query type runs in this process.
func (b *QueryBus) Handles(typ string) bool { return b.c.Handles(typ) }
