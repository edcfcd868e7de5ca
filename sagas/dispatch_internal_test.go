package sagas

import (
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// subjectMsg is a work message that only has a subject.
type subjectMsg struct {
	jetstream.Msg
	subject string
}

func (m subjectMsg) Subject() string { return m.subject }

// TestDispatchOneInstanceAtATime: a busy instance's next message waits,
// in order, while a free worker takes another instance's; close lets the
// workers finish what is queued.
func TestDispatchOneInstanceAtATime(t *testing.T) {
	d := newDispatch(4)
	d.push(subjectMsg{subject: "w.run.t.A"})
	d.push(subjectMsg{subject: "w.run.t.A"})
	d.push(subjectMsg{subject: "w.run.t.B"})

	_, first, _ := d.take()
	_, second, _ := d.take()
	if first != "A" || second != "B" {
		t.Fatalf("took %s then %s, want A then B (A's second message waits while A is busy)", first, second)
	}
	got := make(chan string)
	go func() { _, id, _ := d.take(); got <- id }()
	select {
	case id := <-got:
		t.Fatalf("took %s while A and B were both busy", id)
	case <-time.After(50 * time.Millisecond): // a take that should stay blocked
	}
	d.release("A")
	select {
	case id := <-got:
		if id != "A" {
			t.Fatalf("after A's release took %s, want A's second message", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("A's second message was not taken within 10s of A's release")
	}
	d.release("A")
	d.release("B")
	d.close()
	if _, _, ok := d.take(); ok {
		t.Fatal("take on a closed, empty dispatch returned a message")
	}
}

// TestDispatchPushWaitsWhenFull: push holds the consumer back at the limit
// and goes on once a worker takes a message.
func TestDispatchPushWaitsWhenFull(t *testing.T) {
	d := newDispatch(2)
	d.push(subjectMsg{subject: "w.run.t.A"})
	d.push(subjectMsg{subject: "w.run.t.B"})
	var wg sync.WaitGroup
	pushed := make(chan struct{})
	wg.Go(func() { d.push(subjectMsg{subject: "w.run.t.C"}); close(pushed) })
	select {
	case <-pushed:
		t.Fatal("a push beyond the limit did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	d.take()
	select {
	case <-pushed:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting push did not go on within 10s of a take")
	}
	wg.Wait()
}
