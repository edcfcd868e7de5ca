package sagas

import (
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// dispatch hands work messages to whichever worker is free, one instance
// at a time: a message for an instance already being advanced in this
// process waits, in order, while the others overtake it. Spreading
// instances over the workers by a hash of their ID instead left workers
// idle while others had a queue, and one full queue stalled the rest.
type dispatch struct {
	mu      sync.Mutex
	cond    sync.Cond
	limit   int             // pending messages at most: backpressure on the consumer
	pending []jetstream.Msg // in arrival order
	busy    map[string]bool // instance IDs a worker holds
	closed  bool
}

func newDispatch(limit int) *dispatch {
	d := &dispatch{limit: limit, busy: map[string]bool{}}
	d.cond.L = &d.mu
	return d
}

// instanceOf is the instance ID a work message names: its last token.
func instanceOf(msg jetstream.Msg) string {
	s := msg.Subject()
	return s[strings.LastIndexByte(s, '.')+1:]
}

// push queues msg, waiting while the queue is full.
func (d *dispatch) push(msg jetstream.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.pending) >= d.limit && !d.closed {
		d.cond.Wait()
	}
	d.pending = append(d.pending, msg)
	d.cond.Broadcast()
}

// take returns the oldest message whose instance no worker holds, and
// holds it; false once the queue is closed and empty.
func (d *dispatch) take() (jetstream.Msg, string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		for i, msg := range d.pending {
			id := instanceOf(msg)
			if d.busy[id] {
				continue
			}
			d.busy[id] = true
			d.pending = append(d.pending[:i], d.pending[i+1:]...)
			d.cond.Broadcast() // room for push
			return msg, id, true
		}
		if d.closed && len(d.pending) == 0 {
			return nil, "", false
		}
		d.cond.Wait()
	}
}

// release lets the instance's next message be taken.
func (d *dispatch) release(id string) {
	d.mu.Lock()
	delete(d.busy, id)
	d.cond.Broadcast()
	d.mu.Unlock()
}

// close lets the workers finish what is queued and return.
func (d *dispatch) close() {
	d.mu.Lock()
	d.closed = true
	d.cond.Broadcast()
	d.mu.Unlock()
}
