package sagas

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is a Prometheus collector for saga managers. Register it once
// (prometheus.MustRegister(m)) and pass it in Options.Metrics:
//
//   - lexigram_saga_instances_total{type,outcome}: instances started,
//     completed, compensated, timed_out, parked (stuck: parked or
//     compensation_failed).
//   - lexigram_saga_events_total{type,outcome}: events for the type's
//     instances by what became of them: delivered, duplicate, not_found
//     (no instance, or a finished one), unhandled (the instance has no
//     wait ahead for it).
//   - lexigram_saga_stale_timer_fires_total{type}: timers that fired after
//     their wait ended (a cancel that lost the race with the fire).
//   - lexigram_saga_step_seconds{type,step,outcome}: how long actions,
//     compensations and waits' event handling take, by outcome.
type Metrics struct {
	instances, events, stale *prometheus.CounterVec
	seconds                  *prometheus.HistogramVec
}

// NewMetrics returns a collector to register.
func NewMetrics() *Metrics {
	return &Metrics{
		instances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lexigram_saga_instances_total", Help: "Saga instances by what happened to them: started, completed, compensated, timed_out, parked.",
		}, []string{"type", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lexigram_saga_events_total", Help: "Events for saga instances by outcome: delivered, duplicate, not_found, unhandled.",
		}, []string{"type", "outcome"}),
		stale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lexigram_saga_stale_timer_fires_total", Help: "Saga timers that fired after their wait had ended; ignored.",
		}, []string{"type"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lexigram_saga_step_seconds", Help: "Time saga steps take (actions, compensations, waits taking their event), by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10), // 100µs to 26s
		}, []string{"type", "step", "outcome"}),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.instances.Describe(ch)
	m.events.Describe(ch)
	m.stale.Describe(ch)
	m.seconds.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.instances.Collect(ch)
	m.events.Collect(ch)
	m.stale.Collect(ch)
	m.seconds.Collect(ch)
}

// The methods below do nothing on a nil *Metrics: a manager without
// metrics pays one comparison.

func (m *Metrics) instance(sagaType, outcome string) {
	if m != nil {
		m.instances.WithLabelValues(sagaType, outcome).Inc()
	}
}

func (m *Metrics) event(sagaType, outcome string) {
	if m != nil {
		m.events.WithLabelValues(sagaType, outcome).Inc()
	}
}

func (m *Metrics) staleFire(sagaType string) {
	if m != nil {
		m.stale.WithLabelValues(sagaType).Inc()
	}
}

func (m *Metrics) step(sagaType, step, outcome string, took time.Duration) {
	if m != nil {
		m.seconds.WithLabelValues(sagaType, step, outcome).Observe(took.Seconds())
	}
}

// finished counts an instance coming to rest in a final or stuck state.
func (m *Metrics) finished(in *Instance) {
	switch in.State {
	case Completed:
		m.instance(in.Type, "completed")
	case Compensated:
		m.instance(in.Type, "compensated")
	case Parked, CompensationFailed:
		m.instance(in.Type, "parked")
	}
}
