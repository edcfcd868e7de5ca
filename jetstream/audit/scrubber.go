package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ScrubOptions configure a Scrubber.
type ScrubOptions struct {
	// Check is what each pass checks; Check.Rate (events per second) must
	// be positive: a scrubber runs beside the node's real work.
	Check Options
	// Interval is the least time between the starts of two passes; a
	// pass that takes longer is followed by the next at once. 0 means 1h.
	Interval time.Duration
	// Logger reports each pass; nil: slog.Default().
	Logger *slog.Logger
}

// Scrubber checks the stream in the background, pass after pass, at a
// bounded rate. It is a prometheus.Collector:
//
//	lexigram_audit_findings_total{kind}       findings, counted in every pass that finds them
//	lexigram_audit_last_findings{kind}        findings of the last finished pass
//	lexigram_audit_passes_total               passes finished
//	lexigram_audit_pass_errors_total          passes that could not finish (the error is logged)
//	lexigram_audit_events_checked_total       events checked, over all passes
//	lexigram_audit_progress_events            events checked in the pass under way
//	lexigram_audit_progress_total_events      events the pass under way checks
//	lexigram_audit_last_pass_timestamp_seconds when the last pass finished
//	lexigram_audit_last_pass_duration_seconds  how long it took
//
// Every kind of problem is exported from the start, at zero, so that an
// alert on increase(lexigram_audit_findings_total[...]) > 0 needs nothing
// else.
type Scrubber struct {
	js   jetstream.JetStream
	opts ScrubOptions
	log  *slog.Logger

	findings      *prometheus.CounterVec
	lastFindings  *prometheus.GaugeVec
	passes        prometheus.Counter
	passErrors    prometheus.Counter
	checked       prometheus.Counter
	progressDone  prometheus.Gauge
	progressTotal prometheus.Gauge
	lastEnd       prometheus.Gauge
	lastDuration  prometheus.Gauge

	mu   sync.Mutex
	last *Report
	done chan struct{} // closed and replaced after every pass
}

// NewScrubber returns a scrubber; Run or Start runs it.
func NewScrubber(js jetstream.JetStream, opts ScrubOptions) (*Scrubber, error) {
	if opts.Check.Rate <= 0 {
		return nil, fmt.Errorf("audit: scrub rate %v events/s: a scrubber needs a positive rate (store.scrub_rate), e.g. 500", opts.Check.Rate)
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	opts.Check = opts.Check.withDefaults()
	labels := prometheus.Labels{"stream": opts.Check.Stream}
	s := &Scrubber{
		js: js, opts: opts, log: opts.Logger, done: make(chan struct{}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lexigram_audit_findings_total",
			Help: "Integrity findings of the background audit by kind, counted in every pass that finds them.", ConstLabels: labels}, []string{"kind"}),
		lastFindings: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "lexigram_audit_last_findings",
			Help: "Integrity findings of the last finished audit pass, by kind.", ConstLabels: labels}, []string{"kind"}),
		passes: prometheus.NewCounter(prometheus.CounterOpts{Name: "lexigram_audit_passes_total",
			Help: "Audit passes finished.", ConstLabels: labels}),
		passErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "lexigram_audit_pass_errors_total",
			Help: "Audit passes that could not finish.", ConstLabels: labels}),
		checked: prometheus.NewCounter(prometheus.CounterOpts{Name: "lexigram_audit_events_checked_total",
			Help: "Events the background audit checked, over all passes.", ConstLabels: labels}),
		progressDone: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lexigram_audit_progress_events",
			Help: "Events checked so far in the audit pass under way.", ConstLabels: labels}),
		progressTotal: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lexigram_audit_progress_total_events",
			Help: "Events the audit pass under way checks.", ConstLabels: labels}),
		lastEnd: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lexigram_audit_last_pass_timestamp_seconds",
			Help: "When the last audit pass finished (Unix time).", ConstLabels: labels}),
		lastDuration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lexigram_audit_last_pass_duration_seconds",
			Help: "How long the last audit pass took.", ConstLabels: labels}),
	}
	for _, k := range Kinds {
		s.findings.WithLabelValues(string(k))
		s.lastFindings.WithLabelValues(string(k))
	}
	return s, nil
}

// Describe implements prometheus.Collector.
func (s *Scrubber) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (s *Scrubber) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.collectors() {
		c.Collect(ch)
	}
}

func (s *Scrubber) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.findings, s.lastFindings, s.passes, s.passErrors, s.checked,
		s.progressDone, s.progressTotal, s.lastEnd, s.lastDuration}
}

// Last returns the report of the last pass that finished, or nil, and a
// channel closed when the next pass ends (finished or failed).
func (s *Scrubber) Last() (*Report, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.done
}

// Start runs the scrubber in the background until stop is called or ctx
// ends; stop returns once it has stopped.
func (s *Scrubber) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		s.Run(ctx)
	}()
	return func() {
		cancel()
		<-finished
	}
}

// Run checks the stream pass after pass until ctx ends.
func (s *Scrubber) Run(ctx context.Context) {
	s.log.InfoContext(ctx, "integrity audit in the background", "stream", s.opts.Check.Stream,
		"rate_events_per_s", s.opts.Check.Rate, "interval", s.opts.Interval)
	for {
		began := time.Now()
		_, _ = s.Pass(ctx)
		wait := time.NewTimer(max(0, s.opts.Interval-time.Since(began)))
		select {
		case <-ctx.Done():
			wait.Stop()
			return
		case <-wait.C:
		}
	}
}

// Pass runs one check and publishes what it found; Run runs passes.
func (s *Scrubber) Pass(ctx context.Context) (*Report, error) {
	opts := s.opts.Check
	var seen uint64
	opts.Progress = func(p Progress) {
		s.checked.Add(float64(p.Checked - seen))
		seen = p.Checked
		s.progressDone.Set(float64(p.Checked))
		s.progressTotal.Set(float64(p.Total))
	}
	s.progressDone.Set(0)
	rep, err := Check(ctx, s.js, opts)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil, err
	}
	defer func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if rep != nil {
			s.last = rep
		}
		close(s.done)
		s.done = make(chan struct{})
	}()
	if err != nil {
		s.passErrors.Inc()
		s.log.WarnContext(ctx, "integrity audit pass failed", "stream", opts.Stream, "err", err)
		return nil, err
	}
	for _, k := range Kinds {
		s.findings.WithLabelValues(string(k)).Add(float64(rep.Counts[k]))
		s.lastFindings.WithLabelValues(string(k)).Set(float64(rep.Counts[k]))
	}
	s.passes.Inc()
	s.lastEnd.Set(float64(time.Now().Unix()))
	s.lastDuration.Set(rep.Elapsed.Seconds())
	attrs := []any{"stream", opts.Stream, "events", rep.Events, "aggregates", rep.Aggregates, "problems", rep.Problems(), "took", rep.Elapsed.Round(time.Millisecond)}
	if rep.Clean() {
		s.log.InfoContext(ctx, "integrity audit pass clean", attrs...)
	} else {
		for _, f := range rep.Findings {
			if f.Kind.Problem() {
				attrs = append(attrs, "first", f.String())
				break
			}
		}
		s.log.ErrorContext(ctx, "integrity audit found problems: run lexigram audit for the list", attrs...)
	}
	return rep, nil
}
