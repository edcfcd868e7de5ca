package bridges_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/embedded/embeddedtest"
	"github.com/lexigram/events/platform"
)

// Four workers, events of five aggregates interleaved: each aggregate's
// events arrive in version order, each once, mapped to CloudEvents binary
// attributes from the envelope's headers, and every JetStream message is
// acknowledged.
func TestOutboundOrderAndCloudEventsBinary(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, nil)
	ids := []string{"a", "b", "c", "d", "e/with space"}
	const perAggregate = 40
	appendEvents(t, st, ids, perAggregate)
	b := memory.NewBroker()
	m := bridges.NewMetrics()
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("orders"), bridges.OutboundOptions{
		Name: "orders-out", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), AggregateTypes: []string{"order"},
		Format: bridges.CloudEventsBinary, Workers: 4, BatchSize: 7, Metrics: m, Logger: embeddedtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, out.Stop)
	sub := b.Subscriber("orders", 1000)
	ch, _ := sub.Subscribe(t.Context())
	got := collect(t, ch, len(ids)*perAggregate)
	last := map[string]int{}
	seen := map[string]bool{}
	for _, d := range got {
		h := d.Header
		if h["ce-specversion"] != "1.0" || h["ce-type"] != "order.item-added" || h["ce-source"] != "/lexigram/"+st.StreamName() || h["ce-id"] == "" {
			t.Fatalf("CloudEvents attributes missing or wrong: %v", h)
		}
		if h["ce-id"] != d.ID || seen[d.ID] {
			t.Fatalf("message ID %q, ce-id %q, seen before %v: want the event ID, once", d.ID, h["ce-id"], seen[d.ID])
		}
		seen[d.ID] = true
		if d.Key != h["ce-lxaggregateid"] || h["ce-subject"] != "order/"+d.Key || h["ce-lxaggregatetype"] != "order" {
			t.Fatalf("key %q, attributes %v: want the aggregate ID as key and subject order/<id>", d.Key, h)
		}
		v, err := strconv.Atoi(h["ce-lxversion"])
		if err != nil || v != last[d.Key]+1 {
			t.Fatalf("aggregate %q: version %q after %d: each aggregate's events must arrive in order", d.Key, h["ce-lxversion"], last[d.Key])
		}
		last[d.Key] = v
		if h["Content-Type"] != "application/msgpack" {
			t.Fatalf("content type %q, want application/msgpack for the default codec", h["Content-Type"])
		}
	}
	for _, id := range ids {
		if last[id] != perAggregate {
			t.Fatalf("aggregate %q: last version %d, want %d", id, last[id], perAggregate)
		}
	}
	cons, err := js.Consumer(t.Context(), st.StreamName(), "orders-out")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every JetStream message acknowledged", func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if got := mustGather(t, m, "lexigram_bridge_messages_total", "orders-out"); got != float64(len(ids)*perAggregate) {
		t.Fatalf("messages moved metric %v, want %d", got, len(ids)*perAggregate)
	}
}

// mustGather reads one bridge's series of a metric from the collector.
func mustGather(t *testing.T, m *bridges.Metrics, name, bridge string) float64 {
	t.Helper()
	mfs, err := gather(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "bridge" && l.GetValue() == bridge {
					if s.Counter != nil {
						return s.GetCounter().GetValue()
					}
					return s.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// A broker outage stops the flow without losing or doubling anything,
// shows in the connected gauge and the error counter, and the bridge
// resumes when the broker is back.
func TestOutboundOutage(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, nil)
	b := memory.NewBroker()
	m := bridges.NewMetrics()
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), bridges.OutboundOptions{
		Name: "outage", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Workers: 2,
		Backoff: bridges.Backoff{Min: 5e6, Max: 50e6}, AckWait: 1e9 * 3, Metrics: m, Logger: embeddedtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, out.Stop)
	b.Stop()
	appendEvents(t, st, []string{"x", "y", "z"}, 10)
	waitFor(t, "the bridge to see the outage", func() bool {
		return mustGather(t, m, "lexigram_bridge_errors_total", "outage") > 0 && !out.Connected() &&
			mustGather(t, m, "lexigram_bridge_broker_connected", "outage") == 0
	})
	if n := b.Len("q"); n != 0 {
		t.Fatalf("the broker holds %d messages during its outage", n)
	}
	b.Start()
	ch, _ := b.Subscriber("q", 100).Subscribe(t.Context())
	got := collect(t, ch, 30)
	seen := map[string]bool{}
	for _, d := range got {
		if seen[d.ID] {
			t.Fatalf("event %s arrived twice", d.ID)
		}
		seen[d.ID] = true
	}
	if !out.Connected() {
		t.Fatal("the bridge still reports the broker down after it came back")
	}
}

// A message the broker refuses for good goes to the dead-letter subject
// with the reason, and the bridge goes on with the next ones.
func TestOutboundRefusedIsDeadLettered(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, platform.JSON)
	b := memory.NewBroker()
	b.Refuse(func(_ string, m *bridges.Message) error {
		if strings.Contains(string(m.Data), `"b-2"`) {
			return errors.New("message too large for the queue")
		}
		return nil
	})
	m := bridges.NewMetrics()
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), bridges.OutboundOptions{
		Name: "refusing", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Metrics: m, Logger: embeddedtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, out.Stop)
	appendEvents(t, st, []string{"a", "b"}, 3)
	ch, _ := b.Subscriber("q", 100).Subscribe(t.Context())
	got := collect(t, ch, 5)
	for _, d := range got {
		if strings.Contains(string(d.Data), `"b-2"`) {
			t.Fatal("the refused message was delivered")
		}
	}
	dl := deadLetters(t, js, "refusing", 1)
	h := dl[0].Headers()
	if !strings.Contains(h.Get(bridges.HeaderReason), "too large") || h.Get(bridges.HeaderDirection) != "outbound" ||
		h.Get(bridges.HeaderSubject) != "events.order.b" || !strings.Contains(string(dl[0].Data()), `"b-2"`) {
		t.Fatalf("dead letter: headers %v, body %q", h, dl[0].Data())
	}
	// The bridge counts the dead letter once it is stored, so the test
	// may see it stored first.
	waitFor(t, "the dead letter counted", func() bool { return mustGather(t, m, "lexigram_bridge_dead_lettered_total", "refusing") == 1 })
}

