package bridges

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// OutboundOptions configure a bridge from JetStream to a broker. Name and
// Stream are required; the zero value of the rest reads the whole stream
// from its first message with one worker, passes messages through and
// retries a broker outage forever with backoff.
type OutboundOptions struct {
	// Name names the bridge: its durable consumer, its metrics and its
	// dead-letter subject. Two processes running a bridge of the same name
	// share its messages.
	Name string
	// Stream is the JetStream stream to read, e.g. the event store's
	// (jetstream.EventStore.StreamName).
	Stream string
	// SubjectPrefix is the event store's subject prefix (e.g. "events"):
	// set, the bridge reads <prefix>.<aggregate type>.<id> subjects as
	// events, keys each message by aggregate ID and maps its envelope to
	// CloudEvents attributes. Empty: plain subjects, keyed by subject.
	SubjectPrefix string
	// AggregateTypes restricts an event store bridge to these aggregates.
	AggregateTypes []string
	// EventTypes restricts an event store bridge to these event types (the
	// Lx-Type header); other events are acknowledged and not sent.
	EventTypes []string
	// Subjects are the consumer's filter subjects when the bridge reads
	// any stream: they replace those built from SubjectPrefix and
	// AggregateTypes.
	Subjects []string
	// FromNow starts a new consumer at the next message instead of the
	// first stored. An existing consumer keeps its position either way.
	FromNow bool

	Format Format
	// Source is the CloudEvents source attribute. Default "/lexigram/<stream>".
	Source string
	// JSON re-encodes msgpack payloads as JSON for consumers outside.
	JSON bool

	// Workers publish concurrently. A free worker takes the next messages
	// whose subject no other worker holds, so one aggregate's events stay
	// in order however unevenly the aggregates are spread. Default 1.
	Workers int
	// BatchSize bounds the messages one worker hands to one Publish call.
	// Default 100.
	BatchSize int
	// AckWait is how long JetStream waits for a message's ack before it
	// delivers it again. Default 30s; while a broker is down the bridge
	// keeps the messages it holds from timing out.
	AckWait time.Duration
	// MaxAckPending bounds the messages taken and not yet confirmed.
	// Default 1000.
	MaxAckPending int
	// PublishTimeout bounds one Publish call; past it the messages are
	// retried. Default 30s.
	PublishTimeout time.Duration
	Backoff        Backoff // between retries during an outage
	DeadLetter     DeadLetterOptions
	Metrics        *Metrics     // nil: no metrics
	Logger         *slog.Logger // default slog.Default()
}

// Outbound is a running bridge from JetStream to a broker.
type Outbound struct {
	opts  OutboundOptions
	log   *slog.Logger
	pub   Publisher
	enc   *encoder
	dl    *deadLetters
	m     *bridgeMetrics
	types map[string]bool
	// filters are the filter subjects a server before 2.10 could not
	// take, matched here instead; nil where the server applies them.
	filters []string

	nc      *nats.Conn
	cons    jetstream.Consumer
	cc      jetstream.ConsumeContext
	queue   *keyedQueue
	workers sync.WaitGroup
	up      atomic.Bool

	ctx    context.Context // publish calls; cancelled when Stop gives up
	cancel context.CancelFunc
	once   sync.Once
}

