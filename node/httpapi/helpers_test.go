package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/httpapi"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// The test domain: accounts that are opened and take deposits.

type Opened struct {
	Owner string `json:"owner"`
}

type Deposited struct {
	Amount int    `json:"amount"`
	Note   string `json:"note,omitempty"`
}

type Account struct {
	platform.AggregateRoot
	Owner string
	Total int
}

func (a *Account) AggregateType() string { return "account" }

func (a *Account) Apply(event any) {
	switch e := event.(type) {
	case Opened:
		a.Owner = e.Owner
	case Deposited:
		a.Total += e.Amount
	}
}

type OpenAccount struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
}

type Deposit struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
	Note    string `json:"note,omitempty"`
}

// Validate refuses a deposit that is not positive.
func (d Deposit) Validate() error {
	if d.Amount <= 0 {
		return errors.New("amount: must be positive")
	}
	return nil
}

type GetBalance struct {
	Account string    `json:"account"`
	Min     int       `json:"min,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Tags    []string  `json:"tags,omitempty"`
}

type Balance struct {
	Account string   `json:"account"`
	Total   int      `json:"total"`
	Tags    []string `json:"tags,omitempty"`
}

func registry() *platform.Registry {
	r := platform.NewRegistry()
	platform.MustRegister[Opened](r, "test.opened", 1)
	platform.MustRegister[Deposited](r, "test.deposited", 1)
	platform.MustRegister[OpenAccount](r, "test.open-account", 1)
	platform.MustRegister[Deposit](r, "test.deposit", 1)
	platform.MustRegister[GetBalance](r, "test.get-balance", 1)
	return r
}

// env is a running node with the domain and the API on an httptest
// server.
type env struct {
	n   *node.Node
	srv *httptest.Server

	mu       sync.Mutex
	balances map[string]int
	keys     []string // the idempotency keys the deposit handler saw
}

// start opens a node on an embedded server (memory storage, data in
// t.TempDir()), registers the domain, runs it and serves the API with
// opts.
func start(t *testing.T, opts httpapi.Options) *env {
	t.Helper()
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.DataDir = t.TempDir()
	cfg.NATS.EmbeddedServer.DontListen = true
	cfg.Store.Storage = "memory"
	n, err := node.Open(t.Context(), cfg, node.Options{Registry: registry(), Logger: embeddedtest.Logger(t), ShutdownTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{n: n, balances: map[string]int{}}
	accounts := platform.NewRepository(n.Store(), func() *Account { return &Account{} }, platform.RepositoryOptions{})
	must(t, handlers.HandleCommand(n.Commands(), func(ctx context.Context, c OpenAccount) error {
		a := &Account{}
		a.SetID(c.ID)
		platform.Raise(a, Opened{Owner: c.Owner})
		return handlers.Track(ctx, accounts, a)
	}))
	must(t, handlers.HandleCommand(n.Commands(), func(ctx context.Context, c Deposit) error {
		if m, ok := handlers.MessageFrom(ctx); ok && m.IdempotencyKey != "" {
			e.mu.Lock()
			e.keys = append(e.keys, m.IdempotencyKey)
			e.mu.Unlock()
		}
		if c.Amount > 1_000_000 {
			return errors.New("deposits above 1000000 need a manual review")
		}
		a, err := handlers.Load(ctx, accounts, c.Account)
		if err != nil {
			return err
		}
		platform.Raise(a, Deposited{Amount: c.Amount, Note: c.Note})
		return nil
	}))
	must(t, handlers.HandleQuery(n.Queries(), func(ctx context.Context, q GetBalance) (Balance, error) {
		e.mu.Lock()
		defer e.mu.Unlock()
		return Balance{Account: q.Account, Total: e.balances[q.Account], Tags: q.Tags}, nil
	}))
	must(t, n.AddProjection(projections.Projection{Name: "balances", EventTypes: []string{"test.deposited"},
		Handler: projections.HandlerFunc(func(ctx context.Context, _ projections.Generation, ev platform.Envelope) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.balances[ev.Stream.ID] += ev.Event.(Deposited).Amount
			return nil
		})}))
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-ran:
		stop()
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		stop()
		t.Fatal("the node was not ready within 30s")
	}
	if opts.Commands == nil {
		opts.Commands = []httpapi.Type{httpapi.Command[OpenAccount](), httpapi.Command[Deposit]()}
		opts.Queries = []httpapi.Type{httpapi.Query[GetBalance, Balance]()}
	}
	mux := http.NewServeMux()
	mux.Handle("/api/", httpapi.Handler(n, opts))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.Close()
		stop()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// response is an answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to the API.
func (e *env) do(t *testing.T, method, path, body string, header ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, e.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// ok decodes a 200 answer into v.
func (r response) ok(t *testing.T, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// problemJSON is a problem details answer.
type problemJSON struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
	Code     string `json:"code"`
	Field    string `json:"field"`
	Fix      string `json:"fix"`
}

// problem checks that r is a problem with the status and decodes it.
func (r response) problem(t *testing.T, status int) problemJSON {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json: %s", ct, r.body)
	}
	var p problemJSON
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode the problem %s: %v", r.body, err)
	}
	if p.Status != status || p.Title == "" || p.Type == "" || p.Detail == "" || p.Fix == "" {
		t.Fatalf("problem %+v: want status %d and a type, title, detail and fix", p, status)
	}
	if p.Code != "" && p.Type != "urn:lexigram:error:"+p.Code {
		t.Fatalf("problem type %q does not name its code %s", p.Type, p.Code)
	}
	return p
}

// result is a command's answer.
type result struct {
	Aggregate *struct{ Type, ID string } `json:"aggregate"`
	Version   uint64                     `json:"version"`
	Position  uint64                     `json:"position"`
	Events    []event                    `json:"events"`
	Changes   []struct {
		LastPosition uint64 `json:"last_position"`
		Durability   string `json:"durability"`
	} `json:"changes"`
}

// event is an envelope as the API shows it.
type event struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	AggregateType string          `json:"aggregate_type"`
	AggregateID   string          `json:"aggregate_id"`
	Version       uint64          `json:"version"`
	Position      uint64          `json:"position"`
	Event         json.RawMessage `json:"event"`
	Error         string          `json:"error"`
}
