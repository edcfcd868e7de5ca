package kafka

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// SubscriberOptions configure a Subscriber. Brokers, Topic and Group are
// required.
type SubscriberOptions struct {
	Brokers []string
	Topic   string
	Group   string
	// CommitInterval spaces the commits of acked offsets. Default 200ms;
	// a rebalance and Close commit at once.
	CommitInterval time.Duration
	// Options are more kgo options (TLS, SASL, session timeout, ...),
	// applied last.
	Options []kgo.Opt
	Logger  *slog.Logger
}

// Subscriber consumes a topic in a consumer group, committing offsets
// only past acked records.
type Subscriber struct {
	opts SubscriberOptions
	cl   *kgo.Client
	log  *slog.Logger

	mu      sync.Mutex
	parts   map[int32]*partition // assigned partitions
	out     chan *bridges.Delivery
	ctx     context.Context
	outShut bool           // out is about to close: no more redeliveries
	redoing sync.WaitGroup // redeliveries sending to out
	gens    int            // generations handed to assigned partitions

	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// partition tracks one assigned partition's delivered records.
type partition struct {
	gen     int     // grows when the partition is revoked: acks of older deliveries are void
	pending []int64 // delivered offsets not yet past the commit point, ascending
	acked   map[int64]bool
	commit  int64 // offset to commit next (-1: nothing new)
	epoch   int32
}

// NewSubscriber returns a subscriber; it joins the group when Subscribe
// is called.
func NewSubscriber(opts SubscriberOptions) (*Subscriber, error) {
	if len(opts.Brokers) == 0 || opts.Topic == "" || opts.Group == "" {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "kafka subscriber: brokers %v, topic %q, group %q: name at least one broker (host:port), the topic and the consumer group", opts.Brokers, opts.Topic, opts.Group)
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = 200 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Subscriber{opts: opts, log: opts.Logger.With("topic", opts.Topic, "group", opts.Group), parts: map[int32]*partition{}, done: make(chan struct{})}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ConsumerGroup(opts.Group),
		kgo.ConsumeTopics(opts.Topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.WithLogger(logger(opts.Logger)),
	}, opts.Options...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "kafka subscriber for topic %q: %w", opts.Topic, err)
	}
	s.cl = cl
	return s, nil
}

// Ping returns nil once a broker answers a metadata request, without
// joining the group: the boot check of bridgeconfig uses it.
func (s *Subscriber) Ping(ctx context.Context) error {
	return ping(ctx, s.cl, s.opts.Brokers)
}

