package bridges

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// InboundOptions configure a bridge from a broker into JetStream. Name and
// Subject (or SubjectFunc) are required; a stream must capture the
// subjects. The zero value of the rest stores messages as they come with
// one worker and retries a JetStream outage forever with backoff.
//
// The target stream's duplicate window (Duplicates, default 2 minutes)
// is how long a redelivered message is recognised: size it to the longest
// broker outage or consumer restart to ride out without copies.
type InboundOptions struct {
	// Name names the bridge: its Nats-Msg-Id prefix, metrics and
	// dead-letter subject.
	Name string
	// Subject is where messages land.
	Subject string
	// SubjectFunc, if set, picks each message's subject instead (from its
	// Subject, the broker's routing key or topic, or its headers). An
	// empty answer dead-letters the message.
	SubjectFunc func(m *Message) string
	// Events, if set, appends each message to the event store as an
	// event instead (see InboundEvents); Subject and SubjectFunc stay
	// empty.
	Events *InboundEvents
	Format Format
	// Workers publish concurrently; messages are spread over them by Key
	// (by Subject when a message has no key), so messages with one key
	// keep their order. Default 1.
	Workers int
	// BatchSize bounds the messages one worker publishes before it waits
	// for JetStream's acks; the broker's prefetch bounds it too. Default
	// 100. A message whose publish failed is published again before the
	// worker acks anything behind it, but the later messages of its batch
	// may already be stored: order holds except across a failed publish.
	BatchSize int
	// PublishTimeout bounds one JetStream publish. Default 10s.
	PublishTimeout time.Duration
	Backoff        Backoff // between retries while JetStream is unavailable
	DeadLetter     DeadLetterOptions
	Metrics        *Metrics
	Logger         *slog.Logger // default slog.Default()
}

// Inbound is a running bridge from a broker into JetStream.
type Inbound struct {
	opts InboundOptions
	log  *slog.Logger
	js   jetstream.JetStream
	sub  Subscriber
	dec  *decoder
	dl   *deadLetters
	m    *bridgeMetrics

	stopping   chan struct{}
	dispatcher sync.WaitGroup
	workers    sync.WaitGroup
	up         atomic.Bool

	ctx    context.Context // the subscription and publishes; cancelled last by Stop
	cancel context.CancelFunc
	once   sync.Once
}

// NewInbound starts a bridge that stores sub's messages in JetStream.
// Stop it with Stop, which also closes sub.
func NewInbound(ctx context.Context, js jetstream.JetStream, sub Subscriber, opts InboundOptions) (*Inbound, error) {
	opts, err := inboundDefaults(opts)
	if err != nil {
		return nil, err
	}
	in := &Inbound{opts: opts, log: opts.Logger.With("bridge", opts.Name, "direction", "inbound"), js: js, sub: sub,
		dec: &decoder{format: opts.Format, bridge: opts.Name}, stopping: make(chan struct{})}
	if in.dl, err = openDeadLetters(ctx, js, js.Conn(), opts.Name, "inbound", opts.DeadLetter); err != nil {
		return nil, err
	}
	if opts.Subject != "" {
		if _, err := js.StreamNameBySubject(ctx, opts.Subject); err != nil {
			return nil, platform.Errorf(platform.CodeInvalidArgument, "bridge %s: subject %q: no stream captures it (%w): create one, or pick a subject of an existing stream", opts.Name, opts.Subject, err)
		}
	}
	in.ctx, in.cancel = context.WithCancel(context.WithoutCancel(ctx))
	deliveries, err := sub.Subscribe(in.ctx)
	if err != nil {
		in.cancel()
		return nil, platform.Errorf(platform.CodeBridgeDelivery, "bridge %s: subscribe: %w", opts.Name, err)
	}
	in.up.Store(true)
	in.m = opts.Metrics.add(opts.Name, "inbound", in.Connected)
	queues := make([]chan *Delivery, opts.Workers)
	for i := range queues {
		q := make(chan *Delivery, opts.BatchSize)
		queues[i] = q
		in.workers.Go(func() {
			in.work(q)
		})
	}
	in.dispatcher.Go(func() {
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		for {
			select {
			case <-in.stopping:
				return
			case d, ok := <-deliveries:
				if !ok {
					return
				}
				key := d.Key
				if key == "" {
					key = d.Subject
				}
				select {
				case queues[shard(key, len(queues))] <- d:
				case <-in.stopping:
					return // not taken: the broker delivers it again
				}
			}
		}
	})
	in.log.InfoContext(ctx, "bridge started", "subject", opts.Subject, "events", opts.Events != nil, "format", opts.Format.String(), "workers", opts.Workers)
	return in, nil
}

