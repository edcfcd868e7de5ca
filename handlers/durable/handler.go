package durable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Store is what a durable handler needs of the event store:
// *jetstream.EventStore has it.
type Store interface {
	StreamName() string
	SubjectPrefix() string
	// DecodeAll appends to out the envelopes a stored message reads as,
	// upcast by the registry: one, the parts of an event split on read,
	// or the marker of a retired one. Its errors are
	// *platform.DecodeError.
	DecodeAll(subject string, position uint64, stored time.Time, h nats.Header, data []byte, out []platform.Envelope) ([]platform.Envelope, error)
	// Registry is the registry DecodeAll reads with.
	Registry() *platform.Registry
}

// Start is where a handler's consumer starts when it is first created.
// The zero value is FromBeginning.
type Start struct {
	policy jetstream.DeliverPolicy
	after  uint64
}

var (
	// FromBeginning delivers every stored event, then new ones.
	FromBeginning = Start{policy: jetstream.DeliverAllPolicy}
	// FromNow delivers only events stored after the consumer is created.
	FromNow = Start{policy: jetstream.DeliverNewPolicy}
)

// After delivers the events after a position (an Envelope.Position, the
// stream sequence), then new ones.
func After(position uint64) Start {
	return Start{policy: jetstream.DeliverByStartSequencePolicy, after: position}
}

func (s Start) String() string {
	switch s.policy {
	case jetstream.DeliverNewPolicy:
		return "from now"
	case jetstream.DeliverByStartSequencePolicy:
		return "after position " + strconv.FormatUint(s.after, 10)
	}
	return "from the beginning"
}

// Options configure a durable handler. The zero value works: every event
// of the store, from the beginning, one at a time, five deliveries with
// backoff 1s, 5s, 30s, 1m, then the DLQ.
type Options struct {
	// AggregateTypes restricts the consumer to these aggregates' subjects
	// (one consumer, one filter each). Empty: every aggregate.
	AggregateTypes []string
	// EventTypes are the event types the handler handles, by their
	// current names: what events read as after upcasting. Events that
	// cannot read as one of them are acknowledged without being decoded.
	// Empty: all.
	EventTypes []string
	// SkipUndecodable acknowledges an event that does not decode (its
	// type or schema version is not registered here, or its body is
	// corrupt), logs it and counts it (outcome "undecodable"), instead of
	// sending it to the DLQ, which the zero value does.
	SkipUndecodable bool
	// Start applies when the consumer is created. A consumer that exists
	// keeps its position: that is what makes it durable.
	Start Start
	// MaxDeliver bounds the deliveries of one event; the last failure
	// sends it to the DLQ. Default 5; at least 1.
	MaxDeliver int
	// Backoff is the delay before redelivery after the nth failure; the
	// last value repeats. Default 1s, 5s, 30s, 1m.
	Backoff []time.Duration
	// AckWait is how long the server waits for a handler that neither
	// succeeds nor fails (its process died) before redelivering. Default 30s.
	// A handler that runs longer keeps its event: every AckWait/2 the
	// worker tells the server it is still at work. AckWait must exceed the
	// time an event waits in this process's buffers (see Prefetch): past
	// it, the event is delivered again, possibly to another process, while
	// the first delivery is still pending.
	AckWait time.Duration
	// Concurrency is how many events this process handles at once.
	// Default 1: one by one in stream order, except that a failed event
	// is retried after the ones behind it (unless PerAggregateOrder).
	Concurrency int
	// PerAggregateOrder keeps each aggregate's events in order, failures
	// included: events are spread over the workers by subject, so
	// one aggregate's events always go to the same worker, and a failing
	// event is retried in place, holding back its aggregate's later events
	// (and, once that worker's short queue is full, the whole process:
	// keep the Backoff of ordered handlers short). Across processes,
	// combine it with Exclusive (see the package doc).
	PerAggregateOrder bool
	// Exclusive makes one process at a time receive the events (a
	// pinned_client priority group); the others stand by and take over
	// when it stops pulling for PinnedTTL.
	Exclusive bool
	PinnedTTL time.Duration // default 30s
	// MaxAckPending bounds the events delivered and not yet acknowledged,
	// across all processes. Default 1000.
	MaxAckPending int
	// Prefetch is how many events one process pulls ahead. Default 500.
	// Keep Prefetch times the handler's time per event well under AckWait.
	Prefetch int
	// DLQ receives dead-lettered events. Default: OpenDLQ with DLQOptions{}.
	DLQ     *DLQ
	Metrics *Metrics // nil: no metrics
	// TracerProvider, if set, gets a span per handler call. Either way the
	// handler's context continues the trace the event was stored with.
	// nil: no spans of this package, which keeps them off the hot path
	// (the global provider costs about 0.5µs a call even without an SDK);
	// the buses' tracing middleware wrapped around the handler works too.
	TracerProvider trace.TracerProvider
	Logger         *slog.Logger // default slog.Default()
}

