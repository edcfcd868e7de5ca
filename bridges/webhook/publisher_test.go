package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/webhook"
	"github.com/lexigram/events/platform"
)

// Every request is signed once per secret, over https too; a receiver
// that knows only the old or only the new secret of a rotation accepts
// it, one that knows neither refuses it, and a changed body fails.
func TestSignaturesVerifyDuringRotation(t *testing.T) {
	rc := startReceiver(t, nil, httptest.NewTLSServer)
	oldS, newS := secret(t), secret(t)
	ep := endpoint(t, "rotating", rc)
	ep.Secrets = []string{newS, oldS}
	tlsCfg := rc.Client().Transport.(*http.Transport).TLSClientConfig
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}, AllowPrivate: true, TLS: tlsCfg})
	m := message("01JEVENT", "o-1", "order.placed")
	if err := p.Publish(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if sigs := strings.Fields(r.Header.Get("webhook-signature")); len(sigs) != 2 || !strings.HasPrefix(sigs[0], "v1,") || !strings.HasPrefix(sigs[1], "v1,") {
		t.Fatalf("webhook-signature %q: want two v1 signatures", r.Header.Get("webhook-signature"))
	}
	for _, s := range []string{oldS, newS} {
		if err := verify(s, r.Header, r.Body); err != nil {
			t.Errorf("a receiver with one of the secrets: %v", err)
		}
	}
	if err := verify(secret(t), r.Header, r.Body); err == nil {
		t.Error("a receiver with another secret accepted the request")
	}
	if err := verify(oldS, r.Header, append(r.Body, ' ')); err == nil {
		t.Error("a changed body verified")
	}
	if r.Header.Get("webhook-id") != m.ID || string(r.Body) != string(m.Data) ||
		r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Lx-Type") != "order.placed" {
		t.Fatalf("request headers %v, body %q", r.Header, r.Body)
	}
}

// A 503 with Retry-After in seconds is retried no sooner than it asks,
// under the same webhook-id and with a fresh signature.
func TestRetryAfterSecondsHonoured(t *testing.T) {
	rc := newReceiver(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ep := endpoint(t, "slow", rc)
	ep.Retry.MaxDelay = 5 * time.Second
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}, AllowPrivate: true})
	if err := p.Publish(t.Context(), message("e-1", "o-1", "order.placed")); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Fatalf("retried after %v, Retry-After asked for 1s", gap)
	}
	if reqs[0].Header.Get("webhook-id") != "e-1" || reqs[1].Header.Get("webhook-id") != "e-1" {
		t.Fatalf("webhook-id changed across the retry: %q, %q", reqs[0].Header.Get("webhook-id"), reqs[1].Header.Get("webhook-id"))
	}
	if err := verify(ep.Secrets[0], reqs[1].Header, reqs[1].Body); err != nil {
		t.Fatalf("the retry's signature: %v", err)
	}
}

// Retry-After as an HTTP date is honoured too; one past the policy's max
// delay is capped at it.
func TestRetryAfterDateAndCap(t *testing.T) {
	var mu sync.Mutex
	var until time.Time
	rc := newReceiver(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			mu.Lock()
			until = time.Now().Add(2 * time.Second).Truncate(time.Second)
			w.Header().Set("Retry-After", until.UTC().Format(http.TimeFormat))
			mu.Unlock()
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ep := endpoint(t, "dated", rc)
	ep.Retry.MaxDelay = 5 * time.Second
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}, AllowPrivate: true})
	if err := p.Publish(t.Context(), message("e-1", "o-1", "order.placed")); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 2 || reqs[1].At.Before(until) {
		t.Fatalf("%d requests, the retry at %v, Retry-After asked for %v", len(reqs), reqs[len(reqs)-1].At, until)
	}

	long := newReceiver(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	ep = endpoint(t, "capped", long)
	ep.Retry.MaxDelay = 300 * time.Millisecond
	p = newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}, AllowPrivate: true})
	if err := p.Publish(t.Context(), message("e-2", "o-1", "order.placed")); err != nil {
		t.Fatal(err)
	}
	reqs = long.requests()
	if gap := reqs[1].At.Sub(reqs[0].At); len(reqs) != 2 || gap < 300*time.Millisecond || gap > 30*time.Second {
		t.Fatalf("%d requests, %v apart: want 2, the max delay (300ms) apart", len(reqs), gap)
	}
}

