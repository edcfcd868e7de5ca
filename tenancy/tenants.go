package tenancy

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/encryption"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
)

// Options configure New. The zero value works.
type Options struct {
	Stream        string                // tenants' streams are <Stream>_<tenant>; default "EVENTS"
	SubjectPrefix string                // and their subjects <SubjectPrefix>-<tenant>.>; default "events"
	Replicas      int                   // of every tenant's stream and buckets; default 1
	Storage       jetstream.StorageType // default file
	// Registry is every tenant's registry, unless Keys gives each one of
	// its own. Default platform.DefaultRegistry.
	Registry *platform.Registry
	Logger   *slog.Logger // default slog.Default()
	// Store changes each tenant's store options before it opens (group
	// commit, durability, ...); the stream, prefix and registry are the
	// tenant's.
	Store func(tenant string, o *lxjs.Options)
	// Keys, if set, encrypts payloads with a key ring per tenant (keys.go),
	// so that forgetting a data subject in one tenant cannot touch
	// another's. nil: payloads as Registry's sealer (if any) has them.
	Keys *Keys
	// PGSchemaPrefix starts the PostgreSQL schema of each tenant's read
	// models: <PGSchemaPrefix><tenant>$ (projections.go says why the $).
	// Default "tenant_".
	PGSchemaPrefix string
}

// Tenants opens and keeps each tenant's stores.
type Tenants struct {
	js   jetstream.JetStream
	opts Options
	// mu guards open; For takes it for reading on every call, so that
	// tenants already open do not queue behind one that is opening.
	mu   sync.RWMutex
	open map[string]*Tenant
}

// Tenant is one tenant's stores.
type Tenant struct {
	ID          string
	Store       *lxjs.EventStore
	Snapshots   *kvsnapshot.SnapshotStore
	Checkpoints *kvsnapshot.CheckpointStore
	// Registry is the registry the tenant's store reads and writes with:
	// Options.Registry, or with Options.Keys one of the tenant's own.
	Registry *platform.Registry
	// Keys is the tenant's key ring (bucket <Keys.Options.Bucket>_<tenant>),
	// nil without Options.Keys.
	Keys *encryption.Keyring
	// PGSchema is the PostgreSQL schema of the tenant's read models.
	PGSchema string

	ts *Tenants
}

// New returns the tenants of js; each tenant's stores open on first use.
func New(js jetstream.JetStream, opts Options) *Tenants {
	if opts.Stream == "" {
		opts.Stream = "EVENTS"
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = "events"
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Registry == nil {
		opts.Registry = platform.DefaultRegistry
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PGSchemaPrefix == "" {
		opts.PGSchemaPrefix = "tenant_"
	}
	return &Tenants{js: js, opts: opts, open: map[string]*Tenant{}}
}

// ErrNoTenant is what For returns for a context that names no tenant.
var ErrNoTenant = platform.Errorf(platform.CodeInvalidArgument, "the request names no tenant: put it in the context (platform.WithTenant), or send it with the %s header", "Lexigram-Tenant")

// For returns the stores of the tenant ctx names, opening them the first
// time; a context with no tenant is ErrNoTenant.
func (ts *Tenants) For(ctx context.Context) (*Tenant, error) {
	id := platform.Tenant(ctx)
	if id == "" {
		return nil, ErrNoTenant
	}
	return ts.Open(ctx, id)
}

// Open returns tenant id's stores, opening them the first time.
func (ts *Tenants) Open(ctx context.Context, id string) (*Tenant, error) {
	if err := platform.ValidTenant(id); err != nil {
		return nil, err
	}
	ts.mu.RLock()
	t, ok := ts.open[id]
	ts.mu.RUnlock()
	if ok {
		return t, nil
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.open[id]; ok {
		return t, nil
	}
	t, err := ts.openTenant(ctx, id)
	if err != nil {
		return nil, err
	}
	ts.open[id] = t
	return t, nil
}

func (ts *Tenants) openTenant(ctx context.Context, id string) (*Tenant, error) {
	log := ts.opts.Logger.With("tenant", id)
	reg := ts.opts.Registry
	if ts.opts.Keys != nil {
		// A registry has one sealer: a key ring per tenant needs a
		// registry per tenant.
		var err error
		if reg, err = ts.opts.Keys.registry(id); err != nil {
			return nil, err
		}
	}
	o := lxjs.Options{
		Stream: ts.StreamOf(id), SubjectPrefix: ts.subjectPrefixOf(id),
		Replicas: ts.opts.Replicas, Storage: ts.opts.Storage, Registry: reg, Logger: log,
	}
	if ts.opts.Store != nil {
		ts.opts.Store(id, &o)
		o.Stream, o.SubjectPrefix, o.Registry = ts.StreamOf(id), ts.subjectPrefixOf(id), reg
	}
	store, err := lxjs.New(ctx, ts.js, o)
	if err != nil {
		return nil, err
	}
	t := &Tenant{ID: id, Store: store, Registry: reg, PGSchema: ts.PGSchemaOf(id), ts: ts}
	snapOpts := kvsnapshot.SnapshotOptions{
		Bucket: kvsnapshot.DefaultSnapshotBucket + "_" + id, Replicas: ts.opts.Replicas, Storage: ts.opts.Storage}
	if ts.opts.Keys != nil {
		if t.Keys, err = ts.opts.Keys.open(ctx, ts, id, reg, store, log); err != nil {
			return nil, err
		}
		snapOpts.Sealer = t.Keys
	}
	fail := func(err error) (*Tenant, error) {
		if t.Keys != nil {
			_ = t.Keys.Close()
		}
		return nil, err
	}
	if t.Snapshots, err = kvsnapshot.NewSnapshotStore(ctx, ts.js, snapOpts); err != nil {
		return fail(err)
	}
	if t.Checkpoints, err = kvsnapshot.NewCheckpointStore(ctx, ts.js, kvsnapshot.CheckpointOptions{
		Bucket: kvsnapshot.DefaultCheckpointBucket + "_" + id, Replicas: ts.opts.Replicas, Storage: ts.opts.Storage}); err != nil {
		return fail(err)
	}
	return t, nil
}

// Close closes what the open tenants hold open (their key rings'
// watches). The stores need no closing.
func (ts *Tenants) Close() error {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var errs []error
	for _, t := range ts.open {
		if t.Keys != nil {
			errs = append(errs, t.Keys.Close())
		}
	}
	return errors.Join(errs...)
}

// StreamOf is the stream that holds tenant id's events.
func (ts *Tenants) StreamOf(id string) string { return ts.opts.Stream + "_" + id }

func (ts *Tenants) subjectPrefixOf(id string) string { return ts.opts.SubjectPrefix + "-" + id }

// Context returns ctx naming this tenant: what handlers, sagas and the
// buses read it from.
func (t *Tenant) Context(ctx context.Context) context.Context { return platform.WithTenant(ctx, t.ID) }
