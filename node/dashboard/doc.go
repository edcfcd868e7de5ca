// Package dashboard is the node's admin dashboard: server-rendered HTML
// pages (html/template, templates and static files embedded in the
// binary) for operators, meant to be mounted at /ui/ beside the /api of
// node/httpapi. New builds it for a *node.Node.
//
// # Screens
//
//	GET  /ui/                                   overview: server, JetStream API level, durability in force, append and consume rates, streams
//	GET  /ui/aggregates?type=&id=               search; an aggregate's history at /ui/aggregates/{type}/{id}
//	GET  /ui/correlations/{id}                  the events of one correlation ID, across aggregates
//	GET  /ui/projections                        state, position, head, lag, rebuild progress
//	POST /ui/projections/{name}/{rebuild|pause|resume}
//	GET  /ui/dlq?handler=                       dead letters; one entry with its payload at /ui/dlq/{handler}/{position}
//	POST /ui/dlq/{handler}/{position}/{replay|discard}
//	POST /ui/dlq/{handler}/all/{replay|discard}    every entry of a handler (form field since=: only those since), progress on /ui/dlq
//	GET  /ui/sagas?type=&state=                 counts by type and state, instances waiting for an operator
//	POST /ui/sagas/{id}/{retry|abort|fire}
//	GET  /ui/consumers                          every consumer's pending, ack pending and positions; each bridge's connection, rate, errors
//	GET  /ui/live?view=...                      server-sent events: the live parts of a page
//
// # Reading without consumers
//
// Browsing reads with direct gets only (the store's Read, batched direct
// gets for a correlation ID, the DLQ's List), never by creating a
// consumer: consumer-based browsing breaks on work-queue and interest
// streams. The live updates cost no consumer either: a page's open
// event stream (/ui/live, one per tab) polls what it shows (stream
// info, projection statuses) at Options.LiveInterval and sends a part
// only when it changed; an aggregate's history is woken by a core NATS
// subscription on that aggregate's subject and reads the new events
// with direct gets. A closed tab ends its event stream and with it all
// of this.
//
// # Rates
//
// The rates (the overview's append and consume rates, each bridge's
// messages per second) are derived by the open page's event stream from
// two successive readings of what it polls: the event stream's last
// sequence, the consumer sequences of the event stream's durable
// consumers' deliveries and ack floors (one consumer list of that
// stream per poll, on the overview's stream only), and each bridge's
// moved count (bridges.Counts, read in process). So they cost an append
// nothing and make no consumer; the page's first render, and each
// stream's first poll, show "—". The consume rate counts deliveries
// acknowledged, so a redelivered event counts once more.
//
// The page applies a part in place (static/dashboard.js morphs the
// element's content): elements still there, matched by tag and id or
// data-key, keep their identity and only their changed text and
// attributes change, so a button under the operator's pointer or with
// keyboard focus is not swapped away by the figures moving around it.
//
// # Actions
//
// Every action that changes something (rebuild, pause, replay, discard,
// retry, abort, fire) is a POST that first answers with a confirmation
// page, and acts only when that page's form is sent; it is logged with
// who asked for it (the token holder or, without a token, the remote
// address).
//
// "Replay all" and "discard all" of a handler's dead letters do what
// `lexigram dlq replay|discard --handler NAME --all [--since]` does:
// the confirmation counts the entries written since the given time (a
// duration such as 2h, or an RFC 3339 time) up to the moment it is shown,
// and only those are taken; then the entries are replayed or discarded
// one after the other in the background, one bulk action per handler at
// a time, with the progress (done of total, rate, time left) live on the
// dead letters page. An entry gone meanwhile is skipped; another error
// stops the action, saying how many were done. The start and the end
// are logged with who asked. Bridges' dead letters (stream
// LX_BRIDGES_DLQ, bridges.DeadLetterQueue) have a page of their own
// (/ui/bridge-dlq): each with its reason, message and payload, replay
// (through the bridge, when this node runs it) and discard, one by one
// and in bulk; a bulk replay goes on past a message that fails again
// (it stays, counted). POSTs from other origins are refused
// (http.CrossOriginProtection), so another web site cannot act through
// an operator's browser.
//
// # Security
//
// The token rule is node/httpapi's (httpapi.CheckToken): without a token
// the dashboard is open on a loopback listener and closed on any other;
// with one, a request needs "Authorization: Bearer <token>" or the
// cookie the login page (/ui/login) sets from the token typed there
// (HttpOnly, SameSite=Strict). Tokens are never logged; they are
// compared by digest in constant time (httpapi.CheckToken).
//
// Wrong tokens are limited per remote address (its host; behind a
// reverse proxy, that is the proxy's) by Options.WrongTokens, which
// lexigram serve shares with the API: after 5 wrong tokens within a
// minute, on the login page, in the Authorization header, in the cookie
// or on the API, requests from that address that carry a token, the right
// one too, are refused with 429, Retry-After and the time to try again,
// until the oldest of them is a minute old. Other addresses are not
// affected; a right token forgets the address's count.
package dashboard
