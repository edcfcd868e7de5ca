package projections

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// Bounds of the wait before a projection tries again after a transient
// error.
const (
	firstRetry = 200 * time.Millisecond
	maxRetry   = 30 * time.Second
)

// transient reports an error that waiting may cure: the store, the NATS
// server or the network unavailable for a while (a leader election, a
// cut connection, a server restarting), from the store, the checkpoints,
// the lease or the projection's own handler, as opposed to an error in
// the projection's code or data, which waiting does not change.
func transient(err error) bool {
	// An event that does not decode, or a setting the server refuses,
	// stays so however long one waits, whatever wraps it (the reader
	// reports a decode error as a failed read of the store).
	for _, permanent := range []error{platform.ErrUnknownEventType, platform.ErrCorruptEvent, platform.ErrInvalidArgument,
		platform.ErrConfigConflict, platform.ErrUnsupported} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Code == 503 {
		return true // JetStream temporarily unavailable
	}
	var netErr net.Error
	var opErr *net.OpError // a refused or reset connection: to PostgreSQL, say
	return errors.Is(err, platform.ErrStoreUnavailable) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, jetstream.ErrServerShutdown) ||
		errors.As(err, &opErr) ||
		(errors.As(err, &netErr) && netErr.Timeout())
}

// retryWait is the wait before the attempt after one that failed with a
// transient error: doubling from firstRetry to maxRetry while attempts
// fail without applying anything, from firstRetry again once one did.
type retryWait struct {
	next time.Duration
}

func (r *retryWait) after(progressed bool) time.Duration {
	if progressed || r.next == 0 {
		r.next = firstRetry
	}
	d := r.next
	r.next = min(2*r.next, maxRetry)
	return d
}

func (r *retryWait) reset() { r.next = 0 }
