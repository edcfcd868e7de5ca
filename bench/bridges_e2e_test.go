package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The Kafka end-to-end figures run on kfake, so they need nothing outside:
// both percentiles come out, from samples of every message sent.
func TestRunBridgeKafkaE2E(t *testing.T) {
	var out bytes.Buffer
	figs, err := Run(t.Context(), Options{Quick: true, Filter: "bridge.kafka.e2e", Out: &out})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 2 || figs[0].Name != "bridge.kafka.e2e.p50" || figs[1].Name != "bridge.kafka.e2e.p99" {
		t.Fatalf("want bridge.kafka.e2e.p50 and .p99, got %+v", figs)
	}
	for _, f := range figs {
		if f.Ours <= 0 || f.Raw <= 0 || f.Unit != "ms" || f.Ratio != f.Ours/f.Raw {
			t.Errorf("bad figure %+v", f)
		}
	}
	if figs[1].Ours < figs[0].Ours || figs[1].Raw < figs[0].Raw {
		t.Errorf("p99 below p50: %+v", figs)
	}
	if !strings.Contains(figs[0].Note, "msgs/s steady") {
		t.Errorf("note %q does not say how it was measured", figs[0].Note)
	}
}

// settle hands over one latency per message sent, once all arrived, and
// says how many are missing when some never do.
func TestReceipts(t *testing.T) {
	rc := newReceipts()
	rc.send("a")
	rc.send("b")
	rc.receive("a")
	rc.receive("a") // a redelivery counts once
	rc.receive("x") // never sent
	go rc.receive("b")
	got, err := rc.settle(t.Context())
	if err != nil || len(got) != 2 {
		t.Fatalf("settle = %v, %v; want two latencies", got, err)
	}
	rc.send("lost")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := rc.settle(ctx); err == nil {
		t.Error("settle returned with a message never received")
	}
}
