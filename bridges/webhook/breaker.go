package webhook

import (
	"sync"
	"time"
)

// Circuit states, as Endpoints reports them.
const (
	CircuitClosed   = "closed"
	CircuitOpen     = "open"
	CircuitHalfOpen = "half-open"
)

// ticket is what breaker.allow hands out.
type ticket int

const (
	refused ticket = iota // the circuit is open: no request
	normal                // the circuit is closed
	probe                 // the one request of a half-open circuit
)

// breaker is one endpoint's circuit breaker. Every ticket other than
// refused is settled by exactly one of success, failure or abort.
type breaker struct {
	threshold int
	openFor   time.Duration

	mu       sync.Mutex
	failures int       // in a row, while closed
	until    time.Time // zero: closed; else open until then, half-open after
	probing  bool      // a probe is in flight
	// onChange, set, is told of each change, outside the lock.
	onChange func(from, to string, failures int)
}

func (b *breaker) allow() ticket {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.until.IsZero():
		return normal
	case time.Now().Before(b.until), b.probing:
		return refused
	}
	b.probing = true
	return probe
}

// success closes the circuit: the endpoint answers.
func (b *breaker) success(t ticket) {
	b.mu.Lock()
	from := b.stateLocked()
	b.failures = 0
	if t == probe {
		b.probing = false
	}
	if !b.until.IsZero() && (t == probe || !b.probing) {
		b.until = time.Time{}
	}
	to := b.stateLocked()
	b.mu.Unlock()
	b.changed(from, to, 0)
}

// failure counts a failed request; the threshold, or a failed probe,
// opens the circuit.
func (b *breaker) failure(t ticket) {
	b.mu.Lock()
	from := b.stateLocked()
	switch {
	case t == probe:
		b.probing = false
		b.until = time.Now().Add(b.openFor)
	case b.until.IsZero():
		b.failures++
		if b.failures >= b.threshold {
			b.until = time.Now().Add(b.openFor)
		}
	}
	// A request let through before the circuit opened that fails late
	// changes nothing.
	to, n := b.stateLocked(), b.failures
	b.mu.Unlock()
	b.changed(from, to, n)
}

// abort gives a ticket back without an outcome (our own cancellation).
func (b *breaker) abort(t ticket) {
	if t != probe {
		return
	}
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

func (b *breaker) state() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stateLocked()
}

func (b *breaker) openUntil() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.until
}

func (b *breaker) stateLocked() string {
	switch {
	case b.until.IsZero():
		return CircuitClosed
	case time.Now().Before(b.until):
		return CircuitOpen
	}
	return CircuitHalfOpen
}

func (b *breaker) changed(from, to string, failures int) {
	// open -> half-open happens with time, not here; report the moves
	// between closed and open only.
	if b.onChange != nil && (from == CircuitClosed) != (to == CircuitClosed) {
		b.onChange(from, to, failures)
	}
}
