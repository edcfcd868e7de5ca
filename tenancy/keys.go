package tenancy

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// Keys gives each tenant a key ring of its own for payload encryption:
// its data keys in the bucket <Options.Bucket>_<tenant>, the ring the
// sealer of a registry of the tenant's own (a registry has one sealer),
// SubjectForgotten appended to the tenant's stream, and its snapshots
// sealed with it. Forgetting a data subject in one tenant then erases
// that tenant's key only: another tenant's events with the same subject
// or aggregate ID were sealed with another key, in another bucket, and
// read as they were.
type Keys struct {
	// Provider holds the master keys that wrap every tenant's data keys.
	Provider encryption.KeyProvider
	// ProviderFor, if set, gives each tenant master keys of its own
	// instead (a KMS key per tenant, say).
	ProviderFor func(tenant string) (encryption.KeyProvider, error)
	// Register registers the application's event types (and upcasters)
	// in a tenant's registry, once per tenant as it opens. Required.
	Register func(reg *platform.Registry) error
	// Options are every ring's: Bucket is the prefix of the tenants'
	// buckets (default encryption.DefaultBucket); Mode, Modes and
	// CacheSize apply to each; Registry, Events and Logger are the
	// tenant's, and Replicas and Storage the Tenants' unless set.
	Options encryption.Options
}

// registry makes tenant id's registry.
func (k *Keys) registry(id string) (*platform.Registry, error) {
	if k.Register == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"tenancy: tenant %q: Options.Keys.Register is nil: each tenant has a registry of its own for its key ring, so give the function that registers your event types in one", id)
	}
	reg := platform.NewRegistry()
	if err := k.Register(reg); err != nil {
		return nil, fmt.Errorf("tenancy: tenant %q: Options.Keys.Register: %w", id, err)
	}
	return reg, nil
}

// open opens tenant id's key ring and sets it on reg.
func (k *Keys) open(ctx context.Context, ts *Tenants, id string, reg *platform.Registry, store *lxjs.EventStore, log *slog.Logger) (*encryption.Keyring, error) {
	provider := k.Provider
	if k.ProviderFor != nil {
		var err error
		if provider, err = k.ProviderFor(id); err != nil {
			return nil, fmt.Errorf("tenancy: tenant %q: Options.Keys.ProviderFor: %w", id, err)
		}
	}
	if provider == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"tenancy: tenant %q: Options.Keys has no key provider: set Keys.Provider (encryption.FileKeys, EnvKeys or your KMS's) or Keys.ProviderFor", id)
	}
	o := k.Options
	o.Bucket = ts.KeyBucketOf(id)
	o.Registry, o.Events, o.Logger = reg, store, log
	if o.Replicas == 0 {
		o.Replicas = ts.opts.Replicas
	}
	if o.Storage == 0 {
		o.Storage = ts.opts.Storage
	}
	ring, err := encryption.Open(ctx, ts.js, provider, o)
	if err != nil {
		return nil, fmt.Errorf("tenancy: tenant %q: open its key ring: %w", id, err)
	}
	return ring, nil
}

// KeyBucketOf is the KV bucket of tenant id's data keys (with Options.Keys).
func (ts *Tenants) KeyBucketOf(id string) string {
	base := encryption.DefaultBucket
	if ts.opts.Keys != nil && ts.opts.Keys.Options.Bucket != "" {
		base = ts.opts.Keys.Options.Bucket
	}
	return base + "_" + id
}
