package bridges

import (
	"context"
	"errors"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// DeadLetter is one message a bridge could not move, as stored in the
// dead-letter stream.
type DeadLetter struct {
	// Seq is its sequence in the dead-letter stream: what Get, Discard
	// and a bridge's Replay take.
	Seq       uint64
	Bridge    string
	Direction string // "inbound" or "outbound"
	Reason    string
	// MessageID is the message's ID (Message.ID): an outbound event's
	// Lx-Id, an inbound broker message's ID.
	MessageID string
	// Subject is the JetStream subject (outbound) or the broker's
	// subject (inbound).
	Subject string
	// Sequence is an outbound message's sequence in the stream the
	// bridge reads (0 inbound).
	Sequence uint64
	Time     time.Time // when it was dead-lettered
	// Truncated says the body was left out because it did not fit; an
	// outbound replay reads it from the bridge's stream again.
	Truncated bool
	Header    nats.Header // the message's own headers, without the Lx-Bridge ones
	Data      []byte
}

// DeadLetterQueue reads and removes the dead letters of every bridge
// that uses the default dead-letter stream (LX_BRIDGES_DLQ; a bridge with
// DeadLetterOptions.Subject puts them elsewhere). Replaying one is the
// bridge's: Outbound.Replay and Inbound.Replay, in the process that runs
// it.
type DeadLetterQueue struct {
	js jetstream.JetStream
}

// NewDeadLetterQueue reads the default dead-letter stream through js. The
// stream need not exist yet: until a bridge makes it, there are no dead
// letters.
func NewDeadLetterQueue(js jetstream.JetStream) *DeadLetterQueue {
	return &DeadLetterQueue{js: js}
}

// deadLetterPage is how many dead letters one batched direct get asks for.
const deadLetterPage = 256

// List yields the dead letters of one bridge, or of every bridge with "",
// oldest first. It reads with batched direct gets (server 2.11+), so
// listing creates no consumer.
func (q *DeadLetterQueue) List(ctx context.Context, bridge string) iter.Seq2[DeadLetter, error] {
	return func(yield func(DeadLetter, error) bool) {
		filter := deadLetterPrefix + ".>"
		if bridge != "" {
			if err := validBridgeName(bridge); err != nil {
				yield(DeadLetter{}, err)
				return
			}
			filter = deadLetterPrefix + "." + bridge
		}
		fail := func(err error) {
			yield(DeadLetter{}, platform.Errorf(platform.CodeStoreUnavailable, "list the bridges' dead letters in %s: %w", DefaultDeadLetterStream, err))
		}
		if _, err := q.js.Stream(ctx, DefaultDeadLetterStream); errors.Is(err, jetstream.ErrStreamNotFound) {
			return // no bridge has dead-lettered anything yet
		} else if err != nil {
			fail(err)
			return
		}
		for m, err := range lxjs.DirectRead(ctx, q.js, DefaultDeadLetterStream, filter, deadLetterPage) {
			if err != nil {
				fail(err)
				return
			}
			if !yield(deadLetterOf(m), nil) {
				return
			}
		}
	}
}

// Get returns one dead letter; CodeInvalidArgument when there is none at
// seq (replayed or discarded meanwhile).
func (q *DeadLetterQueue) Get(ctx context.Context, seq uint64) (DeadLetter, error) {
	st, err := q.js.Stream(ctx, DefaultDeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return DeadLetter{}, platform.Errorf(platform.CodeInvalidArgument, "bridge dead letter %d does not exist: no bridge has dead-lettered anything yet", seq)
	}
	if err != nil {
		return DeadLetter{}, platform.Errorf(platform.CodeStoreUnavailable, "read bridge dead letter %d: %w", seq, err)
	}
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return DeadLetter{}, platform.Errorf(platform.CodeInvalidArgument, "bridge dead letter %d does not exist: it was replayed or discarded; list the dead letters to see which are left", seq)
	}
	if err != nil {
		return DeadLetter{}, platform.Errorf(platform.CodeStoreUnavailable, "read bridge dead letter %d: %w", seq, err)
	}
	if !strings.HasPrefix(m.Subject, deadLetterPrefix+".") {
		return DeadLetter{}, platform.Errorf(platform.CodeInvalidArgument, "message %d of %s is on %s, not a bridge's dead letter", seq, DefaultDeadLetterStream, m.Subject)
	}
	return deadLetterOf(m), nil
}

// Discard removes a dead letter for good.
func (q *DeadLetterQueue) Discard(ctx context.Context, seq uint64) error {
	if _, err := q.Get(ctx, seq); err != nil {
		return err
	}
	return q.remove(ctx, seq)
}

func (q *DeadLetterQueue) remove(ctx context.Context, seq uint64) error {
	st, err := q.js.Stream(ctx, DefaultDeadLetterStream)
	if err == nil {
		err = st.DeleteMsg(ctx, seq)
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return platform.Errorf(platform.CodeInvalidArgument, "bridge dead letter %d does not exist: it was replayed or discarded meanwhile", seq)
	}
	if err != nil {
		return platform.Errorf(platform.CodeStoreUnavailable, "remove bridge dead letter %d: %w", seq, err)
	}
	return nil
}

// deadLetterOf reads a dead letter back from what put stored.
func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	dl := DeadLetter{
		Seq: m.Sequence, Time: m.Time, Data: m.Data, Header: nats.Header{},
		Bridge: h.Get(HeaderBridge), Direction: h.Get(HeaderDirection), Reason: h.Get(HeaderReason),
		MessageID: h.Get(HeaderMessageID), Subject: h.Get(HeaderSubject), Truncated: h.Get(HeaderTruncated) == "true",
	}
	dl.Sequence, _ = strconv.ParseUint(h.Get(HeaderSequence), 10, 64)
	for k, v := range h {
		if !deadLetterHeader[k] && !natsReserved(k) {
			dl.Header[k] = v
		}
	}
	return dl
}

// deadLetterHeader are the headers put adds to a dead letter.
var deadLetterHeader = map[string]bool{HeaderBridge: true, HeaderDirection: true, HeaderReason: true,
	HeaderMessageID: true, HeaderSubject: true, HeaderSequence: true, HeaderTruncated: true}

// validBridgeName refuses a name that is not one subject token.
func validBridgeName(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\r\n.*>") {
		return platform.Errorf(platform.CodeInvalidArgument, "bridge name %q: a bridge's name is one subject token (letters, digits, '-' and '_')", name)
	}
	return nil
}
