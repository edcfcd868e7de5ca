package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

const userAgent = "lexigram-webhooks/1"

// result is how one message's delivery to one endpoint ended.
type result struct {
	verdict verdict // delivered, skipped, canceled or refuse
	failure Failure // with refuse
}

// deliver sends one message to one endpoint, retrying as the policy says,
// until it settles or is left due: ctx ended, or the next attempt is due
// after ctx's deadline (st then holds where the budget stands).
func (p *Publisher) deliver(ctx context.Context, ep *endpoint, m *bridges.Message, st *attemptState) result {
	for {
		if ep.disabled.Load() {
			return result{verdict: skipped} // gone: nothing more goes there
		}
		if wait := time.Until(st.next); wait > 0 {
			if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
				return result{verdict: canceled}
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return result{verdict: canceled}
			}
		}
		if ctx.Err() != nil {
			return result{verdict: canceled}
		}
		tk := ep.breaker.allow()
		if tk == refused {
			return p.fail(ep, st, platform.Errorf(platform.CodeCircuitOpen,
				"the circuit is open after %d failed requests in a row, until %s: not tried; a probe then tells whether the endpoint is back",
				ep.cfg.Breaker.Failures, ep.breaker.openUntil().UTC().Format(time.RFC3339)))
		}
		a := p.attempt(ctx, ep, m)
		switch a.verdict {
		case canceled:
			ep.breaker.abort(tk)
			return result{verdict: canceled}
		case delivered:
			ep.breaker.success(tk)
			ep.delivered.Add(1)
			return result{verdict: delivered}
		}
		st.attempts++
		st.status, st.last = a.status, a.err
		ep.failedAttempts.Add(1)
		switch {
		case a.down:
			ep.breaker.failure(tk)
		case a.status != 0:
			ep.breaker.success(tk) // it answered: alive, whatever it thinks of this message
		default:
			ep.breaker.abort(tk)
		}
		switch a.verdict {
		case gone:
			if ep.disabled.CompareAndSwap(false, true) {
				p.log.Warn("webhook: the endpoint answered 410 Gone: disabled, it gets nothing more until the publisher is made again with it",
					"endpoint", ep.cfg.Name, "url", ep.shown, "id", m.ID)
			}
			return p.fail(ep, st, a.err)
		case refuse:
			return p.fail(ep, st, a.err)
		}
		if st.attempts >= ep.cfg.Retry.MaxAttempts {
			return p.fail(ep, st, fmt.Errorf("gave up after %d attempts (max attempts), the last: %w", st.attempts, a.err))
		}
		now := time.Now()
		st.next = now.Add(ep.delay(st.attempts, a.header, now))
		p.log.Debug("webhook: attempt failed; retrying", "endpoint", ep.cfg.Name, "id", m.ID, "attempt", st.attempts, "next_in", st.next.Sub(now), "err", a.err)
	}
}

func (p *Publisher) fail(ep *endpoint, st *attemptState, err error) result {
	ep.deadLettered.Add(1)
	return result{verdict: refuse, failure: Failure{Endpoint: ep.cfg.Name, URL: ep.shown, Attempts: st.attempts, Status: st.status, Err: err}}
}

// attemptResult is one request's outcome.
type attemptResult struct {
	verdict verdict
	down    bool // counts against the circuit breaker
	status  int
	header  http.Header // of the response, for Retry-After
	err     error
}

// attempt makes one signed request, within the endpoint's concurrency
// limit and timeout.
func (p *Publisher) attempt(ctx context.Context, ep *endpoint, m *bridges.Message) attemptResult {
	select {
	case ep.sem <- struct{}{}:
	case <-ctx.Done():
		return attemptResult{verdict: canceled}
	}
	ep.inFlight.Add(1)
	defer func() {
		ep.inFlight.Add(-1)
		<-ep.sem
	}()
	actx, cancel := context.WithTimeout(ctx, ep.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.url, bytes.NewReader(m.Data))
	if err != nil {
		return attemptResult{verdict: refuse, err: fmt.Errorf("build the request: %s", redactURLError(err, ep.url))}
	}
	h := req.Header
	for k, v := range m.Header {
		if forwardable(k, v) {
			h.Set(k, v)
		}
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/octet-stream")
	}
	h.Set("User-Agent", userAgent)
	ts := time.Now().Unix()
	h.Set(HeaderID, m.ID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, ep.signer.sign(m.ID, ts, m.Data))

	resp, err := p.client.Do(req)
	if err != nil {
		var fa *forbiddenAddress
		switch {
		case errors.As(err, &fa):
			return attemptResult{verdict: refuse, err: fa}
		case ctx.Err() != nil:
			return attemptResult{verdict: canceled}
		case actx.Err() != nil:
			return attemptResult{verdict: retry, down: true, err: fmt.Errorf("no answer within %v (the endpoint's timeout): raise it, or have the endpoint answer at once and do its work later", ep.cfg.Timeout)}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL, which may hold a token
		}
		return attemptResult{verdict: retry, down: true, err: fmt.Errorf("POST %s: %w", ep.shown, err)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	_ = resp.Body.Close()
	a := attemptResult{status: resp.StatusCode, header: resp.Header}
	a.verdict, a.down = judge(resp.StatusCode)
	status := resp.Status
	switch a.verdict {
	case delivered:
	case gone:
		a.err = fmt.Errorf("answered %s: the endpoint is disabled and gets nothing more until the publisher is made again with it", status)
	case retry:
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			status += " (Retry-After: " + ra + ")"
		}
		a.err = fmt.Errorf("answered %s", status)
	default:
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			to := "elsewhere"
			if loc, err := resp.Location(); err == nil {
				to = "to " + loc.Scheme + "://" + loc.Host
			}
			a.err = fmt.Errorf("answered %s, redirecting %s: redirects are not followed (Standard Webhooks; a redirect could lead the node to an address it must not reach): configure the final URL", status, to)
		} else {
			a.err = fmt.Errorf("answered %s: the endpoint refuses this message, which is not sent again; fix the receiver, then replay the dead letter", status)
		}
	}
	return a
}

// forwardable reports whether a message header can go out as an HTTP
// header: a valid name and value, and not one the request sets itself.
func forwardable(name, value string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !tokenByte(name[i]) {
			return false
		}
	}
	if !validValue(value) {
		return false
	}
	switch http.CanonicalHeaderKey(name) {
	case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Te", "Trailer", "Upgrade",
		"Proxy-Connection", "Proxy-Authorization", "User-Agent", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature":
		return false
	}
	return true
}

// validValue reports whether s can be an HTTP header value: no control
// bytes but tabs.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// tokenByte reports a byte allowed in an HTTP header name (RFC 9110 token).
func tokenByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
