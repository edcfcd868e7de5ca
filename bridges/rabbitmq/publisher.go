package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// PublisherOptions configure a Publisher. The zero value publishes to the
// default exchange of the broker at DefaultURL, routing by subject.
type PublisherOptions struct {
	URL string // default DefaultURL; may hold credentials, never shown
	// Exchange receives the messages; "" is the default exchange, which
	// routes to the queue named by the routing key.
	Exchange string
	// RoutingKey, set, is every message's routing key. Empty: the
	// message's JetStream subject (events.order.o-1), which topic
	// exchanges bind with patterns such as "events.order.*".
	RoutingKey string
	// AllowUnroutable publishes without the mandatory flag: RabbitMQ then
	// drops a message no queue is bound for, and Publish counts it as
	// sent. By default such a message is refused and dead-lettered.
	AllowUnroutable bool
	// Transient publishes with delivery mode 1: faster, lost when the
	// broker restarts. By default messages are persistent.
	Transient bool
	// MaxMessageSize refuses larger bodies before sending them (RabbitMQ
	// closes the channel on them). Default 128 MiB, RabbitMQ's default
	// max_message_size.
	MaxMessageSize int
	Topology       *Topology // declared on every connect when set
	Backoff        bridges.Backoff
	Logger         *slog.Logger
}

// Publisher publishes with confirms. It is safe for concurrent use: each
// concurrent Publish call takes a channel of its own from a pool.
type Publisher struct {
	opts PublisherOptions
	conn *conn

	mu     sync.Mutex
	idle   []*pubChannel
	closed bool
}

// pubChannel is a confirm-mode channel and the reader of its returns.
type pubChannel struct {
	ch      *amqp.Channel
	conn    *amqp.Connection
	returns chan amqp.Return
	barrier chan chan map[string]amqp.Return
	done    chan struct{}
}

// NewPublisher returns a publisher; it connects on first use.
func NewPublisher(opts PublisherOptions) *Publisher {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxMessageSize <= 0 {
		opts.MaxMessageSize = 128 << 20
	}
	var setup func(*amqp.Channel) error
	if opts.Topology != nil {
		setup = opts.Topology.declare
	}
	return &Publisher{opts: opts, conn: newConn(opts.URL, opts.Backoff, opts.Logger, setup)}
}

// CloudEventsPrefix is the AMQP binding's spelling of CloudEvents
// application properties.
func (p *Publisher) CloudEventsPrefix() string { return "cloudEvents_" }

// Connected reports whether the connection is open; before the first
// publish, whether no connect has failed yet.
func (p *Publisher) Connected() bool { return p.conn.up() }

// Publish publishes the messages in order on one channel and waits for
// every confirm. A message returned as unroutable, nacked by the broker
// or too large fails alone (in a *bridges.BatchError); a lost channel or
// connection fails the messages not confirmed yet. Each message goes out
// with its ID as the message-id property (a fresh one when it has none);
// returns are matched by it, so IDs must differ within one call.
func (p *Publisher) Publish(ctx context.Context, msgs ...*bridges.Message) error {
	pc, err := p.channel(ctx)
	if err != nil {
		return err
	}
	errs := make([]error, len(msgs))
	confs := make([]*amqp.DeferredConfirmation, len(msgs))
	ids := make([]string, len(msgs)) // the message-id of each: returns are matched by it
	broken := false
	for i, m := range msgs {
		if ids[i] = m.ID; ids[i] == "" {
			ids[i] = nuid.Next()
		}
		if len(m.Data) > p.opts.MaxMessageSize {
			errs[i] = bridges.Refused(platform.Errorf(platform.CodeBridgeDelivery, "rabbitmq: message %q is %d bytes, over the max message size %d: raise max_message_size on the broker and MaxMessageSize here, or send smaller messages", m.ID, len(m.Data), p.opts.MaxMessageSize))
			continue
		}
		key := p.opts.RoutingKey
		if key == "" {
			key = m.Subject
		}
		confs[i], err = pc.ch.PublishWithDeferredConfirmWithContext(ctx, p.opts.Exchange, key, !p.opts.AllowUnroutable, false, p.publishing(m, ids[i]))
		if err != nil {
			broken = true
			for j := i; j < len(msgs); j++ {
				errs[j] = p.fail("publish", err)
			}
			break
		}
	}
	for i, c := range confs {
		if c == nil {
			continue
		}
		acked, err := c.WaitContext(ctx)
		switch {
		case err != nil:
			broken = true // the confirms of this channel can no longer be matched
			errs[i] = p.fail("wait for the confirm", err)
		case !acked:
			broken = broken || pc.ch.IsClosed()
			errs[i] = p.fail("confirm", errors.New("the broker nacked the message or the channel closed"))
		}
	}
	// Returns arrive before the confirm of their message; the barrier makes
	// sure every return read so far is counted.
	if returned, ok := pc.returned(); ok {
		for i, m := range msgs {
			if r, bad := returned[ids[i]]; bad && errs[i] == nil {
				errs[i] = bridges.Refused(platform.Errorf(platform.CodeBridgeDelivery,
					"rabbitmq: message %q is unroutable: exchange %q returned it with routing key %q (%d %s): bind a queue for that key, or set AllowUnroutable",
					m.ID, r.Exchange, r.RoutingKey, r.ReplyCode, r.ReplyText))
			}
		}
	} else {
		broken = true
		for i := range errs {
			if errs[i] == nil && !p.opts.AllowUnroutable {
				errs[i] = p.fail("read returns", amqp.ErrClosed) // cannot tell whether it was routed
			}
		}
	}
	p.release(pc, broken)
	for _, e := range errs {
		if e != nil {
			return &bridges.BatchError{Errs: errs}
		}
	}
	return nil
}

