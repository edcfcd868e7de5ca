package webhook

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// Defaults of Endpoint, RetryPolicy and BreakerPolicy.
const (
	DefaultTimeout         = 15 * time.Second // the low end of Standard Webhooks' 15 to 30s
	DefaultMaxConcurrency  = 10
	DefaultMaxAttempts     = 5
	DefaultRetryMinDelay   = time.Second
	DefaultRetryMaxDelay   = time.Minute
	DefaultBreakerFailures = 5
	DefaultBreakerOpenFor  = 30 * time.Second
)

// Endpoint is one receiver of webhooks. Only URL and Secrets are
// required; the zero value of the rest takes every event, with the
// defaults above.
type Endpoint struct {
	// Name identifies the endpoint in errors, logs, metrics and settings:
	// 1 to 64 letters, digits, '-' and '_'. Default "endpoint-<n>", n
	// its place in Options.Endpoints counting from 1.
	Name string
	// URL receives one POST per event: http or https. It may hold
	// credentials (user info, a token in the path or query); errors and
	// logs show only its scheme and host.
	URL string
	// Secrets sign every request, Standard Webhooks style: "whsec_" and
	// the base64 of 24 to 64 random bytes (NewSecret makes one). Each
	// gives one "v1,<signature>" in webhook-signature, so during a
	// rotation list the new secret and the old; receivers check any.
	Secrets []string
	// EventTypes, set, restrict the endpoint to these event types (the
	// registered names, e.g. "order.placed").
	EventTypes []string
	// AggregateTypes, set, restrict the endpoint to events of these
	// aggregates (e.g. "order").
	AggregateTypes []string
	// Timeout bounds one request, from dialling to the end of the
	// response. Default 15s.
	Timeout time.Duration
	// MaxConcurrency bounds the requests in flight to this endpoint, over
	// every Publish call. Default 10.
	MaxConcurrency int
	Retry          RetryPolicy
	Breaker        BreakerPolicy
}

// RetryPolicy says how often and how far apart one message is sent again
// to an endpoint that failed with a 5xx, 408, 409, 425 or 429, a timeout
// or a network error. Other answers are not retried.
type RetryPolicy struct {
	// MaxAttempts counts the requests for one message, the first one
	// included; 1 never retries. Default 5.
	MaxAttempts int
	// MinDelay, doubling up to MaxDelay, spaces the attempts (with up to
	// a fifth of jitter). A Retry-After answer (seconds or an HTTP date)
	// replaces the delay, capped at MaxDelay. Defaults 1s and 1m.
	MinDelay, MaxDelay time.Duration
}

// BreakerPolicy configures an endpoint's circuit breaker: after Failures
// failed requests in a row (5xx, 408, 429, timeouts, network errors) it
// opens, and deliveries to the endpoint fail at once, without a request,
// for OpenFor; then one request probes it (half-open): a success closes
// the circuit, a failure opens it again. Defaults 5 and 30s.
type BreakerPolicy struct {
	Failures int
	OpenFor  time.Duration
}

// endpoint is an Endpoint checked and ready.
type endpoint struct {
	cfg      Endpoint
	idx      int    // in Publisher.eps
	url      string // as configured
	shown    string // scheme://host
	keys     [][]byte
	signer   *signer
	events   map[string]bool // nil: every event type
	aggs     map[string]bool // nil: every aggregate type
	sem      chan struct{}
	backoff  bridges.Backoff
	breaker  *breaker
	disabled atomic.Bool
	inFlight atomic.Int64

	delivered, failedAttempts, deadLettered atomic.Uint64
}

func (e *endpoint) matches(eventType, aggType string) bool {
	return (e.events == nil || e.events[eventType]) && (e.aggs == nil || e.aggs[aggType])
}

