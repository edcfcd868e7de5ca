// Package webhook is the outbound webhook adapter of bridges, on
// net/http, registered as the broker "webhook": one outbound bridge (one
// JetStream consumer) fans each event out to every endpoint whose filters
// match it, as an HTTP POST signed the Standard Webhooks way.
//
// # Delivery
//
// Publisher.Publish returns once every matching endpoint has settled the
// message: taken it (a 2xx), or failed for good. So the bridge acks the
// JetStream message only after all of them; a message that failed for
// good at one endpoint or more comes back as bridges.Refused with a
// *DeliveryError (code LXE-018, the seed's WebhookDeliveryError) naming
// them, and the bridge puts it in its dead-letter subject with that
// reason. The other endpoints keep it: a replay of the dead letter sends
// it to every matching endpoint again, under the same webhook-id, which
// receivers use to drop what they have seen.
//
// An endpoint's deliveries of one key (one aggregate's events) go in
// order, each once the one before settled; other keys and endpoints go
// concurrently, up to each endpoint's MaxConcurrency requests in flight
// over every Publish call. One slow or failing endpoint holds the
// bridge's batch for no longer than its own retry budget (MaxAttempts
// requests of at most Timeout each, MaxDelay apart at most); its circuit
// breaker then makes its next deliveries fail at once, without a
// request, until a probe succeeds.
//
// When a Publish call's context ends first (the bridge's publish timeout,
// or Stop), or an endpoint's next attempt is due after its deadline, the
// message fails with an error the bridge retries. The publisher remembers,
// by message ID, which endpoints took it and how many attempts the others
// used, so the retry goes only to those others and their budget goes on.
//
// # Answers
//
// A 2xx is success. 5xx, 408, 409, 425 and 429 answers, timeouts and
// network errors are retried with backoff (MinDelay doubling to MaxDelay,
// jittered); a Retry-After header, in seconds or as an HTTP date,
// replaces the delay, capped at MaxDelay. 3xx answers fail: redirects are
// not followed. Other 4xx fail at once. 410 Gone also disables the
// endpoint: it is logged, the lexigram_webhook_endpoint_disabled gauge
// goes to 1, and the endpoint gets nothing more, without dead letters,
// until the publisher is made again (a restart with the configuration).
//
// # Requests
//
// Each request carries webhook-id (the message ID, the same on every
// retry), webhook-timestamp (Unix seconds of the attempt) and
// webhook-signature: "v1,<base64 HMAC-SHA256 of id.timestamp.body>" for
// each of the endpoint's secrets, separated by spaces, so a receiver
// checks whichever it knows while a secret rotates. The body and the
// other headers are the message as the bridge's format made it:
// bridges.PassThrough (the payload, Lx-* headers), CloudEventsBinary
// (ce-* headers, the payload's content type) or CloudEventsStructured
// (one application/cloudevents+json object).
//
// Filters: an endpoint's EventTypes match the event type (Lx-Type,
// ce-type, or the structured event's type); its AggregateTypes the
// aggregate type (the event store subject's second to last token, or
// ce-lxaggregatetype).
//
// # Server-side request forgery
//
// Unless Options.AllowPrivate, the publisher refuses to connect to
// loopback, link-local (169.254.0.0/16, fe80::/10, where cloud metadata
// services answer), private (RFC 1918, fc00::/7), shared (100.64.0.0/10),
// unspecified, multicast and reserved addresses, also when they sit
// inside IPv6 ones (mapped, NAT64, 6to4). The check runs on each address
// as it is dialled, after name resolution, so a name that resolves or is
// rebound to such an address is refused too; an IP literal is refused
// when the publisher is made. Requests never go through a proxy, and
// redirects are not followed. A refused delivery is not retried.
//
// # Settings
//
// Settings of the registered driver (bridges.NewPublisher(ctx, "webhook",
// s)). One bridge fans out to several endpoints, so endpoint keys carry
// the endpoint's name:
//
//	endpoints         the names, comma-separated, e.g. "billing,crm" (required)
//	<name>.url        the endpoint's URL (required)
//	<name>.secrets    its whsec_ secrets, comma- or space-separated, newest first (required)
//	<name>.event_types, <name>.aggregate_types
//	                  comma-separated filters; empty: every event
//	<name>.timeout, <name>.max_concurrency, <name>.max_attempts,
//	<name>.retry_min, <name>.retry_max, <name>.breaker_failures,
//	<name>.breaker_open_for
//	                  Endpoint's fields (durations as "15s"); each may also be
//	                  given without "<name>." as every endpoint's default
//	allow_private     "true" lets endpoints be on private addresses
//
// Unknown keys are an error. Values may hold credentials: errors and logs
// never show secrets, and show only the scheme and host of URLs.
package webhook
