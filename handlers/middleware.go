package handlers

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/platform"
)

// instrumentation is the OpenTelemetry scope of the spans of this package.
const instrumentation = "github.com/lexigram/events/handlers"

// Validator is implemented by commands, queries and events that can check
// themselves. Validation calls it before the handler runs.
type Validator interface {
	Validate() error
}

// Validation rejects a message whose Validate method fails, with
// platform.ErrInvalidArgument wrapping that error. Messages without the
// method pass.
func Validation() Middleware {
	return Middleware{Name: "validation",
		Command: commandStep(validation[Message, CommandResult](KindCommand, messageInfo, func(m Message) any { return m.Body })),
		Query:   queryStep(validation[Message, any](KindQuery, messageInfo, func(m Message) any { return m.Body })),
		Event:   eventStep(validation[platform.Envelope, struct{}](KindEvent, eventInfo, func(e platform.Envelope) any { return e.Event })),
	}
}

func validation[M, R any](kind Kind, inf info[M], body func(M) any) step[M, R] {
	return func(next call[M, R]) call[M, R] {
		return func(ctx context.Context, m M) (R, error) {
			if v, ok := body(m).(Validator); ok {
				if err := v.Validate(); err != nil {
					typ, id := inf(ctx, m)
					var zero R
					return zero, platform.Errorf(platform.CodeInvalidArgument, "%s %s (%s) is invalid: %w", kind, typ, id, err)
				}
			}
			return next(ctx, m)
		}
	}
}

// Logging logs failures at Warn and successes at Debug, with the type, ID,
// correlation ID, duration and, for events, the handler. nil: slog.Default().
func Logging(l *slog.Logger) Middleware {
	if l == nil {
		l = slog.Default()
	}
	return Middleware{Name: "logging",
		Command: commandStep(logging[Message, CommandResult](l, KindCommand, messageInfo)),
		Query:   queryStep(logging[Message, any](l, KindQuery, messageInfo)),
		Event:   eventStep(logging[platform.Envelope, struct{}](l, KindEvent, eventInfo)),
	}
}

func logging[M, R any](l *slog.Logger, kind Kind, inf info[M]) step[M, R] {
	okMsg, failMsg := "handlers: "+string(kind)+" handled", "handlers: "+string(kind)+" failed"
	return func(next call[M, R]) call[M, R] {
		return func(ctx context.Context, m M) (R, error) {
			start := time.Now()
			r, err := next(ctx, m)
			level, msg := slog.LevelDebug, okMsg
			if err != nil {
				level, msg = slog.LevelWarn, failMsg
			}
			if !l.Enabled(ctx, level) {
				return r, err
			}
			typ, id := inf(ctx, m)
			attrs := []slog.Attr{slog.String("type", typ), slog.String("id", id),
				slog.String("correlation_id", platform.CorrelationID(ctx)), slog.Duration("took", time.Since(start))}
			if h := HandlerName(ctx); h != "" {
				attrs = append(attrs, slog.String("handler", h))
			}
			if err != nil {
				attrs = append(attrs, slog.String("code", string(platform.CodeOf(err))), slog.String("error", err.Error()))
			}
			l.LogAttrs(ctx, level, msg, attrs...)
			return r, err
		}
	}
}

// RetryOptions configure Retry. The zero value works.
type RetryOptions struct {
	// Attempts is the most calls, the first included. 0: 3; 1: no retries.
	Attempts int
	// Initial is the backoff before the first retry; each retry doubles
	// it up to Max, and jitter picks a wait between half and all of it.
	// 0: 10ms and 1s.
	Initial, Max time.Duration
	// Retryable says which errors are worth another attempt. nil:
	// DefaultRetryable.
	Retryable func(error) bool
	// Metrics counts the retries; nil: not counted.
	Metrics *Metrics
}

// DefaultRetryable retries concurrency conflicts (a retried command
// reloads its aggregates) and an unavailable store.
func DefaultRetryable(err error) bool {
	return errors.Is(err, platform.ErrConcurrency) || errors.Is(err, platform.ErrStoreUnavailable)
}