// check validates an endpoint and fills in its defaults; n is its place
// in Options.Endpoints from 1. New sets its index.
func (o Options) check(cfg Endpoint, n int) (*endpoint, error) {
	if cfg.Name == "" {
		cfg.Name = "endpoint-" + itoa(n)
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, platform.Errorf(platform.CodeInvalidArgument, "webhook endpoint %s: "+format, append([]any{cfg.Name}, args...)...))
	}
	if err := validName(cfg.Name); err != nil {
		return nil, err
	}
	e := &endpoint{cfg: cfg, url: cfg.URL}
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		bad("url is empty: give the receiver's URL, e.g. \"https://hooks.example.com/lexigram\"")
	case err != nil:
		bad("url does not parse (%v): give an absolute http or https URL", redactURLError(err, cfg.URL))
	case u.Scheme != "http" && u.Scheme != "https":
		bad("url scheme %q: use http or https", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		bad("url %s has no host: give an absolute URL, e.g. \"https://hooks.example.com/lexigram\"", u.Scheme+"://")
	default:
		e.shown = u.Scheme + "://" + u.Host
		if !o.AllowPrivate {
			if a, err := netip.ParseAddr(u.Hostname()); err == nil {
				if why := refusal(a); why != "" {
					bad("url %s: the address is %s: refused to guard against server-side request forgery; set allow_private=true (Options.AllowPrivate) only if the endpoint is meant to be on a private network", e.shown, why)
				}
			}
		}
	}
	if len(cfg.Secrets) == 0 {
		bad("no secret: give one or more in secrets, each \"whsec_\" and base64 of 24 to 64 random bytes (webhook.NewSecret makes one); during a rotation give the new and the old")
	}
	for i, s := range cfg.Secrets {
		k, err := parseSecret(s)
		if err != nil {
			bad("secret %d of %d: %v", i+1, len(cfg.Secrets), err)
			continue
		}
		e.keys = append(e.keys, k)
	}
	if cfg.Timeout < 0 || cfg.MaxConcurrency < 0 || cfg.Retry.MaxAttempts < 0 || cfg.Retry.MinDelay < 0 || cfg.Retry.MaxDelay < 0 || cfg.Breaker.Failures < 0 || cfg.Breaker.OpenFor < 0 {
		bad("timeout %v, max concurrency %d, max attempts %d, retry delays %v to %v, breaker failures %d, open for %v: none may be negative (0 takes the default)",
			cfg.Timeout, cfg.MaxConcurrency, cfg.Retry.MaxAttempts, cfg.Retry.MinDelay, cfg.Retry.MaxDelay, cfg.Breaker.Failures, cfg.Breaker.OpenFor)
	}
	cfg.Timeout = orDefault(cfg.Timeout, DefaultTimeout)
	cfg.MaxConcurrency = orDefault(cfg.MaxConcurrency, DefaultMaxConcurrency)
	cfg.Retry.MaxAttempts = orDefault(cfg.Retry.MaxAttempts, DefaultMaxAttempts)
	cfg.Retry.MinDelay = orDefault(cfg.Retry.MinDelay, DefaultRetryMinDelay)
	cfg.Retry.MaxDelay = orDefault(cfg.Retry.MaxDelay, DefaultRetryMaxDelay)
	cfg.Breaker.Failures = orDefault(cfg.Breaker.Failures, DefaultBreakerFailures)
	cfg.Breaker.OpenFor = orDefault(cfg.Breaker.OpenFor, DefaultBreakerOpenFor)
	if cfg.Retry.MinDelay > cfg.Retry.MaxDelay {
		bad("retry min delay %v is above the max delay %v: lower the first or raise the second", cfg.Retry.MinDelay, cfg.Retry.MaxDelay)
	}
	if len(cfg.EventTypes) > 0 {
		e.events = set(cfg.EventTypes)
	}
	if len(cfg.AggregateTypes) > 0 {
		e.aggs = set(cfg.AggregateTypes)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	e.cfg = cfg
	e.signer = newSigner(e.keys)
	e.sem = make(chan struct{}, cfg.MaxConcurrency)
	e.backoff = bridges.Backoff{Min: cfg.Retry.MinDelay, Max: cfg.Retry.MaxDelay}
	e.breaker = &breaker{threshold: cfg.Breaker.Failures, openFor: cfg.Breaker.OpenFor}
	return e, nil
}

// validName checks an endpoint name: a metric label and a settings key
// prefix, so no dots.
func validName(name string) error {
	if name == "" || len(name) > 64 {
		return platform.Errorf(platform.CodeInvalidArgument, "webhook endpoint name %q: use 1 to 64 letters, digits, '-' and '_', e.g. \"billing\"", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return platform.Errorf(platform.CodeInvalidArgument, "webhook endpoint name %q has %q: use letters, digits, '-' and '_', e.g. \"billing\"", name, c)
		}
	}
	return nil
}

// redactURLError renders a URL parse error without the URL, which may
// hold credentials.
func redactURLError(err error, raw string) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return strings.ReplaceAll(err.Error(), raw, "[url]")
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func orDefault[T int | time.Duration](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}
