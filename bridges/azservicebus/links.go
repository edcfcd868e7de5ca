package azservicebus

import (
	"context"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// The few azservicebus calls the adapter makes, as small interfaces: the
// SDK's types satisfy them through the thin wrappers below, and the tests
// give the adapter a fake of them. Everything else here (batching,
// sessions, settling, lock renewal, retries) is the adapter's own logic.

// client opens the links of one entity: a queue, or a topic for senders
// and one of its subscriptions for receivers.
type client interface {
	NewSender() (sendLink, error)
	NewReceiver() (messageReceiver, error)
	// AcceptNextSession locks the next session with messages; without one
	// before ctx's deadline it fails with an *sb.Error of CodeTimeout.
	AcceptNextSession(ctx context.Context) (sessionReceiver, error)
	Close(ctx context.Context) error
}

// sendLink is the part of *sb.Sender the publisher uses.
type sendLink interface {
	// NewBatch is an empty batch as large as the link allows.
	NewBatch(ctx context.Context) (messageBatch, error)
	// SendBatch returns once Service Bus has accepted every message of the
	// batch, or none.
	SendBatch(ctx context.Context, b messageBatch) error
	Close(ctx context.Context) error
}

// messageBatch is the part of *sb.MessageBatch the publisher uses.
// AddMessage fails with sb.ErrMessageTooLarge when m does not fit.
type messageBatch interface {
	AddMessage(m *sb.Message, o *sb.AddMessageOptions) error
	NumMessages() int32
}

// receiveLink is what *sb.Receiver and *sb.SessionReceiver share.
type receiveLink interface {
	ReceiveMessages(ctx context.Context, maxMessages int, o *sb.ReceiveMessagesOptions) ([]*sb.ReceivedMessage, error)
	CompleteMessage(ctx context.Context, m *sb.ReceivedMessage, o *sb.CompleteMessageOptions) error
	AbandonMessage(ctx context.Context, m *sb.ReceivedMessage, o *sb.AbandonMessageOptions) error
	DeadLetterMessage(ctx context.Context, m *sb.ReceivedMessage, o *sb.DeadLetterOptions) error
	Close(ctx context.Context) error
}

// messageReceiver receives from an entity without sessions: each message
// has a lock of its own, renewed one by one.
type messageReceiver interface {
	receiveLink
	// RenewMessageLock extends m's lock and updates m.LockedUntil.
	RenewMessageLock(ctx context.Context, m *sb.ReceivedMessage, o *sb.RenewMessageLockOptions) error
}

// sessionReceiver holds one session of a session-enabled entity: its
// messages come in order and share the session's lock.
type sessionReceiver interface {
	receiveLink
	SessionID() string
	LockedUntil() time.Time
	RenewSessionLock(ctx context.Context, o *sb.RenewSessionLockOptions) error
}

// sdkClient is client over an *sb.Client.
type sdkClient struct {
	c                   *sb.Client
	own                 bool // made from a connection string: closed with the adapter
	queue, topic, subsc string
}

func (s sdkClient) NewSender() (sendLink, error) {
	name := s.queue
	if name == "" {
		name = s.topic
	}
	snd, err := s.c.NewSender(name, nil)
	if err != nil {
		return nil, err
	}
	return sdkSender{snd}, nil
}

func (s sdkClient) NewReceiver() (messageReceiver, error) {
	var r *sb.Receiver
	var err error
	if s.queue != "" {
		r, err = s.c.NewReceiverForQueue(s.queue, nil)
	} else {
		r, err = s.c.NewReceiverForSubscription(s.topic, s.subsc, nil)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (s sdkClient) AcceptNextSession(ctx context.Context) (sessionReceiver, error) {
	var r *sb.SessionReceiver
	var err error
	if s.queue != "" {
		r, err = s.c.AcceptNextSessionForQueue(ctx, s.queue, nil)
	} else {
		r, err = s.c.AcceptNextSessionForSubscription(ctx, s.topic, s.subsc, nil)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (s sdkClient) Close(ctx context.Context) error {
	if !s.own {
		return nil
	}
	return s.c.Close(ctx)
}

// sdkSender is sendLink over an *sb.Sender.
type sdkSender struct{ s *sb.Sender }

func (w sdkSender) NewBatch(ctx context.Context) (messageBatch, error) {
	b, err := w.s.NewMessageBatch(ctx, nil)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (w sdkSender) SendBatch(ctx context.Context, b messageBatch) error {
	return w.s.SendMessageBatch(ctx, b.(*sb.MessageBatch), nil)
}

func (w sdkSender) Close(ctx context.Context) error { return w.s.Close(ctx) }
