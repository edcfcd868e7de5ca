package tenancy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/httpapi"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/tenancy"
)

// TestHTTPAPIPerTenant: a node's HTTP API with tenants required, on a
// real httptest server. A command sent with Lexigram-Tenant appends in
// that tenant; tenant acme's GET of order/42 shows acme's event only and
// globex's globex's; a request without a tenant, or with a malformed one,
// is 400 naming the header (and the value and rule); a node-wide listing
// asked for by a tenant is 403.
func TestHTTPAPIPerTenant(t *testing.T) {
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.DataDir = t.TempDir()
	cfg.NATS.EmbeddedServer.DontListen = true
	cfg.Store.Storage = "memory"
	reg := domain(t)
	n, err := node.Open(t.Context(), cfg, node.Options{Registry: reg, Logger: embeddedtest.Logger(t), ShutdownTimeout: 10 * time.Second})
	must(t, err)
	ts := tenancy.New(n.JetStream(), tenancy.Options{Registry: reg, Logger: embeddedtest.Logger(t)})
	must(t, handlers.HandleCommand(n.Commands(), func(ctx context.Context, c PlaceOrder) error {
		tn, err := ts.For(ctx)
		if err != nil {
			return err
		}
		_, err = tn.Store.Append(ctx, platform.StreamID{Type: "order", ID: c.ID}, platform.NoStream(), []platform.Envelope{{Event: placed{Customer: c.Customer}}})
		return err
	}))
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- n.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-n.Ready():
	case err := <-ran:
		t.Fatalf("run: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the node was not ready within 60s")
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", httpapi.Handler(n, httpapi.Options{Tenants: ts, RequireTenant: true}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	do := func(method, path, body, tenant string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
		must(t, err)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if tenant != "" {
			req.Header.Set(httpapi.TenantHeader, tenant)
		}
		resp, err := srv.Client().Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		must(t, err)
		return resp.StatusCode, b
	}
	place := func(tenant, customer string) {
		t.Helper()
		// The same Idempotency-Key in both tenants: two commands.
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/api/commands/order.place", strings.NewReader(`{"ID":"42","Customer":"`+customer+`"}`))
		must(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(httpapi.TenantHeader, tenant)
		req.Header.Set("Idempotency-Key", "place-42")
		resp, err := srv.Client().Do(req)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("tenant %s's order.place: %d %s", tenant, resp.StatusCode, b)
		}
	}
	place("acme", "ada")
	place("globex", "bob")

	history := func(tenant string) []string {
		t.Helper()
		status, body := do(http.MethodGet, "/api/aggregates/order/42/events", "", tenant)
		if status != http.StatusOK {
			t.Fatalf("tenant %s's GET of order/42: %d %s", tenant, status, body)
		}
		var page struct {
			Events []struct {
				Event struct{ Customer string } `json:"event"`
			} `json:"events"`
		}
		must(t, json.Unmarshal(body, &page))
		var out []string
		for _, e := range page.Events {
			out = append(out, e.Event.Customer)
		}
		return out
	}
	if got := history("acme"); len(got) != 1 || got[0] != "ada" {
		t.Fatalf("acme's order/42 over HTTP: %v, want [ada] only", got)
	}
	if got := history("globex"); len(got) != 1 || got[0] != "bob" {
		t.Fatalf("globex's order/42 over HTTP: %v, want [bob] only", got)
	}
	if status, body := do(http.MethodGet, "/api/aggregates/order/42/events", "", "initech"); status != http.StatusNotFound {
		t.Fatalf("a third tenant's order/42: %d %s, want 404", status, body)
	}

	type problem struct {
		Status        int
		Field, Detail string
	}
	refused := func(method, path, body, tenant string, status int, mentions ...string) {
		t.Helper()
		got, raw := do(method, path, body, tenant)
		var p problem
		_ = json.Unmarshal(raw, &p)
		if got != status || p.Field != httpapi.TenantHeader {
			t.Fatalf("%s %s with tenant %q: %d %s, want %d naming %s", method, path, tenant, got, raw, status, httpapi.TenantHeader)
		}
		for _, m := range mentions {
			if !strings.Contains(p.Detail, m) {
				t.Fatalf("%s %s with tenant %q: detail %q does not mention %q", method, path, tenant, p.Detail, m)
			}
		}
	}
	refused(http.MethodGet, "/api/aggregates/order/42/events", "", "", http.StatusBadRequest, "requires a tenant")
	refused(http.MethodPost, "/api/commands/order.place", `{"ID":"43","Customer":"eve"}`, "", http.StatusBadRequest, "requires a tenant")
	refused(http.MethodGet, "/api/aggregates/order/42/events", "", "acme.>", http.StatusBadRequest, httpapi.TenantHeader, `"acme.>"`, "letters, digits")
	refused(http.MethodGet, "/api/streams", "", "acme", http.StatusForbidden, "not served per tenant")
	if got := history("acme"); len(got) != 1 {
		t.Fatalf("acme's order/42 after the refused command: %v", got)
	}
}
