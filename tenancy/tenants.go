package tenancy

import (
	"context"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

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
	Registry      *platform.Registry    // default platform.DefaultRegistry
	Logger        *slog.Logger          // default slog.Default()
	// Store changes each tenant's store options before it opens (group
	// commit, durability, ...); the stream and prefix are the tenant's.
	Store func(tenant string, o *lxjs.Options)
}

// Tenants opens and keeps each tenant's stores.
type Tenants struct {
	js   jetstream.JetStream
	opts Options
	mu   sync.Mutex
	open map[string]*Tenant
}

// Tenant is one tenant's stores.
type Tenant struct {
	ID          string
	Store       *lxjs.EventStore
	Snapshots   *kvsnapshot.SnapshotStore
	Checkpoints *kvsnapshot.CheckpointStore
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
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.open[id]; ok {
		return t, nil
	}
	o := lxjs.Options{
		Stream: ts.StreamOf(id), SubjectPrefix: ts.opts.SubjectPrefix + "-" + id,
		Replicas: ts.opts.Replicas, Storage: ts.opts.Storage, Registry: ts.opts.Registry, Logger: ts.opts.Logger.With("tenant", id),
	}
	if ts.opts.Store != nil {
		ts.opts.Store(id, &o)
		o.Stream, o.SubjectPrefix = ts.StreamOf(id), ts.opts.SubjectPrefix+"-"+id
	}
	store, err := lxjs.New(ctx, ts.js, o)
	if err != nil {
		return nil, err
	}
	snaps, err := kvsnapshot.NewSnapshotStore(ctx, ts.js, kvsnapshot.SnapshotOptions{
		Bucket: kvsnapshot.DefaultSnapshotBucket + "_" + id, Replicas: ts.opts.Replicas, Storage: ts.opts.Storage})
	if err != nil {
		return nil, err
	}
	checkpoints, err := kvsnapshot.NewCheckpointStore(ctx, ts.js, kvsnapshot.CheckpointOptions{
		Bucket: kvsnapshot.DefaultCheckpointBucket + "_" + id, Replicas: ts.opts.Replicas, Storage: ts.opts.Storage})
	if err != nil {
		return nil, err
	}
	t := &Tenant{ID: id, Store: store, Snapshots: snaps, Checkpoints: checkpoints}
	ts.open[id] = t
	return t, nil
}

// StreamOf is the stream that holds tenant id's events.
func (ts *Tenants) StreamOf(id string) string { return ts.opts.Stream + "_" + id }
