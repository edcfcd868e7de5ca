package bridges

import (
	"sync"
	"sync/atomic"
	"time"
)

// Counts are what one bridge has done since it started: the figures its
// lexigram_bridge_* metrics count (kept whether or not the Metrics option
// is set), and its last error. Dashboards derive rates from two reads.
// Outbound.Counts and Inbound.Counts read them.
type Counts struct {
	Moved        uint64 // messages moved, confirmed by the destination
	Bytes        uint64 // their payload bytes
	Errors       uint64 // failed attempts to move a message; each retry counts
	DeadLettered uint64 // messages sent to the dead-letter subject
	Skipped      uint64 // events filtered out by event type
	// LastError is the last failed attempt's error, or the reason of the
	// last message dead-lettered; "" if none. LastErrorTime is when.
	LastError     string
	LastErrorTime time.Time
}

// tally keeps one bridge's Counts.
type tally struct {
	moved, bytes, errs, dead, skipped atomic.Uint64

	mu       sync.Mutex
	lastErr  string
	lastTime time.Time
}

func (t *tally) failed(err error) {
	if err == nil {
		return
	}
	t.mu.Lock()
	t.lastErr, t.lastTime = err.Error(), time.Now()
	t.mu.Unlock()
}

func (t *tally) counts() Counts {
	c := Counts{Moved: t.moved.Load(), Bytes: t.bytes.Load(), Errors: t.errs.Load(), DeadLettered: t.dead.Load(), Skipped: t.skipped.Load()}
	t.mu.Lock()
	c.LastError, c.LastErrorTime = t.lastErr, t.lastTime
	t.mu.Unlock()
	return c
}

// Counts reports what the bridge has done since it started.
func (o *Outbound) Counts() Counts { return o.m.counts() }

// Counts reports what the bridge has done since it started.
func (in *Inbound) Counts() Counts { return in.m.counts() }
