package bridgeconfig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lexigram/events/bridges"
	_ "github.com/lexigram/events/bridges/azservicebus" // registers "azservicebus"
	_ "github.com/lexigram/events/bridges/kafka"        // registers "kafka"
	_ "github.com/lexigram/events/bridges/rabbitmq"     // registers "rabbitmq"
	_ "github.com/lexigram/events/bridges/webhook"      // registers "webhook"
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/platform"
)

// Options configure Start. The zero value works for a configuration whose
// bridges name their streams; bridges that read the event store need
// Store.
type Options struct {
	// Store is the event store's section: an outbound bridge with no
	// stream reads Store.Stream as events under Store.SubjectPrefix, and
	// streams created for inbound bridges take its replicas and storage.
	Store config.Store
	// Events is the event store inbound bridges with land_as: events
	// append to (the node's store; its registry decodes the messages).
	// nil: such a bridge does not start.
	Events bridges.EventAppender
	// Metrics counts for every bridge; nil makes one, see Collectors.
	Metrics *bridges.Metrics
	Logger  *slog.Logger // default slog.Default()
}

// Set is the running bridges of one configuration.
type Set struct {
	js      jetstream.JetStream
	metrics *bridges.Metrics
	log     *slog.Logger
	running []*running

	stopOnce sync.Once
	stopErr  error
}

// running is one started bridge.
type running struct {
	cfg    config.Bridge
	label  string
	stream string // outbound: the stream it reads
	out    *bridges.Outbound
	pub    bridges.Publisher // outbound: closed once out has stopped
	in     *bridges.Inbound
}

// Check reports the bridges whose broker no linked adapter provides, or
// that cannot move messages their way, before anything is opened.
func Check(bs []config.Bridge) error {
	known := bridges.Brokers()
	var errs []error
	for i, b := range bs {
		if !slices.Contains(known, b.Broker) {
			errs = append(errs, platform.Errorf(platform.CodeInvalidArgument,
				"%s.broker: %q is not a broker this program has: use one of %s", b.Label(i), b.Broker, strings.Join(known, ", ")))
		}
	}
	return errors.Join(errs...)
}

// Start starts every bridge in order: it opens the broker's publisher or
// subscriber, waits up to the bridge's connect_timeout for the broker to
// answer, and starts the runner. When one fails, those started are stopped
// again and the error names the bridge, its settings redacted.
func Start(ctx context.Context, js jetstream.JetStream, bs []config.Bridge, opts Options) (_ *Set, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = bridges.NewMetrics()
	}
	s := &Set{js: js, metrics: opts.Metrics, log: opts.Logger}
	if err := Check(bs); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = s.Stop(context.WithoutCancel(ctx))
		}
	}()
	for i, b := range bs {
		r, err := start(ctx, js, i, b, opts)
		if err != nil {
			return nil, err
		}
		s.running = append(s.running, r)
	}
	return s, nil
}

func start(ctx context.Context, js jetstream.JetStream, i int, b config.Bridge, opts Options) (*running, error) {
	r := &running{cfg: b, label: b.Label(i)}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{r.label}, args...)...)
	}
	format, err := bridges.ParseFormat(b.Format)
	if err != nil {
		return nil, fail("format: %w", err)
	}
	backoff := bridges.Backoff{Min: b.Backoff.Min, Max: b.Backoff.Max}
	dead := bridges.DeadLetterOptions{Subject: b.DeadLetterSubject}
	settings := bridges.Settings(b.Settings)
	log := opts.Logger.With("broker", b.Broker)
	switch b.Direction {
	case config.BridgeOutbound:
		pub, err := bridges.NewPublisher(ctx, b.Broker, settings)
		if err != nil {
			return nil, fail("%w", err)
		}
		if err := probePublisher(ctx, pub, b.ConnectTimeout); err != nil {
			_ = pub.Close()
			return nil, fail("%s does not answer within %v (connect_timeout): %w: check the settings (%s) and that the broker runs", b.Broker, b.ConnectTimeout, err, shownSettings(b))
		}
		o := bridges.OutboundOptions{
			Name: b.Name, Stream: b.Stream, Subjects: b.Subjects, FromNow: b.FromNow,
			Format: format, Source: b.Source, JSON: b.JSON,
			Workers: b.Workers, BatchSize: b.BatchSize, AckWait: b.AckWait, MaxAckPending: b.MaxAckPending,
			PublishTimeout: b.PublishTimeout, Backoff: backoff, DeadLetter: dead, Metrics: opts.Metrics, Logger: log,
		}
		if b.ReadsEventStore(opts.Store) {
			o.Stream, o.SubjectPrefix = opts.Store.Stream, opts.Store.SubjectPrefix
			o.AggregateTypes, o.EventTypes = b.AggregateTypes, b.EventTypes
		}
		r.stream = o.Stream
		if r.out, err = bridges.NewOutbound(ctx, js, pub, o); err != nil {
			_ = pub.Close()
			return nil, fail("%w", err)
		}
		r.pub = pub
	case config.BridgeInbound:
		var events *bridges.InboundEvents
		if b.LandsAsEvents() {
			if opts.Events == nil {
				return nil, fail("land_as: events needs the event store, and this program gave the bridges none: run the bridge in the application's node (node.Run), whose store knows the event types")
			}
			e := b.Events
			events = &bridges.InboundEvents{Store: opts.Events, TypeHeader: e.TypeHeader, Types: e.Types, AggregateType: e.AggregateType,
				AggregateTypeHeader: e.AggregateTypeHeader, AggregateIDHeader: e.AggregateIDHeader, AggregateIDField: e.AggregateIDField}
		} else if b.Stream != "" {
			if err := ensureStream(ctx, js, b, opts.Store); err != nil {
				return nil, fail("%w", err)
			}
		}
		sub, err := bridges.NewSubscriber(ctx, b.Broker, settings)
		if err != nil {
			return nil, fail("%w", err)
		}
		if p, ok := sub.(pinger); ok {
			if err := probe(ctx, p.Ping, b.ConnectTimeout); err != nil {
				_ = sub.Close()
				return nil, fail("%s does not answer within %v (connect_timeout): %w: check the settings (%s) and that the broker runs", b.Broker, b.ConnectTimeout, err, shownSettings(b))
			}
		}
		if r.in, err = bridges.NewInbound(ctx, js, sub, bridges.InboundOptions{
			Name: b.Name, Subject: b.Subject, Events: events, Format: format,
			Workers: b.Workers, BatchSize: b.BatchSize, PublishTimeout: b.PublishTimeout,
			Backoff: backoff, DeadLetter: dead, Metrics: opts.Metrics, Logger: log,
		}); err != nil {
			_ = sub.Close()
			return nil, fail("%w", err)
		}
		if !waitConnected(ctx, r.in.Connected, b.ConnectTimeout) {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.StopTimeout)
			_ = r.in.Stop(stopCtx)
			cancel()
			return nil, fail("%s did not connect within %v (connect_timeout; the log above has the cause): check the settings (%s) and that the broker runs", b.Broker, b.ConnectTimeout, shownSettings(b))
		}
	default:
		return nil, fail("direction %q: use %q or %q", b.Direction, config.BridgeOutbound, config.BridgeInbound)
	}
	return r, nil
}