func inboundDefaults(o InboundOptions) (InboundOptions, error) {
	if err := validName(o.Name); err != nil {
		return o, err
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "bridge %s: "+format, append([]any{o.Name}, args...)...))
	}
	if o.Events != nil {
		ev := *o.Events // the caller's stay as they were
		ev.defaults(bad)
		o.Events = &ev
		if o.Subject != "" || o.SubjectFunc != nil {
			bad("subject %q: a bridge that lands messages as events appends them to the event store; leave Subject and SubjectFunc empty", o.Subject)
		}
	} else if o.Subject == "" && o.SubjectFunc == nil {
		bad("subject is empty: name the JetStream subject messages land on, e.g. \"inbound.orders\"")
	}
	if o.Workers < 0 || o.BatchSize < 0 || o.PublishTimeout < 0 {
		bad("workers %d, batch size %d, publish timeout %v: none may be negative (0 takes the default)", o.Workers, o.BatchSize, o.PublishTimeout)
	}
	if o.Format < PassThrough || o.Format > CloudEventsStructured {
		bad("format %v: use PassThrough, CloudEventsBinary or CloudEventsStructured", o.Format)
	}
	o.Workers = orDefault(o.Workers, 1)
	o.BatchSize = orDefault(o.BatchSize, 100)
	o.PublishTimeout = orDefault(o.PublishTimeout, 10*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, errors.Join(errs...)
}

// Connected reports whether the broker answers, for health checks.
func (in *Inbound) Connected() bool {
	if r, ok := in.sub.(ConnectionReporter); ok {
		return r.Connected()
	}
	return in.up.Load()
}

// Stop stops taking messages, stores those in flight, closes the
// subscriber and returns. When ctx ends first, it abandons the rest (the
// broker delivers them again) and returns ctx's error.
func (in *Inbound) Stop(ctx context.Context) error {
	var err error
	in.once.Do(func() {
		close(in.stopping)
		in.dispatcher.Wait()
		done := make(chan struct{})
		go func() { in.workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			in.cancel()
			<-done
		}
		err = errors.Join(err, in.sub.Close())
		in.cancel()
		in.m.remove()
		in.log.Info("bridge stopped")
	})
	return err
}

// work stores a worker's deliveries in batches: every message of a batch
// is published at once, then each is acked to the broker, in order, as
// JetStream acks it. A message JetStream did not ack is retried in place
// before the ones behind it are acked.
func (in *Inbound) work(q chan *Delivery) {
	batch := make([]*Delivery, 0, in.opts.BatchSize)
	for d := range q {
		batch = append(batch[:0], d)
	fill:
		for len(batch) < in.opts.BatchSize {
			select {
			case d, ok := <-q:
				if !ok {
					break fill
				}
				batch = append(batch, d)
			default:
				break fill
			}
		}
		if in.opts.Events != nil {
			for _, d := range batch {
				if !in.storeEvent(d) {
					return // Stop gave up: the broker delivers the rest again
				}
			}
			continue
		}
		if !in.store(batch) {
			return // Stop gave up: the broker delivers the rest again
		}
	}
}

type inflight struct {
	d   *Delivery
	msg *nats.Msg
	fut jetstream.PubAckFuture // nil: publish it synchronously
}

