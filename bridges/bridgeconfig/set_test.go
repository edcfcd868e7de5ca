package bridgeconfig_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type placed struct{ N int }

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// setup starts a server with an event store holding n order events.
func setup(t *testing.T, n int) jetstream.JetStream {
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
	for i := range n {
		if _, err := store.Append(t.Context(), platform.StreamID{Type: "order", ID: "o-1"}, platform.Any(), []platform.Envelope{{Event: placed{N: i}}}); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

func outbound(name, topic string) config.Bridge {
	b := config.DefaultBridge()
	b.Name, b.Direction, b.Broker, b.Settings = name, config.BridgeOutbound, "memory", map[string]string{"topic": topic}
	return b
}

func inbound(name, topic, stream, subject string) config.Bridge {
	b := config.DefaultBridge()
	b.Name, b.Direction, b.Broker, b.Stream, b.Subject = name, config.BridgeInbound, "memory", stream, subject
	b.Settings = map[string]string{"topic": topic}
	return b
}

func opts() bridgeconfig.Options {
	return bridgeconfig.Options{Store: config.Default().Store, Logger: quiet()}
}

func topic(t *testing.T) string { return t.Name() + "-" + platform.NewEventID() }

func TestCheckNamesTheBrokersThereAre(t *testing.T) {
	b := outbound("orders-out", "t")
	b.Broker = "rabit"
	err := bridgeconfig.Check([]config.Bridge{outbound("ok", "t"), b})
	if err == nil {
		t.Fatal("Check accepted an unknown broker")
	}
	for _, want := range []string{`bridges[1](orders-out).broker: "rabit" is not a broker this program has: use one of `, "kafka", "memory", "rabbitmq"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestStartAndStop(t *testing.T) {
	js := setup(t, 5)
	tp := topic(t)
	set, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{outbound("orders-out", tp), inbound("orders-in", tp+"-in", "INBOUND", "inbound.orders")}, opts())
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 || !set.Healthy() {
		t.Fatalf("Len %d, Healthy %v: want 2 running and healthy", set.Len(), set.Healthy())
	}
	st := set.Status()
	if st[0] != (bridgeconfig.Status{Name: "orders-out", Direction: "outbound", Broker: "memory", Connected: true}) || st[1].Name != "orders-in" {
		t.Errorf("Status() = %+v", st)
	}
	deadline := time.Now().Add(30 * time.Second)
	for memory.Default.Len(tp) < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := memory.Default.Len(tp); n != 5 {
		t.Fatalf("%d of 5 events reached the broker", n)
	}
	if err := set.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := set.Stop(t.Context()); err != nil {
		t.Fatalf("a second Stop: %v", err)
	}
	stream, err := js.Stream(t.Context(), "INBOUND")
	if err != nil {
		t.Fatalf("the inbound bridge's stream was not made: %v", err)
	}
	if subj := stream.CachedInfo().Config.Subjects; len(subj) != 1 || subj[0] != "inbound.orders" {
		t.Errorf("INBOUND captures %v, want [inbound.orders]", subj)
	}
}

// An inbound bridge's stream must capture its subject: one made for
// another subject, or a subject another stream captures, is an error.
func TestInboundStreamConflicts(t *testing.T) {
	js := setup(t, 0)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "PAYMENTS", Subjects: []string{"payments.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, stream, subject, want string
	}{
		{"a stream of other subjects", "PAYMENTS", "inbound.x", `stream PAYMENTS exists but does not capture subject inbound.x`},
		{"a subject of another stream", "MINE", "payments.eu", `create stream MINE for subject payments.eu`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{inbound("in", topic(t), c.stream, c.subject)}, opts())
			if err == nil || !strings.Contains(err.Error(), "bridges[0](in)") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Start = %v, want an error naming bridges[0](in) and %q", err, c.want)
			}
		})
	}
	// A stream that captures the subject already is used as it is.
	set, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{inbound("in", topic(t), "PAYMENTS", "payments.eu")}, opts())
	if err != nil {
		t.Fatalf("Start on a stream that captures the subject: %v", err)
	}
	_ = set.Stop(t.Context())
}

// A broker that does not answer within connect_timeout fails the start,
// naming the bridge, the timeout and the settings.
func TestBrokerDownAtStart(t *testing.T) {
	js := setup(t, 0)
	memory.Default.Stop()
	defer memory.Default.Start()
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "X", Subjects: []string{"x.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []config.Bridge{outbound("orders-out", "down-out"), inbound("orders-in", "down-in", "", "x.in")} {
		b.ConnectTimeout = 300 * time.Millisecond
		start := time.Now()
		set, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{b}, opts())
		if err == nil {
			_ = set.Stop(t.Context())
			t.Fatalf("%s started with its broker down", b.Name)
		}
		if took := time.Since(start); took < 300*time.Millisecond || took > 10*time.Second {
			t.Errorf("%s: the start gave up after %v, want after its connect_timeout of 300ms", b.Name, took)
		}
		for _, want := range []string{"bridges[0](" + b.Name + ")", "within 300ms (connect_timeout", `topic="` + b.Settings["topic"] + `"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	}
}

// A stop that cannot finish within stop_timeout says which bridge and
// leaves the rest to JetStream, which delivers them again.
func TestStopTimeout(t *testing.T) {
	js := setup(t, 200)
	tp := topic(t)
	memory.Default.Refuse(func(got string, _ *bridges.Message) error {
		if got == tp {
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	defer memory.Default.Refuse(nil)
	b := outbound("slow", tp)
	b.StopTimeout, b.BatchSize = 200*time.Millisecond, 10
	set, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{b}, opts())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for memory.Default.Len(tp) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	err = set.Stop(context.Background())
	if err == nil || !strings.Contains(err.Error(), "bridges[0](slow): stop after") || !strings.Contains(err.Error(), "stop_timeout 200ms") {
		t.Fatalf("Stop = %v, want an error naming the bridge and its stop_timeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Stop took %v with a stop_timeout of 200ms", took)
	}
	c, err := js.Consumer(t.Context(), "EVENTS", "slow")
	if err != nil {
		t.Fatal(err)
	}
	if info := c.CachedInfo(); info.AckFloor.Stream >= 200 {
		t.Errorf("every event was acked (ack floor %d) though the stop gave up", info.AckFloor.Stream)
	}
}
