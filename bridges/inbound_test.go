package bridges_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// inStream makes a stream that would act on TTL and schedule headers,
// so that a header passed through would show.
func inStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: "IN", Subjects: []string{"in.>"}, AllowMsgTTL: true, AllowMsgSchedules: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stored reads every message of the stream on subject (">" for all).
func stored(t *testing.T, s jetstream.Stream, subject string, n int) []jetstream.Msg {
	t.Helper()
	var out []jetstream.Msg
	waitFor(t, fmt.Sprintf("%d messages stored on %s", n, subject), func() bool {
		out = out[:0]
		c, err := s.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
		if err != nil {
			return false
		}
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			return false
		}
		for m := range batch.Messages() {
			out = append(out, m)
		}
		return len(out) >= n
	})
	return out
}

func startInbound(t *testing.T, js jetstream.JetStream, sub bridges.Subscriber, o bridges.InboundOptions) *bridges.Inbound {
	t.Helper()
	o.Logger = embeddedtest.Logger(t)
	in, err := bridges.NewInbound(t.Context(), js, sub, o)
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, in.Stop)
	return in
}

// Headers from outside whose names begin with Nats-, in any case, never
// reach JetStream: an expected-sequence header that would refuse the
// message, a TTL and a schedule on a stream that honours both, and a
// Nats-Msg-Id that would replace ours. The control publish shows the
// expected-sequence header would act if passed.
func TestInboundDropsNatsHeaders(t *testing.T) {
	js := newJS(t)
	s := inStream(t, js)
	if _, err := js.PublishMsg(t.Context(), &nats.Msg{Subject: "in.control", Header: nats.Header{jetstream.ExpectedLastSubjSeqHeader: {"99"}}}); err == nil {
		t.Fatal("control: the expected-sequence header did not act on a direct publish")
	}
	b := memory.NewBroker()
	startInbound(t, js, b.Subscriber("q", 0), bridges.InboundOptions{Name: "hdrs", Subject: "in.hdrs"})
	hostile := bridges.Header{
		"Nats-Expected-Last-Subject-Sequence": "99",
		"Nats-TTL":                            "1s",
		"nats-schedule":                       "@at 2099-01-01T00:00:00Z",
		"NATS-SCHEDULE-TARGET":                "in.elsewhere",
		"Nats-Msg-Id":                         "forged",
		"Nats-Rollup":                         "all",
		"X-Kept":                              "yes",
	}
	if err := b.Publisher("q").Publish(t.Context(), &bridges.Message{ID: "m1", Header: hostile, Data: []byte("one")},
		&bridges.Message{ID: "m2", Header: bridges.Header{"X-Kept": "too"}, Data: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	got := stored(t, s, "in.hdrs", 2)
	if len(got) != 2 || string(got[0].Data()) != "one" || string(got[1].Data()) != "two" {
		t.Fatalf("stored %d messages; want both, in order (a rollup would have removed the first)", len(got))
	}
	h := got[0].Headers()
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "nats-") && k != nats.MsgIdHdr {
			t.Errorf("header %s reached JetStream", k)
		}
	}
	if id := h.Get(nats.MsgIdHdr); id != "hdrs:m1" || h.Get("X-Kept") != "yes" {
		t.Fatalf("Nats-Msg-Id %q (want hdrs:m1, derived from the broker's ID), X-Kept %q", id, h.Get("X-Kept"))
	}
	if _, err := s.GetLastMsgForSubject(t.Context(), "in.elsewhere"); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("the schedule target got a message: %v", err)
	}
	if n := b.Len("q"); n != 0 {
		waitFor(t, "the broker's messages acked", func() bool { return b.Len("q") == 0 })
	}
}

