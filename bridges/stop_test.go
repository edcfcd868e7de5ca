package bridges_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/memory"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/embedded/embeddedtest"
)

// An outage longer than AckWait: the bridge tells JetStream it is still
// at work on the messages it holds, so none is delivered a second time,
// and each reaches the broker once.
func TestOutboundOutageLongerThanAckWait(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, nil)
	b := memory.NewBroker()
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), bridges.OutboundOptions{
		Name: "long-outage", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Workers: 2, AckWait: time.Second,
		Backoff: bridges.Backoff{Min: 50 * time.Millisecond, Max: 200 * time.Millisecond}, Logger: embeddedtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, out.Stop)
	b.Stop()
	appendEvents(t, st, []string{"p", "q"}, 5)
	cons, err := js.Consumer(t.Context(), st.StreamName(), "long-outage")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bridge to hold all ten events", func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.NumAckPending == 10
	})
	time.Sleep(2500 * time.Millisecond) // the outage must outlast AckWait: that is what is tested
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumRedelivered != 0 {
		t.Fatalf("%d events were redelivered during an outage longer than AckWait", info.NumRedelivered)
	}
	b.Start()
	ch, _ := b.Subscriber("q", 100).Subscribe(t.Context())
	seen := map[string]bool{}
	for _, d := range collect(t, ch, 10) {
		if seen[d.ID] {
			t.Fatalf("event %s reached the broker twice", d.ID)
		}
		seen[d.ID] = true
	}
}

// Stop during an outage gives up when its context ends, and loses
// nothing: a bridge started again under the same name delivers it all.
func TestOutboundStopDuringOutage(t *testing.T) {
	js := newJS(t)
	st := newStore(t, js, nil)
	b := memory.NewBroker()
	opts := bridges.OutboundOptions{Name: "stop-down", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(),
		Backoff: bridges.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}, Logger: embeddedtest.Logger(t)}
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), opts)
	if err != nil {
		t.Fatal(err)
	}
	b.Stop()
	appendEvents(t, st, []string{"s"}, 4)
	cons, err := js.Consumer(t.Context(), st.StreamName(), "stop-down")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bridge to hold the events", func() bool {
		info, err := cons.Info(t.Context())
		return err == nil && info.NumAckPending == 4
	})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := out.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop during an outage: %v, want the context's deadline", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("Stop took %v after its context ended", took)
	}
	b.Start()
	opts.AckWait = time.Second // the held events come back after the old AckWait; shorten the wait for the new one
	out, err = bridges.NewOutbound(t.Context(), js, b.Publisher("q"), opts)
	if err != nil {
		t.Fatal(err)
	}
	stopped(t, out.Stop)
	ch, _ := b.Subscriber("q", 100).Subscribe(t.Context())
	got := collect(t, ch, 4)
	for i, d := range got {
		if d.Header["Lx-Version"] != string(rune('1'+i)) {
			t.Fatalf("event %d has version %q: lost or out of order", i, d.Header["Lx-Version"])
		}
	}
}

// Stop while JetStream refuses gives up when its context ends and leaves
// the message with the broker.
func TestInboundStopWhileJetStreamRefuses(t *testing.T) {
	js := newJS(t)
	b := memory.NewBroker()
	m := bridges.NewMetrics()
	in, err := bridges.NewInbound(t.Context(), js, b.Subscriber("q", 0), bridges.InboundOptions{
		Name: "stuck", Metrics: m, SubjectFunc: func(*bridges.Message) string { return "nowhere.x" }, PublishTimeout: 200 * time.Millisecond,
		Backoff: bridges.Backoff{Min: 20 * time.Millisecond, Max: 100 * time.Millisecond}, Logger: embeddedtest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publisher("q").Publish(t.Context(), &bridges.Message{ID: "1", Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the bridge retrying", func() bool { return mustGather(t, m, "lexigram_bridge_errors_total", "stuck") > 0 })
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := in.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want the context's deadline", err)
	}
	if n := b.Len("q"); n != 1 {
		t.Fatalf("the broker holds %d messages after Stop, want the one JetStream never stored", n)
	}
}

// Stop with the NATS server gone (and the connection aware of it) returns
// at once, whatever its context:
// the look for messages sent as the consumer was drained gives up.
func TestOutboundStopWithNATSGone(t *testing.T) {
	s := embeddedtest.Server(t, func(o *embedded.Options) { o.FsyncInterval = time.Minute })
	nc := embeddedtest.Conn(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t, js, nil)
	b := memory.NewBroker()
	out, err := bridges.NewOutbound(t.Context(), js, b.Publisher("q"), bridges.OutboundOptions{Name: "nats-gone", Stream: st.StreamName(),
		SubjectPrefix: st.SubjectPrefix(), Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection to notice the server is gone", func() bool { return !nc.IsConnected() })
	began := time.Now()
	if err := out.Stop(context.Background()); err != nil {
		t.Fatalf("Stop with NATS gone and nothing in flight: %v", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("Stop with NATS gone took %v", took)
	}
}
