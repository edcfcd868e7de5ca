package azservicebus

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// A held message is one received in peek-lock mode and not settled yet:
// Service Bus keeps it locked for this receiver (without sessions, a lock
// of its own; with sessions, the session's lock) until it is completed,
// abandoned or dead-lettered, or the lock runs out.
type held struct {
	d     *bridges.Delivery
	link  receiveLink
	msg   *sb.ReceivedMessage
	sess  *session // nil without sessions
	win   *window
	since time.Time

	state   atomic.Int32  // one of the states below
	settled chan struct{} // closed once the message leaves the held state
}

const (
	stateHeld     = iota
	stateSettled  // completed, abandoned or dead-lettered by the consumer (or tried to be)
	stateReturned // handed back by Close
)

// leave moves h out of the held state, once; false when it had left.
func (h *held) leave(to int32) bool {
	if !h.state.CompareAndSwap(stateHeld, to) {
		return false
	}
	close(h.settled)
	return true
}

// window bounds the messages one receiver holds: a receiver asks Service
// Bus for no more than the free places (the prefetch).
type window struct {
	mu   sync.Mutex
	held int
	max  int
	wake chan struct{}
}

func newWindow(max int) *window { return &window{max: max, wake: make(chan struct{}, 1)} }

func (w *window) take() {
	w.mu.Lock()
	w.held++
	w.mu.Unlock()
}

func (w *window) give() {
	w.mu.Lock()
	w.held--
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *window) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held
}

// wait returns the free places once there is one; false when ctx ends or
// stop closes first.
func (w *window) wait(ctx context.Context, stop <-chan struct{}) (int, bool) {
	for {
		w.mu.Lock()
		free := w.max - w.held
		w.mu.Unlock()
		if free > 0 {
			return free, true
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return 0, false
		case <-stop:
			return 0, false
		}
	}
}

// track makes a delivery of a received message and holds it until it is
// settled. A message that cannot be represented as a bridges.Message is
// dead-lettered on Service Bus at once, with the reason, and gives nil.
func (s *Subscriber) track(link receiveLink, rm *sb.ReceivedMessage, sess *session, win *window) *held {
	m, err := incoming(rm)
	if err != nil {
		s.deadLetterNow(link, rm, err)
		return nil
	}
	h := &held{link: link, msg: rm, sess: sess, win: win, since: time.Now(), settled: make(chan struct{})}
	h.d = bridges.NewDelivery(m,
		func(ctx context.Context) error {
			return s.settle(h, "complete", func() error { return link.CompleteMessage(ctx, rm, nil) })
		},
		func(ctx context.Context) error {
			return s.settle(h, "abandon", func() error { return link.AbandonMessage(ctx, rm, nil) })
		})
	win.take()
	s.mu.Lock()
	s.held[h.d] = h
	s.mu.Unlock()
	if sess != nil {
		sess.hold(h)
	} else if r, ok := link.(messageReceiver); ok && s.opts.LockRenewal > 0 {
		s.renewers.Go(func() { s.renewMessage(s.ctx, h, r) })
	}
	return h
}

// settle runs one settlement of h. A message settled already (by
// DeadLetter) settles to nothing; one that Close handed back fails, since
// it comes again.
func (s *Subscriber) settle(h *held, op string, f func() error) error {
	if !h.leave(stateSettled) {
		if h.state.Load() == stateReturned {
			return s.w.errorf(platform.CodeBridgeDelivery, "%s: %s message %q: the subscriber was closed and handed it back: it will be delivered again", s.w, op, h.d.ID)
		}
		return nil
	}
	defer s.release(h)
	if err := f(); err != nil {
		// Settled or not, it is no longer held: a message whose settlement
		// failed comes again once its lock runs out.
		return s.w.explain(op+" message "+strconv.Quote(h.d.ID), err)
	}
	return nil
}

func (s *Subscriber) release(h *held) {
	s.mu.Lock()
	delete(s.held, h.d)
	s.mu.Unlock()
	if h.sess != nil {
		h.sess.unhold(h)
	}
	h.win.give()
}

// maxReason bounds the dead-letter reason and description we set.
const maxReason = 1024

func clip(s string) string {
	if len(s) > maxReason {
		return s[:maxReason]
	}
	return s
}

// deadLetterNow moves a message no bridge can carry to the entity's
// dead-letter sub-queue.
func (s *Subscriber) deadLetterNow(link receiveLink, rm *sb.ReceivedMessage, reason error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), closeTimeout)
	defer cancel()
	why, desc := "lexigram: cannot bridge", clip(reason.Error())
	if err := link.DeadLetterMessage(ctx, rm, &sb.DeadLetterOptions{Reason: &why, ErrorDescription: &desc}); err != nil {
		s.log.Error("azservicebus: could not dead-letter a message that cannot be bridged; it comes again once its lock runs out", "id", rm.MessageID, "reason", reason, "err", s.w.explain("dead-letter", err))
		return
	}
	s.log.Warn("azservicebus: dead-lettered a message that cannot be bridged", "id", rm.MessageID, "reason", reason)
}
