package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// SubscriberOptions configure a Subscriber. Queue is required.
type SubscriberOptions struct {
	URL   string // default DefaultURL; may hold credentials, never shown
	Queue string
	// Prefetch bounds the unacked messages the broker sends ahead
	// (basic.qos). Default 10.
	Prefetch int
	// ConsumerTag names the consumer in the management UI. Default: one
	// amqp091 generates.
	ConsumerTag string
	Topology    *Topology // declared on every connect when set
	Backoff     bridges.Backoff
	Logger      *slog.Logger
}

// Subscriber consumes one queue with manual acks.
type Subscriber struct {
	opts SubscriberOptions
	conn *conn
	log  *slog.Logger

	mu         sync.Mutex
	ch         *amqp.Channel
	subscribed bool
	done       chan struct{}
	once       sync.Once
	wg         sync.WaitGroup
}

// NewSubscriber returns a subscriber; it connects when Subscribe is called.
func NewSubscriber(opts SubscriberOptions) (*Subscriber, error) {
	if opts.Queue == "" {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "rabbitmq subscriber: queue is empty: name the queue to consume")
	}
	if opts.Prefetch < 0 {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "rabbitmq subscriber: prefetch %d: use 1 or more, or 0 for the default 10", opts.Prefetch)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	var setup func(*amqp.Channel) error
	if opts.Topology != nil {
		setup = opts.Topology.declare
	}
	return &Subscriber{opts: opts, conn: newConn(opts.URL, opts.Backoff, opts.Logger, setup),
		log: opts.Logger.With("queue", opts.Queue), done: make(chan struct{})}, nil
}

// Connected reports whether the subscriber is consuming.
func (s *Subscriber) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch != nil && !s.ch.IsClosed()
}

// Subscribe consumes until ctx ends or Close, reconnecting as needed.
func (s *Subscriber) Subscribe(ctx context.Context) (<-chan *bridges.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subscribed {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "%s: Subscribe called twice on one subscriber: make another", s.conn)
	}
	s.subscribed = true
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *bridges.Delivery)
	s.wg.Go(func() {
		defer close(out)
		defer cancel()
		for attempt := 0; ; attempt++ {
			deliveries, ch, err := s.consume(ctx)
			if err == nil {
				attempt = -1
				s.forward(ctx, ch, deliveries, out)
				s.mu.Lock()
				s.ch = nil
				s.mu.Unlock()
				_ = ch.Close()
			} else if ctx.Err() == nil {
				s.log.Warn("rabbitmq: consume failed; retrying with backoff", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-s.done:
				return
			default:
			}
			if attempt >= 0 && !s.opts.Backoff.Sleep(ctx, attempt) {
				return
			}
		}
	})
	s.wg.Go(func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	})
	return out, nil
}

func (s *Subscriber) consume(ctx context.Context) (<-chan amqp.Delivery, *amqp.Channel, error) {
	c, err := s.conn.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	ch, err := c.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: open a channel: %w", s.conn, err)
	}
	if err := ch.Qos(s.opts.Prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("%s: set prefetch %d: %w", s.conn, s.opts.Prefetch, err)
	}
	deliveries, err := ch.Consume(s.opts.Queue, s.opts.ConsumerTag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, nil, fmt.Errorf("%s: consume queue %q: %w: check that it exists, or set Topology to declare it", s.conn, s.opts.Queue, err)
	}
	s.mu.Lock()
	s.ch = ch
	s.mu.Unlock()
	return deliveries, ch, nil
}

// forward hands deliveries out until the channel closes or ctx ends.
func (s *Subscriber) forward(ctx context.Context, ch *amqp.Channel, deliveries <-chan amqp.Delivery, out chan<- *bridges.Delivery) {
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-deliveries:
			if !ok {
				s.log.Warn("rabbitmq: the channel closed; reconnecting")
				return
			}
			select {
			case out <- s.delivery(d):
			case <-ctx.Done():
				return // unacked: requeued when the channel closes
			}
		}
	}
}

func (s *Subscriber) delivery(d amqp.Delivery) *bridges.Delivery {
	m := bridges.Message{ID: d.MessageId, Subject: d.RoutingKey, Data: d.Body, Header: make(bridges.Header, len(d.Headers)+1)}
	for k, v := range d.Headers {
		m.Header[k] = headerValue(v)
	}
	if d.ContentType != "" {
		m.Header[bridges.HeaderContentType] = d.ContentType
	}
	settle := func(err error) error {
		if err != nil {
			return platform.Errorf(platform.CodeBridgeDelivery, "%s: settle message %q: %w (it will be delivered again)", s.conn, d.MessageId, err)
		}
		return nil
	}
	return bridges.NewDelivery(m,
		func(context.Context) error { return settle(d.Ack(false)) },
		func(context.Context) error { return settle(d.Nack(false, true)) })
}

// headerValue renders an AMQP table value as a header string.
func headerValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	}
	return fmt.Sprint(v)
}

// Close stops consuming and closes the connection; RabbitMQ requeues
// whatever was delivered and not acked.
func (s *Subscriber) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.conn.close()
		s.wg.Wait()
	})
	if errors.Is(err, amqp.ErrClosed) {
		err = nil
	}
	return err
}
