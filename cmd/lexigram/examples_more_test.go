package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// TestExampleConfigs: every file of examples/bridges loads, validates,
// and names brokers the binary links.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "bridges", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("examples/bridges has %v (%v), want a file for each broker", files, err)
	}
	for _, f := range files {
		cfg, err := config.Load(f)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil {
			err = bridgeconfig.Check(cfg.Bridges)
		}
		if err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// receiver is an HTTP endpoint that verifies Standard Webhooks signatures
// with its secret, as a receiver written from the spec would, and keeps
// the CloudEvent IDs of what it accepted.
type receiver struct {
	secret []byte
	mu     sync.Mutex
	ids    []string
	bad    []string
}

func newReceiver(t *testing.T, secret string) (*receiver, *httptest.Server) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{secret: key}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	mac := hmac.New(sha256.New, r.secret)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	var ce struct{ ID, Type string }
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(strings.Fields(req.Header.Get("webhook-signature")), want) || json.Unmarshal(body, &ce) != nil {
		r.bad = append(r.bad, id)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	r.ids = append(r.ids, ce.ID)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) got() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids), slices.Clone(r.bad)
}

// TestExampleWebhook runs examples/bridges/webhook.yaml with the binary
// against two HTTP servers: each gets every order event, signed with its
// own secret, and SIGTERM ends the bridge with nothing unacked.
func TestExampleWebhook(t *testing.T) {
	billing, billingSrv := newReceiver(t, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	crm, crmSrv := newReceiver(t, "whsec_2jqMMhNoZb6v6U2fXwNVpJbFqXm1Q4tR")
	path := example(t, "webhook.yaml",
		"http://127.0.0.1:9001/hooks/orders", billingSrv.URL+"/hooks/orders",
		"http://127.0.0.1:9002/events", crmSrv.URL+"/events")
	dataDir := t.TempDir()
	p := startBinary(t, []string{"LEXIGRAM_NATS_EMBEDDED_PORT=-1", "LEXIGRAM_NATS_EMBEDDED_DATA_DIR=" + dataDir},
		"bridge", "--config", path, "--http-addr", "127.0.0.1:0")
	natsURL := p.waitLog(t, natsURLLog)
	base := p.waitLog(t, httpURLLog)
	waitHealthy(t, base, 1)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	ids := appendOrders(t, js, n, 4)
	slices.Sort(ids)
	for name, r := range map[string]*receiver{"billing": billing, "crm": crm} {
		waitUntil(t, 30*time.Second, name+" to get every event", func() bool { got, _ := r.got(); return len(got) >= n })
		got, bad := r.got()
		slices.Sort(got)
		if !slices.Equal(got, ids) || len(bad) != 0 {
			t.Errorf("%s accepted %v and refused %v, want each event once, signed: %v", name, got, bad, ids)
		}
	}
	nc.Close()
	p.terminate(t)
	// The embedded server is gone with the process: open its data again.
	srv, err := embedded.Start(t.Context(), embedded.Options{Port: embedded.RandomPort, DataDir: dataDir, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	js, err = jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	if info := settled(t, js, "EVENTS", "orders-to-webhooks"); info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("after exit the outbound consumer has %d unacked and %d pending, want 0 and 0", info.NumAckPending, info.NumPending)
	}
}
