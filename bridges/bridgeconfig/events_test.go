package bridgeconfig_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// eventStore starts a server with an event store that knows order.placed.
func eventStore(t *testing.T) (jetstream.JetStream, *lxjs.EventStore) {
	t.Helper()
	js, err := jetstream.New(embeddedtest.Conn(t, embeddedtest.Server(t)))
	if err != nil {
		t.Fatal(err)
	}
	reg := platform.NewRegistry()
	platform.MustRegister[placed](reg, "order.placed", 1)
	store, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Codec: platform.JSON, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return js, store
}

func eventsBridge(name, broker string, settings map[string]string) config.Bridge {
	b := config.DefaultBridge()
	b.Name, b.Direction, b.Broker, b.LandAs, b.Settings = name, config.BridgeInbound, broker, config.LandAsEvents, settings
	b.Events = config.BridgeEvents{Types: map[string]string{"orders.placed": "order.placed"}, AggregateType: "order", AggregateIDHeader: "order-id"}
	return b
}

// pollEvents waits until the aggregate has n events, then reads them.
func pollEvents(t *testing.T, store *lxjs.EventStore, id platform.StreamID, n int) []platform.Envelope {
	t.Helper()
	var out []platform.Envelope
	deadline := time.Now().Add(30 * time.Second)
	for {
		out = out[:0]
		for e, err := range store.Read(t.Context(), id, platform.Revision{}) {
			if err != nil {
				t.Fatalf("read %s: %v", id, err)
			}
			out = append(out, e)
		}
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d events, want %d within 30s", id, len(out), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pollDeadLetter waits for the bridge's first dead letter.
func pollDeadLetter(t *testing.T, js jetstream.JetStream, bridge string) jetstream.RawStreamMsg {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := js.Stream(t.Context(), bridges.DefaultDeadLetterStream)
		if err == nil {
			if m, err := s.GetLastMsgForSubject(t.Context(), "lxbridge.dlq."+bridge); err == nil {
				return *m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter of %s within 30s", bridge)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A configured land_as: events bridge appends what comes to the store
// given in Options.Events, by its type mapping and aggregate header.
func TestInboundEventsFromConfig(t *testing.T) {
	js, store := eventStore(t)
	tp := topic(t)
	o := opts()
	o.Events = store
	set, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{eventsBridge("orders-events", "memory", map[string]string{"topic": tp})}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Stop(context.Background()) })
	pub := memory.Default.Publisher(tp)
	for range 2 { // the second as a redelivery
		if err := pub.Publish(t.Context(), &bridges.Message{ID: "k-1", Subject: "orders.placed", Header: bridges.Header{"order-id": "o-9"}, Data: []byte(`{"N":7}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(t.Context(), &bridges.Message{ID: "k-2", Subject: "orders.placed", Header: bridges.Header{"order-id": "o-9"}, Data: []byte(`{"N":8}`)}); err != nil {
		t.Fatal(err)
	}
	got := pollEvents(t, store, platform.StreamID{Type: "order", ID: "o-9"}, 2)
	if len(got) != 2 || got[0].Event != (placed{N: 7}) || got[1].Event != (placed{N: 8}) || got[0].Type != "order.placed" {
		t.Fatalf("order/o-9 holds %+v, want N=7 once, then N=8", got)
	}
}

// Without a store, or with a mapping to a type nobody registered, the
// bridge does not start, and the error names it.
func TestInboundEventsStartErrors(t *testing.T) {
	js, store := eventStore(t)
	b := eventsBridge("orders-events", "memory", map[string]string{"topic": topic(t)})
	if _, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{b}, opts()); err == nil ||
		!strings.Contains(err.Error(), "bridges[0](orders-events): land_as: events needs the event store") {
		t.Errorf("Start without a store = %v", err)
	}
	b.Events.Types = map[string]string{"orders.placed": "order.plcaed"}
	o := opts()
	o.Events = store
	if _, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{b}, o); err == nil ||
		!strings.Contains(err.Error(), `bridges[0](orders-events)`) || !strings.Contains(err.Error(), `"order.plcaed" is not a registered event type`) {
		t.Errorf("Start with a mapping to an unknown type = %v", err)
	}
}

const rabbitAddr = "127.0.0.1:5672"

func needRabbitMQ(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", rabbitAddr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("RabbitMQ is not reachable on %s (%v), and CI=true: .ci/run should have started it (rabbitmq-server -detached)", rabbitAddr, err)
	}
	t.Skipf("RabbitMQ is not reachable on %s (%v): start it with `rabbitmq-server -detached` to run this test", rabbitAddr, err)
}

// CloudEvents published to RabbitMQ land as events: the type from the
// CloudEvent, the aggregate from its subject, the ID from the AMQP
// message ID, so a message published twice is appended once; an unknown
// type is dead-lettered with the reason.
func TestInboundEventsFromRabbitMQ(t *testing.T) {
	needRabbitMQ(t)
	js, store := eventStore(t)
	name := strings.ReplaceAll(topic(t), "/", "-")
	b := eventsBridge("rabbit-events", "rabbitmq", map[string]string{"exchange": name, "queue": name, "declare": "true"})
	b.Format, b.Events = "cloudevents-binary", config.BridgeEvents{}
	conn, err := amqp.Dial("amqp://guest:guest@" + rabbitAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // after the bridge stopped
		_, _ = ch.QueueDelete(name, false, false, false)
		_ = ch.ExchangeDelete(name, false, false)
	})
	o := opts()
	o.Events = store
	set, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{b}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Stop(context.Background()) })
	publish := func(id, typ, body string) {
		t.Helper()
		h := amqp.Table{"cloudEvents_specversion": "1.0", "cloudEvents_id": "ce-" + id, "cloudEvents_source": "/shop",
			"cloudEvents_type": typ, "cloudEvents_subject": "order/o-r", "cloudEvents_lxcorrelationid": "corr-" + id}
		if err := ch.PublishWithContext(t.Context(), name, "orders", false, false, amqp.Publishing{MessageId: id, Headers: h, ContentType: "application/json", Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	publish("a-1", "order.placed", `{"N":1}`)
	publish("a-1", "order.placed", `{"N":1}`) // again, as a redelivery
	publish("a-2", "order.unknown", `{}`)
	publish("a-3", "order.placed", `{"N":3}`)
	got := pollEvents(t, store, platform.StreamID{Type: "order", ID: "o-r"}, 2)
	if len(got) != 2 || got[0].Event != (placed{N: 1}) || got[1].Event != (placed{N: 3}) {
		t.Fatalf("order/o-r holds %+v, want N=1 once, then N=3", got)
	}
	if got[0].CorrelationID != "corr-a-1" || !strings.HasPrefix(got[0].ID, "rabbit-events-") || got[0].ID == got[1].ID {
		t.Errorf("first event: ID %q, correlation %q", got[0].ID, got[0].CorrelationID)
	}
	dl := pollDeadLetter(t, js, "rabbit-events")
	if dl.Header.Get(bridges.HeaderMessageID) != "a-2" || !strings.Contains(dl.Header.Get(bridges.HeaderReason), `event type "order.unknown" is not registered`) {
		t.Errorf("dead letter: id %q, reason %q", dl.Header.Get(bridges.HeaderMessageID), dl.Header.Get(bridges.HeaderReason))
	}
}
