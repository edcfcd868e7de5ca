package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/rabbitmq"
	lxjs "github.com/lexigram/events/jetstream"
)

// bridgeJobs lists the figures of bridges (issue 14).
func (r *runner) bridgeJobs() []job {
	plain := envNoFsync
	if r.opts.NATSURL != "" {
		plain = envExternal
	}
	return []job{
		{names: []string{"bridge.rabbitmq.out", "bridge.rabbitmq.in"}, env: plain, run: r.bridgeRabbitMQ},
		{names: []string{"bridge.kafka.out", "bridge.kafka.out/pipeline", "bridge.kafka.in"}, env: plain, run: r.bridgeKafka},
	}
}

const (
	bridgeWorkers  = 4   // outbound: workers of ours, publishing goroutines of raw
	bridgeBatch    = 100 // messages per publish call (ours) or per confirm wait (raw)
	bridgePrefetch = 200
)

// bridgeSize is how many messages one side of one round moves, and how
// many rounds there are.
func (r *runner) bridgeSize() (total, rounds int) {
	if r.opts.Quick {
		return 20_000, 2
	}
	return 100_000, 6
}

// alternate runs ours and raw in alternating order for the rounds after
// a warm-up round and returns the throughputs.
func (r *runner) alternate(ctx context.Context, name string, rounds, total int, ours, raw func(ctx context.Context, round int) error) (o, w []float64, err error) {
	for i := -1; i < rounds; i++ {
		sides := []struct {
			name string
			f    func(context.Context, int) error
			out  *[]float64
		}{{"ours", ours, &o}, {"raw", raw, &w}}
		if i%2 != 0 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, s := range sides {
			t := time.Now()
			if err := s.f(ctx, i+1); err != nil {
				return nil, nil, fmt.Errorf("%s, %s round %d: %w", name, s.name, i+1, err)
			}
			if i >= 0 {
				rate := float64(total) / time.Since(t).Seconds()
				*s.out = append(*s.out, rate)
				r.progress("%s: round %d %s %.0f msgs/s", name, i+1, s.name, rate)
			}
		}
	}
	return o, w, nil
}