// permanent marks an error that no retry can fix.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as one that retrying cannot fix: the handler's
// event goes to the DLQ at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err was marked Permanent, or says that the
// event cannot be decoded or its type is unknown.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p) || errors.Is(err, platform.ErrCorruptEvent) || errors.Is(err, platform.ErrUnknownEventType)
}

// priorityGroup is the priority group of Exclusive consumers.
const priorityGroup = "lexigram"

// Handler is a running durable handler.
type Handler struct {
	name    string
	fn      func(ctx context.Context, event platform.Envelope) error
	opts    Options
	log     *slog.Logger
	store   Store
	handles map[string]bool // nil: every type
	// On servers before 2.10, which take one filter subject: the
	// aggregate types and advisory subjects the consumers' filters could
	// not name (nil: the filters did).
	aggregates, advisories map[string]bool
	dlq                    *DLQ
	nc                     *nats.Conn
	cons                   jetstream.Consumer
	m                      *handlerMetrics
	tracer                 trace.Tracer // nil: no spans
	spanName               string

	ctx    context.Context // handler calls; cancelled when Stop gives up
	cancel context.CancelFunc

	stopping atomic.Bool
	stopped  chan struct{} // closed when Stop begins
	stopOnce sync.Once
	consumes []jetstream.ConsumeContext
	queues   []*workQueue // one shared by all workers, or one per worker with PerAggregateOrder
	workers  sync.WaitGroup
	done     chan struct{} // closed when everything has stopped
}