func (p *Publisher) fail(what string, err error) error {
	return platform.Errorf(platform.CodeBridgeDelivery, "%s: %s: %w", p.conn, what, err)
}

func (p *Publisher) publishing(m *bridges.Message, id string) amqp.Publishing {
	pub := amqp.Publishing{MessageId: id, Body: m.Data, DeliveryMode: amqp.Persistent}
	if p.opts.Transient {
		pub.DeliveryMode = amqp.Transient
	}
	if len(m.Header) > 0 {
		pub.Headers = make(amqp.Table, len(m.Header))
		for k, v := range m.Header {
			if k == bridges.HeaderContentType {
				pub.ContentType = v
				continue
			}
			pub.Headers[k] = v
		}
	}
	return pub
}

// channel takes an idle channel of the current connection or opens one.
func (p *Publisher) channel(ctx context.Context) (*pubChannel, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, platform.Errorf(platform.CodeBridgeDelivery, "%s: the publisher is closed", p.conn)
	}
	for len(p.idle) > 0 {
		pc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if !pc.ch.IsClosed() {
			p.mu.Unlock()
			return pc, nil
		}
	}
	p.mu.Unlock()
	c, err := p.conn.get(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := c.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		if ch != nil {
			_ = ch.Close()
		}
		return nil, p.fail("open a channel", err)
	}
	pc := &pubChannel{ch: ch, conn: c, returns: make(chan amqp.Return), barrier: make(chan chan map[string]amqp.Return), done: make(chan struct{})}
	ch.NotifyReturn(pc.returns)
	go pc.readReturns()
	return pc, nil
}

// readReturns records returned messages by ID. The returns channel is
// unbuffered: amqp091 hands this goroutine a return before it processes
// the confirm that follows it, so a barrier request sent after the
// confirm is answered after the return was recorded.
func (pc *pubChannel) readReturns() {
	defer close(pc.done)
	seen := map[string]amqp.Return{}
	for {
		select {
		case r, ok := <-pc.returns:
			if !ok {
				return
			}
			seen[r.MessageId] = r
		case q := <-pc.barrier:
			q <- seen
			seen = map[string]amqp.Return{}
		}
	}
}

func (pc *pubChannel) returned() (map[string]amqp.Return, bool) {
	q := make(chan map[string]amqp.Return, 1)
	select {
	case pc.barrier <- q:
		return <-q, true
	case <-pc.done:
		return nil, false
	}
}

func (p *Publisher) release(pc *pubChannel, broken bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if broken || p.closed || pc.ch.IsClosed() {
		_ = pc.ch.Close()
		return
	}
	p.idle = append(p.idle, pc)
}

// Close closes the channels and the connection; later publishes fail.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, pc := range idle {
		_ = pc.ch.Close()
	}
	if err := p.conn.close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("%s: close: %w", p.conn, err)
	}
	return nil
}
