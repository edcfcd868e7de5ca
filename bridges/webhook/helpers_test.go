package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/webhook"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// request is what a receiver saw of one request.
type request struct {
	At     time.Time
	Header http.Header
	Body   []byte
}

// receiver is a real HTTP server on loopback that records every request
// and answers with answer (default 204).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []request
	answer func(n int, r *http.Request, w http.ResponseWriter) // n counts from 1

	inFlight, maxInFlight atomic.Int64
	hold                  func() // runs while the request is in flight
}

func newReceiver(t *testing.T, answer func(n int, r *http.Request, w http.ResponseWriter)) *receiver {
	return startReceiver(t, answer, httptest.NewServer)
}

func startReceiver(t *testing.T, answer func(n int, r *http.Request, w http.ResponseWriter), start func(http.Handler) *httptest.Server) *receiver {
	t.Helper()
	rc := &receiver{answer: answer}
	rc.Server = start(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	now := rc.inFlight.Add(1)
	defer rc.inFlight.Add(-1)
	for {
		m := rc.maxInFlight.Load()
		if now <= m || rc.maxInFlight.CompareAndSwap(m, now) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, request{At: time.Now(), Header: r.Header.Clone(), Body: body})
	n := len(rc.reqs)
	rc.mu.Unlock()
	if rc.hold != nil {
		rc.hold()
	}
	if rc.answer == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	rc.answer(n, r, w)
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

func status(code int) func(int, *http.Request, http.ResponseWriter) {
	return func(_ int, _ *http.Request, w http.ResponseWriter) { w.WriteHeader(code) }
}

// verify checks a request's signature as a receiver would, written from
// the Standard Webhooks spec and independent of the package's signer: the
// signed content is "<webhook-id>.<webhook-timestamp>.<body>", the key
// the base64 after "whsec_", the signature HMAC-SHA256 in base64 after
// "v1,", one of a space-separated list; the timestamp within 5 minutes.
func verify(secret string, h http.Header, body []byte) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("missing headers: id %q, timestamp %q, signature %q", id, ts, sigs)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %v", ts, err)
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s is %v off", ts, d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		version, b64, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(b64)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no signature matches")
}

func secret(t *testing.T) string {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newPublisher(t *testing.T, opts webhook.Options) *webhook.Publisher {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = embeddedtest.Logger(t)
	}
	p, err := webhook.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// endpoint is an endpoint on a receiver with fast retries.
func endpoint(t *testing.T, name string, rc *receiver) webhook.Endpoint {
	return webhook.Endpoint{Name: name, URL: rc.URL + "/hooks/" + name, Secrets: []string{secret(t)},
		Retry: webhook.RetryPolicy{MinDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}}
}

func message(id, key, typ string) *bridges.Message {
	return &bridges.Message{ID: id, Key: key, Subject: "events.order." + key,
		Header: bridges.Header{"Lx-Id": id, "Lx-Type": typ, "Content-Type": "application/json"},
		Data:   []byte(`{"id":"` + id + `"}`)}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// deliveryError returns the *DeliveryError of message i of a Publish.
func deliveryError(t *testing.T, err error, n, i int) *webhook.DeliveryError {
	t.Helper()
	errs := bridges.ErrorsOf(err, n)
	if errs[i] == nil {
		t.Fatalf("message %d: delivered, want a failure (all: %v)", i, err)
	}
	if !bridges.IsRefused(errs[i]) {
		t.Fatalf("message %d: %v is not refused for good", i, errs[i])
	}
	var de *webhook.DeliveryError
	if !errors.As(errs[i], &de) {
		t.Fatalf("message %d: %v is not a *webhook.DeliveryError", i, errs[i])
	}
	return de
}
