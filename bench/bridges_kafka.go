package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/bridges/kafka"
)

// bridgeKafka measures bridge.kafka.out and .in on an in-process kfake
// cluster of three brokers.
func (r *runner) bridgeKafka(ctx context.Context, e *env) ([]Figure, error) {
	total, rounds := r.bridgeSize()
	kc, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.DefaultNumPartitions(3), kfake.AllowAutoTopicCreation())
	if err != nil {
		return nil, err
	}
	defer kc.Close()
	seeds := kc.ListenAddrs()
	st, done, err := r.newStore(ctx, e, jetstream.FileStorage)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := r.preload(ctx, e, st, "bridge.kafka.out", total); err != nil {
		return nil, err
	}
	hdr, subject, err := eventHeaders(ctx, e, st)
	if err != nil {
		return nil, err
	}
	var recHeaders []kgo.RecordHeader
	for k, v := range hdr {
		if len(v) > 0 && !strings.HasPrefix(k, "Nats-") {
			recHeaders = append(recHeaders, kgo.RecordHeader{Key: k, Value: []byte(v[0])})
		}
	}
	topic := func(side string, round int) string { return fmt.Sprintf("lxbench-%s-%s-%d", r.runID, side, round) }
	for i := 0; i <= rounds; i++ {
		for _, side := range []string{"ours", "raw", "ourspipe", "rawpipe"} {
			if err := createTopic(ctx, seeds, topic(side, i)); err != nil {
				return nil, err
			}
		}
	}

	oursTo := func(side string) func(ctx context.Context, round int) error {
		return func(ctx context.Context, round int) error {
			name := fmt.Sprintf("lxbench-kafka-%s-%d", side, round)
			defer func() { _ = e.js.DeleteConsumer(context.WithoutCancel(ctx), st.StreamName(), name) }()
			pub, err := kafka.NewPublisher(kafka.PublisherOptions{Brokers: seeds, Topic: topic(side, round), Logger: r.log})
			if err != nil {
				return err
			}
			defer pub.Close()
			return r.runOutbound(ctx, e, st, pub, name, total)
		}
	}
	raw := func(ctx context.Context, round int) error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic("raw", round)), kgo.RequiredAcks(kgo.AllISRAcks()))
		if err != nil {
			return err
		}
		defer cl.Close()
		var next atomic.Int64
		return parallel(bridgeWorkers, func() error {
			for {
				first := int(next.Add(bridgeBatch)) - bridgeBatch
				if first >= total {
					return nil
				}
				recs := make([]*kgo.Record, 0, bridgeBatch)
				for i := first; i < min(first+bridgeBatch, total); i++ {
					recs = append(recs, &kgo.Record{Key: []byte(subject + strconv.Itoa(i%(total/1000+1))), Value: r.body, Headers: recHeaders})
				}
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					return err
				}
			}
		})
	}
	oOut, wOut, err := r.alternate(ctx, "bridge.kafka.out", rounds, total, oursTo("ours"), raw)
	if err != nil {
		return nil, err
	}
	// The same pipeline written raw: a durable consumer, messages spread
	// over the workers by subject, ProduceSync per batch, then the acks.
	// It tells the bridge's own cost apart from what reading JetStream
	// costs on these two cores.
	pipeline := func(ctx context.Context, round int) error {
		name := fmt.Sprintf("lxbench-kafka-raw-%d", round)
		defer func() { _ = e.js.DeleteConsumer(context.WithoutCancel(ctx), st.StreamName(), name) }()
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic("rawpipe", round)), kgo.RequiredAcks(kgo.AllISRAcks()))
		if err != nil {
			return err
		}
		defer cl.Close()
		stream, err := e.js.Stream(ctx, st.StreamName())
		if err != nil {
			return err
		}
		cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 2 * bridgeWorkers * bridgeBatch * 2})
		if err != nil {
			return err
		}
		queues := make([]chan jetstream.Msg, bridgeWorkers)
		var wg sync.WaitGroup
		for i := range queues {
			q := make(chan jetstream.Msg, bridgeBatch)
			queues[i] = q
			wg.Go(func() {
				batch := make([]jetstream.Msg, 0, bridgeBatch)
				for m := range q {
					batch = append(batch[:0], m)
				more:
					for len(batch) < bridgeBatch {
						select {
						case m, ok := <-q:
							if !ok {
								break more
							}
							batch = append(batch, m)
						default:
							break more
						}
					}
					recs := make([]*kgo.Record, len(batch))
					for i, m := range batch {
						rec := &kgo.Record{Key: []byte(m.Subject()), Value: m.Data()}
						for k, v := range m.Headers() {
							if !strings.HasPrefix(k, "Nats-") && len(v) > 0 {
								rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v[0])})
							}
						}
						recs[i] = rec
					}
					if cl.ProduceSync(ctx, recs...).FirstErr() == nil {
						for _, m := range batch {
							_ = m.Ack()
						}
					}
				}
			})
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			queues[int(fnv32(m.Subject())%bridgeWorkers)] <- m
		}, jetstream.PullMaxMessages(2*bridgeBatch*bridgeWorkers))
		if err != nil {
			return err
		}
		err = waitCount(ctx, total, consumerDone(ctx, e.js, st.StreamName(), name))
		cc.Drain()
		<-cc.Closed()
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
		return err
	}
	oPipe, wPipe, err := r.alternate(ctx, "bridge.kafka.out/pipeline", rounds, total, oursTo("ourspipe"), pipeline)
	if err != nil {
		return nil, err
	}

	// Inbound: each side reads a topic ours filled in the outbound rounds.
	inName, inSubject, inDone, err := r.inboundStream(ctx, e)
	if err != nil {
		return nil, err
	}
	defer inDone()
	var oIn, wIn []float64
	for i := -1; i < rounds; i++ {
		for _, side := range sidesOf(i) {
			if err := r.purge(ctx, e, inName); err != nil {
				return nil, err
			}
			src := topic("ours", i+1)
			group := fmt.Sprintf("lxbench-%s-%d", side, i+1)
			t := time.Now()
			if side == "ours" {
				err = r.kafkaInOurs(ctx, e, seeds, src, group, inSubject, inName, total)
			} else {
				err = r.kafkaInRaw(ctx, e, seeds, src, group, inSubject, inName, total)
			}
			if err != nil {
				return nil, fmt.Errorf("bridge.kafka.in, %s round %d: %w", side, i+1, err)
			}
			if i >= 0 {
				rate := float64(total) / time.Since(t).Seconds()
				if side == "ours" {
					oIn = append(oIn, rate)
				} else {
					wIn = append(wIn, rate)
				}
				r.progress("bridge.kafka.in: round %d %s %.0f msgs/s", i+1, side, rate)
			}
		}
	}
	return []Figure{
		{Name: "bridge.kafka.out", Ours: median(oOut), Raw: median(wOut), Ratio: pairedRatio(oOut, wOut), Unit: "msgs/s", Target: ">= 0.80",
			Note: fmt.Sprintf("%d preloaded events, JetStream to kfake (three brokers in this process), idempotent producer, acks=all, keyed by aggregate; ours: bridges.Outbound with %d workers, batches of %d, acking JetStream after each batch; raw: %d goroutines calling ProduceSync with batches of %d, not reading JetStream; kfake in this process takes produce requests faster than one durable consumer with acks delivers messages on these cores (handler.durable's raw side), so this ratio measures JetStream's consume cost, and bridge.kafka.out/pipeline the bridge's own; median of %d alternating rounds",
				total, bridgeWorkers, bridgeBatch, bridgeWorkers, bridgeBatch, rounds)},
		{Name: "bridge.kafka.out/pipeline", Ours: median(oPipe), Raw: median(wPipe), Ratio: pairedRatio(oPipe, wPipe), Unit: "msgs/s", Target: ">= 0.80",
			Note: fmt.Sprintf("as bridge.kafka.out, but raw is the same pipeline written on nats.go and franz-go: a durable consumer (PullMaxMessages %d), messages spread over %d goroutines by subject, ProduceSync per batch of up to %d, then the JetStream acks; median of %d alternating rounds",
				2*bridgeBatch*bridgeWorkers, bridgeWorkers, bridgeBatch, rounds)},
		{Name: "bridge.kafka.in", Ours: median(oIn), Raw: median(wIn), Ratio: pairedRatio(oIn, wIn), Unit: "msgs/s", Target: ">= 0.80",
			Note: fmt.Sprintf("%d records of a kfake topic to a JetStream stream with Nats-Msg-Id, in a consumer group, offsets committed every 200ms past what JetStream acked; ours: bridges.Inbound with one worker, which publishes up to %d at once and acks them in order as JetStream acks them; raw: PollFetches, then a synchronous PublishMsg per record; median of %d alternating rounds",
				total, 100, rounds)},
	}, nil
}

