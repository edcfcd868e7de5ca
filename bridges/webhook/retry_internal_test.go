package webhook

import (
	"testing"
	"time"
)

// Retry-After in seconds or as a date; nonsense is ignored.
func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want int64 // seconds; -1: not understood
	}{{"0", 0}, {"120", 120}, {" 5 ", 5}, {"-3", -1}, {"soon", -1}, {"", -1},
		{"Wed, 21 Oct 2015 07:28:30 GMT", 30}, {"Wed, 21 Oct 2015 07:27:00 GMT", 0}, {"99999999999", 365 * 24 * 3600}}
	for _, c := range cases {
		d, ok := retryAfter(c.in, now)
		if c.want < 0 {
			if ok {
				t.Errorf("%q: understood as %v", c.in, d)
			}
			continue
		}
		if !ok || d.Seconds() != float64(c.want) {
			t.Errorf("%q: %v %v, want %ds", c.in, d, ok, c.want)
		}
	}
}
