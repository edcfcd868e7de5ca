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
// Per tenant besides the store, each opened from a Tenant:
//
//   - projections (Tenant.Projections): checkpoints in the tenant's
//     bucket, leases in <bucket>_<tenant>; read models in PostgreSQL
//     (Tenant.PGModel) in a schema of the tenant's, "tenant_<id>$", whose
//     '$' keeps every generation schema to one tenant (projections.go);
//   - sagas (Tenant.Sagas): instances, work stream, timers and the
//     listeners' dead letters in buckets and streams of the tenant's, the
//     listeners on its store, every step run in its context; with
//     handlers.Idempotency on a shared command bus, a command's key is
//     the tenant's, so the same saga instance ID in two tenants sends two
//     commands;
//   - payload encryption (Options.Keys): a key ring per tenant on a
//     bucket and registry of its own, so forgetting a data subject in one
//     tenant leaves another's events with the same subject readable;
//   - the HTTP API (node/httpapi, Options.Tenants, RequireTenant): the
//     Lexigram-Tenant header names a request's tenant; its reads go to
//     the tenant's store, its commands and queries carry the tenant.
//
// What is not per tenant yet: the node itself (node.Open builds one
// store, projection manager and saga manager; a multi-tenant service
// builds them per tenant with the above), the HTTP API's node-wide
// listings and a query's wait-for (refused, 403, for a request naming a
// tenant), and the dashboard. The snapshot, checkpoint, saga, lease and
// key bucket names carry the tenant but not Options.Stream, so two
// Tenants on one account with different streams share a tenant's buckets.
package tenancy
