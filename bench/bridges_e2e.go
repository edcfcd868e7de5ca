package bench

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/kafka"
	"github.com/lexigram/events/bridges/rabbitmq"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// e2eRate is the steady rate of the end-to-end figures, in messages a
// second: modest, so that they show the latency one message sees, not a
// queue.
const e2eRate = 200

// bridgeE2EJobs lists the end-to-end latency figures of bridges (issue
// 14, item 5): a JetStream append to the broker's consumer receiving it.
func (r *runner) bridgeE2EJobs() []job {
	plain := envNoFsync
	if r.opts.NATSURL != "" {
		plain = envExternal
	}
	return []job{
		{names: []string{"bridge.rabbitmq.e2e.p50", "bridge.rabbitmq.e2e.p99"}, env: plain, run: r.bridgeRabbitE2E},
		{names: []string{"bridge.kafka.e2e.p50", "bridge.kafka.e2e.p99"}, env: plain, run: r.bridgeKafkaE2E},
	}
}

// receipts pairs what the broker's consumer receives with when it was
// sent.
type receipts struct {
	mu   sync.Mutex
	sent map[string]time.Time
	got  []time.Duration
}

func newReceipts() *receipts { return &receipts{sent: map[string]time.Time{}} }

// send stamps id just before it is appended or published.
func (rc *receipts) send(id string) {
	now := time.Now()
	rc.mu.Lock()
	rc.sent[id] = now
	rc.mu.Unlock()
}

// receive records id's latency; ids not sent (a redelivery) count once.
func (rc *receipts) receive(id string) {
	now := time.Now()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if t, ok := rc.sent[id]; ok {
		delete(rc.sent, id)
		rc.got = append(rc.got, now.Sub(t))
	}
}

// settle waits until everything sent was received, then hands over the
// latencies.
func (rc *receipts) settle(ctx context.Context) ([]time.Duration, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		rc.mu.Lock()
		left, n := len(rc.sent), len(rc.got)
		if left == 0 {
			got := rc.got
			rc.got = nil
			rc.mu.Unlock()
			return got, nil
		}
		rc.mu.Unlock()
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d messages did not reach the broker's consumer within 30s", left, left+n)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// steady calls send e2eRate times a second for d, each call on its own
// goroutine so that a slow one does not delay the next (an open loop:
// no coordinated omission), and returns the first error.
func steady(ctx context.Context, d time.Duration, send func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tick := time.NewTicker(time.Second / e2eRate)
	defer tick.Stop()
	var wg sync.WaitGroup
	end := time.After(d)
loop:
	for {
		select {
		case <-end:
			break loop
		case <-ctx.Done():
			break loop
		case <-tick.C:
			wg.Go(func() {
				if err := send(ctx); err != nil {
					cancel(err)
				}
			})
		}
	}
	wg.Wait()
	return context.Cause(ctx)
}

// e2eRounds alternates ours and raw after a warm-up round and returns
// every latency of each, sorted.
func (r *runner) e2eRounds(ctx context.Context, name string, rc *receipts, ours, raw func(ctx context.Context) error) (o, w []time.Duration, err error) {
	phase := 2 * r.plan.latencyPhase
	for i := -1; i < r.plan.rounds; i++ {
		for _, side := range sidesOf(i) {
			f, out := ours, &o
			if side == "raw" {
				f, out = raw, &w
			}
			if err := steady(ctx, phase, f); err != nil {
				return nil, nil, fmt.Errorf("%s, %s round %d: %w", name, side, i+1, err)
			}
			got, err := rc.settle(ctx)
			if err != nil {
				return nil, nil, fmt.Errorf("%s, %s round %d: %w", name, side, i+1, err)
			}
			if i >= 0 {
				*out = append(*out, got...)
				slices.Sort(got)
				r.progress("%s: round %d %s p50 %.2fms p99 %.2fms", name, i+1, side, ms(percentile(got, 50)), ms(percentile(got, 99)))
			}
		}
	}
	slices.Sort(o)
	slices.Sort(w)
	return o, w, nil
}

// appendStamped appends one event to one of 100 aggregates, stamped in rc
// under its event ID, which the outbound bridge sends as the message ID.
func appendStamped(st *lxjs.EventStore, rc *receipts) func(ctx context.Context) error {
	var next atomic.Int64
	return func(ctx context.Context) error {
		id, acct := platform.NewEventID(), streamID(int(next.Add(1)%100))
		rc.send(id)
		_, err := st.Append(ctx, acct, platform.Any(), []platform.Envelope{{ID: id, Event: deposit(acct.ID)}})
		return err
	}
}

func e2eFigures(name string, o, w []time.Duration, rounds int, phase time.Duration, how string) []Figure {
	note := fmt.Sprintf("%d msgs/s steady (open loop) for %.1fs per side, %d alternating rounds after a warm-up, %d and %d samples; ours: from just before Append (the embedded server without fsync) until the broker's consumer received the event through bridges.Outbound; raw: from just before a direct publish of a message of the same body until the same consumer received it; %s; lower is better",
		e2eRate, phase.Seconds(), rounds, len(o), len(w), how)
	return []Figure{
		{Name: name + ".p50", Ours: ms(percentile(o, 50)), Raw: ms(percentile(w, 50)), Unit: "ms", Note: note},
		{Name: name + ".p99", Ours: ms(percentile(o, 99)), Raw: ms(percentile(w, 99)), Unit: "ms", Note: "as p50"},
	}
}

// bridgeRabbitE2E measures bridge.rabbitmq.e2e against the broker on
// 127.0.0.1:5672; without one it reports no figures.
func (r *runner) bridgeRabbitE2E(ctx context.Context, e *env) ([]Figure, error) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second); err != nil {
		r.progress("bridge.rabbitmq.e2e: skipped: no RabbitMQ on 127.0.0.1:5672 (start it with `rabbitmq-server -detached`)")
		return nil, nil
	} else {
		_ = c.Close()
	}
	conn, err := amqp.Dial(rabbitmq.DefaultURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	admin, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	exchange, queue := "lxbench-e2e-x-"+r.runID, "lxbench-e2e-q-"+r.runID
	if err := declare(admin, rabbitmq.Topology{Exchange: exchange, Queue: queue, BindingKey: "#"}); err != nil {
		return nil, err
	}
	defer func() {
		_, _ = admin.QueueDelete(queue, false, false, false)
		_ = admin.ExchangeDelete(exchange, false, false)
	}()

	rc := newReceipts()
	consumer, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	deliveries, err := consumer.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	var consuming sync.WaitGroup
	consuming.Go(func() {
		for d := range deliveries {
			rc.receive(d.MessageId)
		}
	})
	defer consuming.Wait()
	defer consumer.Close()

	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	pub := rabbitmq.NewPublisher(rabbitmq.PublisherOptions{Exchange: exchange, Logger: r.log})
	defer pub.Close()
	out, err := bridges.NewOutbound(ctx, e.js, pub, bridges.OutboundOptions{Name: "lxbench-e2e-rmq", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Logger: r.log})
	if err != nil {
		return nil, err
	}
	defer func() { _ = out.Stop(context.WithoutCancel(ctx)) }()

	rawCh, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer rawCh.Close()
	key, err := st.Subject(streamID(0))
	if err != nil {
		return nil, err
	}
	var n atomic.Int64
	raw := func(ctx context.Context) error {
		id := "raw-" + strconv.FormatInt(n.Add(1), 10)
		rc.send(id)
		return rawCh.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{MessageId: id, DeliveryMode: amqp.Persistent, ContentType: "application/msgpack", Body: r.body})
	}
	o, w, err := r.e2eRounds(ctx, "bridge.rabbitmq.e2e", rc, appendStamped(st, rc), raw)
	if err != nil {
		return nil, err
	}
	return e2eFigures("bridge.rabbitmq.e2e", o, w, r.plan.rounds, 2*r.plan.latencyPhase,
		"RabbitMQ 3 on loopback, persistent messages to a topic exchange bound to one durable queue, one auto-ack consumer; ours: the bridge's defaults (one worker, publisher confirms), raw: publishes without waiting for confirms"), nil
}

