package azservicebus

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// The real SDK behind the thin wrappers, pointed at a namespace that is
// not there (an emulator connection string on a closed loopback port):
// a publish fails within its context with an error naming the namespace,
// retryable and without the key; a subscriber reports itself disconnected
// and keeps retrying until Close, which returns at once.
func TestSDKUnreachableNamespace(t *testing.T) {
	addr := closedPort(t)
	const key = "bG9jYWwtdGVzdC1rZXk="
	cs := "Endpoint=sb://" + addr + ";SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + key + ";UseDevelopmentEmulator=true"
	log := embeddedtest.Logger(t)
	p, err := NewPublisher(PublisherOptions{ConnectionString: cs, Queue: "q", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	err = p.Publish(ctx, &bridges.Message{ID: "1", Data: []byte("x")})
	cancel()
	if err == nil || bridges.IsRefused(err) || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), addr) {
		t.Fatalf("publish to a closed port: %v; want a retryable error naming %s without the key", err, addr)
	}
	if p.Connected() {
		t.Fatal("connected after a failed publish")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	for _, sessions := range []bool{false, true} {
		s, err := NewSubscriber(SubscriberOptions{ConnectionString: cs, Queue: "q", Sessions: sessions, MaxSessions: 2, Backoff: fast, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		ch, err := s.Subscribe(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "the subscriber disconnected", 30*time.Second, func() bool { return !s.Connected() })
		start := time.Now()
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if _, ok := <-ch; ok {
			t.Fatal("a delivery from nowhere")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Close took %v", d)
		}
	}
}
