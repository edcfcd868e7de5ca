package azservicebus

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	sb "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// closeTimeout bounds the calls Close makes to Service Bus.
const closeTimeout = 10 * time.Second

// PublisherOptions configure a Publisher: a connection (ConnectionString
// or Client) and one entity (Queue or Topic) are required.
type PublisherOptions struct {
	// ConnectionString of the namespace or the entity, as the portal's
	// shared access policies give it (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...).
	// The key never shows in errors or logs.
	ConnectionString string
	// Client, set, is used instead of ConnectionString (one made with
	// sb.NewClient and an azidentity credential, say); Close leaves it open.
	Client *sb.Client
	Queue  string
	Topic  string
	// Sessions: the entity requires sessions. Each message's SessionId is
	// then its Key (the aggregate ID for events), so Service Bus delivers
	// one aggregate's events in order.
	Sessions bool
	Logger   *slog.Logger
}

// Publisher sends to one queue or topic. Publish returns once Service Bus
// has accepted the messages, so the outbound bridge acks JetStream only
// after that.
type Publisher struct {
	w        where
	cl       client
	link     sendLink
	sessions bool
	log      *slog.Logger
	closed   atomic.Bool
	up       atomic.Bool
}

// NewPublisher returns a publisher; it connects on first use.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	if err := oneEntity("publisher", opts.Queue, opts.Topic, ""); err != nil {
		return nil, err
	}
	cl, w, err := open(opts.ConnectionString, opts.Client, opts.Queue, opts.Topic, "")
	if err != nil {
		return nil, err
	}
	return newPublisher(cl, w, opts)
}

func newPublisher(cl client, w where, opts PublisherOptions) (*Publisher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	link, err := cl.NewSender()
	if err != nil {
		_ = cl.Close(context.Background())
		return nil, w.explain("open a sender", err)
	}
	p := &Publisher{w: w, cl: cl, link: link, sessions: opts.Sessions, log: opts.Logger.With("broker", w.String())}
	p.up.Store(true)
	return p, nil
}

// CloudEventsPrefix is the AMQP binding's spelling of CloudEvents
// application properties.
func (p *Publisher) CloudEventsPrefix() string { return "cloudEvents_" }

// Connected reports whether the last send succeeded (true before the
// first).
func (p *Publisher) Connected() bool { return p.up.Load() }

// Publish sends the messages in batches as large as the link allows and
// returns once Service Bus accepted each batch. With sessions, each
// batch holds one key's messages, in order; when a batch fails, the
// later messages of its key are not sent (so that none overtakes it) and
// fail too, while other keys go on. Without sessions, a failed batch
// fails every message after it. A message too large for any batch fails
// alone, marked bridges.Refused. The failures come in a
// *bridges.BatchError.
func (p *Publisher) Publish(ctx context.Context, msgs ...*bridges.Message) error {
	if p.closed.Load() {
		return p.w.errorf(platform.CodeBridgeDelivery, "%s: the publisher is closed", p.w)
	}
	errs := make([]error, len(msgs))
	for _, group := range p.groups(msgs) {
		p.sendGroup(ctx, msgs, group, errs)
	}
	sent, failed := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			sent++
		case !bridges.IsRefused(err):
			failed++
		}
	}
	if sent > 0 || failed == 0 {
		p.up.Store(true)
	} else {
		p.up.Store(false)
	}
	for _, err := range errs {
		if err != nil {
			return &bridges.BatchError{Errs: errs}
		}
	}
	return nil
}

// groups splits msgs into what goes out in batches of its own, as
// indexes in their order: one group per session with sessions, else one.
func (p *Publisher) groups(msgs []*bridges.Message) [][]int {
	if !p.sessions {
		all := make([]int, len(msgs))
		for i := range all {
			all[i] = i
		}
		return [][]int{all}
	}
	var out [][]int
	at := map[string]int{}
	for i, m := range msgs {
		s := sessionOf(m)
		g, ok := at[s]
		if !ok {
			g = len(out)
			at[s] = g
			out = append(out, nil)
		}
		out[g] = append(out[g], i)
	}
	return out
}

// sendGroup sends one group's messages in order, filling batches until
// they are full, and records each message's outcome in errs.
func (p *Publisher) sendGroup(ctx context.Context, msgs []*bridges.Message, group []int, errs []error) {
	var (
		batch messageBatch
		in    []int // the group's messages in batch
	)
	flush := func() error {
		if len(in) == 0 {
			return nil
		}
		var e error
		if err := p.link.SendBatch(ctx, batch); err != nil {
			e = p.w.explain("send "+strconv.Itoa(len(in))+" messages", err)
			for _, i := range in {
				errs[i] = e
			}
		}
		batch, in = nil, nil
		return e
	}
	rest := func(from int, err error) {
		for _, i := range group[from:] {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	for n, i := range group {
		m := outgoing(msgs[i], p.sessions)
		for {
			if batch == nil {
				b, err := p.link.NewBatch(ctx)
				if err != nil {
					rest(n, p.w.explain("send: open a batch", err))
					return
				}
				batch = b
			}
			err := batch.AddMessage(m, nil)
			if err == nil {
				in = append(in, i)
				break
			}
			if errors.Is(err, sb.ErrMessageTooLarge) && len(in) > 0 {
				// The batch is full: send it, then try m in a new one.
				if err := flush(); err != nil {
					rest(n, p.w.errorf(platform.CodeBridgeDelivery, "%s: message not sent, so that it does not overtake an earlier one that failed: %w", p.w, err))
					return
				}
				continue
			}
			// Too large even for an empty batch, or not encodable: no
			// retry can send it.
			errs[i] = bridges.Refused(p.w.explain("send message "+strconv.Quote(msgs[i].ID)+" ("+strconv.Itoa(len(msgs[i].Data))+" bytes)", err))
			break
		}
	}
	_ = flush() // its failure is in errs
}

// Close closes the sender and, when the publisher made it, the client;
// later publishes fail.
func (p *Publisher) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var errs []error
	if err := p.link.Close(ctx); err != nil && codeOf(err) != sb.CodeClosed {
		errs = append(errs, p.w.explain("close the sender", err))
	}
	if err := p.cl.Close(ctx); err != nil {
		errs = append(errs, p.w.explain("close the client", err))
	}
	return errors.Join(errs...)
}
