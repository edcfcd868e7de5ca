package azservicebus

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// SubscriberOptions configure a Subscriber: a connection (ConnectionString
// or Client) and one entity (Queue, or Topic and Subscription) are
// required. The zero value of the rest receives without sessions, holds
// up to 10 messages and renews their locks for up to an hour.
type SubscriberOptions struct {
	// ConnectionString of the namespace or the entity; the key never
	// shows in errors or logs.
	ConnectionString string
	// Client, set, is used instead of ConnectionString; Close leaves it
	// open.
	Client       *sb.Client
	Queue        string
	Topic        string
	Subscription string
	// Sessions: the entity requires sessions. The subscriber then holds up
	// to MaxSessions sessions at a time, each delivering its messages in
	// order, and its deliveries' Key is the SessionId.
	Sessions bool
	// Prefetch bounds the messages received and not yet settled: of the
	// receiver, or of each session with Sessions. Default 10.
	Prefetch int
	// MaxSessions is how many sessions are held at once. Default 8.
	MaxSessions int
	// SessionIdle releases a session once nothing came from it for this
	// long and none of its messages is held, so that another can be
	// taken. Default 1s.
	SessionIdle time.Duration
	// LockRenewal is how long the lock of a message held unsettled (with
	// Sessions, its session's lock) is renewed: long enough to ride out a
	// JetStream outage without Service Bus delivering the message again,
	// short enough that a message nobody settles comes back. Renewal
	// happens when half of the lock's time is left. Default 1h; negative:
	// locks are never renewed.
	LockRenewal time.Duration
	Backoff     bridges.Backoff // between retries while Service Bus fails
	Logger      *slog.Logger
}

// Subscriber receives from a queue or a subscription in peek-lock mode:
// Ack completes a message, Nack abandons it (Service Bus delivers it
// again and counts the delivery), DeadLetter moves it to the dead-letter
// sub-queue with a reason.
type Subscriber struct {
	opts SubscriberOptions
	cl   client
	w    where
	log  *slog.Logger

	mu         sync.Mutex
	held       map[*bridges.Delivery]*held
	links      map[receiveLink]bool // open receivers, closed by Close
	subscribed bool
	up         atomic.Bool

	// pollWait bounds one wait for messages or a session: an answer with
	// nothing in it shows that Service Bus is reachable again.
	pollWait time.Duration

	ctx      context.Context // of Subscribe; cancelled by Close
	done     chan struct{}
	once     sync.Once
	loops    sync.WaitGroup // receive loops
	renewers sync.WaitGroup
	closed   chan struct{} // the deliveries channel is closed
}

// NewSubscriber returns a subscriber; it connects when Subscribe is
// called.
func NewSubscriber(opts SubscriberOptions) (*Subscriber, error) {
	if err := oneEntity("subscriber", opts.Queue, opts.Topic, opts.Subscription); err != nil {
		return nil, err
	}
	if err := checkSubscriber(opts); err != nil {
		return nil, err
	}
	cl, w, err := open(opts.ConnectionString, opts.Client, opts.Queue, opts.Topic, opts.Subscription)
	if err != nil {
		return nil, err
	}
	return newSubscriber(cl, w, opts), nil
}

func checkSubscriber(o SubscriberOptions) error {
	if o.Prefetch < 0 || o.MaxSessions < 0 || o.SessionIdle < 0 {
		return platform.Errorf(platform.CodeInvalidArgument, "azservicebus subscriber: prefetch %d, max sessions %d, session idle %v: none may be negative (0 takes the default)", o.Prefetch, o.MaxSessions, o.SessionIdle)
	}
	// ReceiveMessages takes at most 5000 (the SDK's link credit).
	if o.Prefetch > 5000 {
		return platform.Errorf(platform.CodeInvalidArgument, "azservicebus subscriber: prefetch %d: use at most 5000", o.Prefetch)
	}
	return nil
}