// Retry calls the handler again after a retryable error, with exponential
// backoff and jitter, while the context lasts.
func Retry(opts RetryOptions) Middleware {
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.Initial <= 0 {
		opts.Initial = 10 * time.Millisecond
	}
	if opts.Max <= 0 {
		opts.Max = time.Second
	}
	if opts.Retryable == nil {
		opts.Retryable = DefaultRetryable
	}
	return Middleware{Name: "retry",
		Command: commandStep(retry[Message, CommandResult](opts, KindCommand, messageInfo)),
		Query:   queryStep(retry[Message, any](opts, KindQuery, messageInfo)),
		Event:   eventStep(retry[platform.Envelope, struct{}](opts, KindEvent, eventInfo)),
	}
}

func retry[M, R any](o RetryOptions, kind Kind, inf info[M]) step[M, R] {
	return func(next call[M, R]) call[M, R] {
		return func(ctx context.Context, m M) (R, error) {
			backoff := o.Initial
			for attempt := 1; ; attempt++ {
				r, err := next(ctx, m)
				if err == nil || attempt >= o.Attempts || !o.Retryable(err) {
					return r, err
				}
				if o.Metrics != nil {
					typ, _ := inf(ctx, m)
					o.Metrics.retried(kind, typ, HandlerName(ctx))
				}
				wait := backoff/2 + rand.N(backoff/2+1)
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return r, err
				}
				backoff = min(2*backoff, o.Max)
			}
		}
	}
}

// Timeout bounds each call by d and fails with platform.ErrHandlerTimeout
// when it runs past it. The caller gets its answer at the deadline even if
// the handler ignores its context; the handler's late result is dropped
// (inside Transaction, its unit of work is then closed and saves nothing).
// d <= 0 disables it.
func Timeout(d time.Duration) Middleware {
	if d <= 0 {
		return Middleware{Name: "timeout"}
	}
	return Middleware{Name: "timeout",
		Command: commandStep(timeout[Message, CommandResult](d, KindCommand, messageInfo)),
		Query:   queryStep(timeout[Message, any](d, KindQuery, messageInfo)),
		Event:   eventStep(timeout[platform.Envelope, struct{}](d, KindEvent, eventInfo)),
	}
}

func timeout[M, R any](d time.Duration, kind Kind, inf info[M]) step[M, R] {
	type result struct {
		r   R
		err error
	}
	return func(next call[M, R]) call[M, R] {
		return func(ctx context.Context, m M) (R, error) {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			done := make(chan result, 1)
			go func() {
				var res result
				defer func() {
					if p := recover(); p != nil {
						typ, id := inf(ctx, m)
						res.err = panicError(kind, typ, id, p)
					}
					done <- res
				}()
				res.r, res.err = next(ctx, m)
			}()
			select {
			case res := <-done:
				if res.err != nil && errors.Is(res.err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return res.r, timeoutError(ctx, kind, inf, m, d, res.err)
				}
				return res.r, res.err
			case <-ctx.Done():
				var zero R
				if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
					return zero, ctx.Err()
				}
				return zero, timeoutError(ctx, kind, inf, m, d, ctx.Err())
			}
		}
	}
}

func timeoutError[M any](ctx context.Context, kind Kind, inf info[M], m M, d time.Duration, cause error) error {
	if errors.Is(cause, platform.ErrHandlerTimeout) {
		return cause
	}
	typ, id := inf(ctx, m)
	if h := HandlerName(ctx); h != "" {
		return platform.Errorf(platform.CodeHandlerTimeout, "%s %s (%s), handler %s: ran past its timeout of %s: make it faster or raise the timeout: %w", kind, typ, id, h, d, cause)
	}
	return platform.Errorf(platform.CodeHandlerTimeout, "%s %s (%s): ran past its timeout of %s: make it faster or raise the timeout: %w", kind, typ, id, d, cause)
}

