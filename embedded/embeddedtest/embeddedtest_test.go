package embeddedtest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
)

func TestServer(t *testing.T) {
	t.Parallel()
	s := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Second })
	if s.Durability() == "fsync before ack" {
		t.Fatal("option was not applied")
	}
	js, err := jetstream.New(embeddedtest.Conn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S"}); err != nil {
		t.Fatal(err)
	}
}

func TestClusterFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := embeddedtest.Cluster(t)
	t.Logf("cluster ready after %s", time.Since(start))

	nc := c.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: 3,
	}); err != nil {
		t.Fatalf("create R3 stream: %v", err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, "orders.new", fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}

	leader := c.StreamLeader("ORDERS")
	if leader < 0 {
		t.Fatal("no stream leader after successful publishes")
	}
	failover := time.Now()
	c.Shutdown(leader)

	// Publishes fail while the stream elects a new leader and the client
	// reconnects; keep trying until one succeeds.
	publish := func(data string) {
		t.Helper()
		deadline, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		for {
			pctx, pcancel := context.WithTimeout(deadline, time.Second)
			// The message ID makes retries of a publish that did land harmless.
			_, err := js.Publish(pctx, "orders.new", []byte(data), jetstream.WithMsgID(data))
			pcancel()
			if err == nil {
				return
			}
			if deadline.Err() != nil {
				t.Fatalf("publish %q after failover: %v", data, errors.Join(err, deadline.Err()))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	publish("after-failover")
	t.Logf("publish succeeded %s after shutting down the leader", time.Since(failover))

	newLeader := c.StreamLeader("ORDERS")
	if newLeader < 0 || newLeader == leader {
		t.Fatalf("stream leader = %d after shutting down node %d", newLeader, leader)
	}

	restart := time.Now()
	c.Restart(leader)
	t.Logf("node %d rejoined after %s", leader, time.Since(restart))
	publish("after-restart")

	// The restarted node must catch up with the stream, not just be running.
	deadline := time.Now().Add(20 * time.Second)
	for !c.Servers[leader].NATS().JetStreamIsStreamCurrent("$G", "ORDERS") {
		if time.Now().After(deadline) {
			t.Fatalf("node %d did not catch up with ORDERS", leader)
		}
		time.Sleep(10 * time.Millisecond)
	}

	st, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 12 {
		t.Fatalf("stream has %d messages, want 12", info.State.Msgs)
	}
}
