package handlers

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexigram/events/platform"
)

// MetricsOptions configure NewMetrics. The zero value works.
type MetricsOptions struct {
	Namespace string    // metric name prefix; "": "lexigram"
	Buckets   []float64 // latency buckets in seconds; nil: 100µs to 10s
}

// Metrics is a Prometheus collector of the buses' figures; register it
// with your registry (the node serves it on /metrics):
//
//	lexigram_handler_handled_total{kind,type,handler,outcome}  messages handled; outcome is "ok" or the error code
//	lexigram_handler_duration_seconds{kind,type,handler}        handler latency
//	lexigram_handler_in_flight{kind,type,handler}               handlers running now
//	lexigram_handler_retries_total{kind,type,handler}           retries by the Retry middleware
//	lexigram_event_bus_queued{type}                             events waiting in the event bus's channel of a type
//
// handler is the event handler's name, empty for commands and queries.
type Metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
	retries  *prometheus.CounterVec
	queued   *prometheus.GaugeVec

	mu     sync.RWMutex
	series map[seriesKey]*series // the label sets seen, resolved once
}

type seriesKey struct {
	kind         Kind
	typ, handler string
}

// keyOf is the series of a call. Only event handlers have names: for
// commands and queries the context is not searched for one.
func keyOf(ctx context.Context, kind Kind, typ string) seriesKey {
	k := seriesKey{kind: kind, typ: typ}
	if kind == KindEvent {
		k.handler = HandlerName(ctx)
	}
	return k
}

type series struct {
	ok       prometheus.Counter
	duration prometheus.Observer
	inflight prometheus.Gauge
}

// NewMetrics returns the collector.
func NewMetrics(opts MetricsOptions) *Metrics {
	ns := opts.Namespace
	if ns == "" {
		ns = "lexigram"
	}
	buckets := opts.Buckets
	if buckets == nil {
		buckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	}
	labels := []string{"kind", "type", "handler"}
	return &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "handler", Name: "handled_total",
			Help: "Commands, queries and events handled, by outcome: ok or the error code."}, append(labels, "outcome")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: "handler", Name: "duration_seconds",
			Help: "Time handlers took, failures included.", Buckets: buckets}, labels),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "handler", Name: "in_flight",
			Help: "Handlers running now."}, labels),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "handler", Name: "retries_total",
			Help: "Retries by the Retry middleware."}, labels),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "event_bus", Name: "queued",
			Help: "Events waiting in the event bus's bounded channel of their type."}, []string{"type"}),
		series: map[seriesKey]*series{},
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.handled.Describe(ch)
	m.duration.Describe(ch)
	m.inflight.Describe(ch)
	m.retries.Describe(ch)
	m.queued.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.handled.Collect(ch)
	m.duration.Collect(ch)
	m.inflight.Collect(ch)
	m.retries.Collect(ch)
	m.queued.Collect(ch)
}

func (m *Metrics) get(k seriesKey) *series {
	m.mu.RLock()
	s := m.series[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.series[k]; s == nil {
		s = &series{
			ok:       m.handled.WithLabelValues(string(k.kind), k.typ, k.handler, "ok"),
			duration: m.duration.WithLabelValues(string(k.kind), k.typ, k.handler),
			inflight: m.inflight.WithLabelValues(string(k.kind), k.typ, k.handler),
		}
		m.series[k] = s
	}
	return s
}

func (m *Metrics) retried(kind Kind, typ, handler string) {
	m.retries.WithLabelValues(string(kind), typ, handler).Inc()
}

// Middleware counts each call, its outcome and its latency. Put it
// outside Retry to count a message once however often it was tried.
func (m *Metrics) Middleware() Middleware {
	return Middleware{Name: "metrics",
		Command: commandStep(measure[Message, CommandResult](m, KindCommand, messageInfo)),
		Query:   queryStep(measure[Message, any](m, KindQuery, messageInfo)),
		Event:   eventStep(measure[platform.Envelope, struct{}](m, KindEvent, eventInfo)),
	}
}

func measure[M, R any](m *Metrics, kind Kind, inf info[M]) step[M, R] {
	return func(next call[M, R]) call[M, R] {
		return func(ctx context.Context, msg M) (R, error) {
			typ, _ := inf(ctx, msg)
			k := keyOf(ctx, kind, typ)
			s := m.get(k)
			s.inflight.Inc()
			start := time.Now()
			r, err := next(ctx, msg)
			s.duration.Observe(time.Since(start).Seconds())
			s.inflight.Dec()
			if err == nil {
				s.ok.Inc()
			} else {
				outcome := string(platform.CodeOf(err))
				if outcome == "" {
					outcome = "error"
				}
				m.handled.WithLabelValues(string(kind), typ, k.handler, outcome).Inc()
			}
			return r, err
		}
	}
}
