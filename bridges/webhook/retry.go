package webhook

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// verdict is what one attempt's outcome means.
type verdict int

const (
	delivered verdict = iota // a 2xx
	retry                    // try again after a delay
	refuse                   // not retried: dead-lettered
	gone                     // 410: the endpoint is disabled
	canceled                 // our own context ended: neither success nor failure
	skipped                  // not sent: the endpoint is disabled
)

// judge classifies an HTTP status. down reports whether it counts against
// the circuit breaker: the endpoint is failing or overloaded, rather than
// answering about this message.
func judge(status int) (v verdict, down bool) {
	switch {
	case status >= 200 && status < 300:
		return delivered, false
	case status == http.StatusGone:
		return gone, false
	case status >= 500, status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return retry, true
	case status == http.StatusConflict, status == http.StatusTooEarly:
		return retry, false
	}
	return refuse, false // 3xx (redirects are not followed) and other 4xx
}

// retryAfter reads a Retry-After value: seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(365*24*3600))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// delay is the wait before the next attempt, after attempts so far: the
// Retry-After the endpoint asked for, or the backoff, capped at the
// policy's max delay either way.
func (e *endpoint) delay(attempts int, resp http.Header, now time.Time) time.Duration {
	if resp != nil {
		if d, ok := retryAfter(resp.Get("Retry-After"), now); ok {
			return min(d, e.cfg.Retry.MaxDelay)
		}
	}
	return min(e.backoff.Delay(attempts-1), e.cfg.Retry.MaxDelay)
}
