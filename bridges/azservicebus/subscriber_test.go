package azservicebus

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/embedded/embeddedtest"
)

func publishN(t *testing.T, p *Publisher, key string, from, n int) {
	t.Helper()
	var msgs []*bridges.Message
	for i := from; i < from+n; i++ {
		msgs = append(msgs, msg(fmt.Sprintf("%s-%d", key, i), key, fmt.Sprint(i)))
	}
	if err := p.Publish(t.Context(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// nothingMore fails the test if a delivery comes within d: for checking
// that a message does not come again, which no event can signal.
func nothingMore(t *testing.T, ch <-chan *bridges.Delivery, d time.Duration) {
	t.Helper()
	select {
	case got := <-ch:
		t.Fatalf("message %q came again", got.ID)
	case <-time.After(d):
	}
}

// A message held for many lock durations (an inbound bridge waiting out
// a JetStream outage) keeps its lock: the subscriber renews it, the ack
// completes it, and Service Bus never delivers it twice.
func TestLockRenewalKeepsHeldMessage(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{LockDuration: time.Second})
	publishN(t, fakePublisher(t, ns, "q", false), "k", 0, 1)
	_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{})
	d := next(t, ch, "the message")
	waitUntil(t, "four renewals", 10*time.Second, func() bool { return ns.count("renew") >= 4 }) // two seconds: two lock durations
	if v := ns.active("q"); len(v) != 1 || !v[0].Locked || v[0].Deliveries != 1 {
		t.Fatalf("after two lock durations held: %+v, want it still locked, delivered once", v)
	}
	if err := d.Ack(t.Context()); err != nil {
		t.Fatalf("ack after two lock durations: %v", err)
	}
	if v := ns.active("q"); len(v) != 0 {
		t.Fatalf("the queue still holds %+v", v)
	}
	renewals := ns.count("renew")
	nothingMore(t, ch, 500*time.Millisecond)
	if n := ns.count("renew"); n != renewals {
		t.Fatalf("%d renewals after the ack: renewal must stop once a message is settled", n-renewals)
	}
}

// With lock_renew off, a message held past its lock comes again, and the
// late ack fails with an error that says so.
func TestLockRenewalOff(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{LockDuration: 200 * time.Millisecond})
	publishN(t, fakePublisher(t, ns, "q", false), "k", 0, 1)
	_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{LockRenewal: -1})
	first := next(t, ch, "the message")
	again := next(t, ch, "the message again, once its lock ran out")
	if again.ID != first.ID {
		t.Fatalf("got %q, want %q again", again.ID, first.ID)
	}
	if err := first.Ack(t.Context()); err == nil || !strings.Contains(err.Error(), "lock expired") {
		t.Fatalf("ack of the lapsed delivery: %v, want a lock-lost error", err)
	}
	if err := again.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ns.count("renew") != 0 {
		t.Fatalf("%d renewals with lock_renew off", ns.count("renew"))
	}
}

// Renewal stops after LockRenewal: a message nobody settles comes again.
func TestLockRenewalBounded(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{LockDuration: time.Second})
	publishN(t, fakePublisher(t, ns, "q", false), "k", 0, 1)
	_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{LockRenewal: 1500 * time.Millisecond})
	start := time.Now()
	first := next(t, ch, "the message")
	again := next(t, ch, "the message again, once renewal stopped")
	if held := time.Since(start); again.ID != first.ID || held < 1500*time.Millisecond {
		t.Fatalf("got %q again after %v; want %q after at least the 1.5s of renewal", again.ID, held, first.ID)
	}
	if n := ns.count("renew"); n < 2 {
		t.Fatalf("%d renewals within lock_renew, want at least 2", n)
	}
	if err := again.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// With sessions the subscriber renews the session's lock while it holds a
