// Package dashboard is the node's admin dashboard: server-rendered HTML
// pages (html/template, templates and static files embedded in the
// binary) for operators, meant to be mounted at /ui/ beside the /api of
// node/httpapi. New builds it for a *node.Node.
//
// # Screens
//
//	GET  /ui/                                   overview: server, JetStream API level, durability in force, streams
//	GET  /ui/aggregates?type=&id=               search; an aggregate's history at /ui/aggregates/{type}/{id}
//	GET  /ui/correlations/{id}                  the events of one correlation ID, across aggregates
//	GET  /ui/projections                        state, position, head, lag, rebuild progress
//	POST /ui/projections/{name}/{rebuild|pause|resume}
//	GET  /ui/dlq?handler=                       dead letters; one entry with its payload at /ui/dlq/{handler}/{position}
//	POST /ui/dlq/{handler}/{position}/{replay|discard}
//	GET  /ui/sagas?type=&state=                 counts by type and state, instances waiting for an operator
//	POST /ui/sagas/{id}/{retry|abort|fire}
//	GET  /ui/consumers                          every consumer's pending, ack pending and positions; each bridge's connection
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
// address). POSTs from other origins are refused
// (http.CrossOriginProtection), so another web site cannot act through
// an operator's browser.
//
// # Security
//
// The token rule is node/httpapi's (httpapi.CheckToken): without a token
// the dashboard is open on a loopback listener and closed on any other;
// with one, a request needs "Authorization: Bearer <token>" or the
// cookie the login page (/ui/login) sets from the token typed there
// (HttpOnly, SameSite=Strict). Tokens are never logged.
package dashboard