// New starts a durable handler named name on the store's events. The name
// is the JetStream consumer's name: every process that starts a handler
// with the same name shares its events. Stop it with Stop.
func New(ctx context.Context, js jetstream.JetStream, store Store, name string, handler func(ctx context.Context, event platform.Envelope) error, opts Options) (*Handler, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "durable handler %s: the handler function is nil", name)
	}
	opts, err := withDefaults(name, opts)
	if err != nil {
		return nil, err
	}
	prefix := store.SubjectPrefix()
	h := &Handler{
		name: name, fn: handler, opts: opts, log: opts.Logger.With("handler", name),
		store: store, nc: js.Conn(),
		done: make(chan struct{}), stopped: make(chan struct{}),
	}
	if len(opts.EventTypes) > 0 {
		h.handles = make(map[string]bool, len(opts.EventTypes))
		for _, t := range opts.EventTypes {
			h.handles[t] = true
		}
	}
	if h.dlq = opts.DLQ; h.dlq == nil {
		if h.dlq, err = OpenDLQ(ctx, js, store, DLQOptions{}); err != nil {
			return nil, err
		}
	}
	events, err := js.Stream(ctx, store.StreamName())
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "durable handler %s: look up stream %s: %w", name, store.StreamName(), err)
	}

	filters := []string{prefix + ".>"}
	if len(opts.AggregateTypes) > 0 {
		filters = filters[:0]
		for _, t := range opts.AggregateTypes {
			filters = append(filters, prefix+"."+t+".*")
		}
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "lexigram durable event handler " + name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opts.AckWait,
		MaxDeliver:    opts.MaxDeliver,
		MaxAckPending: opts.MaxAckPending,
		DeliverPolicy: opts.Start.policy,
	}
	if opts.Start.policy == jetstream.DeliverByStartSequencePolicy {
		cfg.OptStartSeq = opts.Start.after + 1
	}
	// Servers before 2.10 take one filter subject: they get the whole
	// store, and the handler acks the other aggregate types unhandled.
	multiFilter := lxjs.ServerAtLeast(js.Conn().ConnectedServerVersion(), 2, 10)
	switch {
	case len(filters) == 1:
		cfg.FilterSubject = filters[0]
	case multiFilter:
		cfg.FilterSubjects = filters
	default:
		cfg.FilterSubject = prefix + ".>"
		h.aggregates = make(map[string]bool, len(opts.AggregateTypes))
		for _, t := range opts.AggregateTypes {
			h.aggregates[t] = true
		}
	}
	if opts.Exclusive {
		cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
		cfg.PriorityGroups = []string{priorityGroup}
		cfg.PinnedTTL = opts.PinnedTTL
	}
	if h.cons, err = ensureConsumer(ctx, events, cfg, h.log); err != nil {
		return nil, err
	}
	// Replays wait on the DLQ stream; the consumer there has the same name.
	replayCfg := cfg
	replayCfg.Description = "lexigram DLQ replays for durable handler " + name
	replayCfg.FilterSubject, replayCfg.FilterSubjects = h.dlq.opts.SubjectPrefix+"."+name+".replay.*", nil
	replayCfg.DeliverPolicy, replayCfg.OptStartSeq = jetstream.DeliverAllPolicy, 0
	replays, err := ensureConsumer(ctx, h.dlq.stream, replayCfg, h.log)
	if err != nil {
		return nil, err
	}
	// Only advisories from now on: older ones were recorded by the
	// consumer's earlier life, and reading them again could bring back
	// entries someone discarded since.
	adv, err := js.Stream(ctx, h.dlq.advName)
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "durable handler %s: look up stream %s: %w", name, h.dlq.advName, err)
	}
	advCfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "lexigram DLQ safety net for durable handler " + name,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		MaxDeliver:    -1,
	}
	if advisories := slices.Concat(advisorySubjects(store.StreamName(), name), advisorySubjects(h.dlq.opts.Stream, name)); multiFilter {
		advCfg.FilterSubjects = advisories
	} else {
		// No filter: 2.9 takes only one that is within one of the
		// stream's subjects, and the four are within two.
		h.advisories = make(map[string]bool, len(advisories))
		for _, a := range advisories {
			h.advisories[a] = true
		}
	}
	advCons, err := ensureConsumer(ctx, adv, advCfg, h.log)
	if err != nil {
		return nil, err
	}
	if opts.TracerProvider != nil {
		h.tracer, h.spanName = opts.TracerProvider.Tracer("github.com/lexigram/events/handlers/durable"), "durable handler "+name
	}
	if opts.Metrics != nil {
		h.m = opts.Metrics.add(h)
	}

	h.ctx, h.cancel = context.WithCancel(context.WithoutCancel(ctx))
	// Even one worker runs apart from nats.go's callback goroutine: the
	// callback then only parses the delivery while the worker decodes,
	// handles and acks the one before, which measurably raises throughput.
	// Ordered workers get short queues: a retry in place holds its queue.
	n, size := 1, max(64, 2*opts.Concurrency)
	if opts.PerAggregateOrder {
		n, size = opts.Concurrency, 8
	}
	h.queues = make([]*workQueue, n)
	for i := range h.queues {
		h.queues[i] = newWorkQueue(size)
	}
	for i := range opts.Concurrency {
		q := h.queues[i%n]
		h.workers.Go(func() {
			hb := newHeartbeat(max(opts.AckWait/2, 500*time.Millisecond))
			defer hb.timer.Stop()
			for d, ok := q.pop(); ok; d, ok = q.pop() {
				h.handle(d, q, hb)
			}
		})
	}

	errs := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		switch {
		case h.stopping.Load():
		case errors.Is(err, jetstream.ErrConsumerDeleted), errors.Is(err, jetstream.ErrConsumerNotFound):
			// Consuming has ended for good: say so loudly.
			h.log.Error("durable handler: its consumer was deleted; the handler receives nothing until it is started again", "err", err)
		default:
			// Missed heartbeats and reconnects: nats.go pulls again itself.
			h.log.Debug("durable handler: consume", "err", err)
		}
	})
	pull := []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(opts.Prefetch), errs}
	if opts.Exclusive {
		// Pulls must expire well within the pin's TTL, or a live pinned
		// process would look gone.
		pull = append(pull, jetstream.PullPriorityGroup(priorityGroup), jetstream.PullExpiry(max(time.Second, opts.PinnedTTL/3)))
	}
	start := func(c jetstream.Consumer, cb jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) error {
		cc, err := c.Consume(cb, opts...)
		if err != nil {
			return platform.Errorf(platform.CodeStoreUnavailable, "durable handler %s: consume: %w", name, err)
		}
		h.consumes = append(h.consumes, cc)
		return nil
	}
	err = errors.Join(
		start(h.cons, h.onEvent, pull...),
		start(replays, h.onReplay, pull...),
		start(advCons, h.onAdvisory, jetstream.PullMaxMessages(16), errs),
	)
	if err != nil {
		_ = h.Stop(context.Background())
		return nil, err
	}
	h.log.InfoContext(ctx, "durable handler started", "stream", store.StreamName(), "filters", filters,
		"start", opts.Start.String(), "max_deliver", opts.MaxDeliver, "concurrency", opts.Concurrency,
		"per_aggregate_order", opts.PerAggregateOrder, "exclusive", opts.Exclusive)
	return h, nil
}