// message of it: the session stays with it, and no other receiver gets
// the session's next messages meanwhile.
func TestSessionLockRenewal(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{Sessions: true, LockDuration: time.Second})
	p := fakePublisher(t, ns, "q", true)
	publishN(t, p, "a", 0, 2)
	_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{Sessions: true, Prefetch: 1})
	d := next(t, ch, "a-0")
	_, other := fakeSubscriber(t, ns, "q", SubscriberOptions{Sessions: true})
	waitUntil(t, "four session renewals", 10*time.Second, func() bool { return ns.count("renew-session") >= 4 })
	if held := ns.sessionsHeld("q"); len(held) != 1 || held[0] != "a" {
		t.Fatalf("after two lock durations the sessions held are %v, want [a]", held)
	}
	select {
	case got := <-other:
		t.Fatalf("another subscriber got %q while the session was held", got.ID)
	default:
	}
	if err := d.Ack(t.Context()); err != nil {
		t.Fatalf("ack after two lock durations: %v", err)
	}
	if d := next(t, ch, "a-1"); d.ID != "a-1" {
		t.Fatalf("got %q, want a-1 from the same session", d.ID)
	} else if err := d.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// Nack abandons: the message comes again with its delivery count grown,
// and past the entity's MaxDeliveryCount Service Bus dead-letters it.
func TestNackAbandonsUntilMaxDeliveryCount(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{MaxDeliveryCount: 3})
	publishN(t, fakePublisher(t, ns, "q", false), "k", 0, 1)
	_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{})
	for i := range 3 {
		d := next(t, ch, fmt.Sprintf("delivery %d", i+1))
		if err := d.Nack(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "the dead letter", 10*time.Second, func() bool { return len(ns.deadLetters("q")) == 1 })
	if dl := ns.deadLetters("q")[0]; dl.Reason != "MaxDeliveryCountExceeded" || dl.Deliveries != 3 || dl.ID != "k-0" {
		t.Fatalf("dead letter %+v", dl)
	}
	nothingMore(t, ch, 200*time.Millisecond)
}

// DeadLetter moves a delivery to the dead-letter sub-queue with the
// reason; a later Ack does nothing.
func TestDeadLetter(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{})
	publishN(t, fakePublisher(t, ns, "q", false), "k", 0, 2)
	s, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{})
	d := next(t, ch, "k-0")
	if err := s.DeadLetter(t.Context(), d, "poison", "the payload names no customer"); err != nil {
		t.Fatal(err)
	}
	if err := d.Ack(t.Context()); err != nil {
		t.Fatalf("ack after dead-letter: %v", err)
	}
	dl := ns.deadLetters("q")
	if len(dl) != 1 || dl[0].ID != "k-0" || dl[0].Reason != "poison" || dl[0].Desc != "the payload names no customer" {
		t.Fatalf("dead letters %+v", dl)
	}
	if err := s.DeadLetter(t.Context(), d, "again", ""); err == nil || !strings.Contains(err.Error(), "does not hold it") {
		t.Fatalf("dead-letter of a settled delivery: %v", err)
	}
	if d := next(t, ch, "k-1"); d.ID != "k-1" {
		t.Fatalf("got %q", d.ID)
	}
}

// A message whose body is not one data section (an AMQP value, from a
// client other than the Azure SDKs) can never be bridged: it is
// dead-lettered on Service Bus with the reason, and the next one comes.
func TestUnsupportedBodyDeadLettered(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{})
	ns.put("q", "odd", sb.AMQPAnnotatedMessageBody{Value: "a string"})
	ns.put("q", "two", sb.AMQPAnnotatedMessageBody{Data: [][]byte{[]byte("a"), []byte("b")}})
	publishN(t, fakePublisher(t, ns, "q", false), "k", 0, 1)
	_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{})
	if d := next(t, ch, "the bridgeable message"); d.ID != "k-0" {
		t.Fatalf("got %q, want k-0", d.ID)
	}
	waitUntil(t, "two dead letters", 10*time.Second, func() bool { return len(ns.deadLetters("q")) == 2 })
	dl := ns.deadLetters("q")
	if dl[0].ID != "odd" || dl[0].Reason != "lexigram: cannot bridge" || !strings.Contains(dl[0].Desc, "AMQP value body") ||
		dl[1].ID != "two" || !strings.Contains(dl[1].Desc, "2 data sections") {
		t.Fatalf("dead letters %+v", dl)
	}
}

