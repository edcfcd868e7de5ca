package memory

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// ErrDown is what publishes, acks and nacks fail with while the broker is
// stopped.
var ErrDown = errors.New("memory broker: down")

// errClosed is what a closed publisher or a stale delivery returns.
var errClosed = errors.New("memory broker: closed")

// Broker holds named queues. The zero value is not usable: use NewBroker.
type Broker struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queues map[string]*queue
	down   bool
	refuse func(topic string, m *bridges.Message) error
}

type entry struct {
	seq uint64
	msg bridges.Message
}

type queue struct {
	ready    []entry
	next     uint64
	inflight map[uint64]*holder // by seq
}

// holder is who holds an unacked message.
type holder struct {
	e   entry
	sub *Subscriber
}

// NewBroker returns an empty broker, up.
func NewBroker() *Broker {
	b := &Broker{queues: map[string]*queue{}}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// Default is the broker the registered "memory" driver uses.
var Default = NewBroker()

func init() {
	bridges.Register("memory", bridges.Driver{
		NewPublisher: func(_ context.Context, s bridges.Settings) (bridges.Publisher, error) {
			if err := s.Check("memory", "topic"); err != nil {
				return nil, err
			}
			return Default.Publisher(s["topic"]), nil
		},
		NewSubscriber: func(_ context.Context, s bridges.Settings) (bridges.Subscriber, error) {
			if err := s.Check("memory", "topic", "prefetch"); err != nil {
				return nil, err
			}
			n := 0
			if p := s["prefetch"]; p != "" {
				var err error
				if n, err = strconv.Atoi(p); err != nil || n < 1 {
					return nil, platform.Errorf(platform.CodeInvalidArgument, "memory settings: prefetch %q: use a whole number of 1 or more", p)
				}
			}
			return Default.Subscriber(s["topic"], n), nil
		},
	})
}

func (b *Broker) queue(topic string) *queue {
	q := b.queues[topic]
	if q == nil {
		q = &queue{inflight: map[uint64]*holder{}}
		b.queues[topic] = q
	}
	return q
}

// Refuse makes the broker refuse for good the messages f returns an error
// for (nil f: accept all), as a broker refuses one too large.
func (b *Broker) Refuse(f func(topic string, m *bridges.Message) error) {
	b.mu.Lock()
	b.refuse = f
	b.mu.Unlock()
}

// Stop starts an outage: publishes fail, subscribers get nothing, and
// every unacked message goes back to its queue, as when a broker's
// connections drop.
func (b *Broker) Stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = true
	for _, q := range b.queues {
		q.requeue(func(*holder) bool { return true })
	}
	b.cond.Broadcast()
}

// Start ends an outage.
func (b *Broker) Start() {
	b.mu.Lock()
	b.down = false
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Len is how many messages the topic holds, delivered or not, until acked.
func (b *Broker) Len(topic string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(topic)
	return len(q.ready) + len(q.inflight)
}

// requeue puts back the in-flight messages match picks, in their order,
// ahead of the others.
func (q *queue) requeue(match func(*holder) bool) {
	var back []entry
	for seq, h := range q.inflight {
		if match(h) {
			back = append(back, h.e)
			delete(q.inflight, seq)
			h.sub.held--
		}
	}
	if len(back) == 0 {
		return
	}
	back = append(back, q.ready...)
	slices.SortFunc(back, func(a, b entry) int { return int(a.seq) - int(b.seq) })
	q.ready = back
}

// Publisher publishes to one topic.
type Publisher struct {
	b      *Broker
	topic  string
	closed bool
}

// Publisher returns a publisher to topic.
func (b *Broker) Publisher(topic string) *Publisher { return &Publisher{b: b, topic: topic} }

// Publish stores the messages, or fails while the broker is down. A
// message the Refuse function refuses fails with bridges.Refused; the
// others are stored.
func (p *Publisher) Publish(ctx context.Context, msgs ...*bridges.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case p.closed:
		return errClosed
	case b.down:
		return ErrDown
	}
	q := b.queue(p.topic)
	var errs []error
	for i, m := range msgs {
		if b.refuse != nil {
			if err := b.refuse(p.topic, m); err != nil {
				if errs == nil {
					errs = make([]error, len(msgs))
				}
				errs[i] = bridges.Refused(err)
				continue
			}
		}
		c := *m
		c.Header = maps.Clone(m.Header)
		c.Data = slices.Clone(m.Data)
		q.next++
		q.ready = append(q.ready, entry{seq: q.next, msg: c})
	}
	b.cond.Broadcast()
	if errs != nil {
		return &bridges.BatchError{Errs: errs}
	}
	return nil
}

// Close makes later publishes fail.
func (p *Publisher) Close() error {
	p.b.mu.Lock()
	p.closed = true
	p.b.mu.Unlock()
	return nil
}

// Connected reports whether the broker is up.
func (p *Publisher) Connected() bool {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	return !p.b.down
}

// Subscriber competes with the topic's other subscribers for its messages.
type Subscriber struct {
	b        *Broker
	topic    string
	prefetch int
	closed   bool
	held     int
	done     chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

// Subscriber returns a subscriber to topic that holds at most prefetch
// unacked messages (0: 10).
func (b *Broker) Subscriber(topic string, prefetch int) *Subscriber {
	if prefetch <= 0 {
		prefetch = 10
	}
	return &Subscriber{b: b, topic: topic, prefetch: prefetch, done: make(chan struct{})}
}

// Connected reports whether the broker is up.
func (s *Subscriber) Connected() bool {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return !s.b.down
}

// Subscribe delivers the topic's messages until ctx ends or Close.
func (s *Subscriber) Subscribe(ctx context.Context) (<-chan *bridges.Delivery, error) {
	out := make(chan *bridges.Delivery)
	s.wg.Go(func() {
		select {
		case <-ctx.Done():
			s.shut()
		case <-s.done:
		}
	})
	s.wg.Go(func() {
		defer close(out)
		for {
			d, ok := s.next()
			if !ok {
				return
			}
			select {
			case out <- d:
			case <-s.done:
				return // Close puts it back
			}
		}
	})
	return out, nil
}

// next waits for a message this subscriber may take.
func (s *Subscriber) next() (*bridges.Delivery, bool) {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(s.topic)
	for !s.closed && (b.down || len(q.ready) == 0 || s.held >= s.prefetch) {
		b.cond.Wait()
	}
	if s.closed {
		return nil, false
	}
	e := q.ready[0]
	q.ready = q.ready[1:]
	h := &holder{e: e, sub: s}
	q.inflight[e.seq] = h
	s.held++
	settle := func(requeue bool) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if q.inflight[e.seq] != h {
			if b.down {
				return ErrDown
			}
			return errClosed // the outage or Close put it back already
		}
		delete(q.inflight, e.seq)
		s.held--
		if requeue {
			q.ready = append([]entry{e}, q.ready...)
		}
		b.cond.Broadcast()
		return nil
	}
	m := e.msg
	m.Header = maps.Clone(e.msg.Header)
	return bridges.NewDelivery(m,
		func(context.Context) error { return settle(false) },
		func(context.Context) error { return settle(true) }), true
}

// Close stops delivering and puts this subscriber's unacked messages back
// in the queue.
func (s *Subscriber) Close() error {
	s.shut()
	s.wg.Wait()
	return nil
}

func (s *Subscriber) shut() {
	s.once.Do(func() {
		b := s.b
		b.mu.Lock()
		s.closed = true
		close(s.done)
		b.queue(s.topic).requeue(func(h *holder) bool { return h.sub == s })
		b.cond.Broadcast()
		b.mu.Unlock()
	})
}
