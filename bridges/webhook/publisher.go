package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// Options configure a Publisher. Endpoints is required; the zero value of
// the rest refuses private addresses, verifies TLS with the system's
// roots and logs to slog.Default().
type Options struct {
	Endpoints []Endpoint
	// AllowPrivate lets endpoints resolve to loopback, link-local,
	// private, unspecified and multicast addresses. Leave it off when
	// whoever configures endpoints is not trusted with the node's network.
	AllowPrivate bool
	// TLS configures https endpoints (e.g. extra root CAs). nil: the
	// system's roots.
	TLS     *tls.Config
	Metrics *Metrics     // nil: no metrics
	Logger  *slog.Logger // default slog.Default()
}

// Publisher is the outbound side of webhooks: a bridges.Publisher that
// POSTs each message to every endpoint whose filters match it. It is safe
// for concurrent use.
type Publisher struct {
	log       *slog.Logger
	eps       []*endpoint
	needType  bool // an endpoint filters by event type
	client    *http.Client
	transport *http.Transport
	pending   pendingSet
	metrics   *Metrics

	life      context.Context // ends with Close
	end       context.CancelFunc
	closeOnce sync.Once
}

var _ bridges.Publisher = (*Publisher)(nil)

// New checks the endpoints and returns a publisher. It makes no request.
func New(opts Options) (*Publisher, error) {
	if len(opts.Endpoints) == 0 {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "webhook: no endpoints: give at least one, with its url and secrets")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p := &Publisher{log: opts.Logger.With("broker", "webhook"), metrics: opts.Metrics}
	p.life, p.end = context.WithCancel(context.Background())
	var errs []error
	names := map[string]bool{}
	maxConc := 1
	for i, cfg := range opts.Endpoints {
		e, err := opts.check(cfg, i+1)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if names[e.cfg.Name] {
			errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "webhook endpoint %s: the name is taken by another endpoint: give each its own", e.cfg.Name))
			continue
		}
		names[e.cfg.Name] = true
		log := p.log.With("endpoint", e.cfg.Name, "url", e.shown)
		e.breaker.onChange = func(from, to string, failures int) {
			if to == CircuitOpen {
				log.Warn("webhook: circuit open: deliveries fail at once until a probe succeeds", "failures_in_a_row", failures, "open_for", e.cfg.Breaker.OpenFor)
			} else {
				log.Info("webhook: circuit closed: the endpoint answers again", "was", from)
			}
		}
		e.idx = len(p.eps)
		p.eps = append(p.eps, e)
		p.needType = p.needType || e.events != nil
		maxConc = max(maxConc, e.cfg.MaxConcurrency)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !opts.AllowPrivate {
		dialer.Control = guardControl
	}
	p.transport = &http.Transport{
		Proxy:               nil, // a proxy would dial for us, past the guard
		DialContext:         dialer.DialContext,
		TLSClientConfig:     opts.TLS,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: maxConc,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	p.client = &http.Client{
		Transport: p.transport,
		// Redirects are not followed: a 3xx is a failure (Standard
		// Webhooks), and a redirect must not lead the node elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p.metrics.add(p)
	return p, nil
}

// EndpointStatus is an endpoint's state, for operators and tests.
type EndpointStatus struct {
	Name     string
	URL      string // scheme and host only
	Disabled bool   // after a 410 Gone, until the publisher is made again
	Circuit  string // CircuitClosed, CircuitOpen or CircuitHalfOpen
	InFlight int    // requests now
}

// Endpoints reports each endpoint's state, in configuration order.
func (p *Publisher) Endpoints() []EndpointStatus {
	out := make([]EndpointStatus, len(p.eps))
	for i, e := range p.eps {
		out[i] = EndpointStatus{Name: e.cfg.Name, URL: e.shown, Disabled: e.disabled.Load(), Circuit: e.breaker.state(), InFlight: int(e.inFlight.Load())}
	}
	return out
}

// Close makes later Publish calls fail, ends those in flight (their
// messages count as not sent) and closes idle connections.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		p.end()
		p.metrics.remove(p)
		p.transport.CloseIdleConnections()
	})
	return nil
}

func (p *Publisher) closed() bool { return p.life.Err() != nil }

// chain is one key's messages (their indexes in the Publish call), in
// order: at an endpoint each goes once the one before it settled.
type chain []int

// batch is one Publish call's messages and what is known of them.
type batch struct {
	msgs     []*bridges.Message
	outs     []outcome
	progs    []*progress // from an earlier call, per message; nil: none
	evTypes  []string
	aggTypes []string
	chains   []chain // every message, grouped by key
}

// due reports whether message i is due at an endpoint, and where its
// attempts there stand.
func (b *batch) due(i int, ep *endpoint) (attemptState, bool) {
	if b.outs[i].bad != nil {
		return attemptState{}, false
	}
	if pr := b.progs[i]; pr != nil {
		st, ok := pr.due[ep.idx] // taken, or failed, in an earlier call when not
		return st, ok
	}
	return attemptState{}, ep.matches(b.evTypes[i], b.aggTypes[i])
}

