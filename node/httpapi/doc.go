// Package httpapi is the node's HTTP API under /api: JSON in and out, for
// programs, the CLI and a dashboard. Handler serves it for a *node.Node;
// `lexigram serve` mounts it beside /healthz and /metrics.
//
// # Routes
//
//	POST /api/commands/{type}                dispatch a command (JSON body; Idempotency-Key header)
//	GET  /api/queries/{type}?field=...       run a query (parameters → fields by JSON name; wait-for=<position>)
//	GET  /api/aggregates/{type}/{id}/events  an aggregate's history, paged: ?after=<version>&limit=<n>
//	GET  /api/streams                        the account's JetStream streams
//	GET  /api/projections                    every projection's status
//	GET  /api/sagas                          saga instances: ?type=&state=&after=&limit=
//	GET  /api/dlq                            dead letters: ?handler=&limit=
//	GET  /api/stream                         WebSocket: the store's events as they are stored
//	GET  /api/openapi.json                   OpenAPI 3.1 of the above
//
// A command or query type is any type registered in the node's registry
// (platform.Register) whose handler the node's buses reach, in this
// process or, with a Remote, in another: the API decodes the body (or the
// query parameters) into the registered Go type and dispatches it, so a
// domain exposes a command by registering it and its handler, nothing
// more. Options.Commands and Options.Queries name the types the OpenAPI
// document describes (with their Go types' JSON schemas); they do not
// limit what is served. A command body must be a JSON object of the type's
// fields; unknown fields are refused, so a typo is a 400 naming the field.
//
// The wait-for parameter of a query holds the read until projections
// have applied that position (a command's result carries it): the
// projection named by the projection parameter, else the one the query
// names itself (handlers.ConsistentQuery), else every projection of the
// node; at most Options.WaitTimeout, after which the answer is 504.
//
// # Errors
//
// Every error is an RFC 9457 problem (application/problem+json) with
// type, title, status and detail, and the platform's stable code (LXE-…),
// the field at fault and the fix where they are known. Status follows
// the most specific code in the error's chain (status.go has the one
// table): a concurrency conflict is 409, an unknown type, aggregate or
// handler 404, bad JSON or a bad parameter 400, a failed validation (or a
// handler's refusal without a more specific code) 422, a body over
// Options.MaxBodyBytes 413. A 5xx means the node, not the request, is at
// fault.
//
// # Security
//
// With a token (Options.Token, http.token, LEXIGRAM_HTTP_TOKEN) every
// /api route requires "Authorization: Bearer <token>"; the WebSocket
// route also takes it as a token query parameter, since browsers cannot
// set headers on a WebSocket. Without a token the API is open on a
// loopback listener and closed (every request refused, saying why) on
// any other (Options.Public). Refusals are 401 with WWW-Authenticate. The
// API logs no request URLs, headers or tokens. Tokens are compared by
// their SHA-256 digests in constant time, so the time taken tells nothing
// of the token, its length included. Wrong tokens are limited per remote
// address (Options.WrongTokens, shared with the dashboard by lexigram
// serve): after 5 within a minute, requests from that address carrying a
// token, the right one too, get 429 with Retry-After until the oldest is
// a minute old.
//
// # Tenants
//
// A request names its tenant with the Lexigram-Tenant header (the one
// the buses carry it in; GET /api/stream also takes a tenant parameter):
// its commands and queries are dispatched in that tenant's context, and
// its aggregate histories and stream read the tenant's store
// (Options.Tenants, a *tenancy.Tenants). A malformed tenant is 400,
// naming the header, the value and the rule; with Options.RequireTenant,
// so is a request to those routes that names none. The node-wide
// listings (streams, projections, sagas, dead letters) and a query's
// wait-for are not per tenant: a request naming a tenant gets 403 there
// (tenant.go).
//
// # Streaming
//
// GET /api/stream upgrades to a WebSocket and sends each stored event as
// a JSON text message (the envelope's fields and the decoded event, the
// form of the aggregate history). aggregate_type and aggregate_id narrow
// the server-side subject filter (omitted or "*": any); event_type (a
// comma-separated list) is filtered here, since the type is a header,
// not a subject token. from=<position> starts after that position
// (resume with the last position received); without it only new events
// are sent. A client that does not keep up, so that its send buffer stays
// full for longer than Options.SlowClientTimeout, is closed with status
// 1008 (policy violation) and the reason "too slow: reconnect with
// from=<last position sent>", so memory stays bounded.
package httpapi