// bridgeKafkaE2E measures bridge.kafka.e2e on an in-process kfake cluster
// of three brokers.
func (r *runner) bridgeKafkaE2E(ctx context.Context, e *env) ([]Figure, error) {
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.DefaultNumPartitions(3), kfake.AllowAutoTopicCreation())
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	seeds := kc.ListenAddrs()
	topic := "lxbench-e2e-" + r.runID
	if err := createTopic(ctx, seeds, topic); err != nil {
		return nil, err
	}

	rc := newReceipts()
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(time.Second))
	if err != nil {
		return nil, err
	}
	consCtx, stopConsuming := context.WithCancel(ctx)
	var consuming sync.WaitGroup
	consuming.Go(func() {
		for consCtx.Err() == nil {
			cons.PollFetches(consCtx).EachRecord(func(rec *kgo.Record) {
				for _, h := range rec.Headers {
					if h.Key == kafka.HeaderID {
						rc.receive(string(h.Value))
					}
				}
			})
		}
	})
	defer cons.Close()
	defer consuming.Wait()
	defer stopConsuming()

	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	pub, err := kafka.NewPublisher(kafka.PublisherOptions{Brokers: seeds, Topic: topic, Logger: r.log})
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	out, err := bridges.NewOutbound(ctx, e.js, pub, bridges.OutboundOptions{Name: "lxbench-e2e-kafka", Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Logger: r.log})
	if err != nil {
		return nil, err
	}
	defer func() { _ = out.Stop(context.WithoutCancel(ctx)) }()

	prod, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	var n atomic.Int64
	raw := func(ctx context.Context) error {
		i := n.Add(1)
		id := "raw-" + strconv.FormatInt(i, 10)
		rc.send(id)
		rec := &kgo.Record{Key: []byte(accountID(int(i % 100))), Value: r.body, Headers: []kgo.RecordHeader{{Key: kafka.HeaderID, Value: []byte(id)}}}
		return prod.ProduceSync(ctx, rec).FirstErr()
	}
	o, w, err := r.e2eRounds(ctx, "bridge.kafka.e2e", rc, appendStamped(st, rc), raw)
	if err != nil {
		return nil, err
	}
	return e2eFigures("bridge.kafka.e2e", o, w, r.plan.rounds, 2*r.plan.latencyPhase,
		"kfake (three brokers in this process), a topic of three partitions, acks=all, one consumer of every partition; ours: the bridge's defaults (one worker), raw: a ProduceSync per message keyed by aggregate"), nil
}
