package handlers

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/platform"
)

// Options configure the command and query buses. The zero value works: an
// in-process bus with the default middleware.
type Options struct {
	// Registry names command and query types, as it names events:
	// platform.Register[PlaceOrder](reg, "order.place", 1). Commands,
	// queries and events share its namespace. nil: platform.DefaultRegistry.
	Registry *platform.Registry
	// Codec encodes messages sent to other processes. nil: platform.Msgpack.
	Codec platform.Codec
	// Remote serves this bus's handlers over NATS and sends messages it
	// has no handler for. nil: in-process only.
	Remote *Remote
	// Middleware is the pipeline, outermost first. nil:
	// DefaultMiddleware(the options). Pass an empty, non-nil slice for none.
	Middleware []Middleware

	// What the default middleware uses.
	Logger         *slog.Logger         // nil: slog.Default()
	Metrics        *Metrics             // nil: no metrics
	TracerProvider trace.TracerProvider // nil: the global provider (otel.SetTracerProvider); none installed, no spans
	Retry          RetryOptions
	Breaker        *CircuitBreaker // nil: a breaker with default settings for this bus
	HandlerTimeout time.Duration   // bounds each handler call (platform.ErrHandlerTimeout past it); 0: none, the caller's context still bounds it
}

func (o *Options) defaults() {
	if o.Registry == nil {
		o.Registry = platform.DefaultRegistry
	}
	if o.Codec == nil {
		o.Codec = platform.Msgpack
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
		o.Middleware = DefaultMiddleware(*o)
	}
}

// DefaultMiddleware is the default pipeline, outermost first:
//
//	Tracing → Validation → Logging → Metrics → Retry → CircuitBreaker → Transaction → Timeout → Recovery → handler
//
// It keeps the seed's order (Validation → Transaction → Logging → Retry →
// Metrics → CircuitBreaker) except where Go and NATS need otherwise:
// Tracing is outermost so its span covers every step and the saves;
// Retry sits outside Transaction so a retried command runs in a fresh unit
// of work and reloads its aggregates (inside, the save that conflicts would
// happen after Retry had returned); Metrics sits outside Retry and counts
// a message once, with the retries counted apart; Timeout sits inside
// Transaction so a handler that overran saves nothing; Recovery is
// innermost so a panic is an ordinary error for every other step.
// Metrics is left out when o.Metrics is nil.
func DefaultMiddleware(o Options) []Middleware {
	o.Middleware = []Middleware{} // keep defaults() from recursing
	o.defaults()
	mw := []Middleware{Tracing(o.TracerProvider), Validation(), Logging(o.Logger)}
	if o.Metrics != nil {
		mw = append(mw, o.Metrics.Middleware())
	}
	return append(mw, Retry(o.Retry), o.Breaker.Middleware(), Transaction(), Timeout(o.HandlerTimeout), Recovery(o.Logger))
}