// 5xx answers are retried up to MaxAttempts; then the message fails for
// good with a DeliveryError of code LXE-018 naming the endpoint. A 400 is
// not retried.
func TestRetriesUsedUpAnd4xxNotRetried(t *testing.T) {
	down := newReceiver(t, status(http.StatusInternalServerError))
	refusing := newReceiver(t, status(http.StatusBadRequest))
	a, b := endpoint(t, "down", down), endpoint(t, "refusing", refusing)
	a.Retry.MaxAttempts = 3
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{a, b}, AllowPrivate: true})
	err := p.Publish(t.Context(), message("e-1", "o-1", "order.placed"))
	de := deliveryError(t, err, 1, 0)
	if down.count() != 3 || refusing.count() != 1 {
		t.Fatalf("requests: %d to the 500 endpoint (want 3), %d to the 400 one (want 1)", down.count(), refusing.count())
	}
	if platform.CodeOf(de) != platform.CodeWebhookDelivery || !errors.Is(err, &platform.Error{Code: platform.CodeWebhookDelivery}) {
		t.Fatalf("code %q, errors.Is LXE-018 %v", platform.CodeOf(de), errors.Is(err, &platform.Error{Code: platform.CodeWebhookDelivery}))
	}
	got := map[string]webhook.Failure{}
	for _, f := range de.Failures {
		got[f.Endpoint] = f
	}
	if f := got["down"]; f.Attempts != 3 || f.Status != 500 || !strings.Contains(f.Err.Error(), "gave up after 3 attempts") {
		t.Errorf("the 500 endpoint's failure: %+v", f)
	}
	if f := got["refusing"]; f.Attempts != 1 || f.Status != 400 || !strings.Contains(f.Err.Error(), "400 Bad Request") {
		t.Errorf("the 400 endpoint's failure: %+v", f)
	}
	if s := de.Error(); !strings.HasPrefix(s, "LXE-018: ") || !strings.Contains(s, "e-1") || strings.Contains(s, "/hooks/") {
		t.Errorf("error text %q: want the code and the message ID, and no URL path", s)
	}
}