// waitCount polls n until it reaches total, failing after 60s without progress.
func waitCount(ctx context.Context, total int, n func() (int, error)) error {
	last, stalled := -1, time.Now()
	for {
		got, err := n()
		if err == nil && got >= total {
			return nil
		}
		if got != last {
			last, stalled = got, time.Now()
		} else if time.Since(stalled) > 60*time.Second {
			return fmt.Errorf("stalled at %d of %d messages (last error: %v)", got, total, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// consumerDone counts the messages a durable consumer has acknowledged.
func consumerDone(ctx context.Context, js jetstream.JetStream, stream, name string) func() (int, error) {
	return func() (int, error) {
		c, err := js.Consumer(ctx, stream, name)
		if err != nil {
			return 0, err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		return int(info.AckFloor.Stream), nil
	}
}

// streamCount counts the messages of a stream.
func streamCount(ctx context.Context, js jetstream.JetStream, name string) func() (int, error) {
	return func() (int, error) {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return 0, err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return 0, err
		}
		return int(info.State.Msgs), nil
	}
}

// eventHeaders are the headers of the first preloaded event, which raw
// sends too so both sides move messages of the same size.
func eventHeaders(ctx context.Context, e *env, st *lxjs.EventStore) (nats.Header, string, error) {
	s, err := e.js.Stream(ctx, st.StreamName())
	if err != nil {
		return nil, "", err
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		return nil, "", err
	}
	return m.Header, m.Subject, nil
}

// inboundStream makes a stream for the inbound figures; done deletes it.
func (r *runner) inboundStream(ctx context.Context, e *env) (name, subject string, done func(), err error) {
	r.seq++
	name = fmt.Sprintf("LXBENCH_IN_%s_%d", r.runID, r.seq)
	subject = fmt.Sprintf("lxbench.%s.%d.in", r.runID, r.seq)
	_, err = e.js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Replicas: max(e.replicas, 1)})
	return name, subject, func() { r.deleteStream(e, name) }, err
}

func (r *runner) purge(ctx context.Context, e *env, stream string) error {
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	return s.Purge(ctx)
}

// bridgeRabbitMQ measures bridge.rabbitmq.out and .in against the broker on
// 127.0.0.1:5672; without one it reports no figures.
func (r *runner) bridgeRabbitMQ(ctx context.Context, e *env) ([]Figure, error) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second); err != nil {
		r.progress("bridge.rabbitmq: skipped: no RabbitMQ on 127.0.0.1:5672 (start it with `rabbitmq-server -detached`)")
		return nil, nil
	} else {
		_ = c.Close()
	}
	total, rounds := r.bridgeSize()
	conn, err := amqp.Dial(rabbitmq.DefaultURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	admin, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	exchange, queue := "lxbench-x-"+r.runID, "lxbench-q-"+r.runID
	top := rabbitmq.Topology{Exchange: exchange, Queue: queue, BindingKey: "#"}
	if err := declare(admin, top); err != nil {
		return nil, err
	}
	defer func() {
		_, _ = admin.QueueDelete(queue, false, false, false)
		_ = admin.ExchangeDelete(exchange, false, false)
	}()
	purgeQueue := func() error { _, err := admin.QueuePurge(queue, false); return err }

	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := r.preload(ctx, e, st, "bridge.rabbitmq.out", total); err != nil {
		return nil, err
	}
	hdr, _, err := eventHeaders(ctx, e, st)
	if err != nil {
		return nil, err
	}
	// Raw routes by the events' subjects too: a topic exchange's cost grows
	// with the words of the routing key.
	keys := make([]string, max(1, total/loadEvents))
	for a := range keys {
		if keys[a], err = st.Subject(streamID(a)); err != nil {
			return nil, err
		}
	}
	table := amqp.Table{}
	for k, v := range hdr {
		if len(v) > 0 && !strings.HasPrefix(k, "Nats-") { // ours sends none out
			table[k] = v[0]
		}
	}

	ours := func(ctx context.Context, round int) error {
		defer purgeQueue()
		name := fmt.Sprintf("lxbench-rmq-%d", round)
		defer func() { _ = e.js.DeleteConsumer(context.WithoutCancel(ctx), st.StreamName(), name) }()
		pub := rabbitmq.NewPublisher(rabbitmq.PublisherOptions{Exchange: exchange, Logger: r.log})
		defer pub.Close()
		return r.runOutbound(ctx, e, st, pub, name, total)
	}
	raw := func(ctx context.Context, round int) error {
		defer purgeQueue()
		var next atomic.Int64
		return parallel(bridgeWorkers, func() error {
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			defer ch.Close()
			if err := ch.Confirm(false); err != nil {
				return err
			}
			confs := make([]*amqp.DeferredConfirmation, 0, bridgeBatch)
			for {
				first := int(next.Add(bridgeBatch)) - bridgeBatch
				if first >= total {
					return nil
				}
				confs = confs[:0]
				for i := first; i < min(first+bridgeBatch, total); i++ {
					c, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, keys[i%len(keys)], false, false, amqp.Publishing{
						MessageId: strconv.Itoa(i), Headers: table, DeliveryMode: amqp.Persistent, ContentType: "application/msgpack", Body: r.body,
					})
					if err != nil {
						return err
					}
					confs = append(confs, c)
				}
				for _, c := range confs {
					if ok, err := c.WaitContext(ctx); err != nil || !ok {
						return fmt.Errorf("confirm: acked %v, %v", ok, err)
					}
				}
			}
		})
	}
	oOut, wOut, err := r.alternate(ctx, "bridge.rabbitmq.out", rounds, total, ours, raw)
	if err != nil {
		return nil, err
	}

	// Inbound: the queue is filled before each side, which then stores every
	// message in a JetStream stream (one worker, prefetch bridgePrefetch),
	// acking each to RabbitMQ after JetStream acked it.
	inName, inSubject, inDone, err := r.inboundStream(ctx, e)
	if err != nil {
		return nil, err
	}
	defer inDone()
	fill := func(tag string) error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if err := ch.Confirm(false); err != nil {
			return err
		}
		for first := 0; first < total; first += bridgeBatch {
			confs := make([]*amqp.DeferredConfirmation, 0, bridgeBatch)
			for i := first; i < min(first+bridgeBatch, total); i++ {
				c, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, "lxbench.in", false, false, amqp.Publishing{
					MessageId: tag + "-" + strconv.Itoa(i), Headers: table, DeliveryMode: amqp.Persistent, Body: r.body,
				})
				if err != nil {
					return err
				}
				confs = append(confs, c)
			}
			for _, c := range confs {
				if ok, err := c.WaitContext(ctx); err != nil || !ok {
					return fmt.Errorf("confirm: acked %v, %v", ok, err)
				}
			}
		}
		return nil
	}
	var oIn, wIn []float64
	for i := -1; i < rounds; i++ {
		for _, side := range sidesOf(i) {
			if err := fill(fmt.Sprintf("%s-%d", side, i)); err != nil {
				return nil, err
			}
			if err := r.purge(ctx, e, inName); err != nil {
				return nil, err
			}
			t := time.Now()
			if side == "ours" {
				err = r.rabbitInOurs(ctx, e, queue, inSubject, inName, total)
			} else {
				err = r.rabbitInRaw(ctx, e, conn, queue, inSubject, inName, total)
			}
			if err != nil {
				return nil, fmt.Errorf("bridge.rabbitmq.in, %s round %d: %w", side, i+1, err)
			}
			if i >= 0 {
				rate := float64(total) / time.Since(t).Seconds()
				if side == "ours" {
					oIn = append(oIn, rate)
				} else {
					wIn = append(wIn, rate)
				}
				r.progress("bridge.rabbitmq.in: round %d %s %.0f msgs/s", i+1, side, rate)
			}
			if err := purgeQueue(); err != nil {
				return nil, err
			}
		}
	}
	return []Figure{
		{Name: "bridge.rabbitmq.out", Ours: median(oOut), Raw: median(wOut), Ratio: pairedRatio(oOut, wOut), Unit: "msgs/s", Target: ">= 0.80",
			Note: fmt.Sprintf("%d preloaded events, JetStream to RabbitMQ 3 with publisher confirms, persistent, %d-byte bodies; ours: bridges.Outbound with %d workers, batches of %d, mandatory publishing, acking JetStream after each confirm; raw: %d goroutines publishing the same bodies, headers and routing keys in batches of %d with confirms, not reading JetStream; median of %d alternating rounds",
				total, len(r.body), bridgeWorkers, bridgeBatch, bridgeWorkers, bridgeBatch, rounds)},
		{Name: "bridge.rabbitmq.in", Ours: median(oIn), Raw: median(wIn), Ratio: pairedRatio(oIn, wIn), Unit: "msgs/s", Target: ">= 0.80",
			Note: fmt.Sprintf("%d messages in a RabbitMQ queue to a JetStream stream, consumed with manual acks and prefetch %d, stored with Nats-Msg-Id, each acked to RabbitMQ after JetStream acked it; ours: bridges.Inbound with one worker, which publishes up to %d at once and acks them in order as JetStream acks them; raw: consume, a synchronous JetStream publish, the ack, one message at a time; median of %d alternating rounds",
				total, bridgePrefetch, 100, rounds)},
	}, nil
}

