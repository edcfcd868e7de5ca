package dashboard

import (
	"testing"
	"time"
)

func TestRatesFromSuccessiveReadings(t *testing.T) {
	var r rates
	t0 := time.Unix(1000, 0)
	if _, ok := r.update(t0, map[string]uint64{"append": 10, "acked/a": 5}); ok {
		t.Fatal("a first reading gave rates")
	}
	per, ok := r.update(t0.Add(2*time.Second), map[string]uint64{"append": 30, "acked/a": 9, "acked/b": 100})
	if !ok || per["append"] != 10 || per["acked/a"] != 2 {
		t.Fatalf("rates %v (%v): want append 10/s, acked/a 2/s", per, ok)
	}
	if _, has := per["acked/b"]; has {
		t.Error("a consumer new since the last reading has a rate")
	}
	// acked/a made anew (its sequence went back): no rate this time.
	per, _ = r.update(t0.Add(3*time.Second), map[string]uint64{"append": 30, "acked/a": 1, "acked/b": 104})
	if _, has := per["acked/a"]; has || per["append"] != 0 || sum(per, "acked/") != 4 {
		t.Errorf("rates %v: want no rate for the recreated consumer, append 0/s, acked 4/s in all", per)
	}
	if got := (rate{}).String(); got != "—" {
		t.Errorf("an unknown rate shows %q", got)
	}
	if got := (rate{PerSecond: 2.345, Known: true}).String(); got != "2.3/s" {
		t.Errorf("2.345/s shows %q", got)
	}
}
