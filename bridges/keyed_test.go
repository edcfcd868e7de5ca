package bridges

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

type fakeMsg struct {
	jetstream.Msg
	subject string
	n       int
}

func (m fakeMsg) Subject() string { return m.subject }

func nums(msgs []jetstream.Msg) []int {
	out := make([]int, len(msgs))
	for i, m := range msgs {
		out[i] = m.(fakeMsg).n
	}
	return out
}

// A key another worker holds is skipped, in place, until released; a
// free worker takes the other keys, so an uneven spread of keys does not
// leave workers idle.
func TestKeyedQueue(t *testing.T) {
	q := newKeyedQueue(1)
	for i, k := range []string{"a", "a", "b", "a", "c", "b"} {
		q.push(k, fakeMsg{subject: k, n: i})
	}
	w0, _ := q.take(0, 2)
	if got := nums(w0); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("worker 0 took %v, want [0 1] (the first two, both of a)", got)
	}
	w1, _ := q.take(1, 10)
	if got := nums(w1); len(got) != 3 || got[0] != 2 || got[1] != 4 || got[2] != 5 {
		t.Fatalf("worker 1 took %v, want [2 4 5]: b and c, skipping a, which worker 0 holds", got)
	}
	q.release([]string{"a", "a"})
	q.close()
	w1, ok := q.take(1, 10)
	if got := nums(w1); !ok || len(got) != 1 || got[0] != 3 {
		t.Fatalf("after worker 0 released a, worker 1 took %v %v, want [3]", got, ok)
	}
	if _, ok := q.take(0, 10); ok {
		t.Fatal("take on a closed, empty queue returned true")
	}
}

// With few keys, interleaved, a worker claims only its share of them, so
// the others have keys to take.
func TestKeyedQueueShare(t *testing.T) {
	q := newKeyedQueue(2)
	for i := range 12 {
		k := string(rune('a' + i%4))
		q.push(k, fakeMsg{subject: k, n: i})
	}
	w0, _ := q.take(0, 100)
	w1, _ := q.take(1, 100)
	if len(w0) != 6 || len(w1) != 6 {
		t.Fatalf("worker 0 took %v, worker 1 %v: want two keys, six messages each", nums(w0), nums(w1))
	}
	for _, n := range nums(w0) {
		if n%4 > 1 {
			t.Fatalf("worker 0 took %v: want keys a and b (the first two free ones)", nums(w0))
		}
	}
}
