package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/internal/pgtest"
)

// startExample runs serveWith on the embedded server with random ports
// until the test ends, and returns the HTTP base URL and the banner once
// it is printed.
func startExample(t *testing.T, so serveOptions) (base, banner string) {
	t.Helper()
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.Port = -1
	cfg.NATS.EmbeddedServer.DataDir = t.TempDir()
	cfg.HTTP.Addr = freeAddr(t)
	out := &syncBuffer{}
	so.Banner = out
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveWith(ctx, cfg, embeddedtest.Logger(t), so) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v after stop", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30s of its context ending")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Try it") {
		select {
		case err := <-done:
			t.Fatalf("serve returned before printing its banner: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner within 30s; printed so far:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "http://" + cfg.HTTP.Addr, out.String()
}

// call sends a JSON request and decodes a JSON answer into v (nil: not
// decoded), failing the test unless the status is want.
func call(t *testing.T, method, url string, body any, want int, v any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d: %s", method, url, resp.Status, want, raw)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, raw)
		}
	}
}

// commandResult is the part of a command's answer the tests read.
type commandResult struct {
	Aggregate struct{ Type, ID string }
	Version   uint64
	Position  uint64
}

var curlLine = regexp.MustCompile(`(?m)^\s*(curl .*)$`)

// runBannerCurl runs the curl command the banner prints: with curl when
// it is installed, else parsed and sent with net/http.
func runBannerCurl(t *testing.T, banner string) []byte {
	t.Helper()
	m := curlLine.FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("the banner has no curl command:\n%s", banner)
	}
	line := m[1]
	if path, err := exec.LookPath("curl"); err == nil && path != "" {
		out, err := exec.Command("/bin/sh", "-c", line).Output()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return out
	}
	parts := regexp.MustCompile(`-d '([^']*)' (\S+)$`).FindStringSubmatch(line)
	if parts == nil || !strings.Contains(line, "Content-Type: application/json") {
		t.Fatalf("cannot read the body and URL of %s", line)
	}
	resp, err := http.Post(parts[2], "application/json", strings.NewReader(parts[1]))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %s: %s", line, resp.Status, out)
	}
	return out
}