// Recovery turns a panicking handler into a platform.ErrHandlerPanic
// error, logged with its stack at Error. nil: slog.Default().
func Recovery(l *slog.Logger) Middleware {
	if l == nil {
		l = slog.Default()
	}
	return Middleware{Name: "recovery",
		Command: commandStep(recovery[Message, CommandResult](l, KindCommand, messageInfo)),
		Query:   queryStep(recovery[Message, any](l, KindQuery, messageInfo)),
		Event:   eventStep(recovery[platform.Envelope, struct{}](l, KindEvent, eventInfo)),
	}
}

func recovery[M, R any](l *slog.Logger, kind Kind, inf info[M]) step[M, R] {
	return func(next call[M, R]) call[M, R] {
		return func(ctx context.Context, m M) (r R, err error) {
			defer func() {
				if p := recover(); p != nil {
					typ, id := inf(ctx, m)
					err = panicError(kind, typ, id, p)
					l.LogAttrs(ctx, slog.LevelError, "handlers: a handler panicked", slog.String("kind", string(kind)), slog.String("type", typ),
						slog.String("id", id), slog.String("handler", HandlerName(ctx)), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
				}
			}()
			return next(ctx, m)
		}
	}
}

func panicError(kind Kind, typ, id string, p any) error {
	if err, ok := p.(error); ok {
		return platform.Errorf(platform.CodeHandlerPanic, "%s %s (%s): the handler panicked: %w", kind, typ, id, err)
	}
	return platform.Errorf(platform.CodeHandlerPanic, "%s %s (%s): the handler panicked: %v", kind, typ, id, p)
}

// Tracing starts a span around each handler call, a child of the span in
// the context (for remote messages, the caller's span, from the trace
// context in the NATS headers). nil: the global provider, and no spans
// while no SDK is installed.
func Tracing(tp trace.TracerProvider) Middleware {
	tr := newSpanner(tp)
	return Middleware{Name: "tracing",
		Command: commandStep(tracing[Message, CommandResult](tr, KindCommand, messageInfo)),
		Query:   queryStep(tracing[Message, any](tr, KindQuery, messageInfo)),
		Event:   eventStep(tracing[platform.Envelope, struct{}](tr, KindEvent, eventInfo)),
	}
}

func tracing[M, R any](tr *spanner, kind Kind, inf info[M]) step[M, R] {
	names := newNames("handle " + string(kind) + " ")
	opts := server // a command or query is a request
	if kind == KindEvent {
		opts = consumer
	}
	return func(next call[M, R]) call[M, R] {
		return func(ctx context.Context, m M) (R, error) {
			if tr.off() {
				return next(ctx, m)
			}
			typ, id := inf(ctx, m)
			ctx, span := tr.start(ctx, names.get(typ), opts)
			if span.IsRecording() {
				span.SetAttributes(attribute.String("lexigram.kind", string(kind)), attribute.String("lexigram.type", typ),
					attribute.String("lexigram.id", id), attribute.String("lexigram.correlation_id", platform.CorrelationID(ctx)))
				if h := HandlerName(ctx); h != "" {
					span.SetAttributes(attribute.String("lexigram.handler", h))
				}
			}
			r, err := next(ctx, m)
			endSpan(span, err)
			return r, err
		}
	}
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		if span.IsRecording() {
			span.SetAttributes(attribute.String("lexigram.error_code", string(platform.CodeOf(err))))
		}
	}
	span.End()
}

// names caches prefix+type strings, so spans get their names without an
// allocation or a lock per call: readers load the map, writers replace it.
type names struct {
	prefix string
	mu     sync.Mutex
	m      atomic.Pointer[map[string]string]
}

func newNames(prefix string) *names {
	n := &names{prefix: prefix}
	n.m.Store(&map[string]string{})
	return n
}

func (n *names) get(typ string) string {
	if s, ok := (*n.m.Load())[typ]; ok {
		return s
	}
	s := n.prefix + typ
	n.mu.Lock()
	defer n.mu.Unlock()
	old := *n.m.Load()
	if len(old) >= 10_000 { // types are few; the bound keeps a misuse from growing it forever
		return s
	}
	m := make(map[string]string, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[typ] = s
	n.m.Store(&m)
	return s
}
