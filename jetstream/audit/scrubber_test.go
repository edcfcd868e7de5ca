package audit_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/jetstream/audit"
)

// TestScrubber runs the background audit at 1,000 events/s over 300
// events with a lost one: a pass takes at least 0.3s, finds the loss,
// and the metrics say so (and count it again in the next pass); stop
// ends it.
func TestScrubber(t *testing.T) {
	e := newEnv(t)
	var middle uint64
	for i := range 10 {
		p := e.appendN(agg(string(rune('a'+i))), 30, 5)
		if i == 4 {
			middle = p[15]
		}
	}
	if err := e.stream.DeleteMsg(t.Context(), middle); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.NewScrubber(e.js, audit.ScrubOptions{}); err == nil || !strings.Contains(err.Error(), "store.scrub_rate") {
		t.Fatalf("a scrubber without a rate: %v", err)
	}
	s, err := audit.NewScrubber(e.js, audit.ScrubOptions{Check: audit.Options{Rate: 1000, ProgressEvery: 50 * time.Millisecond},
		Interval: time.Hour, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	metric := func(name string) float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range families {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				kind := ""
				for _, l := range m.GetLabel() {
					if l.GetName() == "kind" {
						kind = l.GetValue()
					}
				}
				if kind == "" || kind == "lost-middle" {
					return m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if n := metric("lexigram_audit_findings_total"); n != 0 {
		t.Fatalf("before any pass: %v lost-middle findings", n)
	}
	if n, err := testutil.GatherAndCount(reg, "lexigram_audit_findings_total"); err != nil || n != len(audit.Kinds) {
		t.Fatalf("findings_total exported for %d kinds (%v), want every kind (%d) at zero", n, err, len(audit.Kinds))
	}
	// Two passes, one after the other.
	began := time.Now()
	rep, err := s.Pass(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 290*time.Millisecond || rep.Elapsed < 290*time.Millisecond {
		t.Fatalf("a pass over 299 events at 1000/s took %v (report %v): the rate does not hold", took, rep.Elapsed)
	}
	f := only(t, rep, map[audit.Kind]int{audit.LostMiddle: 1})
	want(t, f[0], audit.LostMiddle, "doc/e", [2]uint64{15, 15}, middle-1, middle+1)
	for name, want := range map[string]float64{
		"lexigram_audit_findings_total": 1, "lexigram_audit_last_findings": 1, "lexigram_audit_passes_total": 1,
		"lexigram_audit_events_checked_total": 299, "lexigram_audit_progress_events": 299, "lexigram_audit_progress_total_events": 299,
	} {
		if v := metric(name); v != want {
			t.Errorf("after one pass: %s = %v, want %v", name, v, want)
		}
	}
	if d, end := metric("lexigram_audit_last_pass_duration_seconds"), metric("lexigram_audit_last_pass_timestamp_seconds"); d < 0.29 || end < float64(began.Unix()) {
		t.Errorf("last pass duration %v, end %v", d, end)
	}
	if _, err := s.Pass(t.Context()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		"lexigram_audit_findings_total": 2, "lexigram_audit_last_findings": 1, "lexigram_audit_passes_total": 2, "lexigram_audit_events_checked_total": 598,
	} {
		if v := metric(name); v != want {
			t.Errorf("after two passes: %s = %v, want %v", name, v, want)
		}
	}

	// In the background: a pass, then the wait for the next, which stop
	// ends.
	_, next := s.Last()
	stop := s.Start(t.Context())
	wait := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: not within 30s", what)
		}
	}
	wait("a background pass", next)
	if last, _ := s.Last(); last == nil || last.Counts[audit.LostMiddle] != 1 {
		t.Fatalf("the background pass: %+v", last)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	wait("stop", stopped)
	if v := metric("lexigram_audit_passes_total"); v != 3 {
		t.Errorf("passes after the background one: %v", v)
	}
}