// Subscribe polls until ctx ends or Close.
func (s *Subscriber) Subscribe(ctx context.Context) (<-chan *bridges.Delivery, error) {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *bridges.Delivery)
	s.mu.Lock()
	s.out, s.ctx = out, ctx
	s.mu.Unlock()
	s.wg.Go(func() {
		select {
		case <-s.done:
		case <-ctx.Done():
		}
		cancel()
	})
	s.wg.Go(func() {
		t := time.NewTicker(s.opts.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.commit(ctx, nil)
			}
		}
	})
	s.wg.Go(func() {
		defer func() {
			s.mu.Lock()
			s.outShut = true
			s.mu.Unlock()
			s.redoing.Wait()
			close(out)
		}()
		for {
			fetches := s.cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fetches.EachError(func(topic string, p int32, err error) {
				s.log.Warn("kafka: fetch failed; franz-go retries", "partition", p, "err", err)
			})
			for it := fetches.RecordIter(); !it.Done(); {
				r := it.Next()
				d, ok := s.track(r)
				if !ok {
					continue
				}
				select {
				case out <- d:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	return out, nil
}

// track records a delivery and returns it; false when the partition was
// revoked since the fetch.
func (s *Subscriber) track(r *kgo.Record) (*bridges.Delivery, bool) {
	s.mu.Lock()
	p := s.parts[r.Partition]
	if p == nil {
		s.mu.Unlock()
		return nil, false // revoked after the fetch: its new owner reads it
	}
	p.pending = append(p.pending, r.Offset)
	gen := p.gen
	s.mu.Unlock()
	return s.delivery(r, gen), true
}

func (s *Subscriber) delivery(r *kgo.Record, gen int) *bridges.Delivery {
	m := bridges.Message{
		ID:      r.Topic + "-" + strconv.Itoa(int(r.Partition)) + "-" + strconv.FormatInt(r.Offset, 10),
		Key:     string(r.Key),
		Subject: r.Topic,
		Data:    r.Value,
		Header:  make(bridges.Header, len(r.Headers)),
	}
	for _, h := range r.Headers {
		m.Header[h.Key] = string(h.Value)
	}
	return bridges.NewDelivery(m,
		func(context.Context) error { return s.ack(r, gen) },
		func(context.Context) error {
			// Kafka cannot hand one record back: deliver it again from here.
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.outShut {
				return nil
			}
			s.redoing.Go(func() { s.redeliver(r, gen) })
			return nil
		})
}

// redeliver hands out a nacked record again, unless its partition was
// revoked meanwhile (its new owner reads it from the committed offset).
func (s *Subscriber) redeliver(r *kgo.Record, gen int) {
	s.mu.Lock()
	p := s.parts[r.Partition]
	stale := p == nil || p.gen != gen
	s.mu.Unlock()
	if stale {
		return
	}
	s.mu.Lock()
	out, ctx := s.out, s.ctx
	s.mu.Unlock()
	select {
	case out <- s.delivery(r, gen):
	case <-ctx.Done():
	}
}

func (s *Subscriber) ack(r *kgo.Record, gen int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[r.Partition]
	if p == nil || p.gen != gen {
		return platform.Errorf(platform.CodeBridgeDelivery, "kafka topic %q partition %d offset %d: the partition moved to another consumer, which delivers the record again", r.Topic, r.Partition, r.Offset)
	}
	p.acked[r.Offset] = true
	for len(p.pending) > 0 && p.acked[p.pending[0]] {
		delete(p.acked, p.pending[0])
		p.commit, p.epoch = p.pending[0]+1, r.LeaderEpoch
		p.pending = p.pending[1:]
	}
	return nil
}

// commit commits the acked prefix of the given partitions (nil: all).
func (s *Subscriber) commit(ctx context.Context, only []int32) {
	s.mu.Lock()
	offsets := map[int32]kgo.EpochOffset{}
	for n, p := range s.parts {
		if only != nil && !contains(only, n) {
			continue
		}
		if p.commit >= 0 {
			offsets[n] = kgo.EpochOffset{Epoch: p.epoch, Offset: p.commit}
			p.commit = -1
		}
	}
	s.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.opts.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				s.log.Warn("kafka: commit failed; the records after the last commit will come again", "err", err)
			}
		})
}

func contains(ps []int32, p int32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// assigned starts tracking the partitions given to this member.
func (s *Subscriber) assigned(_ context.Context, _ *kgo.Client, got map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range got[s.opts.Topic] {
		s.gens++
		s.parts[n] = &partition{gen: s.gens, acked: map[int64]bool{}, commit: -1}
	}
}

// revoked commits what was acked on the partitions leaving this member,
// then forgets them.
func (s *Subscriber) revoked(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	ps := lost[s.opts.Topic]
	s.commit(ctx, ps)
	s.forget(ps)
}

// lost forgets partitions without committing: the group has moved on.
func (s *Subscriber) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.forget(lost[s.opts.Topic])
}

func (s *Subscriber) forget(ps []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range ps {
		delete(s.parts, n)
	}
}

// Close commits what was acked, leaves the group and closes the client.
func (s *Subscriber) Close() error {
	s.once.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.commit(ctx, nil)
		cancel()
		s.cl.Close() // leaving the group revokes, which commits once more
		s.wg.Wait()
	})
	return nil
}
