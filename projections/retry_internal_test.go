package projections

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// TestTransientClassifiesErrors: what waiting may cure is transient,
// however wrapped; the projection's own errors are not, even when the
// reader reports them as a failed read of the store.
func TestTransientClassifiesErrors(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nats timeout in a handler", platform.Errorf(platform.CodeEventHandler, "handle event: put: %w", nats.ErrTimeout), true},
		{"store unavailable", platform.Errorf(platform.CodeStoreUnavailable, "read the store: %w", errors.New("stream info")), true},
		{"JetStream 503", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{"no responders", fmt.Errorf("checkpoint: %w", nats.ErrNoResponders), true},
		{"a refused connection (PostgreSQL down)", platform.Errorf(platform.CodeEventHandler, "apply batch: %w", fmt.Errorf("failed to connect: %w", refused)), true},
		{"handler logic", platform.Errorf(platform.CodeEventHandler, "handle event: %w", errors.New("the total is negative")), false},
		{"undecodable event", platform.Errorf(platform.CodeStoreUnavailable, "read the store: %w", platform.Errorf(platform.CodeUnknownEventType, "not registered")), false},
		{"invalid argument", platform.Errorf(platform.CodeInvalidArgument, "bad name"), false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("%s: transient(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
