package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// example reads a file of examples/bridges with replace's old strings
// changed to the new ones, and writes it where the test can run it.
func example(t *testing.T, name string, replace ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "bridges", name))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for i := 0; i+1 < len(replace); i += 2 {
		if !strings.Contains(text, replace[i]) {
			t.Fatalf("examples/bridges/%s has no %q to replace", name, replace[i])
		}
		text = strings.ReplaceAll(text, replace[i], replace[i+1])
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func suffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitHealthy waits for /healthz to answer 200 with every bridge
// connected.
func waitHealthy(t *testing.T, base string, bridges int) {
	t.Helper()
	waitUntil(t, 60*time.Second, "/healthz to be ok with every bridge connected", func() bool {
		code, body := get(t, base+"/healthz")
		var h bridgeHealthBody
		if code != 200 || json.Unmarshal([]byte(body), &h) != nil || len(h.Bridges) != bridges {
			return false
		}
		for _, b := range h.Bridges {
			if !b.Connected {
				return false
			}
		}
		return true
	})
}

// waitMetrics waits until every series has its value on /metrics.
func waitMetrics(t *testing.T, base string, want map[string]float64) {
	t.Helper()
	var page string
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, page = get(t, base+"/metrics")
		missing := ""
		for series, v := range want {
			if got, ok := metric(page, series); !ok || got != v {
				missing = series
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never had %s = %v:\n%s", missing, want[missing], page)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamMsgs waits for the stream to hold n messages.
func streamMsgs(t *testing.T, js jetstream.JetStream, stream string, n uint64) {
	t.Helper()
	waitUntil(t, 30*time.Second, stream+" to hold the inbound messages", func() bool {
		st, err := js.Stream(t.Context(), stream)
		return err == nil && st.CachedInfo().State.Msgs == n
	})
}

// needRabbitMQ skips when RabbitMQ is not running here, and fails
// instead under CI=true, where .ci/run starts it.
func needRabbitMQ(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("RabbitMQ is not reachable on 127.0.0.1:5672 (%v), and CI=true: .ci/run should have started it", err)
	}
	t.Skipf("RabbitMQ is not reachable on 127.0.0.1:5672 (%v): start it with `rabbitmq-server -detached` to run this test", err)
}

// TestExampleRabbitMQ runs examples/bridges/rabbitmq.yaml with the binary
// against RabbitMQ and a NATS server (--nats-url): events reach the
// queue as CloudEvents, messages of the payments queue reach JetStream,
// /healthz and /metrics show both, and SIGTERM ends it cleanly with
// nothing unacked on either side.
func TestExampleRabbitMQ(t *testing.T) {
	needRabbitMQ(t)
	s := suffix() // names of its own, so that runs never share a queue
	orders, ordersQueue, payments, paymentsQueue := "lexigram.orders-"+s, "lexigram.orders.all-"+s, "lexigram.payments-"+s, "lexigram.payments.q-"+s
	path := example(t, "rabbitmq.yaml",
		"lexigram.orders.all", ordersQueue, "exchange: lexigram.orders", "exchange: "+orders,
		"queue: lexigram.payments", "queue: "+paymentsQueue, "exchange: lexigram.payments", "exchange: "+payments)
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, q := range []string{ordersQueue, paymentsQueue} {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
		for _, x := range []string{orders, payments} {
			_ = ch.ExchangeDelete(x, false, false)
		}
	})

	srv := embeddedtest.Server(t)
	js, err := jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	p := startBinary(t, nil, "bridge", "--config", path, "--nats-url", srv.ClientURL(), "--http-addr", "127.0.0.1:0")
	base := p.waitLog(t, httpURLLog)
	waitHealthy(t, base, 2)
	if strings.Contains(p.output(), "guest:guest") {
		t.Errorf("the log shows the broker's password:\n%s", p.output())
	}

	const n = 40
	ids := appendOrders(t, js, n, 4)
	deliveries, err := ch.Consume(ordersQueue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	timeout := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case d := <-deliveries:
			if d.Headers["cloudEvents_type"] != "order.placed" || d.Headers["cloudEvents_source"] != "urn:example:shop" || !strings.HasPrefix(d.RoutingKey, "events.order.") {
				t.Errorf("message %s: headers %v, routing key %s, want a CloudEvent order.placed from urn:example:shop", d.MessageId, d.Headers, d.RoutingKey)
			}
			got = append(got, d.MessageId)
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-timeout:
			t.Fatalf("%d of %d events reached %s within 30s", len(got), n, ordersQueue)
		}
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("the queue got IDs %v, want the events' %v", got, ids)
	}

	for i := range 5 {
		if err := ch.PublishWithContext(t.Context(), payments, "", false, false, amqp.Publishing{
			MessageId: "pay-" + s + "-" + string(rune('a'+i)), DeliveryMode: amqp.Persistent, Body: []byte(`{"amount":10}`),
		}); err != nil {
			t.Fatal(err)
		}
	}
	streamMsgs(t, js, "INBOUND", 5)
	waitMetrics(t, base, map[string]float64{
		`lexigram_bridge_messages_total{bridge="orders-to-rabbitmq",direction="outbound"}`:      n,
		`lexigram_bridge_messages_total{bridge="payments-from-rabbitmq",direction="inbound"}`:   5,
		`lexigram_bridge_lag_messages{bridge="orders-to-rabbitmq"}`:                             0,
		`lexigram_bridge_broker_connected{bridge="orders-to-rabbitmq"}`:                         1,
		`lexigram_bridge_broker_connected{bridge="payments-from-rabbitmq"}`:                     1,
		`lexigram_bridge_dead_lettered_total{bridge="orders-to-rabbitmq",direction="outbound"}`: 0,
	})

	p.terminate(t)
	if info := settled(t, js, "EVENTS", "orders-to-rabbitmq"); info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("after exit the outbound consumer has %d unacked and %d pending, want 0 and 0", info.NumAckPending, info.NumPending)
	}
	// What the bridge did not ack would be back in the queue now that its
	// connection is gone.
	q, err := ch.QueueDeclarePassive(paymentsQueue, true, false, false, false, nil)
	if err != nil || q.Messages != 0 || q.Consumers != 0 {
		t.Errorf("payments queue after exit: %+v, %v; want no messages and no consumer", q, err)
	}
}

