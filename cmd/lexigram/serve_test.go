package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/config"
)

// TestServe runs the node on the embedded server, checks /healthz and
// /metrics over real HTTP, and stops it as SIGINT would.
func TestServe(t *testing.T) {
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.Port = -1
	cfg.NATS.EmbeddedServer.DataDir = t.TempDir()
	cfg.HTTP.Addr = freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	body := waitGet(t, "http://"+cfg.HTTP.Addr+"/healthz")
	if want := "ok\ndurability: fsync before ack on 1 replica (level fsync)\n"; body != want {
		t.Fatalf("/healthz = %q, want %q", body, want)
	}
	metrics := waitGet(t, "http://"+cfg.HTTP.Addr+"/metrics")
	for _, want := range []string{`lexigram_store_events{stream="EVENTS"} 0`, "lexigram_nats_connected 1", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// The dashboard is mounted, and the root leads to it.
	if page := waitGet(t, "http://"+cfg.HTTP.Addr+"/"); !strings.Contains(page, "EVENTS") || !strings.Contains(page, "<html") {
		t.Errorf("/ does not lead to the dashboard's overview:\n%.500s", page)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after stop", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of its context ending")
	}
	if _, err := http.Get("http://" + cfg.HTTP.Addr + "/healthz"); err == nil {
		t.Fatal("the HTTP server still answers after stop")
	}
}

// TestServeHTTPPortTaken: a taken HTTP port is a clear error naming it.
func TestServeHTTPPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.Port = -1
	cfg.NATS.EmbeddedServer.DataDir = t.TempDir()
	cfg.HTTP.Addr = ln.Addr().String()
	err = serve(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("want an error naming %s and --http-addr, got %v", ln.Addr(), err)
	}
}

// TestServeNATSNotListening: a NATS URL with nothing listening is an
// error that says so, not a panic while cleaning up the failed start.
func TestServeNATSNotListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	cfg := config.Default()
	cfg.NATS.URLs = []string{"nats://" + addr}
	cfg.NATS.ConnectTimeout = time.Second
	cfg.HTTP.Addr = freeAddr(t)
	err = serve(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "connect to NATS") {
		t.Fatalf("want an error saying NATS could not be reached, got %v", err)
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitGet polls url until it answers 200, for up to 10 s.
func waitGet(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = &httpStatusError{resp.Status, string(b)}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type httpStatusError struct{ status, body string }

func (e *httpStatusError) Error() string { return e.status + ": " + e.body }
