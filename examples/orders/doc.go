// Package orders is the example domain `lexigram serve` runs unless told
// --example=none: the seed's Order aggregate with its commands, the
// OrderSummaryProjection, the OrderFulfillmentSaga and an audit-log
// durable handler, installed on a node with one call:
//
//	n, _ := node.Open(ctx, cfg, node.Options{})
//	if err := orders.Install(ctx, n, orders.Options{}); err != nil { ... }
//	_ = n.Run(ctx)
//
// It is also a worked example of how a domain uses the platform: the
// aggregate checks its rules and raises events (order.go), command
// handlers change it through the unit of work (commands.go), a projection
// keeps a read model in a key-value bucket and, given a database, in
// PostgreSQL (summary.go, summary_pg.go), a query reads it after a
// command's position (read-your-writes), a saga moves a confirmed order on
// through stock, payment and shipping with compensations (fulfillment.go),
// and a durable handler writes every order event to an audit log
// (audit.go).
//
// Over the node's HTTP API (package node/httpapi):
//
//	curl -H 'Content-Type: application/json' localhost:8080/api/commands/order.place -d '{"id":"order-1","customer":"ada"}'
//	curl -H 'Content-Type: application/json' localhost:8080/api/commands/order.add-item -d '{"id":"order-1","sku":"book","quantity":2,"price_cents":1250}'
//	curl -H 'Content-Type: application/json' localhost:8080/api/commands/order.confirm -d '{"id":"order-1"}'
//	curl 'localhost:8080/api/queries/order.summary?id=order-1&wait-for=<position of the last result>'
//	curl localhost:8080/api/aggregates/order/order-1/events
//
// and over NATS from any client (see package handlers):
//
//	nats req lexigram.cmd.order.place '{"id":"order-2","customer":"bob"}'
//
// The saga's payment wait has a deadline, which needs nats-server 2.12
// or newer (message schedules). On an older server Install logs one line
// and leaves the saga out; everything else runs.
//
// Nothing in the platform imports this package; cmd/lexigram does.
package orders