func (r *runner) kafkaInOurs(ctx context.Context, e *env, seeds []string, topic, group, subject, stream string, total int) error {
	sub, err := kafka.NewSubscriber(kafka.SubscriberOptions{Brokers: seeds, Topic: topic, Group: group, Logger: r.log})
	if err != nil {
		return err
	}
	in, err := bridges.NewInbound(ctx, e.js, sub, bridges.InboundOptions{Name: "lxbench-kafka-in", Subject: subject, Logger: r.log})
	if err != nil {
		return err
	}
	defer func() { _ = in.Stop(context.WithoutCancel(ctx)) }()
	return waitCount(ctx, total, streamCount(ctx, e.js, stream))
}

func (r *runner) kafkaInRaw(ctx context.Context, e *env, seeds []string, topic, group, subject, stream string, total int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	lastCommit := time.Now()
	for n := 0; n < total; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var failed error
		fs.EachRecord(func(rec *kgo.Record) {
			if failed != nil {
				return
			}
			h := nats.Header{nats.MsgIdHdr: {"raw:" + rec.Topic + "-" + strconv.Itoa(int(rec.Partition)) + "-" + strconv.FormatInt(rec.Offset, 10)}}
			for _, rh := range rec.Headers {
				h[rh.Key] = []string{string(rh.Value)}
			}
			if _, err := e.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Header: h, Data: rec.Value}); err != nil {
				failed = err
				return
			}
			n++
		})
		if failed != nil {
			return failed
		}
		if time.Since(lastCommit) >= 200*time.Millisecond || n >= total { // ours commits every 200ms
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				return err
			}
			lastCommit = time.Now()
		}
	}
	return waitCount(ctx, total, streamCount(ctx, e.js, stream))
}

// createTopic makes a topic of three partitions, three replicas.
func createTopic(ctx context.Context, seeds []string, name string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	t := kmsg.NewCreateTopicsRequestTopic()
	t.Topic, t.NumPartitions, t.ReplicationFactor = name, 3, 3
	req.Topics, req.TimeoutMillis = append(req.Topics, t), 10_000
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	return nil
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
