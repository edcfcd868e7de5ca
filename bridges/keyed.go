package bridges

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// keyedQueue hands an outbound bridge's messages to its workers in
// batches, so that one key's messages are with one worker at a time, in
// order, while any free worker takes any other key. Hashing keys to fixed
// workers would keep the order too, but leave workers idle whenever the
// keys are not spread evenly, which they rarely are.
//
// It holds what JetStream has delivered and nobody took yet: at most
// MaxAckPending messages, since the server sends no more unacknowledged
// ones, so push never blocks and nats.go never waits on a busy worker.
type keyedQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pending []keyed
	owner   map[string]int // key → the worker holding messages of it
	held    map[string]int // key → how many of its messages that worker holds
	workers int
	closed  bool
}

type keyed struct {
	key string
	msg jetstream.Msg
}

func newKeyedQueue(workers int) *keyedQueue {
	q := &keyedQueue{owner: map[string]int{}, held: map[string]int{}, workers: max(workers, 1)}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *keyedQueue) push(key string, msg jetstream.Msg) {
	q.mu.Lock()
	q.pending = append(q.pending, keyed{key, msg})
	q.mu.Unlock()
	q.cond.Signal()
}

// take waits for messages worker may take and returns up to n of them,
// in arrival order: those whose key no other worker holds. It claims at
// most its share of the keys waiting or held, or with few keys and interleaved
// messages the first worker would take them all and leave the others
// idle. It returns false once the queue is closed and nothing is left.
func (q *keyedQueue) take(worker, n int) ([]jetstream.Msg, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	keys := map[string]bool{}
	for {
		clear(keys)
		for _, it := range q.pending {
			keys[it.key] = true
		}
		for k := range q.owner {
			keys[k] = true
		}
		share := max(1, (len(keys)+q.workers-1)/q.workers)
		var out []jetstream.Msg
		kept := q.pending[:0]
		for _, it := range q.pending {
			if len(out) < n {
				w, busy := q.owner[it.key]
				if !busy && share > 0 {
					share--
					q.owner[it.key], w, busy = worker, worker, true
				}
				if busy && w == worker {
					q.held[it.key]++
					out = append(out, it.msg)
					continue
				}
			}
			kept = append(kept, it)
		}
		clear(q.pending[len(kept):])
		q.pending = kept
		if len(out) > 0 {
			if len(q.pending) > 0 {
				q.cond.Signal() // what this worker skipped may suit another
			}
			return out, true
		}
		if q.closed && len(q.pending) == 0 {
			return nil, false
		}
		q.cond.Wait()
	}
}

// release gives back the keys of messages a worker took and settled.
func (q *keyedQueue) release(keys []string) {
	q.mu.Lock()
	for _, k := range keys {
		if q.held[k]--; q.held[k] <= 0 {
			delete(q.held, k)
			delete(q.owner, k)
		}
	}
	q.mu.Unlock()
	q.cond.Broadcast()
}

// len counts the messages waiting and held by workers.
func (q *keyedQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.pending)
	for _, h := range q.held {
		n += h
	}
	return n
}

// close makes take return false once the queue is empty.
func (q *keyedQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// inProgress tells JetStream that every message waiting here is still
// being worked on, so that none is delivered again while the broker is
// down.
func (q *keyedQueue) inProgress() {
	q.mu.Lock()
	msgs := make([]jetstream.Msg, len(q.pending))
	for i, it := range q.pending {
		msgs[i] = it.msg
	}
	q.mu.Unlock()
	for _, m := range msgs {
		_ = m.InProgress()
	}
}

// drop forgets what is waiting (JetStream delivers it again after
// AckWait) and closes the queue: for a Stop that gives up.
func (q *keyedQueue) drop() {
	q.mu.Lock()
	q.pending, q.closed = nil, true
	q.mu.Unlock()
	q.cond.Broadcast()
}