// A redelivery, here the same broker message ID coming again, is stored
// once; order per key holds with several workers.
func TestInboundRedeliveryStoredOnceAndOrder(t *testing.T) {
	js := newJS(t)
	s := inStream(t, js)
	b := memory.NewBroker()
	startInbound(t, js, b.Subscriber("q", 50), bridges.InboundOptions{
		Name: "orders-in", SubjectFunc: func(m *bridges.Message) string { return "in.orders." + m.Key }, Workers: 3,
	})
	pub := b.Publisher("q")
	const keys, per = 4, 25
	var msgs []*bridges.Message
	for i := range per {
		for k := range keys {
			msgs = append(msgs, &bridges.Message{ID: fmt.Sprintf("k%d-%d", k, i), Key: "k" + strconv.Itoa(k), Data: []byte(strconv.Itoa(i))})
		}
	}
	if err := pub.Publish(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(t.Context(), msgs[:10]...); err != nil { // the broker redelivers ten
		t.Fatal(err)
	}
	waitFor(t, "the broker drained", func() bool { return b.Len("q") == 0 })
	got := stored(t, s, "in.orders.>", keys*per)
	if len(got) != keys*per {
		t.Fatalf("stored %d messages, want %d: a redelivery was stored twice", len(got), keys*per)
	}
	next := map[string]int{}
	for _, m := range got {
		i, _ := strconv.Atoi(string(m.Data()))
		if i != next[m.Subject()] {
			t.Fatalf("%s: message %d after %d: one key's messages must stay in order", m.Subject(), i, next[m.Subject()]-1)
		}
		next[m.Subject()]++
	}
}

// Messages that cannot be decoded (a CloudEvent without a type, a header
// name NATS cannot carry) go to the dead-letter subject with the reason and
// are acked; the bridge goes on with the next one.
func TestInboundUndecodableIsDeadLettered(t *testing.T) {
	js := newJS(t)
	s := inStream(t, js)
	b := memory.NewBroker()
	m := bridges.NewMetrics()
	startInbound(t, js, b.Subscriber("q", 0), bridges.InboundOptions{Name: "ce-in", Subject: "in.ce", Format: bridges.CloudEventsBinary, Metrics: m})
	good := bridges.Header{"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "urn:x", "ce-type": "thing.done", "Content-Type": "application/json"}
	amqp := bridges.Header{"cloudEvents_specversion": "1.0", "cloudEvents_id": "e2", "cloudEvents_source": "urn:x", "cloudEvents_type": "thing.done"}
	noType := bridges.Header{"ce-specversion": "1.0", "ce-id": "e3", "ce-source": "urn:x", "Nats-TTL": "1s"}
	badName := bridges.Header{"ce-specversion": "1.0", "ce-id": "e4", "ce-source": "urn:x", "ce-type": "t", "bad name": "x"}
	err := b.Publisher("q").Publish(t.Context(),
		&bridges.Message{ID: "1", Header: noType, Data: []byte("bad1")},
		&bridges.Message{ID: "2", Header: badName, Data: []byte("bad2")},
		&bridges.Message{ID: "3", Header: good, Data: []byte(`{"ok":1}`)},
		&bridges.Message{ID: "4", Header: amqp, Data: []byte(`{"ok":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	got := stored(t, s, "in.ce", 2)
	for i, want := range []string{"e1", "e2"} {
		h := got[i].Headers()
		if h.Get("Lx-Id") != want || h.Get("Lx-Type") != "thing.done" || h.Get("ce-source") != "urn:x" {
			t.Fatalf("stored CloudEvent %d: headers %v", i, h)
		}
	}
	dl := deadLetters(t, js, "ce-in", 2)
	if r := dl[0].Headers().Get(bridges.HeaderReason); !strings.Contains(r, "without type") || string(dl[0].Data()) != "bad1" {
		t.Fatalf("first dead letter: reason %q, body %q", r, dl[0].Data())
	}
	if dl[0].Headers().Get("Nats-TTL") != "" {
		t.Fatal("a Nats- header from outside reached the dead-letter stream")
	}
	if r := dl[1].Headers().Get(bridges.HeaderReason); !strings.Contains(r, `"bad name"`) {
		t.Fatalf("second dead letter: reason %q", r)
	}
	waitFor(t, "the broker's messages acked", func() bool { return b.Len("q") == 0 })
	if n := mustGather(t, m, "lexigram_bridge_dead_lettered_total", "ce-in"); n != 2 {
		t.Fatalf("dead-lettered metric %v, want 2", n)
	}
}

// Structured CloudEvents: the data lands as the body, the attributes as
// headers, data_base64 decoded.
func TestInboundStructured(t *testing.T) {
	js := newJS(t)
	s := inStream(t, js)
	b := memory.NewBroker()
	startInbound(t, js, b.Subscriber("q", 0), bridges.InboundOptions{Name: "st-in", Subject: "in.st", Format: bridges.CloudEventsStructured})
	err := b.Publisher("q").Publish(t.Context(),
		&bridges.Message{ID: "1", Data: []byte(`{"specversion":"1.0","id":"a","source":"urn:s","type":"t.x","datacontenttype":"application/json","data":{"n":1}}`)},
		&bridges.Message{ID: "2", Data: []byte(`{"specversion":"1.0","id":"b","source":"urn:s","type":"t.y","data_base64":"aGVsbG8="}`)},
		&bridges.Message{ID: "3", Data: []byte(`not json`)})
	if err != nil {
		t.Fatal(err)
	}
	got := stored(t, s, "in.st", 2)
	if string(got[0].Data()) != `{"n":1}` || got[0].Headers().Get("Content-Type") != "application/json" || got[0].Headers().Get("Lx-Type") != "t.x" {
		t.Fatalf("first: %q %v", got[0].Data(), got[0].Headers())
	}
	if string(got[1].Data()) != "hello" || got[1].Headers().Get("Lx-Id") != "b" {
		t.Fatalf("second: %q %v", got[1].Data(), got[1].Headers())
	}
	dl := deadLetters(t, js, "st-in", 1)
	if !strings.Contains(dl[0].Headers().Get(bridges.HeaderReason), "not a JSON object") {
		t.Fatalf("dead letter reason %q", dl[0].Headers().Get(bridges.HeaderReason))
	}
}

// While JetStream refuses (no stream captures the subject yet), messages
// stay unacked at the broker; once a stream exists they are stored.
func TestInboundWaitsForJetStream(t *testing.T) {
	js := newJS(t)
	b := memory.NewBroker()
	m := bridges.NewMetrics()
	startInbound(t, js, b.Subscriber("q", 0), bridges.InboundOptions{
		Name: "late", SubjectFunc: func(*bridges.Message) string { return "late.x" }, Metrics: m,
		Backoff: bridges.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}, PublishTimeout: time.Second,
	})
	if err := b.Publisher("q").Publish(t.Context(), &bridges.Message{ID: "1", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a failed publish", func() bool { return mustGather(t, m, "lexigram_bridge_errors_total", "late") > 0 })
	if b.Len("q") != 1 {
		t.Fatal("the message left the broker before JetStream stored it")
	}
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "LATE", Subjects: []string{"late.>"}})
	if err != nil {
		t.Fatal(err)
	}
	stored(t, s, "late.x", 1)
	waitFor(t, "the broker's message acked", func() bool { return b.Len("q") == 0 })
}