func newSubscriber(cl client, w where, opts SubscriberOptions) *Subscriber {
	if opts.Prefetch == 0 {
		opts.Prefetch = 10
	}
	if opts.MaxSessions == 0 {
		opts.MaxSessions = 8
	}
	if opts.SessionIdle == 0 {
		opts.SessionIdle = time.Second
	}
	if opts.LockRenewal == 0 {
		opts.LockRenewal = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Subscriber{opts: opts, cl: cl, w: w, log: opts.Logger.With("broker", w.String()),
		held: map[*bridges.Delivery]*held{}, links: map[receiveLink]bool{}, pollWait: 30 * time.Second, done: make(chan struct{}), closed: make(chan struct{})}
	s.up.Store(true)
	return s
}

// Connected reports whether the last call to Service Bus succeeded (true
// before the first).
func (s *Subscriber) Connected() bool { return s.up.Load() }

// Subscribe receives until ctx ends or Close, retrying with backoff while
// Service Bus fails.
func (s *Subscriber) Subscribe(ctx context.Context) (<-chan *bridges.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subscribed {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "%s: Subscribe called twice on one subscriber: make another", s.w)
	}
	select {
	case <-s.done:
		return nil, platform.Errorf(platform.CodeBridgeDelivery, "%s: the subscriber is closed", s.w)
	default:
	}
	s.subscribed = true
	ctx, cancel := context.WithCancel(ctx)
	s.ctx = ctx
	out := make(chan *bridges.Delivery)
	if s.opts.Sessions {
		for range s.opts.MaxSessions {
			s.loops.Go(func() { s.sessionLoop(ctx, out) })
		}
	} else {
		s.loops.Go(func() { s.receiveLoop(ctx, out) })
	}
	go func() {
		select {
		case <-s.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	go func() {
		s.loops.Wait()
		close(out)
		close(s.closed)
	}()
	return out, nil
}

// receiveLoop receives from an entity without sessions.
func (s *Subscriber) receiveLoop(ctx context.Context, out chan<- *bridges.Delivery) {
	var rcv messageReceiver
	win := newWindow(s.opts.Prefetch)
	for attempt := 0; ; {
		if rcv == nil {
			r, err := s.cl.NewReceiver()
			if err != nil {
				s.failed("open a receiver", err, attempt)
				if !s.opts.Backoff.Sleep(ctx, attempt) {
					return
				}
				attempt++
				continue
			}
			rcv = r
			s.addLink(r)
		}
		n, ok := win.wait(ctx, nil)
		if !ok {
			return
		}
		rctx, cancel := context.WithTimeout(ctx, s.pollWait)
		msgs, err := rcv.ReceiveMessages(rctx, n, nil)
		polled := rctx.Err() != nil
		cancel()
		if err != nil && len(msgs) == 0 {
			if ctx.Err() != nil {
				return
			}
			if polled {
				s.up.Store(true) // nothing came, and Service Bus answered
				attempt = 0
				continue
			}
			s.failed("receive", err, attempt)
			if !reusable(err) {
				s.dropLink(rcv)
				rcv = nil
			}
			if !s.opts.Backoff.Sleep(ctx, attempt) {
				return
			}
			attempt++
			continue
		}
		if len(msgs) == 0 {
			// The SDK swallowed a link error (it recovers on the next
			// call): do not spin.
			if !s.opts.Backoff.Sleep(ctx, 0) {
				return
			}
			continue
		}
		if attempt > 0 {
			s.log.Info("azservicebus: receiving again", "after_failures", attempt)
		}
		attempt = 0
		s.up.Store(true)
		if !s.hand(ctx, rcv, msgs, nil, win, out) {
			return
		}
	}
}

// hand holds every received message first, so that Close hands back
// those not delivered yet, then delivers them in order; false when ctx
// ended.
func (s *Subscriber) hand(ctx context.Context, link receiveLink, msgs []*sb.ReceivedMessage, sess *session, win *window, out chan<- *bridges.Delivery) bool {
	hs := make([]*held, 0, len(msgs))
	for _, rm := range msgs {
		if h := s.track(link, rm, sess, win); h != nil {
			hs = append(hs, h)
		}
	}
	for _, h := range hs {
		select {
		case out <- h.d:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// failed logs a failure of Service Bus: the first of a run as a warning
// with the fix, the next ones at debug level.
func (s *Subscriber) failed(op string, err error, attempt int) {
	s.up.Store(false)
	e := s.w.explain(op, err)
	if attempt == 0 {
		s.log.Warn("azservicebus: retrying with backoff", "err", e)
	} else {
		s.log.Debug("azservicebus: still failing", "attempt", attempt, "err", e)
	}
}

func (s *Subscriber) addLink(l receiveLink) {
	s.mu.Lock()
	s.links[l] = true
	s.mu.Unlock()
}

// dropLink closes a receiver that failed for good; what it held comes
// again once its locks run out.
func (s *Subscriber) dropLink(l receiveLink) {
	s.mu.Lock()
	delete(s.links, l)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = l.Close(ctx)
}

// DeadLetter moves a delivery of this subscriber to the entity's
// dead-letter sub-queue with the reason and description (Service Bus's
// DeadLetterReason and DeadLetterErrorDescription): for a message that
// must never come again. It settles d: a later Ack or Nack does nothing.
func (s *Subscriber) DeadLetter(ctx context.Context, d *bridges.Delivery, reason, description string) error {
	s.mu.Lock()
	h := s.held[d]
	s.mu.Unlock()
	if h == nil {
		return platform.Errorf(platform.CodeInvalidArgument, "%s: dead-letter message %q: this subscriber does not hold it (settled already, or delivered by another subscriber)", s.w, d.ID)
	}
	reason, description = clip(reason), clip(description)
	return s.settle(h, "dead-letter", func() error {
		return h.link.DeadLetterMessage(ctx, h.msg, &sb.DeadLetterOptions{Reason: &reason, ErrorDescription: &description})
	})
}

// Close stops receiving, hands back every message held unsettled
// (abandons it, so that Service Bus delivers it again at once rather than
// when its lock runs out), and closes the receivers and, when the
// subscriber made it, the client.
func (s *Subscriber) Close() error {
	var errs []error
	s.once.Do(func() {
		close(s.done)
		s.mu.Lock()
		subscribed := s.subscribed
		s.mu.Unlock()
		if subscribed {
			<-s.closed
		}
		s.renewers.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		s.mu.Lock()
		hs := make([]*held, 0, len(s.held))
		for _, h := range s.held {
			hs = append(hs, h)
		}
		s.mu.Unlock()
		returned := 0
		for _, h := range hs {
			if !h.leave(stateReturned) {
				continue // being settled by the consumer
			}
			if err := h.link.AbandonMessage(ctx, h.msg, nil); err == nil {
				returned++
			} else {
				s.log.Debug("azservicebus: could not hand a message back on close; it comes again once its lock runs out", "id", h.d.ID, "err", s.w.explain("abandon", err))
			}
			s.release(h)
		}
		if returned > 0 {
			s.log.Info("azservicebus: handed back unsettled messages on close", "messages", returned)
		}
		s.mu.Lock()
		links := make([]receiveLink, 0, len(s.links))
		for l := range s.links {
			links = append(links, l)
		}
		clear(s.links)
		s.mu.Unlock()
		for _, l := range links {
			if err := l.Close(ctx); err != nil && codeOf(err) != sb.CodeClosed {
				errs = append(errs, s.w.explain("close a receiver", err))
			}
		}
		if err := s.cl.Close(ctx); err != nil {
			errs = append(errs, s.w.explain("close the client", err))
		}
	})
	return errors.Join(errs...)
}

func quoteID(id string) string { return strconv.Quote(id) }
