package webhook

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a Prometheus collector for webhook publishers. Register it
// once (prometheus.MustRegister(m)) and pass it in Options.Metrics of
// every publisher; endpoint names must then differ across them.
//
//   - lexigram_webhook_delivered_total{endpoint}: messages the endpoint
//     took (a 2xx).
//   - lexigram_webhook_failed_attempts_total{endpoint}: requests that did
//     not get a 2xx, each retry counted.
//   - lexigram_webhook_given_up_total{endpoint}: deliveries that failed
//     for good, whose messages the bridge dead-letters.
//   - lexigram_webhook_endpoint_disabled{endpoint}: 1 once the endpoint
//     answered 410 Gone.
//   - lexigram_webhook_circuit_open{endpoint}: 1 while the circuit is open
//     or half-open, 0 while closed.
//   - lexigram_webhook_in_flight{endpoint}: requests in flight.
type Metrics struct {
	delivered, failed, givenUp, disabled, circuit, inFlight *prometheus.Desc

	mu   sync.Mutex
	pubs map[*Publisher]bool
}

// NewMetrics returns a collector to register.
func NewMetrics() *Metrics {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"endpoint"}, nil)
	}
	return &Metrics{
		delivered: desc("lexigram_webhook_delivered_total", "Messages a webhook endpoint took (a 2xx)."),
		failed:    desc("lexigram_webhook_failed_attempts_total", "Webhook requests that did not get a 2xx; each retry counts."),
		givenUp:   desc("lexigram_webhook_given_up_total", "Webhook deliveries that failed for good; the bridge dead-letters their messages."),
		disabled:  desc("lexigram_webhook_endpoint_disabled", "1 once a webhook endpoint answered 410 Gone."),
		circuit:   desc("lexigram_webhook_circuit_open", "1 while a webhook endpoint's circuit is open or half-open."),
		inFlight:  desc("lexigram_webhook_in_flight", "Webhook requests in flight."),
		pubs:      map[*Publisher]bool{},
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.delivered, m.failed, m.givenUp, m.disabled, m.circuit, m.inFlight} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for p := range m.pubs {
		for _, e := range p.eps {
			n := e.cfg.Name
			ch <- prometheus.MustNewConstMetric(m.delivered, prometheus.CounterValue, float64(e.delivered.Load()), n)
			ch <- prometheus.MustNewConstMetric(m.failed, prometheus.CounterValue, float64(e.failedAttempts.Load()), n)
			ch <- prometheus.MustNewConstMetric(m.givenUp, prometheus.CounterValue, float64(e.deadLettered.Load()), n)
			ch <- prometheus.MustNewConstMetric(m.disabled, prometheus.GaugeValue, flag(e.disabled.Load()), n)
			ch <- prometheus.MustNewConstMetric(m.circuit, prometheus.GaugeValue, flag(e.breaker.state() != CircuitClosed), n)
			ch <- prometheus.MustNewConstMetric(m.inFlight, prometheus.GaugeValue, float64(e.inFlight.Load()), n)
		}
	}
}

func (m *Metrics) add(p *Publisher) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.pubs[p] = true
	m.mu.Unlock()
}

func (m *Metrics) remove(p *Publisher) {
	if m == nil {
		return
	}
	m.mu.Lock()
	delete(m.pubs, p)
	m.mu.Unlock()
}
