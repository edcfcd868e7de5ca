package azservicebus

import (
	"context"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

const (
	// minRenewDelay spaces renewals of a lock about to run out.
	minRenewDelay = 50 * time.Millisecond
	// unknownRenewDelay spaces renewals of a lock whose end is unknown, or
	// already past by the local clock (a clock behind the service's).
	unknownRenewDelay = 2 * time.Second
)

// renewDelay is how long to wait before renewing a lock that runs out at
// until: half of the time left, as the Azure SDKs' lock renewers do, so a
// failed renewal leaves time for another.
func renewDelay(now, until time.Time) time.Duration {
	left := until.Sub(now)
	if until.IsZero() || left <= 0 {
		return unknownRenewDelay
	}
	return max(left/2, minRenewDelay)
}

// renewMessage keeps a held message's lock (no sessions) until it is
// settled, the lock is lost, or it was held for LockRenewal.
func (s *Subscriber) renewMessage(ctx context.Context, h *held, r messageReceiver) {
	var until time.Time
	if h.msg.LockedUntil != nil {
		until = *h.msg.LockedUntil
	}
	for {
		t := time.NewTimer(renewDelay(time.Now(), until))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-h.settled:
			t.Stop()
			return
		case <-t.C:
		}
		if time.Since(h.since) >= s.opts.LockRenewal {
			s.log.Warn("azservicebus: a message was held unsettled for lock_renew: its lock is no longer renewed, and Service Bus delivers it again once it runs out",
				"id", h.d.ID, "held", time.Since(h.since).Round(time.Millisecond), "lock_renew", s.opts.LockRenewal)
			return
		}
		err := r.RenewMessageLock(ctx, h.msg, nil)
		switch {
		case err == nil:
			if h.msg.LockedUntil != nil {
				until = *h.msg.LockedUntil
			}
		case ctx.Err() != nil, h.state.Load() != stateHeld:
			return
		case codeOf(err) == sb.CodeLockLost || !reusable(err):
			s.log.Warn("azservicebus: a held message's lock was lost; Service Bus delivers it again", "id", h.d.ID, "err", s.w.explain("renew the lock of message "+quoteID(h.d.ID), err))
			return
		default:
			// Tried again at half of what is left.
			s.log.Debug("azservicebus: lock renewal failed", "id", h.d.ID, "err", s.w.explain("renew a message lock", err))
		}
	}
}

// renewSession keeps a held session's lock until the session is released
// or lost, or its oldest held message was held for LockRenewal.
func (s *Subscriber) renewSession(ctx context.Context, x *session) {
	for {
		t := time.NewTimer(renewDelay(time.Now(), x.link.LockedUntil()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-x.ended:
			t.Stop()
			return
		case <-t.C:
		}
		if oldest := x.oldest(); !oldest.IsZero() && time.Since(oldest) >= s.opts.LockRenewal {
			s.log.Warn("azservicebus: a message of a session was held unsettled for lock_renew: the session's lock is no longer renewed, and Service Bus gives the session to a receiver again once it runs out",
				"session", x.id, "held", time.Since(oldest).Round(time.Millisecond), "lock_renew", s.opts.LockRenewal)
			return
		}
		err := x.link.RenewSessionLock(ctx, nil)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case codeOf(err) == sb.CodeLockLost || !reusable(err):
			s.log.Warn("azservicebus: a session's lock was lost; its held messages come again", "session", x.id, "err", s.w.explain("renew the lock of session "+quoteID(x.id), err))
			x.markLost()
			return
		default:
			s.log.Debug("azservicebus: session lock renewal failed", "session", x.id, "err", s.w.explain("renew a session lock", err))
		}
	}
}