// NewOutbound starts a bridge that moves the stream's messages to pub.
// Stop it with Stop; it does not close pub.
func NewOutbound(ctx context.Context, js jetstream.JetStream, pub Publisher, opts OutboundOptions) (*Outbound, error) {
	opts, err := outboundDefaults(opts)
	if err != nil {
		return nil, err
	}
	o := &Outbound{opts: opts, log: opts.Logger.With("bridge", opts.Name, "direction", "outbound"), pub: pub, nc: js.Conn()}
	o.enc = &encoder{format: opts.Format, prefix: opts.SubjectPrefix, source: opts.Source, cePrefix: "ce-", json: opts.JSON}
	if p, ok := pub.(CloudEventsPrefixer); ok {
		o.enc.cePrefix = p.CloudEventsPrefix()
	}
	if len(opts.EventTypes) > 0 {
		o.types = make(map[string]bool, len(opts.EventTypes))
		for _, t := range opts.EventTypes {
			o.types[t] = true
		}
	}
	if o.dl, err = openDeadLetters(ctx, js, js.Conn(), opts.Name, "outbound", opts.DeadLetter); err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, opts.Stream)
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "bridge %s: stream %q: %w: check the stream name", opts.Name, opts.Stream, err)
	}
	if o.cons, err = ensureConsumer(ctx, stream, o.consumerConfig()); err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "bridge %s: consumer on %s: %w", opts.Name, opts.Stream, err)
	}
	o.up.Store(true)
	o.m = opts.Metrics.add(opts.Name, "outbound", o.Connected)
	o.ctx, o.cancel = context.WithCancel(context.WithoutCancel(ctx))
	o.queue = newKeyedQueue(opts.Workers)
	for i := range opts.Workers {
		o.workers.Go(func() { o.work(i) })
	}
	o.cc, err = o.cons.Consume(o.onMessage,
		jetstream.PullMaxMessages(min(opts.MaxAckPending, 2*opts.BatchSize*opts.Workers)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			o.log.Debug("bridge: consume", "err", err) // nats.go pulls again itself
		}))
	if err != nil {
		o.queue.close()
		o.cancel()
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "bridge %s: consume %s: %w", opts.Name, opts.Stream, err)
	}
	o.log.InfoContext(ctx, "bridge started", "stream", opts.Stream, "format", opts.Format.String(), "workers", opts.Workers)
	return o, nil
}

func outboundDefaults(o OutboundOptions) (OutboundOptions, error) {
	if err := validName(o.Name); err != nil {
		return o, err
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "bridge %s: "+format, append([]any{o.Name}, args...)...))
	}
	if o.Stream == "" {
		bad("stream is empty: name the JetStream stream to read, e.g. \"EVENTS\"")
	}
	if (len(o.AggregateTypes) > 0 || len(o.EventTypes) > 0) && o.SubjectPrefix == "" {
		bad("aggregate or event types %v %v need the event store's subject prefix: set subject prefix, e.g. \"events\"", o.AggregateTypes, o.EventTypes)
	}
	if o.Workers < 0 || o.BatchSize < 0 || o.MaxAckPending < 0 || o.AckWait < 0 || o.PublishTimeout < 0 {
		bad("workers %d, batch size %d, max ack pending %d, ack wait %v, publish timeout %v: none may be negative (0 takes the default)", o.Workers, o.BatchSize, o.MaxAckPending, o.AckWait, o.PublishTimeout)
	}
	if o.Format < PassThrough || o.Format > CloudEventsStructured {
		bad("format %v: use PassThrough, CloudEventsBinary or CloudEventsStructured", o.Format)
	}
	o.Workers = orDefault(o.Workers, 1)
	o.BatchSize = orDefault(o.BatchSize, 100)
	o.AckWait = orDefault(o.AckWait, 30*time.Second)
	o.MaxAckPending = orDefault(o.MaxAckPending, 1000)
	o.PublishTimeout = orDefault(o.PublishTimeout, 30*time.Second)
	if o.AckWait < time.Second {
		bad("ack wait %v: use at least 1s", o.AckWait)
	}
	if o.Source == "" {
		o.Source = "/lexigram/" + o.Stream
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, errors.Join(errs...)
}