// chainsFor gives the chains of the messages due at an endpoint: all of
// them, shared, when every message is.
func (b *batch) chainsFor(ep *endpoint) []chain {
	all := true
	for i := range b.msgs {
		if _, ok := b.due(i, ep); !ok {
			all = false
			break
		}
	}
	if all {
		return b.chains
	}
	var out []chain
	for _, c := range b.chains {
		var f chain
		for _, i := range c {
			if _, ok := b.due(i, ep); ok {
				f = append(f, i)
			}
		}
		if len(f) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// outcome gathers one message's results over the endpoints.
type outcome struct {
	mu       sync.Mutex
	failures []Failure
	due      map[int]attemptState
	bad      error
}

func (o *outcome) fail(f Failure) {
	o.mu.Lock()
	o.failures = append(o.failures, f)
	o.mu.Unlock()
}

func (o *outcome) later(ep int, st attemptState) {
	o.mu.Lock()
	if o.due == nil {
		o.due = map[int]attemptState{}
	}
	o.due[ep] = st
	o.mu.Unlock()
}

// Publish sends each message to every endpoint whose filters match it and
// returns once each such delivery settled: taken (a 2xx), or failed for
// good (a refusing answer, the retries used up, an open circuit, a 410).
// An endpoint's deliveries of one key (one aggregate) go in order, each
// after the one before settled; other keys and other endpoints go
// concurrently, up to each endpoint's MaxConcurrency.
//
// A message that failed for good at any endpoint fails with
// bridges.Refused(*DeliveryError), which the outbound bridge
// dead-letters. When ctx ends first, or an endpoint's next attempt is due
// after ctx's deadline, the message fails with an error that may be
// retried: the publisher remembers which endpoints took it and the
// attempts made, so the bridge's retry sends it only to the others, and
// their retry budget goes on from where it was.
func (p *Publisher) Publish(ctx context.Context, msgs ...*bridges.Message) error {
	if p.closed() {
		return platform.Errorf(platform.CodeBridgeDelivery, "webhook: the publisher is closed: make a new one")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.life, cancel)
	defer stop()

	b := &batch{msgs: msgs, outs: make([]outcome, len(msgs)), progs: make([]*progress, len(msgs)),
		evTypes: make([]string, len(msgs)), aggTypes: make([]string, len(msgs))}
	byKey := make(map[string]int, len(msgs))
	for i, m := range msgs {
		switch {
		case m == nil:
			b.outs[i].bad = platform.Errorf(platform.CodeInvalidArgument, "webhook: message %d of %d is nil", i+1, len(msgs))
			continue
		case m.ID == "":
			b.outs[i].bad = platform.Errorf(platform.CodeInvalidArgument, "webhook: message %d of %d (subject %q) has no ID: webhook-id needs one, stable across retries", i+1, len(msgs), m.Subject)
			continue
		case !validValue(m.ID):
			b.outs[i].bad = platform.Errorf(platform.CodeInvalidArgument, "webhook: message %d of %d has the ID %q, which cannot be an HTTP header value: use printable text", i+1, len(msgs), m.ID)
			continue
		}
		if b.progs[i] = p.pending.take(m.ID); b.progs[i] != nil {
			b.outs[i].failures = b.progs[i].failures
		} else {
			b.evTypes[i], b.aggTypes[i] = attributes(m, p.needType)
		}
		c, ok := byKey[m.Key]
		if !ok {
			c = len(b.chains)
			byKey[m.Key] = c
			b.chains = append(b.chains, nil)
		}
		b.chains[c] = append(b.chains[c], i)
	}

	var wg sync.WaitGroup
	for _, ep := range p.eps {
		chains := b.chainsFor(ep)
		var next atomic.Int64
		for range min(ep.cfg.MaxConcurrency, len(chains)) {
			wg.Go(func() {
				for {
					c := int(next.Add(1) - 1)
					if c >= len(chains) {
						return
					}
					p.runChain(ctx, ep, b, chains[c])
				}
			})
		}
	}
	wg.Wait()

	var errs []error
	for i, m := range msgs {
		o := &b.outs[i]
		var err error
		switch {
		case o.bad != nil:
			err = bridges.Refused(o.bad)
		case len(o.due) > 0:
			p.pending.put(m.ID, &progress{due: o.due, failures: o.failures})
			err = p.notYet(m.ID, o.due)
		case len(o.failures) > 0:
			err = bridges.Refused(&DeliveryError{MessageID: m.ID, Failures: o.failures})
		}
		if err != nil {
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			errs[i] = err
		}
	}
	if errs == nil {
		return nil
	}
	return &bridges.BatchError{Errs: errs}
}

// notYet is the error of a message some endpoints have yet to settle.
func (p *Publisher) notYet(id string, due map[int]attemptState) error {
	e, st := -1, attemptState{}
	for i, s := range due {
		if e < 0 || i < e {
			e, st = i, s
		}
	}
	ep := p.eps[e]
	why := "the call ended first"
	if st.last != nil {
		why = "the last attempt: " + st.last.Error()
	}
	return platform.Errorf(platform.CodeWebhookDelivery, "webhook message %q: %d endpoint(s) still due, e.g. %s (%s) after %d of %d attempts (%s); the bridge tries again, and only those endpoints get it",
		id, len(due), ep.cfg.Name, ep.shown, st.attempts, ep.cfg.Retry.MaxAttempts, why)
}

// runChain delivers one key's messages to one endpoint in order. Once one
// is left due, those after it are left due too, untried, so that none
// overtakes it.
func (p *Publisher) runChain(ctx context.Context, ep *endpoint, b *batch, c chain) {
	for k, i := range c {
		st, _ := b.due(i, ep)
		switch r := p.deliver(ctx, ep, b.msgs[i], &st); r.verdict {
		case delivered, skipped:
		case canceled:
			b.outs[i].later(ep.idx, st)
			for _, j := range c[k+1:] {
				rest, _ := b.due(j, ep)
				b.outs[j].later(ep.idx, rest)
			}
			return
		default:
			b.outs[i].fail(r.failure)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
