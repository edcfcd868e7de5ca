package handlers

import (
	"context"

	"github.com/lexigram/events/platform"
)

// ConsistentQuery is a query that must see what a command did: it names
// the projection it reads and the position the command's result carried
// (CommandResult.Position). The fields travel with the query, so the wait
// happens in whichever process serves it.
type ConsistentQuery interface {
	ReadAfter() (projection string, position uint64)
}

// PositionWaiter waits until a projection has applied a position;
// *projections.Manager is one.
type PositionWaiter interface {
	WaitFor(ctx context.Context, projection string, position uint64) error
}

// ReadYourWrites holds each ConsistentQuery until its projection has
// applied the position it names, then runs it; other queries, and a
// ConsistentQuery naming position 0, pass straight through. The wait ends
// with the query's context. Add it to a query bus's middleware:
//
//	opts.Middleware = append(handlers.DefaultMiddleware(opts), handlers.ReadYourWrites(manager))
func ReadYourWrites(w PositionWaiter) Middleware {
	return Middleware{Name: "read-your-writes", Query: func(next QueryHandlerFunc) QueryHandlerFunc {
		return func(ctx context.Context, q Message) (any, error) {
			if cq, ok := q.Body.(ConsistentQuery); ok {
				if projection, position := cq.ReadAfter(); position > 0 {
					if err := w.WaitFor(ctx, projection, position); err != nil {
						return nil, platform.Errorf(platform.CodeQueryExecution,
							"query %s (%s) waited for projection %s to reach position %d: %w", q.Type, q.ID, projection, position, err)
					}
				}
			}
			return next(ctx, q)
		}
	}}
}