func (o *Outbound) consumerConfig() jetstream.ConsumerConfig {
	filters := o.opts.Subjects
	if len(filters) == 0 && o.opts.SubjectPrefix != "" {
		filters = []string{o.opts.SubjectPrefix + ".>"}
		if len(o.opts.AggregateTypes) > 0 {
			filters = filters[:0]
			for _, t := range o.opts.AggregateTypes {
				filters = append(filters, o.opts.SubjectPrefix+"."+t+".*")
			}
		}
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       o.opts.Name,
		Description:   "lexigram bridge " + o.opts.Name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.opts.AckWait,
		MaxAckPending: o.opts.MaxAckPending,
		MaxDeliver:    -1, // an outage must never use up a message's deliveries
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if o.opts.FromNow {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	switch {
	case len(filters) == 1:
		cfg.FilterSubject = filters[0]
	case lxjs.ServerAtLeast(o.nc.ConnectedServerVersion(), 2, 10):
		cfg.FilterSubjects = filters
	default:
		// Servers before 2.10 take one filter subject, and only one
		// within the stream's subjects: the consumer takes the whole
		// stream, and onMessage acks the other subjects unsent.
		o.filters = filters
	}
	return cfg
}

// wanted reports whether a subject is one the consumer's filters would
// have taken (always, where the server applied them).
func (o *Outbound) wanted(subject string) bool {
	if o.filters == nil {
		return true
	}
	return slices.ContainsFunc(o.filters, func(f string) bool { return server.SubjectMatchesFilter(subject, f) })
}

// ensureConsumer creates the consumer or updates it; an existing one keeps
// where it started, which JetStream cannot change.
func ensureConsumer(ctx context.Context, s jetstream.Stream, want jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := s.Consumer(ctx, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return s.CreateConsumer(ctx, want)
	}
	if err != nil {
		return nil, err
	}
	have := c.CachedInfo().Config
	want.DeliverPolicy, want.OptStartSeq, want.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
	return s.UpdateConsumer(ctx, want)
}

// Connected reports whether the broker answers, for health checks.
func (o *Outbound) Connected() bool {
	if r, ok := o.pub.(ConnectionReporter); ok {
		return r.Connected()
	}
	return o.up.Load()
}

// Stop stops taking messages, finishes those in flight and returns. When
// ctx ends first, it abandons them (JetStream delivers them again after
// AckWait, in order) and returns ctx's error.
func (o *Outbound) Stop(ctx context.Context) error {
	var err error
	o.once.Do(func() {
		connected := o.nc.IsConnected()
		if connected {
			o.cc.Drain()
		} else {
			o.cc.Stop() // a drain would wait for the server's answer to its flush: 10 s
		}
		select {
		case <-o.cc.Closed():
			if connected {
				o.takeStragglers(ctx)
			}
		case <-ctx.Done():
			o.cancel()
			o.cc.Stop()
			<-o.cc.Closed()
			o.queue.drop()
		}
		o.queue.close()
		done := make(chan struct{})
		go func() { o.workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			o.cancel()
			o.queue.drop() // waiting workers return; JetStream delivers the rest again
			<-done
		}
		o.cancel()
		o.m.remove()
		o.log.Info("bridge stopped")
	})
	return err
}

// stragglerWait bounds how long Stop looks for messages the server sent
// as the consumer was drained.
const stragglerWait = 500 * time.Millisecond

// takeStragglers fetches the messages the server sent as the consumer was
// drained, after nats.go had stopped listening. The server queues such a
// message for immediate redelivery, ahead of the earlier messages of its
// aggregate that this bridge still holds and may abandon (seen when Stop
// gave up during a broker outage: the next bridge sent version 4 before
// versions 1 to 3). Taken now, it queues behind them. The consumer's ack
// pending count says whether any is missing; with other processes on the
// same consumer it counts theirs too, and the fetch then waits its bound
// and takes new messages, which Stop finishes like the rest.
func (o *Outbound) takeStragglers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, stragglerWait)
	defer cancel()
	info, err := o.cons.Info(ctx)
	if err != nil {
		return // NATS unreachable: nothing can be fetched either
	}
	missing := info.NumAckPending - o.queue.len()
	deadline, _ := ctx.Deadline()
	wait := time.Until(deadline)
	if missing <= 0 || wait <= 0 {
		return
	}
	batch, err := o.cons.Fetch(missing, jetstream.FetchMaxWait(wait))
	if err != nil {
		return
	}
	for msg := range batch.Messages() {
		o.onMessage(msg)
	}
}

// onMessage runs on nats.go's goroutine: it only queues the message.
func (o *Outbound) onMessage(msg jetstream.Msg) {
	if !o.wanted(msg.Subject()) || o.types != nil && !o.types[msg.Headers().Get(lxType)] {
		_ = msg.Ack()
		o.m.skip()
		return
	}
	o.queue.push(msg.Subject(), msg)
}

// work publishes batches until the queue is closed and empty. A batch the
// broker did not confirm is tried again, keeping its keys, so that no
// later message of theirs overtakes it.
func (o *Outbound) work(worker int) {
	keys := make([]string, 0, o.opts.BatchSize)
	for {
		batch, ok := o.queue.take(worker, o.opts.BatchSize)
		if !ok {
			return
		}
		keys = keys[:0]
		for _, m := range batch {
			keys = append(keys, m.Subject())
		}
		for attempt := 0; ; attempt++ {
			if batch = o.deliver(batch); len(batch) == 0 {
				break
			}
			if !o.wait(batch, attempt) {
				o.queue.release(keys)
				return // Stop gave up: JetStream delivers them again
			}
		}
		o.queue.release(keys)
	}
}

