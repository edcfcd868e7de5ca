package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/dashboard"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// The test domain: accounts opened and given deposits.

type Opened struct {
	Owner string `json:"owner"`
}

type Deposited struct {
	Amount int    `json:"amount"`
	Note   string `json:"note,omitempty"`
}

func registry() *platform.Registry {
	r := platform.NewRegistry()
	platform.MustRegister[Opened](r, "test.opened", 1)
	platform.MustRegister[Deposited](r, "test.deposited", 1)
	return r
}

// balances is a generational read model in memory: the projection the
// dashboard rebuilds. A rebuild's handler waits at hold (an event
// count) until release is closed, so a test sees it in progress.
type balances struct {
	mu      sync.Mutex
	gens    map[projections.Generation]map[string]int
	applied map[projections.Generation]int
	active  projections.Generation

	hold    int
	holding chan struct{} // closed when the rebuild waits at hold
	release chan struct{}
}

func newBalances() *balances {
	return &balances{gens: map[projections.Generation]map[string]int{}, applied: map[projections.Generation]int{},
		holding: make(chan struct{}), release: make(chan struct{})}
}

func (b *balances) Handle(ctx context.Context, gen projections.Generation, e platform.Envelope) error {
	b.mu.Lock()
	if b.gens[gen] == nil {
		b.gens[gen] = map[string]int{}
	}
	if d, ok := e.Event.(Deposited); ok {
		b.gens[gen][e.Stream.ID] += d.Amount
	}
	b.applied[gen]++
	wait := gen > 1 && b.hold > 0 && b.applied[gen] == b.hold
	b.mu.Unlock()
	if wait {
		close(b.holding)
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (b *balances) Active(context.Context) (projections.Generation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active, nil
}

func (b *balances) Prepare(_ context.Context, gen projections.Generation) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gens[gen], b.applied[gen] = map[string]int{}, 0
	return nil
}

func (b *balances) Activate(_ context.Context, gen projections.Generation) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.active = gen
	return nil
}

func (b *balances) Drop(_ context.Context, gen projections.Generation) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.gens, gen)
	return nil
}

// mailer is a durable handler that refuses, for good, deposits noted
// "poison" until fixed, and records what it handled.
type mailer struct {
	mu      sync.Mutex
	fixed   bool
	handled map[uint64]bool
	got     chan uint64
}

func (m *mailer) handle(_ context.Context, e platform.Envelope) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := e.Event.(Deposited); ok && d.Note == "poison" && !m.fixed {
		return durable.Permanent(fmt.Errorf("cannot mail a poisoned deposit of %d", d.Amount))
	}
	m.handled[e.Position] = true
	select {
	case m.got <- e.Position:
	default:
	}
	return nil
}

// records keeps the dashboard's log records, for the actions' log.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
	next slog.Handler
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return r.next.Handle(ctx, rec)
}
func (r *records) WithAttrs(as []slog.Attr) slog.Handler { return r } // the dashboard adds none
func (r *records) WithGroup(string) slog.Handler         { return r }

// actions are the "dashboard: action" records, as "action target by".
func (r *records) actions() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.recs {
		if rec.Message != "dashboard: action" {
			continue
		}
		var f []string
		rec.Attrs(func(a slog.Attr) bool {
			f = append(f, a.Key+"="+a.Value.String())
			return true
		})
		out = append(out, strings.Join(f, " "))
	}
	return out
}

// env is a running node with the test domain, seeded, and the dashboard
// on an httptest server.
type env struct {
	n        *node.Node
	d        *dashboard.Dashboard
	srv      *httptest.Server
	balances *balances
	mailer   *mailer
	log      *records
}

// start opens and runs a node (embedded server, memory storage, data in
// t.TempDir()) and serves the dashboard with opts at /ui/.
func start(t *testing.T, opts dashboard.Options, seed func(*env)) *env {
	t.Helper()
	return startWith(t, opts, nil, seed)
}

// startWith is start with configure changing the node's configuration
// first (nil: none).
func startWith(t *testing.T, opts dashboard.Options, configure func(*config.Config), seed func(*env)) *env {
	t.Helper()
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.DataDir = t.TempDir()
	cfg.NATS.EmbeddedServer.DontListen = true
	cfg.Store.Storage = "memory"
	cfg.Projections.RebuildBatchSize = 10
	cfg.Projections.LeaseTTL = 2 * time.Second
	if configure != nil {
		configure(&cfg)
	}
	n, err := node.Open(t.Context(), cfg, node.Options{Registry: registry(), Logger: embeddedtest.Logger(t), ShutdownTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{n: n, balances: newBalances(), mailer: &mailer{handled: map[uint64]bool{}, got: make(chan uint64, 100)},
		log: &records{next: embeddedtest.Logger(t).Handler()}}
	if err := n.AddProjection(projections.Projection{Name: "balances", Handler: e.balances}); err != nil {
		t.Fatal(err)
	}
	if err := n.Handle("mailer", e.mailer.handle, durable.Options{MaxDeliver: 2, Backoff: []time.Duration{10 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	if seed != nil {
		seed(e)
	}
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
	if opts.LiveInterval == 0 {
		opts.LiveInterval = 100 * time.Millisecond
	}
	opts.Logger = slog.New(e.log)
	d, err := dashboard.New(n, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	mux := http.NewServeMux()
	mux.Handle("/ui/", d)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		e.srv.CloseClientConnections() // the tabs' event streams
		e.srv.Close()
		stop()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return e
}

// append stores events on an aggregate, with a correlation ID.
func (e *env) append(t *testing.T, id, correlation string, events ...any) platform.AppendResult {
	t.Helper()
	envs := make([]platform.Envelope, len(events))
	for i, ev := range events {
		envs[i] = platform.Envelope{Event: ev, CorrelationID: correlation, Metadata: map[string]string{"source": "test"}}
	}
	res, err := e.n.Store().Append(t.Context(), platform.StreamID{Type: "account", ID: id}, platform.Any(), envs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (e *env) url(path string) string { return e.srv.URL + "/ui" + path }

// waitUntil polls cond until it holds (30s at most).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// has reports whether a record with the message has attributes
// containing every one of want.
func (r *records) has(message string, want ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		if rec.Message != message {
			continue
		}
		var f []string
		rec.Attrs(func(a slog.Attr) bool {
			f = append(f, a.Key+"="+a.Value.String())
			return true
		})
		all := strings.Join(f, " ")
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(all, w)
		}
		if ok {
			return true
		}
	}
	return false
}

// post sends a form to a dashboard path without a browser.
func post(t *testing.T, e *env, path, form string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url(path), strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
