package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// DefaultURL is the broker of a default RabbitMQ installation.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// redact hides the user and password of an AMQP URL: errors and logs name
// the broker without them.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			return "[redacted]" + raw[at:]
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	u.User = nil
	scheme, rest, _ := strings.Cut(u.String(), "://")
	return scheme + "://[redacted]@" + rest
}

// conn keeps one AMQP connection and dials it again, with backoff, once
// it is closed.
type conn struct {
	url     string
	shown   string // url without credentials
	backoff bridges.Backoff
	log     *slog.Logger
	setup   func(*amqp.Channel) error // declares the topology; may be nil

	mu       sync.Mutex
	c        *amqp.Connection
	failures int
	next     time.Time // no dial before this, after failures
	closed   bool
}

func newConn(rawURL string, b bridges.Backoff, log *slog.Logger, setup func(*amqp.Channel) error) *conn {
	if rawURL == "" {
		rawURL = DefaultURL
	}
	return &conn{url: rawURL, shown: redact(rawURL), backoff: b, log: log, setup: setup}
}

// get returns the open connection, dialling when there is none. While
// the broker is down, dials are spaced by the backoff; get waits for the
// next one as long as ctx allows.
func (c *conn) get(ctx context.Context) (*amqp.Connection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, amqp.ErrClosed
	}
	if c.c != nil && !c.c.IsClosed() {
		return c.c, nil
	}
	if wait := time.Until(c.next); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, platform.Errorf(platform.CodeBridgeDelivery, "rabbitmq %s: reconnect: %w", c.shown, ctx.Err())
		case <-t.C:
		}
	}
	nc, err := amqp.DialConfig(c.url, amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US", Dial: amqp.DefaultDial(10 * time.Second)})
	if err == nil && c.setup != nil {
		err = c.declare(nc)
	}
	if err != nil {
		c.next = time.Now().Add(c.backoff.Delay(c.failures))
		c.failures++
		if nc != nil {
			_ = nc.Close()
		}
		return nil, platform.Errorf(platform.CodeBridgeDelivery, "rabbitmq %s: connect: %s", c.shown, scrub(err, c.url))
	}
	if c.failures > 0 {
		c.log.Info("rabbitmq: reconnected", "broker", c.shown, "after_failures", c.failures)
	}
	c.failures, c.c = 0, nc
	return nc, nil
}

func (c *conn) declare(nc *amqp.Connection) error {
	ch, err := nc.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return c.setup(ch)
}

// scrub renders err without the URL's credentials, which some dial errors
// repeat.
func scrub(err error, rawURL string) string {
	s := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = strings.ReplaceAll(s, p, "[redacted]")
		}
	}
	return s
}

// up reports whether the connection is open, or, before the first
// connect (a publisher connects on first use), that none has failed.
func (c *conn) up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c != nil {
		return !c.c.IsClosed()
	}
	return c.failures == 0
}

func (c *conn) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.c != nil && !c.c.IsClosed() {
		return c.c.Close()
	}
	return nil
}

func (c *conn) String() string { return fmt.Sprintf("rabbitmq %s", c.shown) }
