package bridgetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lexigram/events/bridges"
)

// Topic is one fresh topic of the broker under test.
type Topic struct {
	Publisher bridges.Publisher
	// NewSubscriber returns a new subscriber that competes with the
	// topic's other subscribers for its messages (one queue, one consumer
	// group), closed on cleanup.
	NewSubscriber func(t *testing.T) bridges.Subscriber
}

// Setup describes the adapter under test.
type Setup struct {
	// New makes a fresh, empty topic that keeps the messages published to
	// it from the first publish on, even before anyone subscribes, and
	// removes it on cleanup.
	New func(t *testing.T) Topic
	// Restart stops the broker and starts it again, returning once it is
	// up. nil skips Reconnect.
	Restart func(t *testing.T)
	// Timeout bounds each wait for messages. Default 60s.
	Timeout time.Duration
}

// Header names the suite sets on its messages.
const (
	hdrSeq  = "Bridgetest-Seq"
	hdrCase = "Bridgetest-Case"
)

// Run runs the suite.
func Run(t *testing.T, s Setup) {
	t.Helper()
	if s.Timeout == 0 {
		s.Timeout = 60 * time.Second
	}
	cases := []struct {
		name string
		test func(t *testing.T, s Setup)
	}{
		{"PublishSubscribe", testPublishSubscribe},
		{"OrderWithOneSubscriber", testOrder},
		{"NackRedelivers", testNack},
		{"NoAckRedelivers", testNoAck},
		{"CloseWhileFlowing", testCloseWhileFlowing},
		{"ConcurrentSubscribers", testConcurrentSubscribers},
		{"PublisherClose", testPublisherClose},
		{"Reconnect", testReconnect},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, s) })
	}
}

func context60(t *testing.T, s Setup) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 4*s.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// messages makes n messages of one case, numbered from first.
func messages(name string, first, n int, key string) []*bridges.Message {
	out := make([]*bridges.Message, n)
	for i := range out {
		seq := strconv.Itoa(first + i)
		out[i] = &bridges.Message{
			ID:      name + "-" + seq,
			Key:     key,
			Subject: "bridgetest." + name,
			Header:  bridges.Header{hdrSeq: seq, hdrCase: name},
			Data:    []byte(`{"case":"` + name + `","seq":` + seq + `}`),
		}
	}
	return out
}

func publish(t *testing.T, ctx context.Context, p bridges.Publisher, msgs []*bridges.Message, batch int) {
	t.Helper()
	for i := 0; i < len(msgs); i += batch {
		if err := p.Publish(ctx, msgs[i:min(i+batch, len(msgs))]...); err != nil {
			t.Fatalf("publish messages %d to %d: %v", i, min(i+batch, len(msgs))-1, err)
		}
	}
}

func subscribe(t *testing.T, ctx context.Context, sub bridges.Subscriber) <-chan *bridges.Delivery {
	t.Helper()
	ch, err := sub.Subscribe(ctx)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return ch
}

// receive returns the next delivery or fails the test after the timeout.
func receive(t *testing.T, s Setup, ch <-chan *bridges.Delivery, what string) *bridges.Delivery {
	t.Helper()
	select {
	case d, ok := <-ch:
		if !ok {
			t.Fatalf("waiting for %s: the subscription's channel closed", what)
		}
		return d
	case <-time.After(s.Timeout):
		t.Fatalf("waiting for %s: nothing came within %v", what, s.Timeout)
	}
	return nil
}

func seqOf(t *testing.T, d *bridges.Delivery) int {
	t.Helper()
	n, err := strconv.Atoi(d.Header[hdrSeq])
	if err != nil {
		t.Fatalf("message %q: header %s is %q, want the sequence the suite set; headers %v", d.ID, hdrSeq, d.Header[hdrSeq], d.Header)
	}
	return n
}

func ack(t *testing.T, ctx context.Context, d *bridges.Delivery) {
	t.Helper()
	if err := d.Ack(ctx); err != nil {
		t.Fatalf("ack message %q: %v", d.ID, err)
	}
}

