// Package tenancy keeps each tenant's data apart: a store, snapshots and
// checkpoints of its own, picked by the tenant in the context
// (platform.WithTenant), which the buses carry across processes
// (handlers.HeaderTenant).
//
// Decided: a stream per tenant, not a subject token per tenant in one
// stream. A tenant's events are in EVENTS_<tenant> on <prefix>-<tenant>.>,
// its snapshots and checkpoints in buckets suffixed _<tenant>. Then no
// read, rebuild or shred of one tenant can reach another's events
// whatever the subject filter (isolation by the server, not by our
// filtering), each tenant has its own limits, replicas and retention,
// deleting a tenant is deleting its streams and buckets, and a tenant's
// global order has no holes made by others' events. The price is a
// stream (and two buckets) per tenant: thousands are fine for JetStream;
// for tens of thousands of small tenants, shard them over accounts or
// clusters.
//
// For hard isolation, put each tenant in a NATS account of its own: the
// same stream names in two accounts are two streams, and a user of one
// account cannot address the other's subjects at all
// (TestAccountsIsolateTenants shows it with an embedded server). Connect
// each tenant's Tenants to a connection in its account.
//
// Require is a handlers middleware that refuses a command or query whose
// context names no tenant, for services where every request must.
//
// What is not per tenant yet: projections' read models in PostgreSQL (give
// each tenant's projection a pgmodel schema named after it), saga
// instances (run a saga manager per tenant on its Tenant's store), and
// data keys of payload encryption (one key ring per registry: a registry
// per tenant gives each its own).
package tenancy