// TestServeExampleOrders: `serve` with the example prints where it
// listens and a curl command that places an order; over HTTP the order
// then gets items and is confirmed, its summary is read with wait-for,
// and its history is listed.
func TestServeExampleOrders(t *testing.T) {
	base, banner := startExample(t, serveOptions{Example: exampleOrders})
	for _, want := range []string{"NATS       nats://127.0.0.1:", "HTTP       " + base, base + "/api/", base + "/healthz", base + "/metrics", "order.place"} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner lacks %q:\n%s", want, banner)
		}
	}
	if n := strings.Count(banner, "curl "); n != 1 {
		t.Errorf("the banner has %d curl commands, want one:\n%s", n, banner)
	}

	var placed commandResult
	if out := runBannerCurl(t, banner); json.Unmarshal(out, &placed) != nil || placed.Aggregate.Type != "order" || placed.Version != 1 {
		t.Fatalf("the banner's curl answered %s, want order at version 1", out)
	}
	id := placed.Aggregate.ID
	if id != "order-1" {
		t.Errorf("the banner's curl placed %q, want order-1 on a fresh node", id)
	}
	cmds := base + "/api/commands/"
	call(t, "POST", cmds+"order.add-item", map[string]any{"id": id, "sku": "book", "quantity": 2, "price_cents": 1250}, 200, nil)
	call(t, "POST", cmds+"order.add-item", map[string]any{"id": id, "sku": "pen", "quantity": 1, "price_cents": 199}, 200, nil)
	var confirmed commandResult
	call(t, "POST", cmds+"order.confirm", map[string]any{"id": id}, 200, &confirmed)
	if confirmed.Version != 4 || confirmed.Position <= placed.Position {
		t.Fatalf("confirm answered %+v, want version 4 after position %d", confirmed, placed.Position)
	}

	var summary struct {
		ID, Customer, Status string
		Units                int
		TotalCents           int64 `json:"total_cents"`
		Position             uint64
	}
	call(t, "GET", fmt.Sprintf("%s/api/queries/order.summary?id=%s&wait-for=%d", base, id, confirmed.Position), nil, 200, &summary)
	if summary.ID != id || summary.Customer != "ada" || summary.Status != "confirmed" || summary.Units != 3 || summary.TotalCents != 2699 || summary.Position < confirmed.Position {
		t.Errorf("summary %+v: want ada's confirmed order of 3 units, 2699 cents, at position %d or later", summary, confirmed.Position)
	}

	var history struct {
		Events []struct {
			Type    string
			Version uint64
			Event   map[string]any
		}
	}
	call(t, "GET", base+"/api/aggregates/order/"+id+"/events", nil, 200, &history)
	var types []string
	for _, e := range history.Events {
		types = append(types, e.Type)
	}
	if got, want := strings.Join(types, " "), "order.placed order.item-added order.item-added order.confirmed"; !strings.HasPrefix(got, want) {
		t.Errorf("history %q, want it to start %q", got, want)
	}
	if len(history.Events) > 1 && history.Events[1].Event["sku"] != "book" {
		t.Errorf("the history's second event is %v, want the book as JSON", history.Events[1].Event)
	}

	// A rule broken is a problem with the code, not a 500.
	var p struct{ Code, Detail string }
	call(t, "POST", cmds+"order.add-item", map[string]any{"id": id, "sku": "cup", "quantity": 1, "price_cents": 5}, 422, &p)
	if p.Code != "LXE-001" || !strings.Contains(p.Detail, "confirmed") {
		t.Errorf("add to a confirmed order: problem %+v, want LXE-001 saying it is confirmed", p)
	}
	// Any NATS client reaches the same commands and queries with JSON.
	natsURL := regexp.MustCompile(`NATS\s+(nats://\S+)`).FindStringSubmatch(banner)
	if natsURL == nil {
		t.Fatalf("the banner names no NATS URL:\n%s", banner)
	}
	nc, err := nats.Connect(natsURL[1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	msg, err := nc.Request("lexigram.qry.order.summary", []byte(`{"id":"`+id+`"}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var overNATS struct{ ID, Status string }
	if err := json.Unmarshal(msg.Data, &overNATS); err != nil || overNATS.ID != id || overNATS.Status != "confirmed" {
		t.Errorf("nats req lexigram.qry.order.summary answered %q (%v), want the confirmed order as JSON", msg.Data, err)
	}

	// The OpenAPI document describes the example's commands.
	var doc struct{ Paths map[string]any }
	call(t, "GET", base+"/api/openapi.json", nil, 200, &doc)
	if _, ok := doc.Paths["/api/commands/order.place"]; !ok {
		t.Errorf("/api/openapi.json does not describe order.place")
	}
}

// TestServeExampleNone: --example=none registers no order command.
func TestServeExampleNone(t *testing.T) {
	base, banner := startExample(t, serveOptions{Example: exampleNone})
	if strings.Contains(banner, "order.place") {
		t.Errorf("the banner of a node without the example offers order.place:\n%s", banner)
	}
	var p struct {
		Status int
		Code   string
	}
	call(t, "POST", base+"/api/commands/order.place", map[string]any{"id": "o-1", "customer": "ada"}, 404, &p)
	// Another test of this process may have registered the type: then it
	// has no handler here.
	if p.Status != 404 || (p.Code != "LXE-002" && p.Code != "LXE-012") {
		t.Errorf("problem %+v: want 404 with LXE-002 (unknown type) or LXE-012 (no handler)", p)
	}
}

// TestServeExampleFlag: an unknown --example is refused, naming the
// choices, before anything starts.
func TestServeExampleFlag(t *testing.T) {
	cmd := serveCommand()
	cmd.SetArgs([]string{"--example=shop"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), `"shop"`) || !strings.Contains(err.Error(), `"orders"`) || !strings.Contains(err.Error(), `"none"`) {
		t.Fatalf("--example=shop: got %v, want an error naming it and the choices", err)
	}
	err = serveWith(context.Background(), config.Default(), quietLog(), serveOptions{Example: exampleNone, Postgres: "postgres://127.0.0.1/x"})
	if err == nil || !strings.Contains(err.Error(), "--postgres") {
		t.Fatalf("--postgres without the example: got %v, want an error saying so", err)
	}

	// The same settings from the configuration file, whose password
	// never shows.
	path := filepath.Join(t.TempDir(), "lexigram.yaml")
	if err := os.WriteFile(path, []byte("example:\n  name: none\n  postgres_url: postgres://u:s3cret@127.0.0.1/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = serveCommand()
	cmd.SetArgs([]string{"--config", path})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err = cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "example.postgres_url") || !strings.Contains(err.Error(), `example.name is "none"`) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("example.postgres_url with example.name none in the file: got %v, want an error naming both, without the password", err)
	}
	// A flag wins over the file.
	if err := os.WriteFile(path, []byte("example:\n  name: orders\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd = serveCommand()
	cmd.SetArgs([]string{"--config", path, "--example=shop"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `--example "shop"`) {
		t.Fatalf("--example=shop over the file: got %v", err)
	}
}

// TestServeExamplePostgres: with --postgres the summaries are also rows
// in PostgreSQL, in the schema given; wait-for can wait on that
// projection.
func TestServeExamplePostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url, conn, schema := pgtest.URL(), pgtest.Conn(t), pgtest.Schema(t)

	base, _ := startExample(t, serveOptions{Example: exampleOrders, Postgres: url, PostgresSchema: schema})
	cmds := base + "/api/commands/"
	call(t, "POST", cmds+"order.place", map[string]any{"id": "pg-1", "customer": "bob"}, 200, nil)
	var res commandResult
	call(t, "POST", cmds+"order.add-item", map[string]any{"id": "pg-1", "sku": "lamp", "quantity": 2, "price_cents": 4000}, 200, &res)
	call(t, "GET", fmt.Sprintf("%s/api/queries/order.summary?id=pg-1&wait-for=%d&wait-for-projection=order_summary_pg", base, res.Position), nil, 200, nil)
	var units int
	var total int64
	err := conn.QueryRow(ctx, "SELECT units, total_cents FROM "+pgx.Identifier{schema, "order_summary"}.Sanitize()+" WHERE id = $1", "pg-1").Scan(&units, &total)
	if err != nil || units != 2 || total != 8000 {
		t.Fatalf("row of pg-1: units %d total %d (%v), want 2 and 8000", units, total, err)
	}
}
