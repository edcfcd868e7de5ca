package bridges_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/internal/oldnats"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// On a server before 2.10 (Debian's 2.9.10 on 127.0.0.1:4222 is one),
// which takes one filter subject per consumer, a bridge of two aggregate
// types starts and sends those two types only.
func TestOutboundOnAnOlderServer(t *testing.T) {
	nc := oldnats.Conn(t)
	if lxjs.ServerAtLeast(nc.ConnectedServerVersion(), 2, 10) {
		t.Skipf("the server at %s is %s, which takes several filter subjects", oldnats.URL(), nc.ConnectedServerVersion())
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := "LXTEST_BRIDGE_" + nuid.Next()
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	reg := platform.NewRegistry()
	platform.MustRegister[itemAdded](reg, "order.item-added", 1)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Stream: name, SubjectPrefix: "lxtest." + name, Registry: reg, Storage: jetstream.MemoryStorage, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := memory.NewBroker()
	ch, _ := b.Subscriber("q", 100).Subscribe(t.Context())
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), bridges.OutboundOptions{Name: "two-types", Stream: name, SubjectPrefix: st.SubjectPrefix(),
		AggregateTypes: []string{"order", "invoice"}, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatalf("start a bridge of two aggregate types on %s: %v", nc.ConnectedServerVersion(), err)
	}
	stopped(t, out.Stop)
	for _, typ := range []string{"customer", "order", "customer", "invoice", "customer"} {
		if _, err := st.Append(t.Context(), platform.StreamID{Type: typ, ID: nuid.Next()}, platform.Any(), []platform.Envelope{{Event: itemAdded{}}}); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.Consumer(t.Context(), name, "two-types")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bridge to get through the five events", func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.NumAckPending == 0 && info.AckFloor.Stream == 5
	})
	var types []string
	for _, d := range collect(t, ch, 2) {
		subject := strings.TrimPrefix(d.Subject, st.SubjectPrefix()+".")
		types = append(types, subject[:max(strings.IndexByte(subject, '.'), 0)])
	}
	if slices.Sort(types); !slices.Equal(types, []string{"invoice", "order"}) {
		t.Fatalf("sent aggregate types %v, want invoice and order once each", types)
	}
	select {
	case d := <-ch:
		t.Fatalf("a third message reached the broker: %v", d.Header)
	default:
	}
}
