package rabbitmq_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/rabbitmq"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type noted struct{ N int }

func newJS(t *testing.T) jetstream.JetStream {
	t.Helper()
	s := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
	js, err := jetstream.New(embeddedtest.Conn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func stop(t *testing.T, f func(context.Context) error) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := f(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

// Events go from the store to RabbitMQ and back into JetStream while
// RabbitMQ restarts in the middle: every event arrives, none is stored
// twice (the outbound side may publish one again after a lost confirm;
// the inbound side's Nats-Msg-Id, from the AMQP message-id, absorbs it),
// and the CloudEvents attributes survive the AMQP round trip.
func TestBridgeThroughBrokerRestart(t *testing.T) {
	needBroker(t)
	js := newJS(t)
	reg := platform.NewRegistry()
	platform.MustRegister[noted](reg, "noted", 1)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	in, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}, Duplicates: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	top := topology(t, "events.#")
	log := embeddedtest.Logger(t)
	pub := rabbitmq.NewPublisher(rabbitmq.PublisherOptions{Exchange: top.Exchange, Backoff: fast, Logger: log})
	defer pub.Close()
	out, err := bridges.NewOutbound(t.Context(), js, pub, bridges.OutboundOptions{
		Name: "to-rabbit", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Format: bridges.CloudEventsBinary,
		Workers: 3, BatchSize: 20, Backoff: fast, PublishTimeout: 5 * time.Second, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop(t, out.Stop)
	sub, err := rabbitmq.NewSubscriber(rabbitmq.SubscriberOptions{Queue: top.Queue, Prefetch: 50, Backoff: fast, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	inb, err := bridges.NewInbound(t.Context(), js, sub, bridges.InboundOptions{
		Name: "from-rabbit", Subject: "in.events", Format: bridges.CloudEventsBinary, Backoff: fast, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop(t, inb.Stop)

	const total = 600
	var appended atomic.Int64
	appendDone := make(chan error, 1)
	go func() {
		for i := range total {
			id := fmt.Sprintf("agg-%d", i%7)
			if _, err := st.Append(context.Background(), platform.StreamID{Type: "thing", ID: id}, platform.Any(), []platform.Envelope{{Event: noted{N: i}}}); err != nil {
				appendDone <- err
				return
			}
			appended.Add(1)
			time.Sleep(10 * time.Millisecond) // paces the appends to span the restart

		}
		appendDone <- nil
	}()
	count := func() uint64 {
		info, err := in.Info(context.Background())
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	waitUntil(t, "the first events through RabbitMQ", 60*time.Second, func() bool { return count() >= 50 })
	before := appended.Load()
	restart(t)
	during := appended.Load() - before
	if before >= total || during == 0 {
		t.Fatalf("the restart did not fall mid-run: %d events appended before it, %d during it", before, during)
	}
	if err := <-appendDone; err != nil {
		t.Fatalf("append: %v", err)
	}
	waitUntil(t, fmt.Sprintf("%d events stored back in JetStream", total), 90*time.Second, func() bool { return count() >= total })
	// Let anything still on its way land before counting copies.
	waitUntil(t, "the queue drained", 30*time.Second, func() bool {
		info, err := js.Consumer(context.Background(), st.StreamName(), "to-rabbit")
		if err != nil {
			return false
		}
		ci, err := info.Info(context.Background())
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 && queueLen(t, top.Queue) == 0
	})
	if n := count(); n != total {
		t.Fatalf("JetStream holds %d inbound messages, want %d: a redelivery was stored twice", n, total)
	}
	// Every event ID once, with its CloudEvents attributes mapped back.
	c, err := in.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	batch, err := c.Fetch(total, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		h := m.Headers()
		id := h.Get("Lx-Id")
		if ids[id] || h.Get("Lx-Type") != "noted" || !strings.HasPrefix(h.Get("ce-lxaggregateid"), "agg-") || h.Get("Nats-Msg-Id") != "from-rabbit:"+id {
			t.Fatalf("stored message: duplicate %v, headers %v", ids[id], h)
		}
		ids[id] = true
	}
	if len(ids) != total {
		t.Fatalf("read %d distinct events, want %d", len(ids), total)
	}
}

func queueLen(t *testing.T, queue string) int {
	n := -1
	admin(t, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		n = q.Messages
		return err
	})
	return n
}

// Unroutable events go to the bridge's dead-letter subject with the
// reason; the bridge delivers the others.
func TestOutboundUnroutableDeadLettered(t *testing.T) {
	needBroker(t)
	js := newJS(t)
	reg := platform.NewRegistry()
	platform.MustRegister[noted](reg, "noted", 1)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	top := topology(t, "events.order.*")
	pub := rabbitmq.NewPublisher(rabbitmq.PublisherOptions{Exchange: top.Exchange, Logger: embeddedtest.Logger(t)})
	defer pub.Close()
	out, err := bridges.NewOutbound(t.Context(), js, pub, bridges.OutboundOptions{Name: "unroutable", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stop(t, out.Stop)
	for _, typ := range []string{"order", "invoice", "order"} {
		if _, err := st.Append(t.Context(), platform.StreamID{Type: typ, ID: "x"}, platform.Any(), []platform.Envelope{{Event: noted{}}}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "two events in the queue", 30*time.Second, func() bool { return queueLen(t, top.Queue) == 2 })
	dlq, err := js.Stream(t.Context(), bridges.DefaultDeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	var reason string
	waitUntil(t, "the dead letter", 30*time.Second, func() bool {
		m, err := dlq.GetLastMsgForSubject(context.Background(), "lxbridge.dlq.unroutable")
		if err != nil {
			return false
		}
		reason = m.Header.Get(bridges.HeaderReason)
		return m.Header.Get(bridges.HeaderSubject) == "events.invoice.x"
	})
	if !strings.Contains(reason, "unroutable") || !strings.Contains(reason, "events.invoice.x") {
		t.Fatalf("dead-letter reason %q", reason)
	}
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Nats- headers arriving over AMQP, whatever their case and AMQP type,
// never reach JetStream: the expected-sequence header would refuse the
// message, the TTL and schedule would act on a stream that allows them.
// The message lands with Nats-Msg-Id from its AMQP message-id, once even
// when RabbitMQ has it twice.
func TestInboundDropsNatsHeadersFromAMQP(t *testing.T) {
	needBroker(t)
	js := newJS(t)
	s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}, AllowMsgTTL: true, AllowMsgSchedules: true})
	if err != nil {
		t.Fatal(err)
	}
	top := topology(t, "#")
	sub, err := rabbitmq.NewSubscriber(rabbitmq.SubscriberOptions{Queue: top.Queue, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	inb, err := bridges.NewInbound(t.Context(), js, sub, bridges.InboundOptions{Name: "amqp-in", Subject: "in.amqp", Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stop(t, inb.Stop)
	hostile := amqp.Table{
		"Nats-Expected-Last-Subject-Sequence": int64(99),
		"nats-ttl":                            "1s",
		"NATS-Schedule":                       "@at 2099-01-01T00:00:00Z",
		"Nats-Schedule-Target":                "in.elsewhere",
		"Nats-Msg-Id":                         "forged",
		"X-Kept":                              int32(7),
	}
	admin(t, func(ch *amqp.Channel) error {
		for range 2 { // the same message twice, as a redelivery
			if err := ch.PublishWithContext(t.Context(), top.Exchange, "k", false, false, amqp.Publishing{MessageId: "m-1", Headers: hostile, Body: []byte("hello")}); err != nil {
				return err
			}
		}
		return nil
	})
	waitUntil(t, "the queue drained", 30*time.Second, func() bool { return queueLen(t, top.Queue) == 0 })
	m, err := s.GetLastMsgForSubject(t.Context(), "in.amqp")
	if err != nil {
		t.Fatalf("the message was not stored: %v", err)
	}
	for k := range m.Header {
		if strings.HasPrefix(strings.ToLower(k), "nats-") && k != "Nats-Msg-Id" {
			t.Errorf("header %s reached JetStream", k)
		}
	}
	if m.Header.Get("Nats-Msg-Id") != "amqp-in:m-1" || m.Header.Get("X-Kept") != "7" || string(m.Data) != "hello" {
		t.Fatalf("stored message: headers %v, body %q", m.Header, m.Data)
	}
	info, err := s.Info(t.Context())
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream holds %v messages (%v), want 1", info.State.Msgs, err)
	}
}
