package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/node"
	"github.com/lexigram/events/node/httpapi"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// countsByGeneration is a generational read model in memory: events
// counted per generation.
type countsByGeneration struct {
	mu     sync.Mutex
	counts map[projections.Generation]int
	active projections.Generation
}

func (c *countsByGeneration) Handle(_ context.Context, gen projections.Generation, _ platform.Envelope) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[gen]++
	return nil
}
func (c *countsByGeneration) Active(context.Context) (projections.Generation, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active, nil
}
func (c *countsByGeneration) Prepare(_ context.Context, gen projections.Generation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[gen] = 0
	return nil
}
func (c *countsByGeneration) Activate(_ context.Context, gen projections.Generation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active = gen
	return nil
}
func (c *countsByGeneration) Drop(_ context.Context, gen projections.Generation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.counts, gen)
	return nil
}

// TestProjectionsCommands: ls, status, pause, resume and rebuild --wait
// against a node's HTTP API, and a clear error where nothing listens.
func TestProjectionsCommands(t *testing.T) {
	t.Setenv("LEXIGRAM_CONFIG", "")
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.DataDir = t.TempDir()
	cfg.NATS.EmbeddedServer.DontListen = true
	cfg.Store.Storage = "memory"
	reg := platform.NewRegistry()
	platform.MustRegister[invoiceIssued](reg, "invoice.issued", 1)
	n, err := node.Open(t.Context(), cfg, node.Options{Registry: reg, Logger: embeddedtest.Logger(t), ShutdownTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	model := &countsByGeneration{counts: map[projections.Generation]int{}}
	if err := n.AddProjection(projections.Projection{Name: "invoices", Handler: model}); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := n.Store().Append(t.Context(), platform.StreamID{Type: "invoice", ID: fmt.Sprint(i)}, platform.NoStream(), []platform.Envelope{{Event: invoiceIssued{Amount: i}}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	<-n.Ready()
	mux := http.NewServeMux()
	mux.Handle("/api/", httpapi.Handler(n, httpapi.Options{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if err := n.Projections().WaitFor(t.Context(), "invoices", 50); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, string, error) {
		cmd := projectionsCommand()
		var out, errOut bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errOut)
		cmd.SetArgs(append(args, "--url", srv.URL))
		err := cmd.ExecuteContext(t.Context())
		return out.String(), errOut.String(), err
	}
	if out, _, err := run("ls"); err != nil || !strings.Contains(out, "invoices") || !strings.Contains(out, "LIVE") {
		t.Fatalf("projections ls: %v\n%s", err, out)
	}
	out, _, err := run("status", "invoices", "--json")
	var st projectionStatus
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Position != 50 {
		t.Fatalf("projections status --json: %v, %+v\n%s", err, st, out)
	}
	if out, _, err := run("pause", "invoices"); err != nil || !strings.Contains(out, "paused, STOPPED") {
		t.Fatalf("projections pause: %v\n%s", err, out)
	}
	if out, _, err := run("resume", "invoices"); err != nil || !strings.Contains(out, "resumed") {
		t.Fatalf("projections resume: %v\n%s", err, out)
	}
	// Resumed, it takes its lease back before it applies events again
	// (and before it can be rebuilt here).
	if err := n.Projections().WaitFor(t.Context(), "invoices", 50); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the resumed projection to be active", func() bool {
		s, err := n.Projections().Status(t.Context(), "invoices")
		return err == nil && s.Active
	})
	out, _, err = run("rebuild", "invoices", "--wait")
	if err != nil || !strings.Contains(out, "is live") {
		t.Fatalf("projections rebuild --wait: %v\n%s", err, out)
	}
	model.mu.Lock()
	active, counted := model.active, model.counts[model.active]
	model.mu.Unlock()
	if active < 2 || counted != 50 {
		t.Fatalf("after the rebuild generation %d is active with %d events, want a new generation with all 50", active, counted)
	}
	if _, _, err := run("status", "nope"); err == nil || !strings.Contains(err.Error(), "invoices") {
		t.Fatalf("status of an unknown projection: %v, want an error naming the ones there are", err)
	}
	srv.Close()
	if _, _, err := run("ls"); err == nil || !strings.Contains(err.Error(), "is the node running") {
		t.Fatalf("ls with the node gone: %v", err)
	}
}
