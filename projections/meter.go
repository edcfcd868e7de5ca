package projections

import (
	"sync"
	"time"
)

// meter counts events and tells their recent rate, for
// Status.EventsPerSecond and a rebuild's estimate of the time left; a ring
// of samples keeps it cheap on the applier's path.
type meter struct {
	mu      sync.Mutex
	total   uint64
	samples [16]sample // ring; a sample at most every half second
	n, next int
}

type sample struct {
	t     time.Time
	total uint64 // the count before the events added at t
}

const rateWindow = 10 * time.Second

func (m *meter) add(n int) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	last := m.samples[(m.next+len(m.samples)-1)%len(m.samples)]
	if m.n == 0 || now.Sub(last.t) >= rateWindow/time.Duration(len(m.samples)) {
		m.samples[m.next] = sample{t: now, total: m.total}
		m.next = (m.next + 1) % len(m.samples)
		m.n = min(m.n+1, len(m.samples))
	}
	m.total += uint64(n)
}

func (m *meter) count() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}

// rate is the events per second over about the last ten seconds.
func (m *meter) rate(now time.Time) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := m.n; i > 0; i-- {
		s := m.samples[(m.next-i+len(m.samples))%len(m.samples)]
		if now.Sub(s.t) <= rateWindow {
			return float64(m.total-s.total) / max(now.Sub(s.t), time.Second).Seconds()
		}
	}
	return 0
}
