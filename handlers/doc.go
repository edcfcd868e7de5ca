// Package handlers is the command, query and event buses of lexigram
// events: the CQRS side of the platform, with the middleware that runs
// around every handler.
//
// # Buses
//
// A CommandBus runs exactly one handler per command type and returns a
// CommandResult; a QueryBus runs one handler per query type and returns its
// typed result; an EventBus runs any number of handlers per event type, in
// parallel, and reports each one's outcome in a DispatchResult. Handlers are
// registered with generics, the Go form of the seed's decorators:
//
//	handlers.HandleCommand(cmds, func(ctx context.Context, c PlaceOrder) error { ... })
//	handlers.HandleQuery(queries, func(ctx context.Context, q GetOrder) (OrderView, error) { ... })
//	handlers.HandleEvent(events, "mailer", func(ctx context.Context, e OrderPlaced) error { ... })
//
// Command and query types are named in a platform.Registry, like events
// (platform.Register[PlaceOrder](reg, "order.place", 1)); the name is the
// type on the wire and in metrics. A Scope registers one feature module's
// handlers with the module's own middleware and removes them together.
//
// # Across processes
//
// Give the command and query buses a Remote and a handler registered in one
// process serves commands sent from any other: requests go to
// <prefix>.cmd.<type> and <prefix>.qry.<type>, served through the NATS
// micro service API (one service, one endpoint per type, a queue group
// sharing each type among its processes, so `nats micro ls`, `info` and
// `stats` show them). A request's ID and its caller's remaining time
// travel in a short prefix ahead of the body (headers cost more than the
// bytes they carry; wire.go describes the format), and the remaining time
// bounds the remote handler; the correlation and causation IDs and the
// W3C trace context travel in headers. Any NATS client can send a plain
// body, with the ID and remaining time in headers if it has them. Errors
// come back with their codes (micro's error headers carry the outermost)
// and are rebuilt as *platform.Error and *platform.ConcurrencyError
// values, so errors.Is and errors.As work as they do in process. Bodies
// use the platform codec, msgpack by default.
//
// # From any NATS client
//
// A command or query is a NATS request to its subject with the message
// as a JSON object: a body that starts with '{' or '[' and no
// Lexigram-Codec header is read as JSON (strictly: an unknown field is
// an error naming it), and the answer is JSON, errors included. With the
// nats CLI, against `lexigram serve` and its example domain:
//
//	nats micro ls                                  # the lexigram service
//	nats micro info lexigram                       # its endpoints: one per command and query type
//	nats req lexigram.cmd.order.place '{"id":"order-7","customer":"ada"}'
//	nats req lexigram.cmd.order.add-item '{"id":"order-7","sku":"book","quantity":1,"price_cents":1250}'
//	nats req lexigram.qry.order.summary '{"id":"order-7","after":2}'
//
// A command answers with its result, the form of the HTTP API's:
// {"aggregate":{"type":"order","id":"order-7"},"version":1,"position":1,
// "events":[{"type":"order.placed",...,"event":{"customer":"ada"}}],
// "changes":[...]}; a query with its handler's result as JSON. An error
// sets micro's error headers (Nats-Service-Error-Code: the LXE code,
// Nats-Service-Error: the message) and its body is the error's chain,
// {"code":"LXE-005","message":"...","cause":{"code":"LXE-001",...}}.
// Optional headers: Lexigram-Id (the message ID, default a new one),
// Lexigram-Timeout (how long the caller waits, as a Go duration; default
// the serving Remote's Timeout), Lexigram-Correlation-Id,
// Lexigram-Idempotency-Key (with the Idempotency middleware, a retry with
// the same key gets the first result) and Lexigram-Tenant, for example
// `nats req -H Lexigram-Idempotency-Key:k1 lexigram.cmd.order.confirm
// '{"id":"order-7"}'`. Lexigram-Codec: json or msgpack says the codec
// outright; its JSON is decoded as the JSON codec does, leniently.
//
// # Commands and the unit of work
//
// A command handler loads or creates aggregates through the unit of work
// (Load, Track) and returns nil or an error; the Transaction middleware
// then saves every aggregate it changed, or drops their new events, and
// builds the CommandResult from the saves. The command's ID is the
// causation ID of the events it produced, and the correlation ID follows
// from the context (or is the command's ID) into the events, the event
// handlers and the commands they send in turn.
//
// # Events
//
// The event bus delivers the events appended to the store, read with the
// store's Subscribe (EventBus.Run): there is no second publish, so no dual
// write. Each event type has a bounded channel and a drain goroutine, so a
// slow handler holds back the reading instead of growing memory. For
// handlers that must not miss an event across restarts, with redelivery
// and a dead-letter queue, see package handlers/durable, which reuses this
// package's event middleware.
//
// # Middleware
//
// Middleware is a function that wraps the next handler; Middleware values
// carry one for each bus. The package provides Validation, Transaction,
// Logging (log/slog), Retry (exponential backoff with jitter, retryable
// errors only), Timeout, Metrics (Prometheus), CircuitBreaker, Tracing
// (OpenTelemetry) and Recovery; DefaultMiddleware gives their default order
// and says why it differs from the seed's. Idempotency, which needs a
// key-value bucket, is not in it.
//
// # Idempotency
//
// A command sent again after a crash or a lost reply (a saga step run
// again, a client retrying) can carry an idempotency key: the value of its
// IdempotencyKey method, or else the key of WithIdempotencyKey on the
// context it is dispatched with (the handler's context does not pass it on
// to the commands the handler sends). It is Message.IdempotencyKey, and
// travels to other processes in the Lexigram-Idempotency-Key header. With
// the Idempotency middleware and a bucket from OpenIdempotencyBucket, the
// first dispatch of a key claims it, runs, and remembers its CommandResult
// for the window (24h by default, per-key TTLs: nats-server 2.11 or
// later); a repeat within the window, in any process sharing the bucket,
// gets that result and the handler does not run. Errors are not
// remembered: a retry after a failure runs the command again. A repeat
// that comes while the first dispatch still runs waits for its result and
// returns it, or runs the command itself if the first one fails; a claim
// older than the Wait (30s by default) is presumed dead, its process
// crashed, and is taken over. Commands without a key pass through with no
// I/O.
//
// # Tests
//
// NewStub runs everything in memory for users' unit tests: in-memory
// stores, the three buses, and the event bus fed by the store, so a command
// dispatched through the stub has reached the event handlers when Dispatch
// returns.
package handlers
