package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/kafka"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type noted struct{ N int }

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

func stopLater(t *testing.T, f func(context.Context) error) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := f(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

// Events go from the store to Kafka (keyed by aggregate ID) and back into
// JetStream while every partition's leader moves to another broker and a
// second inbound bridge of the same name joins the consumer group and
// leaves it again (two rebalances): every event is stored once, and each
// aggregate's events keep their order.
func TestBridgeThroughLeaderMovesAndRebalances(t *testing.T) {
	k := newCluster(t)
	topic := randomName("events")
	k.createTopic(t, topic)
	s := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
	js, err := jetstream.New(embeddedtest.Conn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	reg := platform.NewRegistry()
	platform.MustRegister[noted](reg, "noted", 1)
	log := embeddedtest.Logger(t)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	in, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}, Duplicates: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	fast := bridges.Backoff{Min: 20 * time.Millisecond, Max: 500 * time.Millisecond}
	out, err := bridges.NewOutbound(t.Context(), js, k.publisher(t, topic), bridges.OutboundOptions{
		Name: "to-kafka", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Format: bridges.CloudEventsBinary,
		Workers: 3, BatchSize: 25, Backoff: fast, PublishTimeout: 10 * time.Second, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	stopLater(t, out.Stop)
	inbound := func(m *bridges.Metrics) *bridges.Inbound {
		b, err := bridges.NewInbound(t.Context(), js, k.subscriber(t, topic, "lexigram-in"), bridges.InboundOptions{
			Name: "from-kafka", Subject: "in.events", Format: bridges.CloudEventsBinary, Backoff: fast, Logger: log, Metrics: m,
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := inbound(nil)
	stopLater(t, first.Stop)

	const total, aggregates = 900, 9
	var appended atomic.Int64
	appendDone := make(chan error, 1)
	go func() {
		for i := range total {
			id := platform.StreamID{Type: "thing", ID: fmt.Sprintf("agg-%d", i%aggregates)}
			if _, err := st.Append(context.Background(), id, platform.Any(), []platform.Envelope{{Event: noted{N: i}}}); err != nil {
				appendDone <- err
				return
			}
			appended.Add(1)
			time.Sleep(2 * time.Millisecond) // paces the appends to span the moves
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
	waitUntil(t, "the first events through Kafka", 60*time.Second, func() bool { return count() >= 100 })
	leaders := 0
	for p := int32(0); p < 3; p++ {
		from := k.c.LeaderFor(topic, p)
		to := (from + 1) % 3
		if err := k.c.MoveTopicPartition(topic, p, to); err != nil {
			t.Fatalf("move partition %d from node %d to %d: %v", p, from, to, err)
		}
		if k.c.LeaderFor(topic, p) != to {
			t.Fatalf("partition %d: leader %d after the move to %d", p, k.c.LeaderFor(topic, p), to)
		}
		leaders++
	}
	secondMetrics := bridges.NewMetrics()
	second := inbound(secondMetrics)
	waitUntil(t, "the second inbound bridge to get partitions and store events", 60*time.Second, func() bool {
		return moved(t, secondMetrics) > 20
	})
	if err := second.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if appended.Load() >= total {
		t.Fatalf("the appends ended before the moves and rebalances: the test proves nothing")
	}
	if err := <-appendDone; err != nil {
		t.Fatalf("append: %v", err)
	}
	waitUntil(t, fmt.Sprintf("all %d events stored back in JetStream", total), 90*time.Second, func() bool { return count() >= total })
	cons, err := js.Consumer(t.Context(), st.StreamName(), "to-kafka")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the outbound consumer drained", 30*time.Second, func() bool {
		ci, err := cons.Info(context.Background())
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	if n := count(); n != total {
		t.Fatalf("JetStream holds %d inbound messages, want %d", n, total)
	}
	oc, err := in.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := oc.Fetch(total, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]int{}
	seen := map[string]bool{}
	n := 0
	for m := range batch.Messages() {
		h := m.Headers()
		agg, id := h.Get("ce-lxaggregateid"), h.Get("Lx-Id")
		v, err := strconv.Atoi(h.Get("ce-lxversion"))
		if err != nil || seen[id] {
			t.Fatalf("stored message %d: version %q, seen before %v: headers %v", n, h.Get("ce-lxversion"), seen[id], h)
		}
		if v != last[agg]+1 {
			t.Fatalf("aggregate %s: version %d stored after %d: one aggregate's events must keep their order", agg, v, last[agg])
		}
		last[agg], seen[id] = v, true
		n++
	}
	if n != total || leaders != 3 {
		t.Fatalf("read %d events, moved %d leaders", n, leaders)
	}
}

// moved reads lexigram_bridge_messages_total from a bridge's metrics.
func moved(t *testing.T, m *bridges.Metrics) float64 {
	r := prometheus.NewPedanticRegistry()
	r.MustRegister(m)
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "lexigram_bridge_messages_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// A record too large for the producer is refused for good: it goes to
// the dead-letter subject with the reason and the bridge goes on. The
// records carry CloudEvents attributes as the Kafka binding spells them.
func TestOutboundTooLargeDeadLettered(t *testing.T) {
	k := newCluster(t)
	topic := randomName("big")
	k.createTopic(t, topic)
	s := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
	js, err := jetstream.New(embeddedtest.Conn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	reg := platform.NewRegistry()
	platform.MustRegister[noted](reg, "noted", 1)
	platform.MustRegister[big](reg, "big", 1)
	log := embeddedtest.Logger(t)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kafka.NewPublisher(kafka.PublisherOptions{Brokers: k.addrs, Topic: topic, Logger: log, Options: append(quick, kgo.ProducerBatchMaxBytes(4096))})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	out, err := bridges.NewOutbound(t.Context(), js, pub, bridges.OutboundOptions{Name: "big-out", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Format: bridges.CloudEventsBinary, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	stopLater(t, out.Stop)
	id := platform.StreamID{Type: "thing", ID: "t1"}
	for _, e := range []any{noted{N: 1}, big{Blob: strings.Repeat("x", 10_000)}, noted{N: 3}} {
		if _, err := st.Append(t.Context(), id, platform.Any(), []platform.Envelope{{Event: e}}); err != nil {
			t.Fatal(err)
		}
	}
	sub := k.subscriber(t, topic, randomName("g"))
	ch, err := sub.Subscribe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1", "3"} {
		select {
		case d := <-ch:
			if d.Header["ce_lxversion"] != want || d.Header["ce_specversion"] != "1.0" || d.Key != "t1" {
				t.Fatalf("received headers %v key %q, want version %s of t1 in the Kafka binding's ce_ headers", d.Header, d.Key, want)
			}
			_ = d.Ack(t.Context())
		case <-time.After(30 * time.Second):
			t.Fatalf("version %s never reached Kafka", want)
		}
	}
	var dlq jetstream.Stream
	waitUntil(t, "the dead-letter stream", 30*time.Second, func() bool {
		dlq, err = js.Stream(context.Background(), bridges.DefaultDeadLetterStream)
		return err == nil
	})
	var m *jetstream.RawStreamMsg
	waitUntil(t, "the dead letter", 30*time.Second, func() bool {
		m, err = dlq.GetLastMsgForSubject(context.Background(), "lxbridge.dlq.big-out")
		return err == nil
	})
	if r := m.Header.Get(bridges.HeaderReason); !strings.Contains(r, "MESSAGE_TOO_LARGE") || m.Header.Get("Lx-Version") != "2" {
		t.Fatalf("dead letter: reason %q, headers %v", r, m.Header)
	}
}

type big struct{ Blob string }
