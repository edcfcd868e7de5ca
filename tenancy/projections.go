package tenancy

import (
	"context"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/projections/pgmodel"
)

// Projections returns a projection manager of the tenant: it reads the
// tenant's store, keeps checkpoints in the tenant's bucket and, with
// leases (several processes sharing the tenant's projections), takes them
// in the tenant's bucket <leases.Bucket>_<tenant>, so that a projection
// of one name runs in every tenant at once rather than in one of them
// per lease. opts.Checkpoints and opts.Leases must be nil: they are the
// tenant's.
func (t *Tenant) Projections(ctx context.Context, opts projections.Options, leases *projections.KVLeaseOptions) (*projections.Manager, error) {
	if opts.Checkpoints != nil || opts.Leases != nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"tenancy: tenant %q: projections.Options.Checkpoints or Leases is set: a tenant's projections keep both in the tenant's buckets; leave them nil and pass the lease options to Projections", t.ID)
	}
	opts.Checkpoints = t.Checkpoints
	if opts.Logger == nil {
		opts.Logger = t.ts.opts.Logger
	}
	opts.Logger = opts.Logger.With("tenant", t.ID)
	if leases != nil {
		lo := *leases
		if lo.Bucket == "" {
			lo.Bucket = projections.DefaultLeaseBucket
		}
		lo.Bucket += "_" + t.ID
		if lo.Replicas == 0 {
			lo.Replicas = t.ts.opts.Replicas
		}
		if lo.Storage == 0 {
			lo.Storage = t.ts.opts.Storage
		}
		if lo.Logger == nil {
			lo.Logger = opts.Logger
		}
		l, err := projections.NewKVLeases(ctx, t.ts.js, lo)
		if err != nil {
			return nil, err
		}
		opts.Leases = l
	}
	return projections.New(t.Store, opts)
}

// PGModel returns the tenant's pgmodel projection of model: its views and
// checkpoint table in the tenant's schema (Tenant.PGSchema), each
// generation in <schema>_<name>_g<n>. opts.Schema must be empty: it is
// the tenant's. Register the result on the tenant's manager
// (Tenant.Projections) as projections.Projection{Name: name, Batch: p}.
func (t *Tenant) PGModel(db pgmodel.DB, name string, model pgmodel.Model, opts pgmodel.Options) (*pgmodel.Projection, error) {
	if opts.Schema != "" {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"tenancy: tenant %q: pgmodel.Options.Schema is %q: a tenant's read models are in its own schema %q; leave it empty", t.ID, opts.Schema, t.PGSchema)
	}
	opts.Schema = t.PGSchema
	return pgmodel.New(db, name, model, opts)
}

// PGSchemaOf is the PostgreSQL schema of tenant id's read models:
// <Options.PGSchemaPrefix><id>$, "tenant_acme$" by default.
//
// The '$', which no tenant ID contains, ends the tenant's part, because
// pgmodel names a generation's schema <schema>_<projection>_g<n>: without
// it tenant "acme" with projection "x_orders" and tenant "acme_x" with
// projection "orders" would both have "tenant_acme_x_orders_g1", and one
// tenant's rebuild would drop the other's rows (Marten's #5234 was of
// this shape). With it, every schema names one tenant, and a reader
// schema (ending in '$') is never a generation's (ending in a digit).
// PostgreSQL names are at most 63 bytes: pgmodel.New refuses a tenant and
// projection name too long together.
func (ts *Tenants) PGSchemaOf(id string) string { return ts.opts.PGSchemaPrefix + id + "$" }
