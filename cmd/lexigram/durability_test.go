package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// startServe runs serve with cfg until the test ends and returns the
// base URL of its HTTP listener, once /healthz answers.
func startServe(t *testing.T, cfg config.Config, log *slog.Logger) string {
	t.Helper()
	cfg.HTTP.Addr = freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop within 15s")
		}
	})
	base := "http://" + cfg.HTTP.Addr
	waitGet(t, base+"/healthz")
	return base
}

// health GETs /healthz as JSON.
func health(t *testing.T, base string) (int, string, durabilityJSON) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status     string         `json:"status"`
		Durability durabilityJSON `json:"durability"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("/healthz JSON: %v: %s", err, b)
	}
	return resp.StatusCode, body.Status, body.Durability
}

// TestServeDurability: the node on the embedded server knows its fsync
// setting, requires fsync, logs it at start and shows it on /healthz.
func TestServeDurability(t *testing.T) {
	cfg := config.Default()
	cfg.NATS.EmbeddedServer.Port = -1
	cfg.NATS.EmbeddedServer.DataDir = t.TempDir()
	cfg.Store.RequireDurability = "fsync"
	var logs syncBuffer
	base := startServe(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	code, status, d := health(t, base)
	if code != http.StatusOK || status != "ok" || d.Text != "fsync before ack on 1 replica" || d.Level != "fsync" ||
		d.Sync != "always" || d.Storage != "file" || d.Replicas != 1 || d.Source != "embedded server" {
		t.Fatalf("/healthz: %d %q %+v", code, status, d)
	}
	if !strings.Contains(logs.String(), `msg="serving health and metrics, the API and the dashboard"`) || !strings.Contains(logs.String(), `durability="fsync before ack on 1 replica" durability_level=fsync`) {
		t.Fatalf("the start log does not state the durability:\n%s", logs.String())
	}
}

// TestServeDurabilityLowered: a node on an R3 cluster requires
// "replicated"; the stream scaled down to one replica underneath makes
// /healthz answer 503 with the refusal, and scaled up again 200.
func TestServeDurabilityLowered(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster")
	}
	c := embeddedtest.Cluster(t)
	cfg := config.Default()
	cfg.NATS.URLs = strings.Split(c.ClientURLs(), ",")
	cfg.Store.Replicas = 3
	cfg.Store.RequireDurability = "replicated"
	base := startServe(t, cfg, embeddedtest.Logger(t))
	if code, _, d := health(t, base); code != http.StatusOK || d.Text != "sync setting unknown (no system account access), on 3 replicas" || d.Level != "replicated" {
		t.Fatalf("/healthz on R3: %d %+v", code, d)
	}
	js, err := jetstream.New(c.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	scale := func(n int) {
		t.Helper()
		s, err := js.Stream(t.Context(), "EVENTS")
		if err != nil {
			t.Fatal(err)
		}
		sc := s.CachedInfo().Config
		sc.Replicas = n
		if _, err := js.UpdateStream(t.Context(), sc); err != nil {
			t.Fatal(err)
		}
	}
	waitHealth := func(want int) (string, durabilityJSON) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, status, d := health(t, base)
			if code == want {
				return status, d
			}
			if time.Now().After(deadline) {
				t.Fatalf("/healthz still %d %q after 30s, want %d", code, status, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	scale(1)
	status, d := waitHealth(http.StatusServiceUnavailable)
	for _, want := range []string{"LXE-026", "store.require_durability is replicated", "on 1 replica (level any)", "store.replicas: 3"} {
		if !strings.Contains(status, want) {
			t.Errorf("the 503 lacks %q: %s", want, status)
		}
	}
	if d.Replicas != 1 {
		t.Errorf("durability on 503: %+v", d)
	}
	scale(3)
	waitHealth(http.StatusOK)
}

// TestServeRefusesBelowDurability runs `lexigram serve` as a user does,
// requiring fsync from an embedded server that fsyncs every minute: it
// exits non-zero, the error naming what is in force and the fixes.
func TestServeRefusesBelowDurability(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, lexigramBinary(t), "serve", "--http-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "LEXIGRAM_CONFIG=", "LEXIGRAM_NATS_EMBEDDED_PORT=-1", "LEXIGRAM_NATS_EMBEDDED_DATA_DIR="+t.TempDir(),
		"LEXIGRAM_NATS_EMBEDDED_FSYNC_INTERVAL=1m", "LEXIGRAM_STORE_REQUIRE_DURABILITY=fsync")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("want a non-zero exit, got %v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"lexigram: LXE-026", "store.require_durability is fsync", "flushed to the OS, fsync every 1m0s, on 1 replica (level any)",
		"sync_interval: always", "nats.embedded.fsync_interval: 0", "store.require_durability: any"} {
		if !strings.Contains(last, want) {
			t.Errorf("the error lacks %q:\n%s", want, last)
		}
	}
}

// syncBuffer is a bytes.Buffer the logger and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