// Structured mode with JSON re-encoding: a msgpack event reaches the
// outside as a CloudEvents JSON object whose data is the event as JSON;
// event types not asked for are skipped.
func TestOutboundStructuredJSON(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, nil) // msgpack
	b := memory.NewBroker()
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), bridges.OutboundOptions{
		Name: "structured", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), EventTypes: []string{"order.item-added"},
		Format: bridges.CloudEventsStructured, JSON: true, Source: "urn:shop", Logger: embeddedtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, out.Stop)
	appendEvents(t, st, []string{"o1"}, 2)
	ch, _ := b.Subscriber("q", 10).Subscribe(t.Context())
	got := collect(t, ch, 2)
	var ce struct {
		SpecVersion, ID, Source, Type, Subject, DataContentType string
		Data                                                    itemAdded
		LxVersion                                               string `json:"lxversion"`
	}
	if err := json.Unmarshal(got[1].Data, &ce); err != nil {
		t.Fatalf("structured body %q: %v", got[1].Data, err)
	}
	if ce.SpecVersion != "1.0" || ce.Source != "urn:shop" || ce.Type != "order.item-added" || ce.Subject != "order/o1" ||
		ce.DataContentType != "application/json" || ce.Data != (itemAdded{SKU: "o1-2", Qty: 2}) || ce.LxVersion != "2" || ce.ID != got[1].ID {
		t.Fatalf("structured CloudEvent %+v from %s", ce, got[1].Data)
	}
	if got[1].Header["Content-Type"] != "application/cloudevents+json" {
		t.Fatalf("content type %q", got[1].Header["Content-Type"])
	}
}

// Any stream, any subjects: messages keyed by subject, Nats- headers not
// sent out, a stopped bridge resumes where it stopped under the same name.
func TestOutboundPlainSubjectsResume(t *testing.T) {
	js := newJS(t)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "PLAIN", Subjects: []string{"plain.>"}}); err != nil {
		t.Fatal(err)
	}
	b := memory.NewBroker()
	opts := bridges.OutboundOptions{Name: "plain", Stream: "PLAIN", Subjects: []string{"plain.a.>"}, Logger: embeddedtest.Logger(t)}
	start := func() *bridges.Outbound {
		out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), opts)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	pub := func(subject string, i int) {
		if _, err := js.Publish(t.Context(), subject, []byte(strconv.Itoa(i)), jetstream.WithMsgID(fmt.Sprint(subject, i))); err != nil {
			t.Fatal(err)
		}
	}
	out := start()
	for i := range 5 {
		pub("plain.a.one", i)
		pub("plain.b.skip", i)
	}
	ch, _ := b.Subscriber("q", 100).Subscribe(t.Context())
	first := collect(t, ch, 5)
	if err := out.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := 5; i < 10; i++ {
		pub("plain.a.one", i)
	}
	out = start()
	stopped(t, out.Stop)
	rest := collect(t, ch, 5)
	for i, d := range append(first, rest...) {
		if string(d.Data) != strconv.Itoa(i) || d.Key != "plain.a.one" || d.Subject != "plain.a.one" {
			t.Fatalf("message %d: data %q key %q subject %q", i, d.Data, d.Key, d.Subject)
		}
		for k := range d.Header {
			if strings.HasPrefix(strings.ToLower(k), "nats-") {
				t.Fatalf("header %s sent out", k)
			}
		}
	}
}

func TestOutboundOptionsErrors(t *testing.T) {
	js := newJS(t)
	b := memory.NewBroker()
	for _, c := range []struct {
		opts bridges.OutboundOptions
		want string
	}{
		{bridges.OutboundOptions{Name: "bad name", Stream: "S"}, `bridge name "bad name" has ' '`},
		{bridges.OutboundOptions{Name: "x"}, "stream is empty"},
		{bridges.OutboundOptions{Name: "x", Stream: "S", EventTypes: []string{"t"}}, "set subject prefix"},
		{bridges.OutboundOptions{Name: "x", Stream: "NOPE"}, `stream "NOPE"`},
		{bridges.OutboundOptions{Name: "x", Stream: "S", DeadLetter: bridges.DeadLetterOptions{Subject: "nowhere.dlq"}}, `dead-letter subject "nowhere.dlq": no stream captures it`},
	} {
		_, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("options %+v: error %v, want one saying %q", c.opts, err, c.want)
		}
	}
}
