package main

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
)

// streamCollector reports the event stream's state on every scrape, as
// client_golang's collectors do for the process: read when asked, never
// stale.
type streamCollector struct {
	store     *lxjs.EventStore
	nc        *nats.Conn
	events    *prometheus.Desc
	bytes     *prometheus.Desc
	lastPos   *prometheus.Desc
	connected *prometheus.Desc
}

func newStreamCollector(store *lxjs.EventStore, nc *nats.Conn) *streamCollector {
	labels := prometheus.Labels{"stream": store.StreamName()}
	return &streamCollector{
		store:     store,
		nc:        nc,
		events:    prometheus.NewDesc("lexigram_store_events", "Events stored in the event stream.", nil, labels),
		bytes:     prometheus.NewDesc("lexigram_store_bytes", "Bytes stored in the event stream.", nil, labels),
		lastPos:   prometheus.NewDesc("lexigram_store_last_position", "Position of the newest event.", nil, labels),
		connected: prometheus.NewDesc("lexigram_nats_connected", "1 when the NATS connection is up.", nil, nil),
	}
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.events
	ch <- c.bytes
	ch <- c.lastPos
	ch <- c.connected
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if c.nc.IsConnected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, up)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.store.State(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.events, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.GaugeValue, float64(st.Events))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(c.lastPos, prometheus.GaugeValue, float64(st.LastPosition))
}

// consumerCollector reports, on every scrape, each durable consumer of the
// event stream (durable handlers are named after their consumer): how far
// behind the stream it is, what it has in flight, and its dead letters.
type consumerCollector struct {
	stream     jetstream.Stream
	dlq        *durable.DLQ
	pending    *prometheus.Desc
	ackPending *prometheus.Desc
	redeliver  *prometheus.Desc
	dead       *prometheus.Desc
}

func newConsumerCollector(stream jetstream.Stream, dlq *durable.DLQ) *consumerCollector {
	labels := prometheus.Labels{"stream": stream.CachedInfo().Config.Name}
	names := []string{"consumer"}
	return &consumerCollector{
		stream:     stream,
		dlq:        dlq,
		pending:    prometheus.NewDesc("lexigram_consumer_pending_events", "Events of the stream the consumer has not been delivered yet: its lag.", names, labels),
		ackPending: prometheus.NewDesc("lexigram_consumer_ack_pending_events", "Events delivered to the consumer and not yet acknowledged.", names, labels),
		redeliver:  prometheus.NewDesc("lexigram_consumer_redelivered_events", "Events delivered more than once and not yet acknowledged.", names, labels),
		dead:       prometheus.NewDesc("lexigram_dlq_entries", "Dead letters of the durable handler in the DLQ.", []string{"handler"}, nil),
	}
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redeliver
	ch <- c.dead
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	list := c.stream.ListConsumers(ctx)
	for info := range list.Info() {
		if info.Config.Durable == "" {
			continue // ordered and other ephemeral readers come and go
		}
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(info.NumPending), info.Name)
		ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(info.NumAckPending), info.Name)
		ch <- prometheus.MustNewConstMetric(c.redeliver, prometheus.GaugeValue, float64(info.NumRedelivered), info.Name)
		if n, err := c.dlq.Size(ctx, info.Name); err != nil {
			ch <- prometheus.NewInvalidMetric(c.dead, err)
		} else {
			ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(n), info.Name)
		}
	}
	if err := list.Err(); err != nil {
		ch <- prometheus.NewInvalidMetric(c.pending, err)
	}
}