func withDefaults(name string, o Options) (Options, error) {
	if o.MaxDeliver == 0 {
		o.MaxDeliver = 5
	}
	if len(o.Backoff) == 0 {
		o.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, time.Minute}
	}
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.PinnedTTL == 0 {
		o.PinnedTTL = 30 * time.Second
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = 1000
	}
	if o.Prefetch == 0 {
		o.Prefetch = 500
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "durable handler %s: "+format, append([]any{name}, args...)...))
	}
	if o.MaxDeliver < 1 {
		bad("max deliver %d: use 1 or more (1: no retries)", o.MaxDeliver)
	}
	for _, d := range o.Backoff {
		if d < 0 {
			bad("backoff %v: delays must not be negative", o.Backoff)
			break
		}
	}
	if o.AckWait < time.Second {
		bad("ack wait %v: use at least 1s", o.AckWait)
	}
	if o.Concurrency < 1 || o.MaxAckPending < 1 || o.Prefetch < 1 {
		bad("concurrency %d, max ack pending %d, prefetch %d: use 1 or more, or 0 for the default", o.Concurrency, o.MaxAckPending, o.Prefetch)
	}
	for _, t := range o.AggregateTypes {
		if err := (platform.StreamID{Type: t, ID: "x"}).Validate(); err != nil {
			bad("aggregate types: %w", err)
		}
	}
	if o.Start.policy == jetstream.DeliverByStartSequencePolicy && o.Start.after == 1<<64-1 {
		bad("start after position %d: there is no later position", o.Start.after)
	}
	return o, errors.Join(errs...)
}

// validateName checks a handler name: it is a consumer name and a subject
// token of the DLQ.
func validateName(name string) error {
	if name == "" || len(name) > 64 {
		return platform.Errorf(platform.CodeInvalidArgument, "durable handler name %q: use 1 to 64 letters, digits, '-' and '_', e.g. \"billing-projector\"", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return platform.Errorf(platform.CodeInvalidArgument, "durable handler name %q has %q: use letters, digits, '-' and '_', e.g. \"billing-projector\"", name, c)
		}
	}
	return nil
}

