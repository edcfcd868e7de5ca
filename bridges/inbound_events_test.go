package bridges_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// wantEventID is how an inbound event's ID derives from the broker's
// message ID: stable across redeliveries, safe in headers and keys.
func wantEventID(bridge, brokerID string) string {
	sum := sha256.Sum256([]byte(bridge + ":" + brokerID))
	return bridge + "-" + hex.EncodeToString(sum[:16])
}

// history reads an aggregate's events once it has n.
func history(t *testing.T, st *lxjs.EventStore, id platform.StreamID, n int) []platform.Envelope {
	t.Helper()
	var out []platform.Envelope
	waitFor(t, "events of "+id.String(), func() bool {
		out = out[:0]
		for e, err := range st.Read(t.Context(), id, platform.Revision{}) {
			if err != nil {
				return false
			}
			out = append(out, e)
		}
		return len(out) >= n
	})
	return out
}

func ce(id, typ, subject string) bridges.Header {
	return bridges.Header{"ce-specversion": "1.0", "ce-id": id, "ce-source": "/shop", "ce-type": typ, "ce-subject": subject,
		"ce-lxcorrelationid": "corr-" + id, "ce-lxcausationid": "cause-" + id, "Content-Type": "application/json"}
}

// CloudEvents land as events of the aggregate their subject names, with
// the registered type, an ID derived from the broker's message ID and the
// correlation and causation they carry. A message delivered again appends
// nothing; one of an unknown type, or whose body is not the type's, is
// dead-lettered with the reason, and the bridge goes on.
func TestInboundEventsFromCloudEvents(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, platform.Msgpack)
	b := memory.NewBroker()
	in := startInbound(t, js, b.Subscriber("ce", 0), bridges.InboundOptions{
		Name: "ce-in", Format: bridges.CloudEventsBinary, Events: &bridges.InboundEvents{Store: st},
	})
	pub := b.Publisher("ce")
	send := func(m *bridges.Message) {
		t.Helper()
		if err := pub.Publish(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	send(&bridges.Message{ID: "m-1", Header: ce("e-1", "order.item-added", "order/o-1"), Data: []byte(`{"sku":"a","qty":1}`)})
	send(&bridges.Message{ID: "m-1", Header: ce("e-1", "order.item-added", "order/o-1"), Data: []byte(`{"sku":"a","qty":1}`)}) // redelivered
	send(&bridges.Message{ID: "m-2", Header: ce("e-2", "order.cancelled", "order/o-1"), Data: []byte(`{}`)})
	send(&bridges.Message{ID: "m-3", Header: ce("e-3", "order.item-added", "order/o-1"), Data: []byte(`{"qty":"many"}`)})
	send(&bridges.Message{ID: "m-4", Header: ce("e-4", "order.item-added", "order-o-1"), Data: []byte(`{"sku":"x","qty":1}`)})
	send(&bridges.Message{ID: "m-5", Header: ce("e-5", "order.item-added", "order/o-1"), Data: []byte(`{"sku":"b","qty":2}`)})

	history(t, st, platform.StreamID{Type: "order", ID: "o-1"}, 2)
	waitFor(t, "the broker queue drained", func() bool { return b.Len("ce") == 0 })
	got := history(t, st, platform.StreamID{Type: "order", ID: "o-1"}, 2)
	if len(got) != 2 {
		t.Fatalf("o-1 has %d events, want 2 (m-1 once, m-5): %+v", len(got), got)
	}
	for i, want := range []struct {
		msg, ceID string
		ev        itemAdded
	}{{"m-1", "e-1", itemAdded{SKU: "a", Qty: 1}}, {"m-5", "e-5", itemAdded{SKU: "b", Qty: 2}}} {
		e := got[i]
		if e.ID != wantEventID("ce-in", want.msg) || e.Type != "order.item-added" || e.Event != want.ev || e.Version != uint64(i+1) {
			t.Errorf("event %d: ID %q type %q event %+v version %d; want ID %q, order.item-added, %+v, version %d",
				i, e.ID, e.Type, e.Event, e.Version, wantEventID("ce-in", want.msg), want.ev, i+1)
		}
		if e.CorrelationID != "corr-"+want.ceID || e.CausationID != "cause-"+want.ceID {
			t.Errorf("event %d: correlation %q causation %q", i, e.CorrelationID, e.CausationID)
		}
	}

	dead := deadLetters(t, js, "ce-in", 3)
	reasons := map[string]string{}
	for _, m := range dead {
		reasons[m.Headers().Get(bridges.HeaderMessageID)] = m.Headers().Get(bridges.HeaderReason)
	}
	for id, want := range map[string]string{
		"m-2": `event type "order.cancelled" is not registered`,
		"m-3": `the body does not decode as "order.item-added"`,
		"m-4": "no aggregate",
	} {
		if !strings.Contains(reasons[id], want) || !strings.Contains(reasons[id], "bridge ce-in") {
			t.Errorf("dead letter of %s: reason %q, want one naming the bridge and %q", id, reasons[id], want)
		}
	}
	if len(dead) != 3 {
		t.Errorf("%d dead letters, want 3", len(dead))
	}
	if !in.Connected() {
		t.Error("the bridge reports itself down after dead letters")
	}
}

// Plain messages land as events by the bridge's mapping: the broker's
// subject (a routing key, a topic) names the type, a JSON field the
// aggregate ID, the configuration the aggregate type; a type header wins
// over the subject.
func TestInboundEventsByMapping(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, platform.JSON)
	b := memory.NewBroker()
	startInbound(t, js, b.Subscriber("plain", 0), bridges.InboundOptions{
		Name: "mapped", Workers: 2, Events: &bridges.InboundEvents{
			Store: st, Types: map[string]string{"shop.items.added": "order.item-added", "ItemAdded": "order.item-added"},
			AggregateType: "order", AggregateIDField: "sku", TypeHeader: "X-Type",
		},
	})
	pub := b.Publisher("plain")
	msgs := []*bridges.Message{
		{ID: "p-1", Subject: "shop.items.added", Data: []byte(`{"sku":"s-1","qty":3}`)},
		{ID: "p-2", Subject: "shop.other", Header: bridges.Header{"x-type": "ItemAdded"}, Data: []byte(`{"sku":"s-2","qty":4}`)},
		{ID: "p-3", Subject: "shop.unmapped", Data: []byte(`{"sku":"s-3","qty":5}`)},
	}
	if err := pub.Publish(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"s-1", "s-2"} {
		got := history(t, st, platform.StreamID{Type: "order", ID: id}, 1)
		if want := (itemAdded{SKU: id, Qty: 3 + i}); len(got) != 1 || got[0].Event != want || got[0].ID != wantEventID("mapped", msgs[i].ID) {
			t.Errorf("order/%s: %+v, want one %+v with ID %s", id, got, want, wantEventID("mapped", msgs[i].ID))
		}
	}
	dead := deadLetters(t, js, "mapped", 1)
	if r := dead[0].Headers().Get(bridges.HeaderReason); !strings.Contains(r, "no event type") || !strings.Contains(r, "X-Type") {
		t.Errorf("unmapped message: reason %q, want it to say there is no event type and name the X-Type header", r)
	}
}

// The options are checked up front, naming the bridge and the fix.
func TestInboundEventsOptions(t *testing.T) {
	js := newJS(t)
	b := memory.NewBroker()
	for _, c := range []struct {
		o    bridges.InboundOptions
		want string
	}{
		{bridges.InboundOptions{Name: "x", Events: &bridges.InboundEvents{}}, "bridge x: events: no store"},
		{bridges.InboundOptions{Name: "x", Subject: "in.x", Events: &bridges.InboundEvents{Store: platform.NewMemoryEventStore(platform.MemoryOptions{})}}, `subject "in.x": a bridge that lands messages as events`},
		{bridges.InboundOptions{Name: "x", Events: &bridges.InboundEvents{Store: platform.NewMemoryEventStore(platform.MemoryOptions{}), Types: map[string]string{"a": ""}}}, `type mapping "a" -> ""`},
	} {
		_, err := bridges.NewInbound(t.Context(), js, b.Subscriber("opts", 0), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewInbound(%+v) = %v, want an error with %q", c.o, err, c.want)
		}
	}
}
