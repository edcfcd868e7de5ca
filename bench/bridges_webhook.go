package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges/webhook"
	"github.com/lexigram/events/platform"
)

// webhookJobs lists the figure of outbound webhooks.
func (r *runner) webhookJobs() []job {
	plain := envNoFsync
	if r.opts.NATSURL != "" {
		plain = envExternal
	}
	return []job{{names: []string{"bridge.webhook.fanout"}, env: plain, run: r.bridgeWebhook}}
}

const (
	webhookEndpoints   = 100 // loopback endpoints, each on a listener of its own
	webhookPerEndpoint = 2   // requests in flight per endpoint: ours' MaxConcurrency, raw's goroutines
)

// webhookSize is how many events one side of one round fans out (each to
// every endpoint), and how many rounds there are.
func (r *runner) webhookSize() (events, rounds int) {
	if r.opts.Quick {
		return 150, 3
	}
	return 600, 6
}

// hookServer is one HTTP server on many loopback listeners, a stand-in
// for that many receivers: it reads each request and answers 204, and
// counts the requests of each endpoint (the path /e/<n>).
type hookServer struct {
	srv    *http.Server
	urls   []string
	counts []atomic.Int64
}

func startHookServer(n int) (*hookServer, error) {
	h := &hookServer{counts: make([]atomic.Int64, n)}
	h.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		if i, err := strconv.Atoi(strings.TrimPrefix(req.URL.Path, "/e/")); err == nil && i >= 0 && i < len(h.counts) {
			h.counts[i].Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			h.close()
			return nil, err
		}
		h.urls = append(h.urls, fmt.Sprintf("http://%s/e/%d", l.Addr(), i))
		go func() { _ = h.srv.Serve(l) }()
	}
	return h, nil
}

// even checks that every endpoint got want requests since before.
func (h *hookServer) even(before []int64, want int) error {
	for i := range h.counts {
		if got := int(h.counts[i].Load() - before[i]); got != want {
			return fmt.Errorf("endpoint %d got %d requests, want %d", i, got, want)
		}
	}
	return nil
}

func (h *hookServer) snapshot() []int64 {
	s := make([]int64, len(h.counts))
	for i := range h.counts {
		s[i] = h.counts[i].Load()
	}
	return s
}

func (h *hookServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.srv.Shutdown(ctx)
}

// bridgeWebhook measures bridge.webhook.fanout: the store's events, one
// event type, to 100 loopback endpoints through an outbound bridge and
// the webhook publisher, against a plain net/http client making the same
// signed POSTs with the same concurrency per endpoint.
func (r *runner) bridgeWebhook(ctx context.Context, e *env) ([]Figure, error) {
	events, rounds := r.webhookSize()
	deliveries := events * webhookEndpoints
	hs, err := startHookServer(webhookEndpoints)
	if err != nil {
		return nil, err
	}
	defer hs.close()
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	for i := range events {
		id := streamID(i)
		if _, err := st.Append(ctx, id, platform.Any(), events1(id.ID)); err != nil {
			return nil, fmt.Errorf("preload: %w", err)
		}
	}
	hdr, _, err := eventHeaders(ctx, e, st)
	if err != nil {
		return nil, err
	}
	secrets := make([]string, webhookEndpoints)
	keys := make([][]byte, webhookEndpoints)
	endpoints := make([]webhook.Endpoint, webhookEndpoints)
	for i := range secrets {
		if secrets[i], err = webhook.NewSecret(); err != nil {
			return nil, err
		}
		if keys[i], err = base64.StdEncoding.DecodeString(strings.TrimPrefix(secrets[i], "whsec_")); err != nil {
			return nil, err
		}
		endpoints[i] = webhook.Endpoint{Name: fmt.Sprint("e", i), URL: hs.urls[i], Secrets: []string{secrets[i]}, MaxConcurrency: webhookPerEndpoint}
	}

	ours := func(ctx context.Context, round int) error {
		before := hs.snapshot()
		name := fmt.Sprintf("lxbench-webhook-%d", round)
		defer func() { _ = e.js.DeleteConsumer(context.WithoutCancel(ctx), st.StreamName(), name) }()
		pub, err := webhook.New(webhook.Options{Endpoints: endpoints, AllowPrivate: true, Logger: r.log})
		if err != nil {
			return err
		}
		defer pub.Close()
		if err := r.runOutbound(ctx, e, st, pub, name, events); err != nil {
			return err
		}
		return hs.even(before, events)
	}

	// Raw sends what the bridge sends in pass-through: the stored headers
	// (but Nats-), the content type and the three webhook headers.
	base := http.Header{}
	for k, v := range hdr {
		if len(v) > 0 && !strings.HasPrefix(k, "Nats-") {
			base.Set(k, v[0])
		}
	}
	base.Set("Content-Type", "application/msgpack")
	raw := func(ctx context.Context, round int) error {
		before := hs.snapshot()
		tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: webhookPerEndpoint, IdleConnTimeout: 90 * time.Second}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 15 * time.Second}
		next := make([]atomic.Int64, webhookEndpoints)
		var wg sync.WaitGroup
		errs := make([]error, webhookEndpoints*webhookPerEndpoint)
		for ep := range webhookEndpoints {
			for g := range webhookPerEndpoint {
				wg.Go(func() {
					for {
						i := int(next[ep].Add(1) - 1)
						if i >= events {
							return
						}
						if err := rawHook(ctx, client, hs.urls[ep], keys[ep], base, fmt.Sprintf("raw-%d-%d", round, i), r.body); err != nil {
							errs[ep*webhookPerEndpoint+g] = err
							return
						}
					}
				})
			}
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		return hs.even(before, events)
	}

	o, w, err := r.alternate(ctx, "bridge.webhook.fanout", rounds, deliveries, ours, raw)
	if err != nil {
		return nil, err
	}
	return []Figure{{
		Name: "bridge.webhook.fanout", Ours: median(o), Raw: median(w), Ratio: pairedRatio(o, w), Unit: "deliveries/s", Target: ">= 0.80",
		Note: fmt.Sprintf("%d events of one type (%d-byte msgpack bodies), each of an aggregate of its own as creation events are, each POSTed to %d loopback endpoints (one HTTP server in this process on %d listeners, answering 204), %d requests in flight per endpoint at most; ours: bridges.Outbound (%d workers, batches of %d, pass-through) and webhook.Publisher, signing each request (Standard Webhooks), each endpoint's events of one aggregate in order, acking JetStream once every endpoint took the event; raw: %d net/http goroutines per endpoint POSTing the same bodies and headers, signed the same way, not reading JetStream; median of %d alternating rounds",
			events, len(r.body), webhookEndpoints, webhookEndpoints, webhookPerEndpoint, bridgeWorkers, bridgeBatch, webhookPerEndpoint, rounds),
	}}, nil
}

// events1 is one deposit to an account.
func events1(account string) []platform.Envelope { return events(account, 1) }

// rawHook makes one signed POST and wants a 2xx.
func rawHook(ctx context.Context, c *http.Client, url string, key []byte, base http.Header, id string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range base {
		req.Header[k] = v
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return nil
}
