package bridges_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type itemAdded struct {
	SKU string `json:"sku" msgpack:"sku"`
	Qty int    `json:"qty" msgpack:"qty"`
}

func newJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	s := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
	js, err := jetstream.New(embeddedtest.Conn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func newStore(t *testing.T, js jetstream.JetStream, codec platform.Codec) *lxjs.EventStore {
	t.Helper()
	reg := platform.NewRegistry()
	platform.MustRegister[itemAdded](reg, "order.item-added", 1)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Codec: codec, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// appendEvents appends n events to each aggregate, one append per event.
func appendEvents(t *testing.T, st *lxjs.EventStore, ids []string, n int) {
	t.Helper()
	for v := range n {
		for _, id := range ids {
			_, err := st.Append(t.Context(), platform.StreamID{Type: "order", ID: id}, platform.Exact(uint64(v)),
				[]platform.Envelope{{Event: itemAdded{SKU: id + "-" + strconv.Itoa(v+1), Qty: v + 1}}})
			if err != nil {
				t.Fatalf("append %s version %d: %v", id, v+1, err)
			}
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within 30s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// collect receives n deliveries, acking each.
func collect(t *testing.T, ch <-chan *bridges.Delivery, n int) []*bridges.Delivery {
	t.Helper()
	out := make([]*bridges.Delivery, 0, n)
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case d := <-ch:
			out = append(out, d)
			if err := d.Ack(t.Context()); err != nil {
				t.Fatalf("ack: %v", err)
			}
		case <-timeout:
			t.Fatalf("received %d of %d messages within 30s", len(out), n)
		}
	}
	return out
}

// deadLetters reads the bridge's dead-letter subject.
func deadLetters(t *testing.T, js jetstream.JetStream, bridge string, n int) []jetstream.Msg {
	t.Helper()
	var out []jetstream.Msg
	waitFor(t, fmt.Sprintf("%d dead letters of %s", n, bridge), func() bool {
		out = out[:0]
		s, err := js.Stream(t.Context(), bridges.DefaultDeadLetterStream)
		if err != nil {
			return false
		}
		c, err := s.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{"lxbridge.dlq." + bridge}})
		if err != nil {
			return false
		}
		batch, err := c.FetchNoWait(100)
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
		return len(out) >= n
	})
	return out
}

func stopped(t *testing.T, stop func(context.Context) error) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := stop(ctx); err != nil {
			t.Errorf("stop the bridge: %v", err)
		}
	})
}
