package durable

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of one delivery, the values of the outcome label.
const (
	outcomeOK = iota
	outcomeSkipped
	outcomeRetried
	outcomeDead
	outcomeUndecodable
)

var outcomeNames = [...]string{"ok", "skipped", "retried", "dead_lettered", "undecodable"}

// Metrics is a Prometheus collector for durable handlers. Register it once
// (prometheus.MustRegister(m)) and pass it in Options.Metrics of every
// handler:
//
//   - lexigram_durable_events_total{handler,outcome}: deliveries by outcome:
//     ok, skipped (a type the handler does not handle, or a retired event),
//     retried (failed, redelivered later), dead_lettered, undecodable (an
//     event that does not decode, skipped with Options.SkipUndecodable).
//   - lexigram_durable_dead_lettered_total{handler,reason}: max_deliveries or terminated.
//   - lexigram_durable_handler_seconds{handler}: how long handler calls take (decoding included).
//   - lexigram_durable_dlq_entries{handler}: entries in the DLQ now.
//   - lexigram_durable_consumer_pending{handler}: events not yet delivered (the lag).
//   - lexigram_durable_consumer_ack_pending{handler}: delivered, not yet acknowledged.
//
// The last three are read from the server when scraped, within Timeout.
type Metrics struct {
	// Timeout bounds the server calls of one scrape. Default 2s.
	Timeout time.Duration

	events, dead                *prometheus.CounterVec
	seconds                     *prometheus.HistogramVec
	dlqSize, pending, ackPendng *prometheus.Desc

	mu       sync.Mutex
	handlers map[string]*Handler
}

// NewMetrics returns a collector to register.
func NewMetrics() *Metrics {
	return &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lexigram_durable_events_total", Help: "Deliveries to durable handlers by outcome: ok, skipped, retried, dead_lettered, undecodable.",
		}, []string{"handler", "outcome"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lexigram_durable_dead_lettered_total", Help: "Events durable handlers sent to the DLQ, by reason: max_deliveries or terminated.",
		}, []string{"handler", "reason"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lexigram_durable_handler_seconds", Help: "Time durable handler calls take, decoding the event included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs to 26s
		}, []string{"handler"}),
		dlqSize:   prometheus.NewDesc("lexigram_durable_dlq_entries", "Entries in the DLQ.", []string{"handler"}, nil),
		pending:   prometheus.NewDesc("lexigram_durable_consumer_pending", "Events the handler's consumer has not delivered yet: its lag.", []string{"handler"}, nil),
		ackPendng: prometheus.NewDesc("lexigram_durable_consumer_ack_pending", "Events delivered to the handler and not yet acknowledged.", []string{"handler"}, nil),
		handlers:  map[string]*Handler{},
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.events.Describe(ch)
	m.dead.Describe(ch)
	m.seconds.Describe(ch)
	ch <- m.dlqSize
	ch <- m.pending
	ch <- m.ackPendng
}

// Collect implements prometheus.Collector. A handler whose figures the
// server does not give in time is left out of this scrape.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.events.Collect(ch)
	m.dead.Collect(ch)
	m.seconds.Collect(ch)
	m.mu.Lock()
	hs := make([]*Handler, 0, len(m.handlers))
	for _, h := range m.handlers {
		hs = append(hs, h)
	}
	m.mu.Unlock()
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, h := range hs {
		if info, err := h.cons.Info(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(info.NumPending), h.name)
			ch <- prometheus.MustNewConstMetric(m.ackPendng, prometheus.GaugeValue, float64(info.NumAckPending), h.name)
		}
		if n, err := h.dlq.Size(ctx, h.name); err == nil {
			ch <- prometheus.MustNewConstMetric(m.dlqSize, prometheus.GaugeValue, float64(n), h.name)
		}
	}
}

// handlerMetrics are one handler's counters, resolved once so that
// counting an event is one atomic add.
type handlerMetrics struct {
	m        *Metrics
	h        *Handler
	outcomes [len(outcomeNames)]prometheus.Counter
	seconds  prometheus.Observer
	dead     map[Reason]prometheus.Counter
}

func (m *Metrics) add(h *Handler) *handlerMetrics {
	hm := &handlerMetrics{m: m, h: h, dead: map[Reason]prometheus.Counter{}, seconds: m.seconds.WithLabelValues(h.name)}
	for i, o := range outcomeNames {
		hm.outcomes[i] = m.events.WithLabelValues(h.name, o)
	}
	for _, r := range []Reason{ReasonMaxDeliveries, ReasonTerminated} {
		hm.dead[r] = m.dead.WithLabelValues(h.name, string(r))
	}
	m.mu.Lock()
	m.handlers[h.name] = h
	m.mu.Unlock()
	return hm
}

func (hm *handlerMetrics) remove() {
	hm.m.mu.Lock()
	if hm.m.handlers[hm.h.name] == hm.h {
		delete(hm.m.handlers, hm.h.name)
	}
	hm.m.mu.Unlock()
}
