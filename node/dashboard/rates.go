package dashboard

import (
	"fmt"
	"strings"
	"time"
)

// rate is a per-second figure derived from two readings of a counter;
// Known is false before the second reading (the page shows "—").
type rate struct {
	PerSecond float64
	Known     bool
}

// String is the rate as the page shows it.
func (r rate) String() string {
	switch {
	case !r.Known:
		return "—"
	case r.PerSecond < 10:
		return fmt.Sprintf("%.1f/s", r.PerSecond)
	}
	return fmt.Sprintf("%.0f/s", r.PerSecond)
}

// Value is the rate for a data attribute: "" before the second reading.
func (r rate) Value() string {
	if !r.Known {
		return ""
	}
	return fmt.Sprintf("%.3f", r.PerSecond)
}

// rates turns successive readings of named counters (a stream's last
// sequence, a consumer's ack floor, a bridge's moved messages) into
// rates: the counter's growth since the last reading over the time
// between them. One lives in each open page's event stream, so rates
// cost nothing beyond the readings the page takes anyway, and nothing
// once the tab is closed. The zero value is ready.
type rates struct {
	at   time.Time
	last map[string]uint64
}

// update records a reading taken at at and returns the rate of each
// counter since the last reading, ok false for the first. A counter not
// in the last reading, or lower than there (a consumer or bridge made
// anew), has no rate this time.
func (r *rates) update(at time.Time, now map[string]uint64) (per map[string]float64, ok bool) {
	prev, prevAt := r.last, r.at
	r.last, r.at = now, at
	if prev == nil {
		return nil, false
	}
	dt := at.Sub(prevAt).Seconds()
	if dt <= 0 {
		return nil, false
	}
	per = make(map[string]float64, len(now))
	for k, v := range now {
		if p, seen := prev[k]; seen && v >= p {
			per[k] = float64(v-p) / dt
		}
	}
	return per, true
}

// sum is the total rate of the counters whose names start with prefix.
func sum(per map[string]float64, prefix string) float64 {
	total := 0.0
	for k, v := range per {
		if strings.HasPrefix(k, prefix) {
			total += v
		}
	}
	return total
}
