package bridgeconfig_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/config"
)

// A Kafka bridge whose brokers do not answer fails the start within its
// connect_timeout, naming the bridge and the brokers, in either direction.
func TestKafkaUnreachableAtStart(t *testing.T) {
	js := setup(t, 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	for _, dir := range []string{config.BridgeOutbound, config.BridgeInbound} {
		b := config.DefaultBridge()
		b.Name, b.Direction, b.Broker, b.ConnectTimeout = "kafka-"+dir, dir, "kafka", 500*time.Millisecond
		b.Settings = map[string]string{"brokers": addr, "topic": "orders"}
		if dir == config.BridgeInbound {
			b.Subject, b.Stream, b.Settings["group"] = "inbound.orders", "INBOUND", "g"
		}
		start := time.Now()
		set, err := bridgeconfig.Start(t.Context(), js, []config.Bridge{b}, opts())
		if err == nil {
			_ = set.Stop(t.Context())
			t.Fatalf("%s started with Kafka unreachable", b.Name)
		}
		if took := time.Since(start); took < 500*time.Millisecond || took > 10*time.Second {
			t.Errorf("%s: gave up after %v, want after its connect_timeout of 500ms", b.Name, took)
		}
		for _, want := range []string{"bridges[0](" + b.Name + "): kafka does not answer within 500ms", "kafka brokers " + addr + ": none answers"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	}
}