// wait sleeps before a retry. Meanwhile it tells JetStream that the
// messages held, by this worker and in the queue, are in progress, so that
// none is delivered twice while the broker is down.
func (o *Outbound) wait(held []jetstream.Msg, attempt int) bool {
	delay := o.opts.Backoff.Delay(attempt)
	deadline := time.Now().Add(delay)
	tick := time.NewTicker(min(delay, o.opts.AckWait/3))
	defer tick.Stop()
	for {
		select {
		case <-o.ctx.Done():
			return false
		case now := <-tick.C:
			for _, m := range held {
				_ = m.InProgress()
			}
			o.queue.inProgress()
			if !now.Before(deadline) {
				return true
			}
		}
	}
}

// deliver publishes one batch and settles each message: acked once
// confirmed, dead-lettered when refused or unreadable, returned for a
// retry otherwise.
func (o *Outbound) deliver(batch []jetstream.Msg) (retry []jetstream.Msg) {
	msgs := make([]*Message, 0, len(batch))
	sent := make([]jetstream.Msg, 0, len(batch))
	for _, jm := range batch {
		m, err := o.encode(jm)
		if err != nil {
			if !o.deadLetter(jm, messageID(m, jm), err) {
				retry = append(retry, jm)
			}
			continue
		}
		msgs, sent = append(msgs, m), append(sent, jm)
	}
	if len(msgs) == 0 {
		return retry
	}
	ctx, cancel := context.WithTimeout(o.ctx, o.opts.PublishTimeout)
	err := o.pub.Publish(ctx, msgs...)
	cancel()
	errs := ErrorsOf(err, len(msgs))
	moved, bytes, failed := 0, 0, 0
	for i, jm := range sent {
		switch e := errs[i]; {
		case e == nil:
			_ = jm.Ack()
			moved++
			bytes += len(msgs[i].Data)
		case IsRefused(e):
			o.log.Warn("bridge: the broker refused a message for good: dead-lettered", "id", msgs[i].ID, "subject", jm.Subject(), "err", e)
			if !o.deadLetter(jm, msgs[i].ID, e) {
				retry = append(retry, jm)
			}
		default:
			failed++
			o.m.errored(e)
			retry = append(retry, jm)
			if failed == 1 {
				o.log.Warn("bridge: publish failed; retrying with backoff", "messages", len(msgs), "err", e)
			}
		}
	}
	o.m.movedN(moved, bytes)
	if moved > 0 || failed == 0 {
		o.up.Store(true)
	} else {
		o.up.Store(false)
	}
	// Retries keep the order they were taken in.
	slices.SortStableFunc(retry, func(a, b jetstream.Msg) int { return compareSeq(a, b) })
	return retry
}

func compareSeq(a, b jetstream.Msg) int {
	ma, err1 := a.Metadata()
	mb, err2 := b.Metadata()
	if err1 != nil || err2 != nil {
		return 0
	}
	switch {
	case ma.Sequence.Stream < mb.Sequence.Stream:
		return -1
	case ma.Sequence.Stream > mb.Sequence.Stream:
		return 1
	}
	return 0
}

func (o *Outbound) encode(jm jetstream.Msg) (*Message, error) {
	s := stored{Stream: o.opts.Stream, Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data()}
	if meta, err := jm.Metadata(); err == nil {
		s.Seq, s.Time = meta.Sequence.Stream, meta.Timestamp
	}
	return o.enc.encode(s)
}

func messageID(m *Message, jm jetstream.Msg) string {
	if m != nil {
		return m.ID
	}
	if id := jm.Headers().Get(lxID); id != "" {
		return id
	}
	meta, _ := jm.Metadata()
	if meta != nil {
		return meta.Stream + "-" + itoa(meta.Sequence.Stream)
	}
	return jm.Subject()
}

// deadLetter stores the message with the reason and acks it; false means
// it could not be stored and must be tried again.
func (o *Outbound) deadLetter(jm jetstream.Msg, id string, reason error) bool {
	var seq uint64
	if meta, err := jm.Metadata(); err == nil {
		seq = meta.Sequence.Stream
	}
	ctx, cancel := context.WithTimeout(o.ctx, o.opts.PublishTimeout)
	defer cancel()
	if err := o.dl.put(ctx, id, jm.Subject(), seq, jm.Headers(), jm.Data(), reason); err != nil {
		o.m.errored(err)
		o.log.Error("bridge: could not dead-letter a message; retrying", "id", id, "err", err)
		return false
	}
	o.m.deadLettered(reason)
	_ = jm.Ack()
	return true
}
