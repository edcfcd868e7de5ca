package azservicebus

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

type noted struct{ N int }

func eventStore(t *testing.T) (jetstream.JetStream, *lxjs.EventStore) {
	t.Helper()
	s := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
	js, err := jetstream.New(embeddedtest.Conn(t, s))
	if err != nil {
		t.Fatal(err)
	}
	reg := platform.NewRegistry()
	platform.MustRegister[noted](reg, "noted", 1)
	st, err := lxjs.New(t.Context(), js, lxjs.Options{Registry: reg, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return js, st
}

func stopLater(t *testing.T, f func(context.Context) error) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := f(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}

func outbound(t *testing.T, js jetstream.JetStream, st *lxjs.EventStore, pub bridges.Publisher, name string) *bridges.Outbound {
	t.Helper()
	out, err := bridges.NewOutbound(t.Context(), js, pub, bridges.OutboundOptions{
		Name: name, Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Format: bridges.CloudEventsBinary,
		Workers: 3, BatchSize: 20, Backoff: fast, PublishTimeout: 5 * time.Second, Logger: embeddedtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopLater(t, out.Stop)
	return out
}

func appendEvents(t *testing.T, st *lxjs.EventStore, aggregates, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		id := platform.StreamID{Type: "thing", ID: fmt.Sprintf("agg-%d", i%aggregates)}
		if _, err := st.Append(t.Context(), id, platform.Any(), []platform.Envelope{{Event: noted{N: i}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// Events go from the store to a session-enabled queue (SessionId = the
// aggregate ID) and back into JetStream while the namespace has an outage
// in the middle: every event is stored once, each aggregate's events in
// order, with their CloudEvents attributes in "cloudEvents_" application
// properties on the way.
func TestBridgeThroughOutageWithSessions(t *testing.T) {
	js, st := eventStore(t)
	in, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "IN", Subjects: []string{"in.>"}, Duplicates: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ns := newFakeNS()
	ns.queue("events", entityConfig{Sessions: true, LockDuration: time.Second})
	log := embeddedtest.Logger(t)
	pub, err := newPublisher(ns.client("events", "", ""), newWhere("", `queue "events"`), PublisherOptions{Sessions: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	outbound(t, js, st, pub, "to-asb")
	sub := newSubscriber(ns.client("events", "", ""), newWhere("", `queue "events"`), SubscriberOptions{Sessions: true, MaxSessions: 4, Prefetch: 20, SessionIdle: 50 * time.Millisecond, Backoff: fast, Logger: log})
	inb, err := bridges.NewInbound(t.Context(), js, sub, bridges.InboundOptions{Name: "from-asb", Subject: "in.events", Format: bridges.CloudEventsBinary, Workers: 3, Backoff: fast, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	stopLater(t, inb.Stop)

	const total, aggregates = 400, 7
	count := func() uint64 {
		info, err := in.Info(context.Background())
		if err != nil {
			return 0
		}
		return info.State.Msgs
	}
	appendEvents(t, st, aggregates, 0, total/2)
	waitUntil(t, "the first events through Service Bus", 30*time.Second, func() bool { return count() >= 50 })
	before := ns.outageSeen()
	ns.setDown(true)
	waitUntil(t, "calls refused in the outage", 10*time.Second, func() bool { return ns.outageSeen() > before+2 })
	appendEvents(t, st, aggregates, total/2, total/2) // stored while Service Bus is down
	ns.setDown(false)
	waitUntil(t, fmt.Sprintf("%d events stored back", total), 60*time.Second, func() bool { return count() >= total })
	cons, err := js.Consumer(t.Context(), st.StreamName(), "to-asb")
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the outbound consumer drained and the queue empty", 30*time.Second, func() bool {
		ci, err := cons.Info(context.Background())
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0 && len(ns.active("events")) == 0
	})
	if n := count(); n != total {
		t.Fatalf("JetStream holds %d inbound messages, want %d", n, total)
	}
	oc, err := in.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := oc.Fetch(total, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	last, seen, n := map[string]int{}, map[string]bool{}, 0
	for m := range batch.Messages() {
		h := m.Headers()
		agg, id := h.Get("ce-lxaggregateid"), h.Get("Lx-Id")
		v, err := strconv.Atoi(h.Get("ce-lxversion"))
		if err != nil || seen[id] || h.Get("Nats-Msg-Id") != "from-asb:"+id || h.Get("Lx-Type") != "noted" {
			t.Fatalf("stored message %d: seen before %v, headers %v", n, seen[id], h)
		}
		if v != last[agg]+1 {
			t.Fatalf("aggregate %s: version %d stored after %d", agg, v, last[agg])
		}
		last[agg], seen[id] = v, true
		n++
	}
	if n != total || len(last) != aggregates {
		t.Fatalf("read %d events of %d aggregates", n, len(last))
	}
	for _, s := range ns.sentLog() {
		if !strings.HasPrefix(s.Session, "agg-") {
			t.Fatalf("message %s went in session %q, want its aggregate ID", s.ID, s.Session)
		}
	}
}

// The outbound bridge acks a JetStream message only once Service Bus
// accepted the send: while it is down the events stay pending in
// JetStream (and none is lost), and they go out once it is back.
func TestOutboundAcksOnlyAfterSend(t *testing.T) {
	js, st := eventStore(t)
	ns := newFakeNS()
	ns.queue("q", entityConfig{})
	pub, err := newPublisher(ns.client("q", "", ""), newWhere("", `queue "q"`), PublisherOptions{Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ns.setDown(true)
	outbound(t, js, st, pub, "acks")
	appendEvents(t, st, 2, 0, 3)
	waitUntil(t, "sends retried in the outage", 10*time.Second, func() bool { return ns.count("newbatch") >= 3 })
	cons, err := js.Consumer(t.Context(), st.StreamName(), "acks")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if pending := ci.NumAckPending + int(ci.NumPending); pending != 3 || ci.AckFloor.Stream != 0 || len(ns.active("q")) != 0 {
		t.Fatalf("in the outage: %d unacked, ack floor %d, %d in the queue; want all 3 unacked and none sent", pending, ci.AckFloor.Stream, len(ns.active("q")))
	}
	if pub.Connected() {
		t.Fatal("the publisher counts as connected in the outage")
	}
	ns.setDown(false)
	waitUntil(t, "the events sent and acked", 30*time.Second, func() bool {
		ci, err := cons.Info(context.Background())
		return err == nil && ci.NumAckPending == 0 && ci.NumPending == 0 && len(ns.active("q")) == 3
	})
}

// A send whose acknowledgement was lost is sent again with the same
// MessageId: with duplicate detection on the entity Service Bus keeps
// one copy; without it, the queue has two (delivery is at least once, and
// the inbound bridge's Nats-Msg-Id absorbs the copy).
func TestLostAckAndDuplicateDetection(t *testing.T) {
	for _, window := range []time.Duration{10 * time.Minute, 0} {
		t.Run(fmt.Sprintf("window=%v", window), func(t *testing.T) {
			js, st := eventStore(t)
			ns := newFakeNS()
			ns.queue("q", entityConfig{DupWindow: window})
			pub, err := newPublisher(ns.client("q", "", ""), newWhere("", `queue "q"`), PublisherOptions{Logger: embeddedtest.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close()
			ns.loseAck(&sbConnLost, 1)
			outbound(t, js, st, pub, "dups")
			appendEvents(t, st, 1, 0, 1)
			waitUntil(t, "the send and its retry", 10*time.Second, func() bool { return ns.count("send") >= 2 })
			cons, err := js.Consumer(t.Context(), st.StreamName(), "dups")
			if err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the event acked", 10*time.Second, func() bool {
				ci, err := cons.Info(context.Background())
				return err == nil && ci.NumAckPending == 0 && ci.NumPending == 0
			})
			want := 1
			if window == 0 {
				want = 2
			}
			got := ns.active("q")
			if len(got) != want || got[0].ID != got[len(got)-1].ID {
				t.Fatalf("the queue holds %+v, want %d copies of one MessageId", got, want)
			}
		})
	}
}