// ensureConsumer creates the consumer, or brings an existing one up to
// date. An existing consumer keeps its start: JetStream cannot move it,
// and its acknowledged floor is the handler's progress.
func ensureConsumer(ctx context.Context, s jetstream.Stream, want jetstream.ConsumerConfig, log *slog.Logger) (jetstream.Consumer, error) {
	stream := s.CachedInfo().Config.Name
	c, err := s.Consumer(ctx, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		var createErr error
		if c, createErr = s.CreateConsumer(ctx, want); createErr == nil {
			return c, nil
		}
		// Another process may have created it with other settings.
		if c, err = s.Consumer(ctx, want.Durable); errors.Is(err, jetstream.ErrConsumerNotFound) {
			err = createErr // the reason it is not there
		}
	}
	if err != nil {
		return nil, platform.Errorf(platform.CodeStoreUnavailable, "consumer %s on stream %s: %w", want.Durable, stream, err)
	}
	have := c.CachedInfo().Config
	if have.DeliverPolicy != want.DeliverPolicy || have.OptStartSeq != want.OptStartSeq {
		log.Warn("durable handler: the consumer exists, so it keeps its position and ignores the start asked for; delete the consumer to start over",
			"stream", stream, "consumer", want.Durable, "deliver_policy", have.DeliverPolicy.String(), "start_seq", have.OptStartSeq,
			"asked_policy", want.DeliverPolicy.String(), "asked_start_seq", want.OptStartSeq)
	}
	want.DeliverPolicy, want.OptStartSeq, want.OptStartTime = have.DeliverPolicy, have.OptStartSeq, have.OptStartTime
	if c, err = s.UpdateConsumer(ctx, want); err != nil {
		return nil, platform.Errorf(platform.CodeConfigConflict, "consumer %s on stream %s exists with settings that cannot change to the handler's: %w: delete it (nats consumer rm %s %s) to recreate it, which restarts it from its start position",
			want.Durable, stream, err, stream, want.Durable)
	}
	return c, nil
}

// Name is the handler's name, which is also its consumer's.
func (h *Handler) Name() string { return h.name }

// DLQ is the dead-letter queue the handler writes to.
func (h *Handler) DLQ() *DLQ { return h.dlq }

// Info returns the handler's consumer info: NumPending is its lag.
func (h *Handler) Info(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	return h.cons.Info(ctx)
}

// Stop stops pulling events, hands back those pulled but not started, and
// waits for the handler calls in flight to finish. If ctx ends first, it
// cancels their context and returns ctx's error; their events are then
// redelivered after AckWait.
func (h *Handler) Stop(ctx context.Context) error {
	h.stopOnce.Do(func() {
		h.stopping.Store(true)
		close(h.stopped)
		connected := h.nc.IsConnected()
		for _, cc := range h.consumes {
			if connected {
				cc.Drain()
			} else {
				cc.Stop() // a drain would wait 10 s for the server's answer to its flush
			}
		}
		go func() {
			for _, cc := range h.consumes {
				<-cc.Closed()
			}
			for _, q := range h.queues {
				q.close()
			}
			h.workers.Wait()
			if h.m != nil {
				h.m.remove()
			}
			close(h.done)
		}()
	})
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		h.cancel()
		return fmt.Errorf("durable handler %s: stop: %w", h.name, ctx.Err())
	}
}

// delivery is one delivery of an event, from the event stream or a replay.
type delivery struct {
	msg        jetstream.Msg
	subject    string // the event's subject in the event stream
	position   uint64
	header     nats.Header
	time       time.Time
	deliveries int
	replay     uint64 // the replay message's sequence in the DLQ stream; 0 for events
}

