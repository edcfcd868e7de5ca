package bridgeconfig

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// lagCollector reports, on every scrape, how far each outbound bridge is
// behind its stream, from its durable consumer: read when asked, never
// stale. Inbound lag lives in the other broker and is its to report.
type lagCollector struct {
	s   *Set
	lag *prometheus.Desc
}

func newLagCollector(s *Set) *lagCollector {
	return &lagCollector{s: s, lag: prometheus.NewDesc("lexigram_bridge_lag_messages",
		"Messages of an outbound bridge's stream the broker has not confirmed yet: not yet taken plus in flight.",
		[]string{"bridge"}, nil)}
}

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.lag }

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, r := range c.s.running {
		if r.out == nil {
			continue
		}
		cons, err := c.s.js.Consumer(ctx, r.stream, r.cfg.Name)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(c.lag, err)
			continue
		}
		info := cons.CachedInfo() // fetched by Consumer just now
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(info.NumPending)+float64(info.NumAckPending), r.cfg.Name)
	}
}