// A 410 disables its endpoint: that message fails there, the next ones
// are not sent there (and are no failure), and the others still get all.
func TestGoneDisablesEndpoint(t *testing.T) {
	goneRc := newReceiver(t, status(http.StatusGone))
	okRc := newReceiver(t, nil)
	m := webhook.NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{endpoint(t, "gone", goneRc), endpoint(t, "ok", okRc)}, AllowPrivate: true, Metrics: m})
	de := deliveryError(t, p.Publish(t.Context(), message("e-1", "o-1", "order.placed")), 1, 0)
	if len(de.Failures) != 1 || de.Failures[0].Endpoint != "gone" || de.Failures[0].Status != 410 {
		t.Fatalf("failures %+v", de.Failures)
	}
	if st := p.Endpoints(); !st[0].Disabled || st[1].Disabled {
		t.Fatalf("statuses %+v: want gone disabled, ok not", st)
	}
	if err := p.Publish(t.Context(), message("e-2", "o-1", "order.placed"), message("e-3", "o-2", "order.placed")); err != nil {
		t.Fatalf("after the 410: %v", err)
	}
	if goneRc.count() != 1 || okRc.count() != 3 {
		t.Fatalf("requests: %d to the gone endpoint (want 1), %d to the other (want 3)", goneRc.count(), okRc.count())
	}
	want := `
# HELP lexigram_webhook_delivered_total Messages a webhook endpoint took (a 2xx).
# TYPE lexigram_webhook_delivered_total counter
lexigram_webhook_delivered_total{endpoint="gone"} 0
lexigram_webhook_delivered_total{endpoint="ok"} 3
# HELP lexigram_webhook_endpoint_disabled 1 once a webhook endpoint answered 410 Gone.
# TYPE lexigram_webhook_endpoint_disabled gauge
lexigram_webhook_endpoint_disabled{endpoint="gone"} 1
lexigram_webhook_endpoint_disabled{endpoint="ok"} 0
# HELP lexigram_webhook_given_up_total Webhook deliveries that failed for good; the bridge dead-letters their messages.
# TYPE lexigram_webhook_given_up_total counter
lexigram_webhook_given_up_total{endpoint="gone"} 1
lexigram_webhook_given_up_total{endpoint="ok"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lexigram_webhook_endpoint_disabled", "lexigram_webhook_delivered_total", "lexigram_webhook_given_up_total"); err != nil {
		t.Fatal(err)
	}
}

// After Failures failed requests in a row the circuit opens: deliveries
// fail at once, without a request, with CodeCircuitOpen inside. After
// OpenFor one probe goes out; a failed probe opens it again, a successful
// one closes it.
func TestBreakerOpensAndHalfOpens(t *testing.T) {
	var mu sync.Mutex
	code := http.StatusBadGateway
	rc := newReceiver(t, func(_ int, _ *http.Request, w http.ResponseWriter) {
		mu.Lock()
		c := code
		mu.Unlock()
		w.WriteHeader(c)
	})
	ep := endpoint(t, "flaky", rc)
	ep.Retry.MaxAttempts = 1
	const openFor = time.Second
	ep.Breaker = webhook.BreakerPolicy{Failures: 3, OpenFor: openFor}
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}, AllowPrivate: true})
	publish := func(id string) error { return p.Publish(t.Context(), message(id, "o-1", "order.placed")) }
	var beforeThird time.Time
	for i := range 3 {
		beforeThird = time.Now()
		deliveryError(t, publish(fmt.Sprint("fail-", i)), 1, 0)
	}
	if st := p.Endpoints()[0].Circuit; st != webhook.CircuitOpen {
		t.Fatalf("after 3 failures the circuit is %s, want open", st)
	}
	de := deliveryError(t, publish("refused"), 1, 0)
	if rc.count() != 3 || de.Failures[0].Attempts != 0 || !errors.Is(de, platform.ErrCircuitOpen) {
		t.Fatalf("with the circuit open: %d requests (want 3), failure %+v", rc.count(), de.Failures[0])
	}
	waitUntil(t, "half-open", 5*time.Second, func() bool { return p.Endpoints()[0].Circuit == webhook.CircuitHalfOpen })
	if d := time.Since(beforeThird); d < openFor {
		t.Fatalf("half-open %v after the third failure, before OpenFor (%v)", d, openFor)
	}
	deliveryError(t, publish("probe-fails"), 1, 0)
	if rc.count() != 4 || p.Endpoints()[0].Circuit != webhook.CircuitOpen {
		t.Fatalf("a failed probe: %d requests (want 4), circuit %s (want open)", rc.count(), p.Endpoints()[0].Circuit)
	}
	mu.Lock()
	code = http.StatusOK
	mu.Unlock()
	waitUntil(t, "half-open again", 5*time.Second, func() bool { return p.Endpoints()[0].Circuit == webhook.CircuitHalfOpen })
	if err := publish("probe-ok"); err != nil {
		t.Fatalf("the probe: %v", err)
	}
	if st := p.Endpoints()[0].Circuit; st != webhook.CircuitClosed || rc.count() != 5 {
		t.Fatalf("after a good probe: circuit %s, %d requests; want closed, 5", st, rc.count())
	}
	if err := publish("after"); err != nil || rc.count() != 6 {
		t.Fatalf("closed again: %v, %d requests", err, rc.count())
	}
}

// However many Publish calls run at once and however many keys they
// carry, no more than MaxConcurrency requests are in flight at one
// endpoint; and that many are.
func TestConcurrencyLimitHeld(t *testing.T) {
	const limit = 3
	rc := newReceiver(t, nil)
	rc.hold = func() {
		// Keep each request until the limit is reached (or the last few
		// came, or 2s passed), so any excess would show.
		deadline := time.Now().Add(2 * time.Second)
		for rc.inFlight.Load() < limit && rc.count() <= 60-limit && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	ep := endpoint(t, "narrow", rc)
	ep.MaxConcurrency = limit
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}, AllowPrivate: true})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for c := range 4 {
		wg.Go(func() {
			var msgs []*bridges.Message
			for i := range 15 {
				msgs = append(msgs, message(fmt.Sprintf("c%d-%d", c, i), fmt.Sprintf("k%d-%d", c, i), "order.placed"))
			}
			errs[c] = p.Publish(t.Context(), msgs...)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n, m := rc.count(), rc.maxInFlight.Load(); n != 60 || m != limit {
		t.Fatalf("%d requests (want 60), at most %d in flight (want exactly %d)", n, m, limit)
	}
}

// A request that gets no answer within Timeout fails; with one attempt
// allowed the message fails for good, soon after the timeout.
func TestRequestTimeout(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	ep := endpoint(t, "mute", rc)
	ep.Timeout = 200 * time.Millisecond
	ep.Retry.MaxAttempts = 1
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}, AllowPrivate: true})
	began := time.Now()
	de := deliveryError(t, p.Publish(t.Context(), message("e-1", "o-1", "order.placed")), 1, 0)
	took := time.Since(began)
	if took < 200*time.Millisecond || took > 10*time.Second {
		t.Fatalf("failed after %v, want just past the 200ms timeout", took)
	}
	if f := de.Failures[0]; f.Status != 0 || !strings.Contains(f.Err.Error(), "no answer within 200ms") {
		t.Fatalf("failure %+v", f)
	}
}

// One key's messages reach an endpoint in order even when each is
// retried; the keys go concurrently.
func TestOrderPerKeyThroughRetries(t *testing.T) {
	var mu sync.Mutex
	tried := map[string]bool{}
	var taken []string
	rc := newReceiver(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		id := r.Header.Get("webhook-id")
		mu.Lock()
		defer mu.Unlock()
		if !tried[id] {
			tried[id] = true
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		taken = append(taken, id)
		w.WriteHeader(http.StatusOK)
	})
	ep := endpoint(t, "ordered", rc)
	ep.MaxConcurrency = 4
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}, AllowPrivate: true})
	var msgs []*bridges.Message
	for i := range 30 {
		msgs = append(msgs, message(fmt.Sprintf("k%d-%02d", i%3, i/3), fmt.Sprintf("k%d", i%3), "order.placed"))
	}
	if err := p.Publish(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	last := map[string]string{}
	for _, id := range taken {
		key := id[:2]
		if id <= last[key] {
			t.Fatalf("%s arrived after %s: order %v", id, last[key], taken)
		}
		last[key] = id
	}
	if len(taken) != 30 || rc.maxInFlight.Load() > 4 {
		t.Fatalf("%d taken (want 30), %d in flight at most", len(taken), rc.maxInFlight.Load())
	}
}

// When the call ends before an endpoint settles, the message fails with
// a retryable error, and returns without waiting for a retry due after
// its deadline; the retry goes only to that endpoint, whose attempts go
// on (here: its Retry-After is honoured across the calls).
func TestLeftDueGoesOnlyWhereDue(t *testing.T) {
	okRc := newReceiver(t, nil)
	slowRc := newReceiver(t, func(n int, _ *http.Request, w http.ResponseWriter) {
		if n == 1 {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	slow := endpoint(t, "slow", slowRc)
	slow.Retry.MaxDelay = 10 * time.Second
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{endpoint(t, "ok", okRc), slow}, AllowPrivate: true})
	m := message("e-1", "o-1", "order.placed")
	// The call has time for the first attempts, not for the retry 3s on.
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	began := time.Now()
	err := p.Publish(ctx, m)
	took := time.Since(began)
	cancel()
	if took >= 1500*time.Millisecond {
		t.Errorf("the first call took %v: it waited for its deadline instead of returning once the retry fell after it", took)
	}
	if e := bridges.ErrorsOf(err, 1)[0]; e == nil || bridges.IsRefused(e) || !strings.Contains(e.Error(), "slow") {
		t.Fatalf("first call: %v, want a retryable error naming the slow endpoint", err)
	}
	if okRc.count() != 1 || slowRc.count() != 1 || webhook.PendingLen(p) != 1 {
		t.Fatalf("after the first call: %d and %d requests, want 1 and 1; %d messages remembered, want 1", okRc.count(), slowRc.count(), webhook.PendingLen(p))
	}
	if err := p.Publish(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	reqs := slowRc.requests()
	if webhook.PendingLen(p) != 0 {
		t.Fatalf("%d messages remembered once all settled, want 0", webhook.PendingLen(p))
	}
	if okRc.count() != 1 || len(reqs) != 2 {
		t.Fatalf("after the retry: %d requests to the endpoint that took it (want 1), %d to the slow one (want 2)", okRc.count(), len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 3*time.Second {
		t.Fatalf("the slow endpoint was tried again after %v, before its Retry-After of 3s", gap)
	}
}

// Redirects are not followed: a 307 fails, and its target gets nothing.
func TestRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t, nil)
	redirecting := newReceiver(t, func(_ int, r *http.Request, w http.ResponseWriter) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{endpoint(t, "moved", redirecting)}, AllowPrivate: true})
	de := deliveryError(t, p.Publish(t.Context(), message("e-1", "o-1", "order.placed")), 1, 0)
	if target.count() != 0 || redirecting.count() != 1 {
		t.Fatalf("the redirect's target got %d requests, the endpoint %d; want 0 and 1", target.count(), redirecting.count())
	}
	if f := de.Failures[0]; f.Status != 307 || !strings.Contains(f.Err.Error(), "redirects are not followed") {
		t.Fatalf("failure %+v", f)
	}
}

// Without AllowPrivate, a loopback endpoint is refused: an IP literal
// when the publisher is made, a host name that resolves to loopback when
// it is dialled, without a request and without retries.
func TestPrivateAddressesRefused(t *testing.T) {
	rc := newReceiver(t, nil)
	for _, u := range []string{rc.URL, "http://[::1]:1/x", "http://[::ffff:127.0.0.1]:1/", "http://169.254.169.254/latest/meta-data", "http://10.1.2.3/"} {
		_, err := webhook.New(webhook.Options{Endpoints: []webhook.Endpoint{{Name: "inside", URL: u, Secrets: []string{secret(t)}}}, Logger: quiet()})
		if err == nil || !strings.Contains(err.Error(), "server-side request forgery") || !strings.Contains(err.Error(), "allow_private") {
			t.Errorf("New with %s: %v, want a refusal naming allow_private", u, err)
		}
	}

	port := rc.URL[strings.LastIndexByte(rc.URL, ':')+1:]
	ep := webhook.Endpoint{Name: "by-name", URL: "http://localhost:" + port + "/hooks", Secrets: []string{secret(t)}}
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}})
	de := deliveryError(t, p.Publish(t.Context(), message("e-1", "o-1", "order.placed")), 1, 0)
	if f := de.Failures[0]; f.Attempts != 1 || !strings.Contains(f.Err.Error(), "loopback") || !strings.Contains(f.Err.Error(), "server-side request forgery") {
		t.Fatalf("failure %+v: want one refused attempt naming loopback", f)
	}
	if rc.count() != 0 {
		t.Fatalf("the loopback server got %d requests", rc.count())
	}

	// The same endpoint with AllowPrivate is reached.
	allowed := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{ep}, AllowPrivate: true})
	if err := allowed.Publish(t.Context(), message("e-2", "o-1", "order.placed")); err != nil || rc.count() != 1 {
		t.Fatalf("with AllowPrivate: %v, %d requests", err, rc.count())
	}
}

// Bad options are errors that name the field, the value and the fix,
// and never show a secret.
func TestOptionsErrors(t *testing.T) {
	good := secret(t)
	short := "whsec_" + "c2hvcnQ=" // "short"
	cases := []struct {
		name string
		ep   webhook.Endpoint
		want []string
	}{
		{"no url", webhook.Endpoint{Name: "a", Secrets: []string{good}}, []string{"url is empty"}},
		{"scheme", webhook.Endpoint{Name: "a", URL: "ftp://x.example/", Secrets: []string{good}}, []string{`scheme "ftp"`, "http or https"}},
		{"no secret", webhook.Endpoint{Name: "a", URL: "https://x.example/"}, []string{"no secret", "NewSecret"}},
		{"no prefix", webhook.Endpoint{Name: "a", URL: "https://x.example/", Secrets: []string{"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}}, []string{"secret 1 of 1", `"whsec_"`}},
		{"short", webhook.Endpoint{Name: "a", URL: "https://x.example/", Secrets: []string{good, short}}, []string{"secret 2 of 2", "5 bytes", "24 to 64"}},
		{"negative", webhook.Endpoint{Name: "a", URL: "https://x.example/", Secrets: []string{good}, MaxConcurrency: -1}, []string{"max concurrency -1", "negative"}},
		{"name", webhook.Endpoint{Name: "a.b", URL: "https://x.example/", Secrets: []string{good}}, []string{`"a.b"`, "letters, digits"}},
	}
	for _, c := range cases {
		_, err := webhook.New(webhook.Options{Endpoints: []webhook.Endpoint{c.ep}, Logger: quiet()})
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, err, w)
			}
		}
		if strings.Contains(err.Error(), good) || strings.Contains(err.Error(), "c2hvcnQ") {
			t.Errorf("%s: the error shows a secret: %q", c.name, err)
		}
	}
	ep := webhook.Endpoint{Name: "same", URL: "https://x.example/", Secrets: []string{good}}
	if _, err := webhook.New(webhook.Options{Endpoints: []webhook.Endpoint{ep, ep}}); err == nil || !strings.Contains(err.Error(), "name is taken") {
		t.Errorf("two endpoints of one name: %v", err)
	}
	if _, err := webhook.New(webhook.Options{}); err == nil || !strings.Contains(err.Error(), "no endpoints") {
		t.Errorf("no endpoints: %v", err)
	}
	withToken := webhook.Endpoint{Name: "tok", URL: "https://user:pw@x.example/hooks/T0KEN?key=S3CRET", Secrets: []string{good}, Timeout: -1}
	_, err := webhook.New(webhook.Options{Endpoints: []webhook.Endpoint{withToken}})
	if err == nil || strings.Contains(err.Error(), "T0KEN") || strings.Contains(err.Error(), "S3CRET") || strings.Contains(err.Error(), "pw") {
		t.Errorf("an error shows the URL's credentials: %v", err)
	}
}

// Bad messages fail alone, refused, and nothing panics.
func TestBadMessages(t *testing.T) {
	rc := newReceiver(t, nil)
	p := newPublisher(t, webhook.Options{Endpoints: []webhook.Endpoint{endpoint(t, "a", rc)}, AllowPrivate: true})
	good := message("ok", "o-1", "order.placed")
	noID := message("", "o-1", "order.placed")
	badID := message("a\r\nb", "o-1", "order.placed")
	badHeader := message("h", "o-2", "order.placed")
	badHeader.Header["Bad Name"] = "x"
	badHeader.Header["X-Ok"] = "line\nbreak"
	err := p.Publish(t.Context(), good, nil, noID, badID, badHeader)
	errs := bridges.ErrorsOf(err, 5)
	if errs[0] != nil || errs[4] != nil {
		t.Fatalf("the good messages: %v", err)
	}
	for _, i := range []int{1, 2, 3} {
		if !bridges.IsRefused(errs[i]) {
			t.Errorf("message %d: %v, want refused", i, errs[i])
		}
	}
	if rc.count() != 2 {
		t.Fatalf("%d requests, want 2", rc.count())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(t.Context(), good); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("after Close: %v", err)
	}
}
