package tenancy

import (
	"context"

	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
)

// Require is a bus middleware that refuses a command or query whose
// context names no tenant (ErrNoTenant), or a tenant ID that is not
// valid, before its handler runs. Add it to the buses' middleware
// (handlers.Options.Middleware) where every request must name one.
func Require() handlers.Middleware {
	check := func(ctx context.Context) error {
		id := platform.Tenant(ctx)
		if id == "" {
			return ErrNoTenant
		}
		return platform.ValidTenant(id)
	}
	return handlers.Middleware{Name: "tenancy",
		Command: func(next handlers.CommandHandlerFunc) handlers.CommandHandlerFunc {
			return func(ctx context.Context, m handlers.Message) (handlers.CommandResult, error) {
				if err := check(ctx); err != nil {
					return handlers.CommandResult{}, err
				}
				return next(ctx, m)
			}
		},
		Query: func(next handlers.QueryHandlerFunc) handlers.QueryHandlerFunc {
			return func(ctx context.Context, m handlers.Message) (any, error) {
				if err := check(ctx); err != nil {
					return nil, err
				}
				return next(ctx, m)
			}
		},
	}
}