// shownSettings lists the bridge's settings for an error message, secrets
// redacted.
func shownSettings(b config.Bridge) string {
	shown := b.RedactedSettings()
	if len(shown) == 0 {
		return "none: the adapter's defaults"
	}
	keys := make([]string, 0, len(shown))
	for k := range shown {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, shown[k])
	}
	return strings.Join(parts, " ")
}

// ensureStream makes the inbound bridge's stream, capturing its subject,
// when there is none; an existing stream must already capture it.
func ensureStream(ctx context.Context, js jetstream.JetStream, b config.Bridge, store config.Store) error {
	_, err := js.Stream(ctx, b.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		storage := jetstream.FileStorage
		if store.Storage == "memory" {
			storage = jetstream.MemoryStorage
		}
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        b.Stream,
			Description: "lexigram bridge " + b.Name + ": messages from " + b.Broker,
			Subjects:    []string{b.Subject},
			Storage:     storage,
			Replicas:    max(store.Replicas, 1),
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // made by another process meanwhile
		}
		if err != nil {
			return platform.Errorf(platform.CodeStoreUnavailable, "create stream %s for subject %s: %w", b.Stream, b.Subject, err)
		}
		return nil
	}
	if err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "stream %s: %w", b.Stream, err)
	}
	got, err := js.StreamNameBySubject(ctx, b.Subject)
	if err != nil || got != b.Stream {
		return platform.Errorf(platform.CodeConfigConflict, "stream %s exists but does not capture subject %s (captured by %q): add the subject to the stream, or name the stream that captures it", b.Stream, b.Subject, got)
	}
	return nil
}

// Len is the number of running bridges.
func (s *Set) Len() int { return len(s.running) }

// Collectors are the bridges' metrics (see bridges.Metrics) and their lag.
func (s *Set) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics, newLagCollector(s)}
}

// Stop stops every bridge at once: each stops taking messages and
// finishes those in flight within its stop_timeout (or until ctx ends),
// then its publisher is closed. A bridge that could not finish in time
// leaves its messages to be delivered again, and Stop reports it. Stop
// returns once the NATS server has every ack sent, so that the caller
// may close the connection.
func (s *Set) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		errs := make([]error, len(s.running))
		var wg sync.WaitGroup
		for i, r := range s.running {
			wg.Go(func() { errs[i] = r.stop(ctx) })
		}
		wg.Wait()
		// Acks are sent without waiting for an answer: make sure the
		// server has them before the caller closes the connection.
		if len(s.running) > 0 {
			if err := s.js.Conn().FlushTimeout(5 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("bridges: send the last acks to NATS: %w: the messages they acknowledge are delivered again", err))
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

func (r *running) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StopTimeout)
	defer cancel()
	started := time.Now()
	var err error
	if r.out != nil {
		err = r.out.Stop(ctx)
		err = errors.Join(err, r.pub.Close())
	} else {
		err = r.in.Stop(ctx)
	}
	if err != nil {
		return fmt.Errorf("%s: stop after %v (stop_timeout %v): %w: messages not finished are delivered again when it runs next", r.label, time.Since(started).Round(time.Millisecond), r.cfg.StopTimeout, err)
	}
	return nil
}
