package azservicebus

import (
	"context"
	"errors"
	"sync"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/lexigram/events/bridges"
)

// session is one session this subscriber holds: its receiver has the
// session's lock, which covers every message of it that is held.
type session struct {
	id   string
	link sessionReceiver
	win  *window

	mu    sync.Mutex
	held  map[*held]bool
	lost  chan struct{} // the lock was lost: stop receiving
	ended chan struct{} // released or lost: stop renewing
	once  sync.Once
	lose  sync.Once
}

func (x *session) hold(h *held) {
	x.mu.Lock()
	x.held[h] = true
	x.mu.Unlock()
}

func (x *session) unhold(h *held) {
	x.mu.Lock()
	delete(x.held, h)
	x.mu.Unlock()
}

// oldest is when the longest-held message was received; zero when none is.
func (x *session) oldest() time.Time {
	x.mu.Lock()
	defer x.mu.Unlock()
	var t time.Time
	for h := range x.held {
		if t.IsZero() || h.since.Before(t) {
			t = h.since
		}
	}
	return t
}

func (x *session) markLost() { x.lose.Do(func() { close(x.lost) }) }

// sessionLoop takes sessions one after another and receives from each
// until it is idle or lost.
func (s *Subscriber) sessionLoop(ctx context.Context, out chan<- *bridges.Delivery) {
	for attempt := 0; ctx.Err() == nil; {
		// Service Bus answers CodeTimeout when no session came in time,
		// and the loop asks again.
		actx, cancel := context.WithTimeout(ctx, s.pollWait)
		sr, err := s.cl.AcceptNextSession(actx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if codeOf(err) == sb.CodeTimeout || errors.Is(err, context.DeadlineExceeded) {
				s.up.Store(true) // no session has messages: ask again
				attempt = 0
				continue
			}
			s.failed("accept a session", err, attempt)
			if !s.opts.Backoff.Sleep(ctx, attempt) {
				return
			}
			attempt++
			continue
		}
		attempt = 0
		s.up.Store(true)
		s.serveSession(ctx, sr, out)
	}
}

// serveSession receives one session's messages, in order, while it has
// any or holds some; then it releases the session for any receiver to
// take. When ctx ends it leaves the session open: Close hands back what
// it holds, then closes it.
func (s *Subscriber) serveSession(ctx context.Context, sr sessionReceiver, out chan<- *bridges.Delivery) {
	x := &session{id: sr.SessionID(), link: sr, win: newWindow(s.opts.Prefetch), held: map[*held]bool{}, lost: make(chan struct{}), ended: make(chan struct{})}
	s.addLink(sr)
	s.log.Debug("azservicebus: session accepted", "session", x.id)
	if s.opts.LockRenewal > 0 {
		s.renewers.Go(func() { s.renewSession(ctx, x) })
	}
	for {
		n, ok := x.win.wait(ctx, x.lost)
		if !ok {
			if ctx.Err() == nil {
				s.endSession(x, "its lock was lost")
			}
			return
		}
		rctx, cancel := context.WithTimeout(ctx, s.opts.SessionIdle)
		msgs, err := sr.ReceiveMessages(rctx, n, nil)
		idle := rctx.Err() != nil // go-amqp may return a context error errors.Is does not know
		cancel()
		if len(msgs) == 0 {
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && !idle:
				s.log.Warn("azservicebus: session failed; releasing it (its held messages come again)", "session", x.id, "err", s.w.explain("receive from session "+quoteID(x.id), err))
				s.endSession(x, "it failed")
				return
			case x.win.count() == 0:
				s.endSession(x, "it is idle")
				return
			case err == nil && !s.opts.Backoff.Sleep(ctx, 0):
				return // nothing and no error before the idle time: the SDK swallowed a link error; do not spin
			}
			continue
		}
		if !s.hand(ctx, sr, msgs, x, x.win, out) {
			return
		}
	}
}

// endSession releases a session: Service Bus gives it to the next
// receiver that asks.
func (s *Subscriber) endSession(x *session, why string) {
	x.once.Do(func() { close(x.ended) })
	s.log.Debug("azservicebus: session released", "session", x.id, "because", why)
	s.dropLink(x.link)
}