var natsURLLog = regexp.MustCompile(`msg="embedded NATS server started" url=(nats://\S+)`)

// TestExampleKafka runs examples/bridges/kafka.yaml with the binary on
// its embedded NATS server against an in-process Kafka: events reach the
// topic as structured CloudEvents keyed by order, records of the payments
// topic reach JetStream, /healthz and /metrics show both, and SIGTERM
// ends it cleanly: the consumer has nothing unacked and the group has
// committed every record.
func TestExampleKafka(t *testing.T) {
	k, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "lexigram.orders", "lexigram.payments"))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	brokers := strings.Join(k.ListenAddrs(), ",")
	path := example(t, "kafka.yaml", "127.0.0.1:9092", brokers)
	dataDir := t.TempDir()
	p := startBinary(t, []string{"LEXIGRAM_NATS_EMBEDDED_PORT=-1", "LEXIGRAM_NATS_EMBEDDED_DATA_DIR=" + dataDir},
		"bridge", "--config", path, "--http-addr", "127.0.0.1:0")
	natsURL := p.waitLog(t, natsURLLog)
	base := p.waitLog(t, httpURLLog)
	waitHealthy(t, base, 2)
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	const n = 40
	ids := appendOrders(t, js, n, 4)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.ListenAddrs()...), kgo.ConsumeTopics("lexigram.orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for len(got) < n {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d events reached lexigram.orders within 30s", len(got), n)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var ce struct {
				ID, Type, Source, Subject string
				Data                      json.RawMessage
			}
			if err := json.Unmarshal(r.Value, &ce); err != nil || ce.Type != "order.placed" || !strings.HasPrefix(string(r.Key), "o-") || !strings.Contains(string(ce.Data), `"N"`) {
				t.Errorf("record %s: key %q, %v, want a structured CloudEvent order.placed with JSON data keyed by order", r.Value, r.Key, err)
			}
			got = append(got, ce.ID)
		})
	}
	slices.Sort(got)
	slices.Sort(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("the topic got IDs %v, want the events' %v", got, ids)
	}

	for i := range 5 {
		r := &kgo.Record{Topic: "lexigram.payments", Key: []byte{byte('a' + i)}, Value: []byte(`{"amount":10}`)}
		if err := cl.ProduceSync(t.Context(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	streamMsgs(t, js, "INBOUND", 5)
	waitMetrics(t, base, map[string]float64{
		`lexigram_bridge_messages_total{bridge="orders-to-kafka",direction="outbound"}`:    n,
		`lexigram_bridge_messages_total{bridge="payments-from-kafka",direction="inbound"}`: 5,
		`lexigram_bridge_lag_messages{bridge="orders-to-kafka"}`:                           0,
		`lexigram_bridge_broker_connected{bridge="payments-from-kafka"}`:                   1,
	})
	nc.Close()

	p.terminate(t)
	// The embedded server is gone with the process: open its data again.
	srv, err := embedded.Start(t.Context(), embedded.Options{Port: embedded.RandomPort, DataDir: dataDir, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	js, err = jetstream.New(embeddedtest.Conn(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	if info := settled(t, js, "EVENTS", "orders-to-kafka"); info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("after exit the outbound consumer has %d unacked and %d pending, want 0 and 0", info.NumAckPending, info.NumPending)
	}
	if committed := committedRecords(t, cl, "lexigram-bridge", "lexigram.payments"); committed != 5 {
		t.Errorf("the group lexigram-bridge committed %d records of lexigram.payments after exit, want all 5", committed)
	}
}

// committedRecords sums the group's committed offsets over the topic's
// partitions: the records it has acknowledged.
func committedRecords(t *testing.T, cl *kgo.Client, group, topic string) int64 {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	resp, err := req.RequestWith(t.Context(), cl)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, tp := range resp.Topics {
		if tp.Topic != topic {
			continue
		}
		for _, p := range tp.Partitions {
			if p.ErrorCode != 0 {
				t.Fatalf("offset fetch %s/%d: error code %d", topic, p.Partition, p.ErrorCode)
			}
			if p.Offset > 0 {
				sum += p.Offset
			}
		}
	}
	return sum
}
