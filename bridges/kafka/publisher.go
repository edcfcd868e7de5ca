package kafka

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// PublisherOptions configure a Publisher. Brokers and Topic are required.
type PublisherOptions struct {
	Brokers []string
	Topic   string
	// Options are more kgo options (TLS, SASL, linger, ...), applied last.
	Options []kgo.Opt
	Logger  *slog.Logger
}

// Publisher produces to one topic.
type Publisher struct {
	cl      *kgo.Client
	topic   string
	brokers []string
	closed  atomic.Bool
}

// NewPublisher returns a publisher; it connects on first use.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	if len(opts.Brokers) == 0 || opts.Topic == "" {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "kafka publisher: brokers %v, topic %q: name at least one broker (host:port) and the topic", opts.Brokers, opts.Topic)
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.DefaultProduceTopic(opts.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.WithLogger(logger(opts.Logger)),
	}, opts.Options...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "kafka publisher for topic %q: %w", opts.Topic, err)
	}
	return &Publisher{cl: cl, topic: opts.Topic, brokers: opts.Brokers}, nil
}

// Publish produces the records and waits until each is acknowledged by
// all in-sync replicas, or ctx ends.
func (p *Publisher) Publish(ctx context.Context, msgs ...*bridges.Message) error {
	if p.closed.Load() {
		return platform.Errorf(platform.CodeBridgeDelivery, "kafka topic %q: the publisher is closed", p.topic)
	}
	recs := make([]*kgo.Record, len(msgs))
	index := make(map[*kgo.Record]int, len(msgs))
	for i, m := range msgs {
		r := &kgo.Record{Topic: p.topic, Value: m.Data, Context: ctx}
		if m.Key != "" {
			r.Key = []byte(m.Key)
		}
		for k, v := range m.Header {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
		if m.ID != "" {
			// Kafka has no message ID of its own: the ID travels as a header.
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderID, Value: []byte(m.ID)})
		}
		recs[i], index[r] = r, i
	}
	errs := make([]error, len(msgs))
	failed := false
	for _, res := range p.cl.ProduceSync(ctx, recs...) {
		if res.Err == nil {
			continue
		}
		failed = true
		i := index[res.Record]
		err := platform.Errorf(platform.CodeBridgeDelivery, "kafka topic %q: produce message %q: %w", p.topic, msgs[i].ID, res.Err)
		if refused(res.Err) {
			err = bridges.Refused(err)
		}
		errs[i] = err
	}
	if failed {
		return &bridges.BatchError{Errs: errs}
	}
	return nil
}

// Ping returns nil once a broker answers a metadata request, without
// producing anything: the boot check of bridgeconfig uses it, so that an
// unreachable cluster fails the start instead of the first publish.
func (p *Publisher) Ping(ctx context.Context) error {
	if p.closed.Load() {
		return platform.Errorf(platform.CodeBridgeDelivery, "kafka topic %q: the publisher is closed", p.topic)
	}
	return ping(ctx, p.cl, p.brokers)
}

// ping asks the client's brokers for metadata.
func ping(ctx context.Context, cl *kgo.Client, brokers []string) error {
	if err := cl.Ping(ctx); err != nil {
		return platform.Errorf(platform.CodeBridgeDelivery, "kafka brokers %s: none answers: %w: check the addresses and that the cluster runs", strings.Join(brokers, ","), err)
	}
	return nil
}

// CloudEventsPrefix is the Kafka binding's spelling of CloudEvents
// headers (ce_id, ce_type, ...); HTTP's "ce-" is for webhooks.
func (p *Publisher) CloudEventsPrefix() string { return "ce_" }

// HeaderID carries the message's ID on a record; the subscriber reads it
// back only as a header, and takes topic-partition-offset as the ID.
const HeaderID = "Lx-Bridge-Message-Id"

func refused(err error) bool {
	for _, e := range []error{kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidRecord, kerr.InvalidTopicException, kerr.TopicAuthorizationFailed, kerr.InvalidRequiredAcks} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Close flushes nothing more and closes the client.
func (p *Publisher) Close() error {
	if !p.closed.Swap(true) {
		p.cl.Close()
	}
	return nil
}

// logger adapts slog for kgo, at warn and above: franz-go's info lines
// would flood a bridge's log.
func logger(l *slog.Logger) kgo.Logger {
	if l == nil {
		l = slog.Default()
	}
	return kgo.BasicLogger(slogWriter{l}, kgo.LogLevelWarn, nil)
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	w.l.Warn("kafka: " + strings.TrimSpace(string(b)))
	return len(b), nil
}