// store publishes one batch and settles it; false means Stop gave up.
func (in *Inbound) store(batch []*Delivery) bool {
	sent := make([]inflight, 0, len(batch))
	for _, d := range batch {
		msg, err := in.prepare(d)
		if err != nil {
			in.deadLetter(d, err)
			continue
		}
		fut, err := in.js.PublishMsgAsync(msg)
		if err != nil {
			fut = nil
		}
		sent = append(sent, inflight{d: d, msg: msg, fut: fut})
	}
	deadline := time.NewTimer(in.opts.PublishTimeout)
	defer deadline.Stop()
	expired := false
	for _, f := range sent {
		acked := false
		if f.fut != nil && !expired {
			select {
			case <-f.fut.Ok():
				acked = true
			case err := <-f.fut.Err():
				if refusedByJetStream(err) {
					in.deadLetter(f.d, platform.Errorf(platform.CodeBridgeDelivery, "JetStream refused message %q on %s: %w", f.d.ID, f.msg.Subject, err))
					continue
				}
			case <-deadline.C:
				expired = true
			case <-in.ctx.Done():
				return false
			}
		}
		if !acked && !in.publish(f.d, f.msg) {
			return false
		}
		in.up.Store(true)
		in.m.movedN(1, len(f.msg.Data))
		in.ack(f.d)
	}
	return true
}

// prepare picks the subject and decodes; an error means the message can
// never be stored.
func (in *Inbound) prepare(d *Delivery) (*nats.Msg, error) {
	subject := in.opts.Subject
	if in.opts.SubjectFunc != nil {
		subject = in.opts.SubjectFunc(&d.Message)
	}
	if subject == "" {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "bridge %s: the subject function gave no subject for message %q from %q", in.opts.Name, d.ID, d.Subject)
	}
	return in.dec.decode(&d.Message, subject)
}

// publish stores one message synchronously, retrying with backoff until
// JetStream acks it (a copy that landed meanwhile is a duplicate its
// Nats-Msg-Id absorbs). A refusal for good dead-letters it. false means
// Stop gave up.
func (in *Inbound) publish(d *Delivery, msg *nats.Msg) bool {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(in.ctx, in.opts.PublishTimeout)
		_, err := in.js.PublishMsg(ctx, msg)
		cancel()
		if err == nil {
			return true
		}
		if refusedByJetStream(err) {
			in.deadLetter(d, platform.Errorf(platform.CodeBridgeDelivery, "JetStream refused message %q on %s: %w", d.ID, msg.Subject, err))
			return true
		}
		in.m.errored(err)
		in.up.Store(false)
		if attempt == 0 {
			in.log.Warn("bridge: JetStream publish failed; retrying with backoff", "subject", msg.Subject, "err", err)
		}
		if !in.opts.Backoff.Sleep(in.ctx, attempt) {
			return false
		}
	}
}

func (in *Inbound) ack(d *Delivery) {
	if err := d.Ack(in.ctx); err != nil {
		// The broker delivers it again; its Nats-Msg-Id stops a second copy.
		in.m.errored(err)
		in.log.Warn("bridge: ack to the broker failed; the message will come again", "id", d.ID, "err", err)
	}
}

// deadLetter stores an undeliverable message with the reason and acks it
// to the broker; if even that fails, the message is nacked so that it
// comes again rather than being lost. It stores the message as the broker
// gave it, headers and body, so that a replay (Inbound.Replay) decodes it
// as it came.
func (in *Inbound) deadLetter(d *Delivery, reason error) {
	h := nats.Header{}
	for k, v := range d.Header {
		if validHeaderName(k) && !natsReserved(k) {
			h[k] = []string{oneLine(v)}
		}
	}
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(in.ctx, in.opts.PublishTimeout)
		err := in.dl.put(ctx, d.ID, d.Subject, 0, h, d.Data, reason)
		cancel()
		if err == nil {
			break
		}
		in.m.errored(err)
		in.log.Error("bridge: could not dead-letter a message; retrying", "id", d.ID, "err", err)
		if !in.opts.Backoff.Sleep(in.ctx, attempt) {
			_ = d.Nack(context.WithoutCancel(in.ctx))
			return
		}
	}
	in.log.Warn("bridge: message dead-lettered", "id", d.ID, "reason", reason)
	in.m.deadLettered(reason)
	in.ack(d)
}

// refusedByJetStream tells errors no retry can fix.
func refusedByJetStream(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode {
		case 10054: // message size exceeds the stream's maximum
			return true
		}
	}
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadHeaderMsg)
}
