package platform

import "context"

type ctxKey int

const (
	correlationKey ctxKey = iota
	causationKey
	tenantKey
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

// WithTenant returns a context for tenant id: package tenancy picks the
// tenant's store from it, and the buses carry it across processes.
func WithTenant(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, tenantKey, id)
}

// Tenant returns the tenant in ctx, or "".
func Tenant(ctx context.Context) string {
	s, _ := ctx.Value(tenantKey).(string)
	return s
}

// ValidTenant reports whether id can name a tenant: 1 to 64 letters,
// digits, '-' and '_', so that it can be part of stream, subject and
// bucket names.
func ValidTenant(id string) error {
	if id == "" || len(id) > 64 {
		return Errorf(CodeInvalidArgument, "tenant %q: use 1 to 64 letters, digits, '-' and '_'", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return Errorf(CodeInvalidArgument, "tenant %q: %q is not allowed: use letters, digits, '-' and '_'", id, c)
		}
	}
	return nil
}