func sidesOf(round int) []string {
	if round%2 != 0 {
		return []string{"raw", "ours"}
	}
	return []string{"ours", "raw"}
}

func declare(ch *amqp.Channel, t rabbitmq.Topology) error {
	if err := ch.ExchangeDeclare(t.Exchange, "topic", false, true, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(t.Queue, true, false, false, false, nil); err != nil {
		return err
	}
	return ch.QueueBind(t.Queue, t.BindingKey, t.Exchange, false, nil)
}

func (r *runner) rabbitInOurs(ctx context.Context, e *env, queue, subject, stream string, total int) error {
	sub, err := rabbitmq.NewSubscriber(rabbitmq.SubscriberOptions{Queue: queue, Prefetch: bridgePrefetch, Logger: r.log})
	if err != nil {
		return err
	}
	in, err := bridges.NewInbound(ctx, e.js, sub, bridges.InboundOptions{Name: "lxbench-rmq-in", Subject: subject, Logger: r.log})
	if err != nil {
		return err
	}
	defer func() { _ = in.Stop(context.WithoutCancel(ctx)) }()
	return waitCount(ctx, total, streamCount(ctx, e.js, stream))
}

func (r *runner) rabbitInRaw(ctx context.Context, e *env, conn *amqp.Connection, queue, subject, stream string, total int) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(bridgePrefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for n := 0; n < total; n++ {
		var d amqp.Delivery
		select {
		case d = <-deliveries:
		case <-ctx.Done():
			return ctx.Err()
		}
		h := nats.Header{nats.MsgIdHdr: {"raw:" + d.MessageId}}
		for k, v := range d.Headers {
			if s, ok := v.(string); ok {
				h[k] = []string{s}
			}
		}
		if _, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: d.Body}); err != nil {
			return err
		}
		if err := d.Ack(false); err != nil {
			return err
		}
	}
	return waitCount(ctx, total, streamCount(ctx, e.js, stream))
}

// parallel runs f on n goroutines and returns the first error.
func parallel(n int, f func() error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runOutbound moves the store's events to pub through an outbound bridge
// named name until all total are acknowledged, then stops it.
func (r *runner) runOutbound(ctx context.Context, e *env, st *lxjs.EventStore, pub bridges.Publisher, name string, total int) error {
	out, err := bridges.NewOutbound(ctx, e.js, pub, bridges.OutboundOptions{
		Name: name, Stream: st.StreamName(), SubjectPrefix: st.SubjectPrefix(), Workers: bridgeWorkers, BatchSize: bridgeBatch,
		MaxAckPending: 2 * bridgeWorkers * bridgeBatch * 2, Logger: r.log,
	})
	if err != nil {
		return err
	}
	defer func() { _ = out.Stop(context.WithoutCancel(ctx)) }()
	return waitCount(ctx, total, consumerDone(ctx, e.js, st.StreamName(), name))
}
