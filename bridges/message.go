package bridges

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/lexigram/events/platform"
)

// Header holds a message's headers, one value per name: every broker here
// keeps one value per property, and NATS headers with several values do
// not travel well through them.
type Header map[string]string

// Message is what crosses a bridge, in either direction.
type Message struct {
	// ID identifies the message across redeliveries: outbound, the event's
	// ID (or stream and sequence); inbound, the broker's message ID. The
	// inbound runner derives Nats-Msg-Id from it.
	ID string
	// Key orders messages: those with the same key keep their order.
	// Outbound it is the aggregate ID (Kafka's message key); inbound,
	// whatever the broker gives (Kafka's key), possibly empty.
	Key string
	// Subject is the JetStream subject: where an outbound message was
	// stored, or, for an inbound message, where the broker says it came
	// from (a routing key, a topic), for a SubjectFunc to use.
	Subject string
	Header  Header
	Data    []byte
}

// Publisher sends messages to a broker.
type Publisher interface {
	// Publish returns nil once the broker has confirmed every message (a
	// publisher confirm, acks=all, a 2xx). Otherwise it returns an error:
	// a *BatchError says which messages failed, any other error that
	// none can be counted as sent. A message the broker refuses for good
	// fails with an error wrapped by Refused; anything else may succeed
	// when tried again. Publish must honour ctx and be safe for
	// concurrent use.
	Publish(ctx context.Context, msgs ...*Message) error
	Close() error
}

// Subscriber receives messages from a broker.
type Subscriber interface {
	// Subscribe delivers messages until ctx ends or Close is called, then
	// closes the channel. Across broker outages the channel stays open: the
	// subscriber reconnects on its own. A message that is neither acked
	// nor nacked must come again, to this subscriber or another, once this
	// one is closed or its connection lost. Subscribe is called once.
	Subscribe(ctx context.Context) (<-chan *Delivery, error)
	Close() error
}

// ConnectionReporter is implemented by adapters that know whether their
// broker connection is up; the runner exports it as a metric.
type ConnectionReporter interface {
	Connected() bool
}

// Delivery is one received message with its acknowledgement. Ack and Nack
// may be called once between them; later calls return nil and do nothing.
type Delivery struct {
	Message
	ack, nack func(ctx context.Context) error
	done      atomic.Bool
}

// NewDelivery is how an adapter hands out a message. ack settles it for
// good; nack asks for it again (nil: the broker redelivers it once the
// subscriber goes away).
func NewDelivery(m Message, ack, nack func(ctx context.Context) error) *Delivery {
	return &Delivery{Message: m, ack: ack, nack: nack}
}

// Ack tells the broker the message is safely stored.
func (d *Delivery) Ack(ctx context.Context) error {
	if !d.done.CompareAndSwap(false, true) || d.ack == nil {
		return nil
	}
	return d.ack(ctx)
}

// Nack asks the broker to deliver the message again.
func (d *Delivery) Nack(ctx context.Context) error {
	if !d.done.CompareAndSwap(false, true) || d.nack == nil {
		return nil
	}
	return d.nack(ctx)
}

// refused marks a refusal for good.
type refused struct{ err error }

func (r refused) Error() string { return r.err.Error() }
func (r refused) Unwrap() error { return r.err }

// Refused marks err as a refusal for good (too large, unroutable, a 4xx):
// sending the message again cannot help, so the runner dead-letters it and
// goes on. Refused(nil) is nil.
func Refused(err error) error {
	if err == nil {
		return nil
	}
	return refused{err}
}

// IsRefused reports whether err, or a cause of it, was marked Refused.
func IsRefused(err error) bool {
	var r refused
	return errors.As(err, &r)
}

// BatchError reports the outcome of each message of a Publish call that
// partly failed: Errs[i] is nil when msgs[i] was confirmed.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	n, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			if n == 0 {
				first = err
			}
			n++
		}
	}
	return platform.Errorf(platform.CodeBridgeDelivery, "%d of %d messages not confirmed, the first: %w", n, len(e.Errs), first).Error()
}

// Unwrap gives the failures, so errors.Is and IsRefused look into them.
func (e *BatchError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// ErrorsOf spreads the error of a Publish of n messages over them: the
// per-message errors of a *BatchError, or err for each.
func ErrorsOf(err error, n int) []error {
	errs := make([]error, n)
	if err == nil {
		return errs
	}
	var be *BatchError
	if errors.As(err, &be) && len(be.Errs) == n {
		return be.Errs
	}
	for i := range errs {
		errs[i] = err
	}
	return errs
}
