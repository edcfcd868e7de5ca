package kafka_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/bridges/kafka"
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

// Ping answers nil while a broker is up, and fails, naming the brokers,
// once none is: stopped, or never there.
func TestPing(t *testing.T) {
	k := newCluster(t)
	pub, err := kafka.NewPublisher(kafka.PublisherOptions{Brokers: k.addrs, Topic: "ping"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := kafka.NewSubscriber(kafka.SubscriberOptions{Brokers: k.addrs, Topic: "ping", Group: "ping"})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for name, ping := range map[string]func(context.Context) error{"publisher": pub.Ping, "subscriber": sub.Ping} {
		if err := ping(t.Context()); err != nil {
			t.Errorf("%s: Ping with the cluster up = %v", name, err)
		}
	}
	k.c.Close()
	for name, ping := range map[string]func(context.Context) error{"publisher": pub.Ping, "subscriber": sub.Ping} {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := ping(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "kafka brokers "+strings.Join(k.addrs, ",")+": none answers") {
			t.Errorf("%s: Ping with the cluster stopped = %v, want an error naming the brokers", name, err)
		}
	}

	addr := closedPort(t)
	never, err := kafka.NewPublisher(kafka.PublisherOptions{Brokers: []string{addr}, Topic: "ping"})
	if err != nil {
		t.Fatal(err)
	}
	defer never.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := never.Ping(ctx); err == nil || !strings.Contains(err.Error(), "kafka brokers "+addr) {
		t.Errorf("Ping of a closed port = %v, want an error naming %s", err, addr)
	}
	_ = never.Close()
	if err := never.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Ping after Close = %v", err)
	}
}
