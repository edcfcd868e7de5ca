package projections

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector of every projection's figures,
// read at each scrape (one head read for all of them). Register it with
// your registry: reg.MustRegister(m.Collector()).
func (m *Manager) Collector() prometheus.Collector { return &collector{m: m} }

var (
	labels     = []string{"projection"}
	descPos    = prometheus.NewDesc("lexigram_projection_position", "Last store position the projection applied in this process.", labels, nil)
	descHead   = prometheus.NewDesc("lexigram_projection_head", "The event store's last position when scraped.", labels, nil)
	descLag    = prometheus.NewDesc("lexigram_projection_lag", "Positions the projection is behind the store's head.", labels, nil)
	descRate   = prometheus.NewDesc("lexigram_projection_events_per_second", "Events read per second over the last ten seconds.", labels, nil)
	descRead   = prometheus.NewDesc("lexigram_projection_events_read_total", "Events read by the projection since this process started it.", labels, nil)
	descSkip   = prometheus.NewDesc("lexigram_projection_events_skipped_total", "Events that did not decode, skipped by the projection (SkipUndecodable) since this process started it.", labels, nil)
	descState  = prometheus.NewDesc("lexigram_projection_state", "1 for the projection's current state, 0 for the others.", []string{"projection", "state"}, nil)
	descActive = prometheus.NewDesc("lexigram_projection_active", "1 while this process holds the projection's lease and applies its events.", labels, nil)
	descGen    = prometheus.NewDesc("lexigram_projection_generation", "The generation readers see.", labels, nil)
	descRbDone = prometheus.NewDesc("lexigram_projection_rebuild_done_events", "Events the running rebuild has replayed.", labels, nil)
	descRbTot  = prometheus.NewDesc("lexigram_projection_rebuild_total_events", "Events the running rebuild has to replay in all (0: unknown).", labels, nil)
	descRbRate = prometheus.NewDesc("lexigram_projection_rebuild_events_per_second", "The running rebuild's replay rate.", labels, nil)
	descRbLeft = prometheus.NewDesc("lexigram_projection_rebuild_remaining_seconds", "Estimated time until the running rebuild catches up (0: unknown).", labels, nil)

	allStates = []State{Stopped, Running, CatchingUp, Live, Faulted, Rebuilding}
)

type collector struct{ m *Manager }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPos, descHead, descLag, descRate, descRead, descSkip, descState, descActive, descGen, descRbDone, descRbTot, descRbRate, descRbLeft} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	for _, s := range c.m.Statuses(ctx) {
		gauge(descPos, float64(s.Position), s.Name)
		gauge(descHead, float64(s.Head), s.Name)
		gauge(descLag, float64(s.Lag), s.Name)
		gauge(descRate, s.EventsPerSecond, s.Name)
		ch <- prometheus.MustNewConstMetric(descRead, prometheus.CounterValue, float64(s.Read), s.Name)
		ch <- prometheus.MustNewConstMetric(descSkip, prometheus.CounterValue, float64(s.Skipped), s.Name)
		for _, st := range allStates {
			v := 0.0
			if st == s.State {
				v = 1
			}
			gauge(descState, v, s.Name, string(st))
		}
		active := 0.0
		if s.Active {
			active = 1
		}
		gauge(descActive, active, s.Name)
		gauge(descGen, float64(s.Generation), s.Name)
		if r := s.Rebuild; r != nil && r.Finished.IsZero() {
			gauge(descRbDone, float64(r.Done), s.Name)
			gauge(descRbTot, float64(r.Total), s.Name)
			gauge(descRbRate, r.EventsPerSecond, s.Name)
			gauge(descRbLeft, r.Remaining.Seconds(), s.Name)
		}
	}
}
