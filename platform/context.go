package platform

import "context"

type ctxKey int

const (
	correlationKey ctxKey = iota
	causationKey
)

// WithCorrelationID returns a context whose appends carry id as their
// correlation ID: the ID shared by everything one request set off.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, correlationKey, id)
}

// WithCausationID returns a context whose appends carry id as their
// causation ID: the ID of the command or event that caused them.
func WithCausationID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, causationKey, id)
}

// CorrelationID returns the correlation ID in ctx, or "".
func CorrelationID(ctx context.Context) string {
	s, _ := ctx.Value(correlationKey).(string)
	return s
}

// CausationID returns the causation ID in ctx, or "".
func CausationID(ctx context.Context) string {
	s, _ := ctx.Value(causationKey).(string)
	return s
}
