package azservicebus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/embedded/embeddedtest"
)

func fakePublisher(t *testing.T, ns *fakeNS, queue string, sessions bool) *Publisher {
	t.Helper()
	p, err := newPublisher(ns.client(queue, "", ""), newWhere("", entityName(queue, "", "")), PublisherOptions{Sessions: sessions, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func fakeSubscriber(t *testing.T, ns *fakeNS, queue string, o SubscriberOptions) (*Subscriber, <-chan *bridges.Delivery) {
	t.Helper()
	if o.Backoff == (bridges.Backoff{}) {
		o.Backoff = fast
	}
	o.Logger = embeddedtest.Logger(t)
	s := newSubscriber(ns.client(queue, "", ""), newWhere("", entityName(queue, "", "")), o)
	t.Cleanup(func() { _ = s.Close() })
	ch, err := s.Subscribe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s, ch
}

// next is the next delivery, or the test fails after 10s.
func next(t *testing.T, ch <-chan *bridges.Delivery, what string) *bridges.Delivery {
	t.Helper()
	select {
	case d, ok := <-ch:
		if !ok {
			t.Fatalf("waiting for %s: the channel closed", what)
		}
		return d
	case <-time.After(10 * time.Second):
		t.Fatalf("waiting for %s: nothing within 10s", what)
	}
	return nil
}

func msg(id, key, body string) *bridges.Message {
	return &bridges.Message{ID: id, Key: key, Subject: "events.order." + key, Data: []byte(body), Header: bridges.Header{"Seq": id}}
}

// A message maps to Service Bus as documented: ID → MessageId, Key →
// SessionId (with sessions), Subject → Subject, Content-Type →
// ContentType, other headers → application properties; IDs and keys over
// 128 characters become a stable hash; and a subscriber maps it back.
func TestMessageMapping(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{Sessions: true})
	p := fakePublisher(t, ns, "q", true)
	long := strings.Repeat("x", 200)
	m1 := &bridges.Message{ID: "id-1", Key: "order-7", Subject: "events.order.order-7", Data: []byte(`{"a":1}`),
		Header: bridges.Header{"Content-Type": "application/json", "ce_type": "placed", "Lx-Meta-Who": "ada"}}
	m2 := &bridges.Message{ID: long, Key: long, Subject: "s", Data: []byte("x")}
	m3 := &bridges.Message{ID: "id-3", Subject: "plain.subject", Data: []byte("y")} // no key: the subject is the session
	if err := p.Publish(t.Context(), m1, m2, m3); err != nil {
		t.Fatal(err)
	}
	got := ns.active("q")
	if len(got) != 3 {
		t.Fatalf("the queue holds %d messages, want 3: %+v", len(got), got)
	}
	v := got[0]
	if v.ID != "id-1" || v.Session != "order-7" || v.Subject != "events.order.order-7" || v.ContentType != "application/json" ||
		v.Props["ce_type"] != "placed" || v.Props["Lx-Meta-Who"] != "ada" || len(v.Props) != 2 || v.Body != `{"a":1}` {
		t.Fatalf("stored %+v", v)
	}
	if h := got[1]; len(h.ID) > maxID || len(h.Session) > maxID || h.ID != limit(long) || !strings.HasPrefix(h.ID, "sha256:") || h.Session != h.ID {
		t.Fatalf("a 200-character ID and key became MessageId %q, SessionId %q: want the same sha256 form for both, at most 128 characters", h.ID, h.Session)
	}
	if got[2].Session != "plain.subject" {
		t.Fatalf("a message without a key has SessionId %q, want its subject", got[2].Session)
	}

	_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{Sessions: true})
	seen := map[string]*bridges.Delivery{}
	for range 3 {
		d := next(t, ch, "the three messages")
		seen[d.ID] = d
		if err := d.Ack(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	d := seen["id-1"]
	if d == nil || d.Key != "order-7" || d.Subject != "events.order.order-7" || string(d.Data) != `{"a":1}` ||
		d.Header["Content-Type"] != "application/json" || d.Header["ce_type"] != "placed" || d.Header["Lx-Meta-Who"] != "ada" || len(d.Header) != 3 {
		t.Fatalf("received %+v", d)
	}
	if seen[limit(long)] == nil {
		t.Fatalf("received IDs %v, want the hashed one among them", keys(seen))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Application properties of any AMQP simple type arrive as header text.
func TestPropertyTypes(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{})
	snd, _ := ns.client("q", "", "").NewSender()
	b, _ := snd.NewBatch(t.Context())
	at := time.Date(2026, 12, 1, 10, 0, 0, 5, time.FixedZone("x", 3600))
	id := "typed"
	if err := b.AddMessage(&sb.Message{MessageID: &id, Body: []byte("b"), ApplicationProperties: map[string]any{
		"i64": int64(-42), "i32": int32(7), "b": true, "f": 1.5, "t": at, "bytes": []byte("raw"), "u": uint16(9), "nil": nil,
	}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := snd.SendBatch(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{})
	d := next(t, ch, "the typed message")
	want := bridges.Header{"i64": "-42", "i32": "7", "b": "true", "f": "1.5", "t": "2026-12-01T09:00:00.000000005Z", "bytes": "raw", "u": "9", "nil": ""}
	for k, v := range want {
		if d.Header[k] != v {
			t.Errorf("property %s: header %q, want %q", k, d.Header[k], v)
		}
	}
}

// Batches hold what fits: a large publish goes out in several sends, in
// order, and a message too large for any batch fails alone, marked
// Refused, while the others are sent.
func TestPublishBatchesAndRefusesTooLarge(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{MaxBatchBytes: 2000})
	p := fakePublisher(t, ns, "q", false)
	var msgs []*bridges.Message
	for i := range 12 {
		body := strings.Repeat("a", 400)
		if i == 5 {
			body = strings.Repeat("b", 5000)
		}
		msgs = append(msgs, msg(fmt.Sprint(i), "k", body))
	}
	err := p.Publish(t.Context(), msgs...)
	errs := bridges.ErrorsOf(err, len(msgs))
	for i, e := range errs {
		if (i == 5) != (e != nil) {
			t.Fatalf("message %d: error %v; want only message 5 to fail", i, e)
		}
	}
	if !bridges.IsRefused(errs[5]) || !strings.Contains(errs[5].Error(), "larger than the entity accepts") || !strings.Contains(errs[5].Error(), `queue "q"`) {
		t.Fatalf("the too large message: %v, want a refusal naming the queue and the fix", errs[5])
	}
	var ids []string
	for _, v := range ns.active("q") {
		ids = append(ids, v.ID)
	}
	if fmt.Sprint(ids) != "[0 1 2 3 4 6 7 8 9 10 11]" {
		t.Fatalf("the queue holds %v", ids)
	}
	if n := ns.count("send"); n < 3 {
		t.Fatalf("%d sends for 11 messages of ~500 bytes in 2000-byte batches: the batches were not split", n)
	}
	if !p.Connected() {
		t.Fatal("a refusal marked the publisher disconnected")
	}
}

// With sessions each key's messages go in batches of their own: when one
// key's batch fails, its later messages are not sent (they would overtake
// it on the retry) while the other keys' are.
func TestPublishFailureKeepsKeyOrder(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{Sessions: true})
	p := fakePublisher(t, ns, "q", true)
	msgs := []*bridges.Message{msg("a1", "a", "1"), msg("b1", "b", "1"), msg("a2", "a", "2"), msg("b2", "b", "2")}
	ns.failNext("send", &sb.Error{Code: sb.CodeConnectionLost}, 1) // the first batch: key a
	errs := bridges.ErrorsOf(p.Publish(t.Context(), msgs...), len(msgs))
	if errs[0] == nil || errs[2] == nil || errs[1] != nil || errs[3] != nil {
		t.Fatalf("errors %v: want key a's two messages failed and key b's sent", errs)
	}
	if bridges.IsRefused(errs[0]) || !strings.Contains(errs[0].Error(), "connection was lost") {
		t.Fatalf("a lost connection: %v, want a retryable error that says so", errs[0])
	}
	if got := ns.active("q"); len(got) != 2 || got[0].ID != "b1" || got[1].ID != "b2" {
		t.Fatalf("the queue holds %+v, want b1 and b2 only", got)
	}
	if p.Connected() != true {
		t.Fatal("some messages went through: the publisher should count as connected")
	}

	// Without sessions one failed batch fails everything after it.
	ns.queue("plain", entityConfig{MaxBatchBytes: 1000})
	pp := fakePublisher(t, ns, "plain", false)
	var big []*bridges.Message
	for i := range 6 {
		big = append(big, msg(fmt.Sprint(i), fmt.Sprint(i%2), strings.Repeat("z", 300))) // two per batch
	}
	sends := ns.count("send")
	ns.script("send", nil, &sb.Error{Code: sb.CodeTimeout}) // the first batch passes, the second fails
	err := pp.Publish(t.Context(), big...)
	errs = bridges.ErrorsOf(err, len(big))
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("the first batch failed: %v", errs)
	}
	for i := 2; i < 6; i++ {
		if errs[i] == nil || bridges.IsRefused(errs[i]) {
			t.Fatalf("message %d: %v, want a retryable failure (the second batch failed)", i, errs[i])
		}
	}
	if !strings.Contains(errs[4].Error(), "does not overtake") {
		t.Fatalf("a message after the failed batch: %v, want it to say why it was not sent", errs[4])
	}
	if n := ns.count("send") - sends; n != 2 {
		t.Fatalf("%d sends, want 2: nothing after a failed batch", n)
	}
	if got := ns.active("plain"); len(got) != 2 {
		t.Fatalf("the queue holds %d messages, want the first batch's 2", len(got))
	}
}

// Every failure says what it means and how to fix it, names the entity
// and the namespace, and never shows the key.
func TestErrorsExplainAndHideSecrets(t *testing.T) {
	const key = "c2VjcmV0LWtleS0xMjM0NTY3ODkw"
	w := newWhere("Endpoint=sb://lx-test.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey="+key, entityName("orders", "", ""))
	cases := []struct {
		err  error
		op   string
		want string
	}{
		{&sb.Error{Code: sb.CodeUnauthorizedAccess}, "send 3 messages", "Send claim"},
		{&sb.Error{Code: sb.CodeUnauthorizedAccess}, "receive", "Listen claim"},
		{&sb.Error{Code: sb.CodeNotFound}, "receive", "create it in the namespace"},
		{&sb.Error{Code: sb.CodeConnectionLost}, "receive", "reachable"},
		{&sb.Error{Code: sb.CodeLockLost}, "complete", "delivered again"},
		{fmt.Errorf("token for %s refused", key), "receive", "[redacted]"},
	}
	for _, c := range cases {
		err := w.explain(c.op, c.err)
		s := err.Error()
		if !strings.Contains(s, c.want) || !strings.Contains(s, `queue "orders"`) || !strings.Contains(s, "lx-test.servicebus.windows.net") || strings.Contains(s, key) {
			t.Errorf("%v: %q; want %q, the entity and namespace, and no key", c.err, s, c.want)
		}
		if bridges.IsRefused(err) {
			t.Errorf("%v counts as refused for good; it can be fixed and retried", c.err)
		}
	}
	if _, _, err := open("Endpoint=sb://x/;SharedAccessKey="+key, nil, "q", "", ""); err == nil || strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "shared access policies") {
		t.Fatalf("a connection string without a key name: %v", err)
	}
	if _, _, err := open("", nil, "q", "", ""); err == nil || !strings.Contains(err.Error(), "connection_string") {
		t.Fatalf("no connection string: %v", err)
	}
}

// A publisher to an entity that does not exist fails with an error that
// says so (retryable: someone may create it), and goes on once it exists.
func TestPublishToMissingEntity(t *testing.T) {
	ns := newFakeNS()
	p := fakePublisher(t, ns, "later", false)
	err := p.Publish(t.Context(), msg("1", "k", "x"))
	if err == nil || bridges.IsRefused(err) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("publish to a missing queue: %v", err)
	}
	if p.Connected() {
		t.Fatal("the publisher counts as connected after every message failed")
	}
	ns.queue("later", entityConfig{})
	if err := p.Publish(t.Context(), msg("1", "k", "x")); err != nil {
		t.Fatalf("after the queue was created: %v", err)
	}
	if !p.Connected() {
		t.Fatal("the publisher counts as disconnected after a send succeeded")
	}
	// Sending without sessions to an entity that requires them says which
	// setting to change.
	ns.queue("sessions", entityConfig{Sessions: true})
	wrong := fakePublisher(t, ns, "sessions", false)
	if err := wrong.Publish(t.Context(), msg("1", "k", "x")); err == nil || !strings.Contains(err.Error(), "sessions=true") {
		t.Fatalf("no SessionId to a session queue: %v", err)
	}
}

func TestPublisherClose(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{})
	p := fakePublisher(t, ns, "q", false)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(context.Background(), msg("1", "k", "x")); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("publish after close: %v", err)
	}
	if ns.count("client-close") != 1 {
		t.Fatal("Close did not close the client it made")
	}
}
