package handlers

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/lexigram/events/platform"
)

// BreakerState is a circuit breaker's state for one message type.
type BreakerState int

// The states: Closed lets calls through and counts consecutive failures;
// Open refuses them with platform.ErrCircuitOpen until OpenFor has passed;
// HalfOpen lets one trial call through, whose outcome closes or reopens it.
const (
	Closed BreakerState = iota
	Open
	HalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "closed"
}

// BreakerOptions configure NewCircuitBreaker. The zero value works.
type BreakerOptions struct {
	Failures int           // consecutive failures that open the circuit; 0: 5
	OpenFor  time.Duration // how long it stays open before a trial call; 0: 30s
	// IsFailure says which errors count. nil: every error except the
	// caller's mistakes and expected outcomes (invalid argument, concurrency
	// conflict, not found, no handler, and an open circuit downstream).
	IsFailure func(error) bool
	Now       func() time.Time // the clock; nil: time.Now
}

// CircuitBreaker keeps one circuit per message type (per handler for
// events), so one failing dependency stops its callers quickly instead of
// piling up requests.
type CircuitBreaker struct {
	opts     BreakerOptions
	mu       sync.RWMutex
	circuits map[seriesKey]*circuit
}

type circuit struct {
	mu       sync.Mutex
	state    BreakerState
	failures int
	openedAt time.Time
	probing  bool
}

// NewCircuitBreaker returns a breaker whose circuits all start closed.
func NewCircuitBreaker(opts BreakerOptions) *CircuitBreaker {
	if opts.Failures <= 0 {
		opts.Failures = 5
	}
	if opts.OpenFor <= 0 {
		opts.OpenFor = 30 * time.Second
	}
	if opts.IsFailure == nil {
		opts.IsFailure = defaultIsFailure
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &CircuitBreaker{opts: opts, circuits: map[seriesKey]*circuit{}}
}

func defaultIsFailure(err error) bool {
	for _, e := range []error{platform.ErrInvalidArgument, platform.ErrConcurrency, platform.ErrStreamNotFound, platform.ErrNoHandler, platform.ErrCircuitOpen} {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// State returns the state of the circuit of a message type; handler is
// the event handler's name, "" for commands and queries.
func (b *CircuitBreaker) State(kind Kind, typ, handler string) BreakerState {
	c := b.circuit(seriesKey{kind, typ, handler})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == Open && b.opts.Now().Sub(c.openedAt) >= b.opts.OpenFor {
		return HalfOpen
	}
	return c.state
}

func (b *CircuitBreaker) circuit(k seriesKey) *circuit {
	b.mu.RLock()
	c := b.circuits[k]
	b.mu.RUnlock()
	if c != nil {
		return c
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c = b.circuits[k]; c == nil {
		c = &circuit{}
		b.circuits[k] = c
	}
	return c
}

// allow says whether a call may go through now.
func (b *CircuitBreaker) allow(c *circuit) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case Open:
		if b.opts.Now().Sub(c.openedAt) < b.opts.OpenFor {
			return false
		}
		c.state, c.probing = HalfOpen, true
		return true
	case HalfOpen:
		if c.probing {
			return false
		}
		c.probing = true
	}
	return true
}

func (b *CircuitBreaker) record(c *circuit, err error) {
	failed := err != nil && b.opts.IsFailure(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case Closed:
		switch {
		case failed:
			c.failures++
			if c.failures >= b.opts.Failures {
				c.state, c.openedAt = Open, b.opts.Now()
			}
		case err == nil:
			c.failures = 0
		}
	case HalfOpen:
		c.probing = false
		switch {
		case failed:
			c.state, c.openedAt = Open, b.opts.Now()
		case err == nil:
			c.state, c.failures = Closed, 0
		}
	}
}

// Middleware is the breaker as a pipeline step.
func (b *CircuitBreaker) Middleware() Middleware {
	return Middleware{Name: "circuit-breaker",
		Command: commandStep(breaker[Message, CommandResult](b, KindCommand, messageInfo)),
		Query:   queryStep(breaker[Message, any](b, KindQuery, messageInfo)),
		Event:   eventStep(breaker[platform.Envelope, struct{}](b, KindEvent, eventInfo)),
	}
}

func breaker[M, R any](b *CircuitBreaker, kind Kind, inf info[M]) step[M, R] {
	return func(next call[M, R]) call[M, R] {
		return func(ctx context.Context, m M) (R, error) {
			typ, id := inf(ctx, m)
			c := b.circuit(keyOf(ctx, kind, typ))
			if !b.allow(c) {
				var zero R
				return zero, platform.Errorf(platform.CodeCircuitOpen,
					"%s %s (%s): refused: the circuit is open after %d consecutive failures; it lets a trial call through %s after it opened",
					kind, typ, id, b.opts.Failures, b.opts.OpenFor)
			}
			r, err := next(ctx, m)
			b.record(c, err)
			return r, err
		}
	}
}