// Close hands back what it holds unsettled at once (Service Bus would
// otherwise keep it locked for the lock duration, a minute here), and an
// ack after Close fails: the message comes again.
func TestCloseHandsBackHeld(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{LockDuration: time.Minute})
	publishN(t, fakePublisher(t, ns, "q", false), "k", 0, 3)
	s, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{Prefetch: 5})
	var ds []*bridges.Delivery
	for range 3 {
		ds = append(ds, next(t, ch, "the three messages"))
	}
	if err := ds[0].Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Fatal("the channel is open after Close")
	}
	v := ns.active("q")
	if len(v) != 2 || v[0].Locked || v[1].Locked {
		t.Fatalf("after Close the queue holds %+v: want the two unacked messages unlocked at once", v)
	}
	if err := ds[1].Ack(t.Context()); err == nil || !strings.Contains(err.Error(), "handed it back") {
		t.Fatalf("ack after Close: %v", err)
	}
	if n := ns.count("client-close"); n != 1 {
		t.Fatalf("the client was closed %d times, want 1", n)
	}
}

// Prefetch bounds the messages held: the subscriber never asks for more
// than the free places, however slowly they are acked.
func TestPrefetchBoundsHeld(t *testing.T) {
	for _, sessions := range []bool{false, true} {
		t.Run(fmt.Sprintf("sessions=%v", sessions), func(t *testing.T) {
			ns := newFakeNS()
			ns.queue("q", entityConfig{Sessions: sessions})
			publishN(t, fakePublisher(t, ns, "q", sessions), "k", 0, 20)
			_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{Sessions: sessions, Prefetch: 3})
			var pending []*bridges.Delivery
			for got := 0; got < 20; {
				pending = append(pending, next(t, ch, fmt.Sprintf("message %d", got)))
				got++
				if len(pending) == 3 || got == 20 {
					if n := ns.mostLocked("q"); n > 3 {
						t.Fatalf("%d messages locked at once with prefetch 3", n)
					}
					for _, d := range pending {
						if err := d.Ack(t.Context()); err != nil {
							t.Fatal(err)
						}
					}
					pending = pending[:0]
				}
			}
			if n := ns.mostLocked("q"); n != 3 {
				t.Fatalf("at most %d messages locked at once, want prefetch 3", n)
			}
		})
	}
}

// A receiver closed under the subscriber is replaced; one that failed
// otherwise is used again (the SDK recovers its links), and Connected
// follows.
func TestReceiverFailures(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{})
	p := fakePublisher(t, ns, "q", false)
	ns.script("receive", &sb.Error{Code: sb.CodeConnectionLost}, &sb.Error{Code: sb.CodeClosed})
	s, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{})
	publishN(t, p, "k", 0, 1)
	if d := next(t, ch, "the message after two failures"); d.ID != "k-0" {
		t.Fatalf("got %q", d.ID)
	} else if err := d.Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := ns.count("new-receiver"); n != 2 {
		t.Fatalf("%d receivers opened, want 2: the closed one replaced, the disconnected one kept", n)
	}
	if !s.Connected() {
		t.Fatal("not connected after a receive succeeded")
	}
}

// A subscriber of an entity that does not exist yet keeps trying, reports
// itself disconnected, and receives once the entity is there.
func TestSubscribeBeforeEntityExists(t *testing.T) {
	ns := newFakeNS()
	s, ch := fakeSubscriber(t, ns, "later", SubscriberOptions{})
	waitUntil(t, "a failed receive", 10*time.Second, func() bool { return ns.count("receive") >= 2 })
	if s.Connected() {
		t.Fatal("connected while the queue does not exist")
	}
	ns.queue("later", entityConfig{})
	publishN(t, fakePublisher(t, ns, "later", false), "k", 0, 1)
	if d := next(t, ch, "the message"); d.ID != "k-0" {
		t.Fatalf("got %q", d.ID)
	}
	waitUntil(t, "connected", 10*time.Second, s.Connected)
}