func testPublishSubscribe(t *testing.T, s Setup) {
	ctx := context60(t, s)
	top := s.New(t)
	msgs := messages("pubsub", 0, 100, "k1")
	publish(t, ctx, top.Publisher, msgs, 10)
	sub1 := top.NewSubscriber(t)
	ch := subscribe(t, ctx, sub1)
	seen := map[int]bool{}
	for len(seen) < len(msgs) {
		d := receive(t, s, ch, fmt.Sprintf("message %d of %d", len(seen)+1, len(msgs)))
		n := seqOf(t, d)
		if n < 0 || n >= len(msgs) {
			t.Fatalf("received sequence %d, published 0 to %d", n, len(msgs)-1)
		}
		want := msgs[n]
		if string(d.Data) != string(want.Data) || d.Header[hdrCase] != "pubsub" {
			t.Fatalf("message %d: body %q, header %s %q; want %q and %q", n, d.Data, hdrCase, d.Header[hdrCase], want.Data, "pubsub")
		}
		if d.ID == "" {
			t.Fatalf("message %d has no ID: the inbound bridge derives Nats-Msg-Id from it", n)
		}
		if d.Key != "" && d.Key != want.Key {
			t.Fatalf("message %d: key %q, want %q", n, d.Key, want.Key)
		}
		seen[n] = true
		ack(t, ctx, d)
	}
	// Acked messages do not come again: a marker published now is the
	// next thing a new subscriber sees.
	if err := sub1.Close(); err != nil {
		t.Fatalf("close the subscriber: %v", err)
	}
	sub2 := top.NewSubscriber(t)
	publish(t, ctx, top.Publisher, messages("pubsub", 1000, 1, "k1"), 1)
	ch2 := subscribe(t, ctx, sub2)
	if d := receive(t, s, ch2, "the marker"); seqOf(t, d) != 1000 {
		t.Fatalf("after acking everything, a new subscriber got message %d, want only the marker 1000", seqOf(t, d))
	}
}

func testOrder(t *testing.T, s Setup) {
	ctx := context60(t, s)
	top := s.New(t)
	msgs := messages("order", 0, 200, "one-key")
	publish(t, ctx, top.Publisher, msgs, 20)
	ch := subscribe(t, ctx, top.NewSubscriber(t))
	for i := range msgs {
		d := receive(t, s, ch, fmt.Sprintf("message %d", i))
		if n := seqOf(t, d); n != i {
			t.Fatalf("message %d came as number %d: one subscriber must get one key's messages in order", n, i)
		}
		ack(t, ctx, d)
	}
}

func testNack(t *testing.T, s Setup) {
	ctx := context60(t, s)
	top := s.New(t)
	msgs := messages("nack", 0, 5, "k")
	publish(t, ctx, top.Publisher, msgs, 5)
	ch := subscribe(t, ctx, top.NewSubscriber(t))
	first := receive(t, s, ch, "the first message")
	if err := first.Nack(ctx); err != nil {
		t.Fatalf("nack: %v", err)
	}
	acked := map[int]bool{}
	again := false
	for len(acked) < len(msgs) {
		d := receive(t, s, ch, fmt.Sprintf("after the nack, %d of %d acked", len(acked), len(msgs)))
		if seqOf(t, d) == seqOf(t, first) {
			if d.ID != first.ID {
				t.Fatalf("the nacked message came again with ID %q, it had %q: a redelivery must keep its ID", d.ID, first.ID)
			}
			again = true
		}
		acked[seqOf(t, d)] = true
		ack(t, ctx, d)
	}
	if !again {
		t.Fatal("the nacked message never came again")
	}
}

func testNoAck(t *testing.T, s Setup) {
	ctx := context60(t, s)
	top := s.New(t)
	msgs := messages("noack", 0, 3, "k")
	publish(t, ctx, top.Publisher, msgs, 3)
	sub1 := top.NewSubscriber(t)
	ch1 := subscribe(t, ctx, sub1)
	held := receive(t, s, ch1, "the first message")
	if err := sub1.Close(); err != nil {
		t.Fatalf("close the first subscriber: %v", err)
	}
	ch2 := subscribe(t, ctx, top.NewSubscriber(t))
	got := map[int]bool{}
	for len(got) < len(msgs) {
		d := receive(t, s, ch2, fmt.Sprintf("message %d of %d on the second subscriber", len(got)+1, len(msgs)))
		if seqOf(t, d) == seqOf(t, held) && d.ID != held.ID {
			t.Fatalf("the unacked message came again with ID %q, it had %q", d.ID, held.ID)
		}
		got[seqOf(t, d)] = true
		ack(t, ctx, d)
	}
	if !got[seqOf(t, held)] {
		t.Fatal("the message the first subscriber held unacked never came to the second")
	}
}

