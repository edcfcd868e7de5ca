package durable

import "sync"

// workQueue is a bounded FIFO of deliveries for one or more workers. It is
// not a channel because a worker retrying an event in place must be able
// to tell the server that the events queued behind it are still wanted
// (touch); otherwise they would be redelivered, and handled twice, out of
// order, once the retry is over.
type workQueue struct {
	mu       sync.Mutex
	notEmpty sync.Cond
	notFull  sync.Cond
	ring     []delivery // items[head], items[head+1 mod len] ... n of them
	head, n  int
	closed   bool
}

func newWorkQueue(limit int) *workQueue {
	q := &workQueue{ring: make([]delivery, limit)}
	q.notEmpty.L, q.notFull.L = &q.mu, &q.mu
	return q
}

// push adds a delivery, waiting while the queue is full: that is the
// backpressure that stops the consumer pulling more than workers take.
func (q *workQueue) push(d delivery) {
	q.mu.Lock()
	for q.n == len(q.ring) {
		q.notFull.Wait()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = d
	q.n++
	q.mu.Unlock()
	q.notEmpty.Signal()
}

// pop takes the oldest delivery, waiting for one; false once the queue is
// closed and empty.
func (q *workQueue) pop() (delivery, bool) {
	q.mu.Lock()
	for q.n == 0 && !q.closed {
		q.notEmpty.Wait()
	}
	if q.n == 0 {
		q.mu.Unlock()
		return delivery{}, false
	}
	d := q.ring[q.head]
	q.ring[q.head] = delivery{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.mu.Unlock()
	q.notFull.Signal()
	return d, true
}

// touch tells the server that every queued event is still being worked on.
func (q *workQueue) touch() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range q.n {
		_ = q.ring[(q.head+i)%len(q.ring)].msg.InProgress()
	}
}

func (q *workQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.notEmpty.Broadcast()
}
