package main

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

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