func testCloseWhileFlowing(t *testing.T, s Setup) {
	ctx := context60(t, s)
	top := s.New(t)
	msgs := messages("close", 0, 300, "k")
	publish(t, ctx, top.Publisher, msgs, 50)
	acked := map[int]bool{}
	sub1 := top.NewSubscriber(t)
	ch1 := subscribe(t, ctx, sub1)
	for len(acked) < 100 {
		d := receive(t, s, ch1, "the first 100 messages")
		acked[seqOf(t, d)] = true
		ack(t, ctx, d)
	}
	// Close while the subscriber still has messages on the way: they must
	// come again, not be lost.
	closed := make(chan error, 1)
	go func() { closed <- sub1.Close() }()
	for d := range ch1 {
		_ = d // dropped unacked: the broker must deliver them again
	}
	if err := <-closed; err != nil {
		t.Fatalf("close while messages flow: %v", err)
	}
	ch2 := subscribe(t, ctx, top.NewSubscriber(t))
	for len(acked) < len(msgs) {
		d := receive(t, s, ch2, fmt.Sprintf("the rest after a close (%d of %d acked)", len(acked), len(msgs)))
		acked[seqOf(t, d)] = true
		ack(t, ctx, d)
	}
}

func testConcurrentSubscribers(t *testing.T, s Setup) {
	ctx := context60(t, s)
	top := s.New(t)
	const n, subs = 300, 3
	var (
		mu    sync.Mutex
		acked = map[int]bool{}
		all   = make(chan struct{})
	)
	var wg sync.WaitGroup
	for range subs {
		ch := subscribe(t, ctx, top.NewSubscriber(t))
		wg.Go(func() {
			for {
				select {
				case d, ok := <-ch:
					if !ok {
						return
					}
					if err := d.Ack(ctx); err != nil {
						continue // it comes again
					}
					mu.Lock()
					acked[seqOfOr(d)] = true
					if len(acked) == n {
						close(all)
					}
					mu.Unlock()
				case <-all:
					return
				case <-ctx.Done():
					return
				}
			}
		})
	}
	var pubs sync.WaitGroup
	errs := make(chan error, subs)
	for p := range subs {
		pubs.Go(func() {
			part := messages("concurrent", p*(n/subs), n/subs, "k"+strconv.Itoa(p))
			for i := 0; i < len(part); i += 10 {
				if err := top.Publisher.Publish(ctx, part[i:i+10]...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	pubs.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent publish: %v", err)
	}
	select {
	case <-all:
	case <-time.After(s.Timeout):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d subscribers acked %d distinct messages of %d within %v", subs, len(acked), n, s.Timeout)
	}
	wg.Wait()
}

func seqOfOr(d *bridges.Delivery) int {
	n, err := strconv.Atoi(d.Header[hdrSeq])
	if err != nil {
		return -1
	}
	return n
}

func testPublisherClose(t *testing.T, s Setup) {
	ctx := context60(t, s)
	top := s.New(t)
	if err := top.Publisher.Close(); err != nil {
		t.Fatalf("close the publisher: %v", err)
	}
	if err := top.Publisher.Publish(ctx, messages("closed", 0, 1, "k")...); err == nil {
		t.Fatal("a closed publisher published without an error")
	}
}

func testReconnect(t *testing.T, s Setup) {
	if s.Restart == nil {
		t.Skip("bridgetest: this adapter's test cannot restart its broker")
	}
	ctx := context60(t, s)
	top := s.New(t)
	const n = 100
	msgs := messages("reconnect", 0, n, "k")
	publish(t, ctx, top.Publisher, msgs[:n/2], 10)
	ch := subscribe(t, ctx, top.NewSubscriber(t))
	acked := map[int]bool{}
	for len(acked) < n/4 {
		d := receive(t, s, ch, "messages before the restart")
		acked[seqOf(t, d)] = true
		ack(t, ctx, d)
	}
	s.Restart(t)
	// The publisher reconnects: a publish may fail while it does, but must
	// succeed again before the deadline.
	deadline := time.Now().Add(s.Timeout)
	for i := n / 2; i < n; i += 10 {
		for {
			err := top.Publisher.Publish(ctx, msgs[i:i+10]...)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish after the restart still fails after %v: %v", s.Timeout, err)
			}
			time.Sleep(100 * time.Millisecond) // a retry interval, not a wait for an event
		}
	}
	// The same subscriber reconnects: every message comes, some maybe twice.
	for len(acked) < n {
		d := receive(t, s, ch, fmt.Sprintf("messages after the restart (%d of %d acked)", len(acked), n))
		if err := d.Ack(ctx); err == nil {
			acked[seqOf(t, d)] = true
		}
	}
}