// Sessions keep each key's order across competing subscribers, which
// take sessions one at a time each and release idle ones, so few session
// slots serve many keys.
func TestSessionsOrderAcrossSubscribers(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{Sessions: true})
	p := fakePublisher(t, ns, "q", true)
	const keys, per = 6, 40
	var (
		mu   sync.Mutex
		last = map[string]int{}
		n    int
		all  = make(chan struct{})
	)
	for range 2 {
		_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{Sessions: true, MaxSessions: 2, Prefetch: 5, SessionIdle: 30 * time.Millisecond})
		go func() {
			for d := range ch {
				var i int
				fmt.Sscan(string(d.Data), &i)
				mu.Lock()
				if prev, ok := last[d.Key]; ok && i != prev+1 {
					mu.Unlock()
					t.Errorf("key %s: message %d after %d", d.Key, i, prev)
					return
				} else if !ok && i != 0 {
					mu.Unlock()
					t.Errorf("key %s: first message %d", d.Key, i)
					return
				}
				last[d.Key] = i
				mu.Unlock()
				if err := d.Ack(t.Context()); err != nil {
					t.Errorf("ack: %v", err)
					return
				}
				mu.Lock()
				if n++; n == keys*per {
					close(all)
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < per; i += 10 {
		for k := range keys {
			publishN(t, p, fmt.Sprintf("key%d", k), i, 10)
		}
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d of %d messages acked; last per key %v", n, keys*per, last)
	}
	for _, s := range ns.sentLog() {
		if !strings.HasPrefix(s.ID, s.Session+"-") {
			t.Fatalf("message %q went in session %q, want its key", s.ID, s.Session)
		}
	}
}

// Sessions lost to an outage are given up; the subscriber accepts them
// again and their held messages come again.
func TestSessionLostInOutage(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{Sessions: true})
	publishN(t, fakePublisher(t, ns, "q", true), "a", 0, 2)
	_, ch := fakeSubscriber(t, ns, "q", SubscriberOptions{Sessions: true, Prefetch: 1})
	held := next(t, ch, "a-0")
	ns.setDown(true)
	waitUntil(t, "a refused call", 10*time.Second, func() bool { return ns.outageSeen() > 0 })
	ns.setDown(false)
	if err := held.Ack(t.Context()); err == nil {
		t.Fatal("an ack after the session was lost succeeded")
	}
	for _, want := range []string{"a-0", "a-1"} {
		d := next(t, ch, want)
		if d.ID != want {
			t.Fatalf("got %q, want %q: the session's order", d.ID, want)
		}
		if err := d.Ack(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSubscribeTwice(t *testing.T) {
	ns := newFakeNS()
	ns.queue("q", entityConfig{})
	s, _ := fakeSubscriber(t, ns, "q", SubscriberOptions{})
	if _, err := s.Subscribe(t.Context()); err == nil {
		t.Fatal("a second Subscribe succeeded")
	}
}

// After an outage Connected turns true again once Service Bus answers,
// even when no message comes.
func TestConnectedRecoversWhenIdle(t *testing.T) {
	for _, sessions := range []bool{false, true} {
		t.Run(fmt.Sprintf("sessions=%v", sessions), func(t *testing.T) {
			ns := newFakeNS()
			ns.queue("q", entityConfig{Sessions: sessions})
			s := newSubscriber(ns.client("q", "", ""), newWhere("", `queue "q"`), SubscriberOptions{Sessions: sessions, Backoff: fast, Logger: embeddedtest.Logger(t)})
			s.pollWait = 50 * time.Millisecond
			t.Cleanup(func() { _ = s.Close() })
			if _, err := s.Subscribe(t.Context()); err != nil {
				t.Fatal(err)
			}
			ns.setDown(true)
			waitUntil(t, "disconnected in the outage", 10*time.Second, func() bool { return !s.Connected() })
			ns.setDown(false)
			waitUntil(t, "connected again with nothing to receive", 10*time.Second, s.Connected)
		})
	}
}
