package bridges

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a Prometheus collector for bridges. Register it once
// (prometheus.MustRegister(m)) and pass it in the Metrics option of every
// bridge:
//
//   - lexigram_bridge_messages_total{bridge,direction}: messages moved
//     (confirmed by the destination).
//   - lexigram_bridge_bytes_total{bridge,direction}: their payload bytes.
//   - lexigram_bridge_errors_total{bridge,direction}: failed attempts to
//     move a message (each retry counts).
//   - lexigram_bridge_dead_lettered_total{bridge,direction}: messages sent
//     to the dead-letter subject.
//   - lexigram_bridge_skipped_total{bridge,direction}: events filtered out
//     by event type.
//   - lexigram_bridge_broker_connected{bridge}: 1 while the broker answers,
//     0 during an outage.
type Metrics struct {
	moved, bytes, errs, dead, skipped *prometheus.CounterVec
	connected                         *prometheus.Desc

	mu      sync.Mutex
	bridges map[string]func() bool
}

// NewMetrics returns a collector to register.
func NewMetrics() *Metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"bridge", "direction"})
	}
	return &Metrics{
		moved:     counter("lexigram_bridge_messages_total", "Messages a bridge moved, confirmed by the destination."),
		bytes:     counter("lexigram_bridge_bytes_total", "Payload bytes of the messages a bridge moved."),
		errs:      counter("lexigram_bridge_errors_total", "Failed attempts to move a message; each retry counts."),
		dead:      counter("lexigram_bridge_dead_lettered_total", "Messages a bridge sent to its dead-letter subject."),
		skipped:   counter("lexigram_bridge_skipped_total", "Events a bridge filtered out by event type."),
		connected: prometheus.NewDesc("lexigram_bridge_broker_connected", "1 while the bridge's broker answers, 0 during an outage.", []string{"bridge"}, nil),
		bridges:   map[string]func() bool{},
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range []*prometheus.CounterVec{m.moved, m.bytes, m.errs, m.dead, m.skipped} {
		c.Describe(ch)
	}
	ch <- m.connected
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range []*prometheus.CounterVec{m.moved, m.bytes, m.errs, m.dead, m.skipped} {
		c.Collect(ch)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, up := range m.bridges {
		v := 0.0
		if up() {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(m.connected, prometheus.GaugeValue, v, name)
	}
}

// bridgeMetrics are one bridge's counters, resolved once, and its
// tally (Counts). Without Metrics (m nil) it keeps only the tally; a nil
// *bridgeMetrics counts nothing.
type bridgeMetrics struct {
	m                                 *Metrics
	name                              string
	moved, bytes, errs, dead, skipped prometheus.Counter
	t                                 tally
}

func (m *Metrics) add(name, direction string, connected func() bool) *bridgeMetrics {
	if m == nil {
		return &bridgeMetrics{name: name}
	}
	m.mu.Lock()
	m.bridges[name] = connected
	m.mu.Unlock()
	l := prometheus.Labels{"bridge": name, "direction": direction}
	return &bridgeMetrics{m: m, name: name,
		moved: m.moved.With(l), bytes: m.bytes.With(l), errs: m.errs.With(l), dead: m.dead.With(l), skipped: m.skipped.With(l)}
}

func (b *bridgeMetrics) remove() {
	if b == nil || b.m == nil {
		return
	}
	b.m.mu.Lock()
	delete(b.m.bridges, b.name)
	b.m.mu.Unlock()
}

func (b *bridgeMetrics) movedN(n, bytes int) {
	if b == nil {
		return
	}
	b.t.moved.Add(uint64(n))
	b.t.bytes.Add(uint64(bytes))
	if b.m != nil {
		b.moved.Add(float64(n))
		b.bytes.Add(float64(bytes))
	}
}

// errored counts a failed attempt to move a message; err is why.
func (b *bridgeMetrics) errored(err error) {
	if b == nil {
		return
	}
	b.t.errs.Add(1)
	b.t.failed(err)
	if b.m != nil {
		b.errs.Inc()
	}
}

// deadLettered counts a message dead-lettered; reason is why.
func (b *bridgeMetrics) deadLettered(reason error) {
	if b == nil {
		return
	}
	b.t.dead.Add(1)
	b.t.failed(reason)
	if b.m != nil {
		b.dead.Inc()
	}
}

func (b *bridgeMetrics) skip() {
	if b == nil {
		return
	}
	b.t.skipped.Add(1)
	if b.m != nil {
		b.skipped.Inc()
	}
}

func (b *bridgeMetrics) counts() Counts {
	if b == nil {
		return Counts{}
	}
	return b.t.counts()
}
