package bridges

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff spaces retries: Min, doubling up to Max, each with up to a
// fifth of random jitter so that many bridges do not hammer a broker that
// comes back all at once. The zero value waits 100ms to 10s.
type Backoff struct {
	Min, Max time.Duration
}

// Delay is the wait before retry n (0 for the first retry).
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi <= 0 {
		hi = 10 * time.Second
	}
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d + rand.N(d/5+1)
}

// Sleep waits Delay(n) or until ctx ends, and reports whether ctx is
// still alive.
func (b Backoff) Sleep(ctx context.Context, n int) bool {
	t := time.NewTimer(b.Delay(n))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