func (h *Handler) onEvent(msg jetstream.Msg) {
	if h.stopping.Load() {
		_ = msg.Nak()
		return
	}
	if h.aggregates != nil && !h.aggregates[aggregateTypeOf(msg.Subject(), h.store.SubjectPrefix())] {
		_ = msg.Ack()
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		h.log.Error("durable handler: a message without JetStream metadata", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	h.dispatch(delivery{msg: msg, subject: msg.Subject(), position: md.Sequence.Stream, header: msg.Headers(),
		time: md.Timestamp, deliveries: int(md.NumDelivered)})
}

func (h *Handler) onReplay(msg jetstream.Msg) {
	if h.stopping.Load() {
		_ = msg.Nak()
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	e, err := entryOf(&jetstream.RawStreamMsg{Subject: msg.Subject(), Sequence: md.Sequence.Stream, Header: msg.Headers(), Data: msg.Data()})
	if err != nil {
		h.log.Error("durable handler: an unreadable replay; deleting it", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		_ = h.dlq.stream.DeleteMsg(h.ctx, md.Sequence.Stream)
		return
	}
	h.dispatch(delivery{msg: msg, subject: e.Subject, position: e.ID.Position, header: e.Header,
		time: e.EventTime, deliveries: int(md.NumDelivered), replay: md.Sequence.Stream})
}

func (h *Handler) onAdvisory(msg jetstream.Msg) {
	if h.advisories != nil && !h.advisories[msg.Subject()] {
		_ = msg.Ack() // another handler's: unfiltered before 2.10
		return
	}
	err := h.dlq.recordAdvisory(h.ctx, msg.Subject(), msg.Data(), h.name)
	if IsPermanent(err) {
		h.log.Error("durable handler: an unreadable advisory; dropping it", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	if err != nil {
		h.log.Warn("durable handler: could not record an advisory's DLQ entry; retrying", "subject", msg.Subject(), "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Ack()
}

// aggregateTypeOf is the aggregate type of an event's subject,
// <prefix>.<type>.<id>.
func aggregateTypeOf(subject, prefix string) string {
	rest := strings.TrimPrefix(subject, prefix+".")
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		return rest[:i]
	}
	return rest
}

// dispatch hands the delivery to its worker: by subject with per-aggregate
// order, to any worker otherwise.
func (h *Handler) dispatch(d delivery) {
	if len(h.queues) == 1 {
		h.queues[0].push(d)
		return
	}
	h.queues[fnv1a(d.subject)%uint32(len(h.queues))].push(d)
}

func fnv1a(s string) uint32 {
	hash := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		hash ^= uint32(s[i])
		hash *= 16777619
	}
	return hash
}

// handle runs the handler on one delivery and settles it: ack on success,
// a delayed redelivery on failure, the DLQ on the last failure or a
// permanent one.
func (h *Handler) handle(d delivery, q *workQueue, hb *heartbeat) {
	if h.stopping.Load() {
		_ = d.msg.Nak() // pulled but not started: let another process have it now
		return
	}
	if h.skips(d.header) {
		h.succeeded(d, outcomeSkipped)
		return
	}
	var began time.Time
	if h.m != nil {
		began = time.Now()
	}
	envs, err := h.store.DecodeAll(d.subject, d.position, d.time, d.header, d.msg.Data(), nil)
	if err != nil {
		h.undecodable(d, err)
		return
	}
	// The envelopes the event reads as that the handler takes: all parts
	// of one stored event are handled before it is acknowledged.
	envs = slices.DeleteFunc(envs, func(e platform.Envelope) bool {
		return e.Retired() || h.handles != nil && !h.handles[e.Type]
	})
	if len(envs) == 0 {
		h.succeeded(d, outcomeSkipped)
		return
	}
	for {
		hb.start(d.msg)
		var err error
		for len(envs) > 0 && err == nil {
			// A retry in place goes on from the part that failed.
			if err = h.run(d, envs[0]); err == nil {
				envs = envs[1:]
			}
		}
		hb.stop()
		if h.m != nil {
			h.m.seconds.Observe(time.Since(began).Seconds())
			began = time.Now()
		}
		switch {
		case err == nil:
			h.succeeded(d, outcomeOK)
			return
		case IsPermanent(err):
			h.deadLetter(d, err, ReasonTerminated)
			return
		case d.deliveries >= h.opts.MaxDeliver:
			h.deadLetter(d, err, ReasonMaxDeliveries)
			return
		}
		if h.m != nil {
			h.m.outcomes[outcomeRetried].Inc()
		}
		delay := h.opts.Backoff[min(d.deliveries, len(h.opts.Backoff))-1]
		h.log.Debug("durable handler: failed; retrying", "position", d.position, "delivery", d.deliveries, "delay", delay, "err", err)
		if !h.opts.PerAggregateOrder {
			_ = d.msg.NakWithDelay(delay)
			return
		}
		// With per-aggregate order the worker retries in place: a
		// redelivery would let the aggregate's next event overtake this one.
		if !h.wait(d, q, delay) {
			_ = d.msg.Nak()
			return
		}
		d.deliveries++
	}
}

// heartbeat tells the server that an event is still being handled while
// the handler runs past half the ack wait, so that a slow handler is not
// given the same event again, here or in another process, while it still
// works on it. Each worker has one, its timer re-armed for every event:
// nothing is allocated per event.
type heartbeat struct {
	every time.Duration
	timer *time.Timer
	mu    sync.Mutex
	msg   jetstream.Msg // the event being handled; nil between events
}

func newHeartbeat(every time.Duration) *heartbeat {
	hb := &heartbeat{every: every}
	hb.timer = time.AfterFunc(every, hb.beat)
	hb.timer.Stop()
	return hb
}

func (hb *heartbeat) start(m jetstream.Msg) {
	hb.mu.Lock()
	hb.msg = m
	hb.mu.Unlock()
	hb.timer.Reset(hb.every)
}

func (hb *heartbeat) stop() {
	hb.timer.Stop()
	hb.mu.Lock()
	hb.msg = nil
	hb.mu.Unlock()
}

func (hb *heartbeat) beat() {
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if hb.msg == nil {
		return
	}
	_ = hb.msg.InProgress()
	hb.timer.Reset(hb.every)
}

// wait sleeps for a retry in place, telling the server the event is still
// being worked on. It returns false if the handler is stopping.
func (h *Handler) wait(d delivery, q *workQueue, delay time.Duration) bool {
	tick := max(h.opts.AckWait/2, 500*time.Millisecond)
	deadline := time.Now().Add(delay)
	for {
		_ = d.msg.InProgress()
		q.touch()
		left := time.Until(deadline)
		if left <= 0 {
			return true
		}
		t := time.NewTimer(min(left, tick))
		select {
		case <-t.C:
		case <-h.stopped:
			t.Stop()
			return false
		}
	}
}

// skips reports whether the stored event cannot read as a type the
// handler handles, by its headers and the registry, without decoding it:
// its stored type is not handled, and neither is the current type its
// upcasters make of it (one split on read is decoded to find out).
func (h *Handler) skips(hd nats.Header) bool {
	if h.handles == nil {
		return false
	}
	typ := hd.Get(lxjs.TypeHeader)
	if h.handles[typ] {
		return false
	}
	version, err := strconv.Atoi(hd.Get(lxjs.SchemaHeader))
	if err != nil {
		return false // decoding says what is wrong
	}
	res, err := h.store.Registry().Resolve(typ, version)
	switch {
	case err != nil:
		return false // decoding fails, and the failure goes where undecodable events go
	case res.End == platform.EndRetired:
		return true
	case res.End == platform.EndSplit:
		return false
	}
	return !h.handles[res.Last().Name]
}

// undecodable settles a delivery whose event does not decode: skipped
// with SkipUndecodable, else dead-lettered at once.
func (h *Handler) undecodable(d delivery, err error) {
	if !h.opts.SkipUndecodable {
		h.deadLetter(d, err, ReasonTerminated)
		return
	}
	h.log.Warn("durable handler: an event that does not decode; skipped (SkipUndecodable)", "position", d.position, "subject", d.subject,
		"type", d.header.Get(lxjs.TypeHeader), "schema_version", d.header.Get(lxjs.SchemaHeader), "err", err)
	h.succeeded(d, outcomeUndecodable)
}

// run calls the handler on one envelope, turning a panic into an error.
func (h *Handler) run(d delivery, e platform.Envelope) (err error) {
	ctx := h.ctx
	if e.CorrelationID != "" {
		ctx = platform.WithCorrelationID(ctx, e.CorrelationID)
	}
	ctx = platform.WithCausationID(ctx, e.ID)
	// The command that produced the event stored its trace context with
	// it: the handler's work joins that trace, whichever process runs it.
	if e.Metadata["traceparent"] != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier(e.Metadata))
	}
	if h.tracer != nil {
		var span trace.Span
		ctx, span = h.tracer.Start(ctx, h.spanName, trace.WithSpanKind(trace.SpanKindConsumer))
		if span.IsRecording() {
			span.SetAttributes(attribute.String("lexigram.handler", h.name), attribute.String("lexigram.type", e.Type),
				attribute.String("lexigram.id", e.ID), attribute.Int64("lexigram.position", int64(e.Position)),
				attribute.Int("lexigram.delivery", d.deliveries), attribute.String("lexigram.correlation_id", e.CorrelationID))
		}
		defer func() { // runs after the recover below has turned a panic into err
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	defer func() {
		if p := recover(); p != nil {
			err = platform.Errorf(platform.CodeHandlerPanic, "durable handler %s panicked on the event at position %d: %v\n%s", h.name, d.position, p, debug.Stack())
		}
	}()
	return h.fn(ctx, e)
}

func (h *Handler) succeeded(d delivery, outcome int) {
	if err := d.msg.Ack(); err != nil {
		h.log.Warn("durable handler: ack failed; the event will be redelivered", "position", d.position, "err", err)
	}
	if h.m != nil {
		h.m.outcomes[outcome].Inc()
	}
	if d.replay != 0 {
		// The event made it: its entry has served its purpose.
		id := ID{Handler: h.name, Position: d.position}
		if err := h.dlq.purge(h.ctx, id); err != nil {
			h.log.Warn("durable handler: a replayed event succeeded but its DLQ entry stays", "id", id.String(), "err", err)
		}
		_ = ignoreNotFound(h.dlq.stream.DeleteMsg(h.ctx, d.replay))
	}
}

// maxReason bounds the error text sent with a termination; the DLQ entry
// has all of it.
const maxReason = 1024

// deadLetter records the DLQ entry with the handler's error, then
// terminates the delivery. If the entry cannot be written, the
// termination's advisory carries the error to the DLQ instead.
func (h *Handler) deadLetter(d delivery, cause error, reason Reason) {
	e := Entry{
		ID:         ID{Handler: h.name, Position: d.position},
		Stream:     h.dlq.events.CachedInfo().Config.Name,
		Subject:    d.subject,
		Header:     d.header,
		Data:       d.msg.Data(),
		EventTime:  d.time,
		Error:      cause.Error(),
		Reason:     reason,
		Deliveries: d.deliveries,
		Time:       time.Now(),
		RecordedBy: "handler",
	}
	text := string(reason) + ": " + cause.Error()
	if err := h.dlq.write(h.ctx, e, false); err != nil {
		h.log.Error("durable handler: could not write the DLQ entry; the termination advisory will", "position", d.position, "err", err)
	} else {
		text = termRecorded + text
	}
	if len(text) > maxReason {
		text = text[:maxReason]
	}
	if err := d.msg.TermWithReason(text); err != nil {
		h.log.Warn("durable handler: terminate failed; the event will be redelivered", "position", d.position, "err", err)
	}
	if d.replay != 0 {
		_ = ignoreNotFound(h.dlq.stream.DeleteMsg(h.ctx, d.replay))
	}
	h.log.Warn("durable handler: event dead-lettered", "position", d.position, "subject", d.subject,
		"type", d.header.Get(lxjs.TypeHeader), "reason", string(reason), "deliveries", d.deliveries, "err", cause)
	if h.m != nil {
		h.m.outcomes[outcomeDead].Inc()
		h.m.dead[reason].Inc()
	}
}
