package tenancy

import (
	"context"

	"github.com/lexigram/events/handlers/durable"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/sagas"
)

// Sagas is one tenant's saga manager. Everything it keeps is the
// tenant's: instances in the bucket lexigram_sagas_<tenant>, work in the
// stream <Stream>_<tenant> on <prefix>-<tenant>.>, durable timers in
// <TimerStream>_<tenant>, the event listeners on the tenant's store with
// their dead letters in LEXIGRAM_DLQ_<tenant>. So the same association
// key starts one instance per tenant, and aborting, retrying or timing
// out one never reaches another's. Run and Start put the tenant in the
// context, so every step, and every command a step sends
// (Context.Send), runs in the tenant.
type Sagas struct {
	*sagas.Manager
	Tenant string
	Store  *sagas.KVStore
	DLQ    *durable.DLQ
}

// Sagas opens the tenant's saga manager. opts are every manager's
// options, streams and prefixes as bases for the tenant's names;
// opts.Events and opts.DLQ must be nil: they are the tenant's. Register
// the saga types on it, then Run it.
func (t *Tenant) Sagas(ctx context.Context, opts sagas.Options) (*Sagas, error) {
	if opts.Events != nil || opts.DLQ != nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument,
			"tenancy: tenant %q: sagas.Options.Events or DLQ is set: a tenant's sagas listen to the tenant's store with the tenant's dead-letter queue; leave them nil", t.ID)
	}
	replicas, storage := t.ts.opts.Replicas, t.ts.opts.Storage
	store, err := sagas.NewKVStore(ctx, t.ts.js, sagas.KVOptions{Bucket: sagas.DefaultKVBucket + "_" + t.ID, Replicas: replicas, Storage: storage})
	if err != nil {
		return nil, err
	}
	dlq, err := durable.OpenDLQ(ctx, t.ts.js, t.Store, durable.DLQOptions{
		Stream: "LEXIGRAM_DLQ_" + t.ID, SubjectPrefix: "lexigram.dlq-" + t.ID, Replicas: replicas, Storage: storage})
	if err != nil {
		return nil, err
	}
	opts.Stream = orDefault(opts.Stream, "LEXIGRAM_SAGAS") + "_" + t.ID
	opts.SubjectPrefix = orDefault(opts.SubjectPrefix, "lexigram.sagas") + "-" + t.ID
	opts.TimerStream = orDefault(opts.TimerStream, "LEXIGRAM_SAGA_TIMERS") + "_" + t.ID
	opts.TimerSubjectPrefix = orDefault(opts.TimerSubjectPrefix, "lexigram.saga-timers") + "-" + t.ID
	opts.Events, opts.DLQ = t.Store, dlq
	if opts.Replicas == 0 {
		opts.Replicas = replicas
	}
	if opts.Logger == nil {
		opts.Logger = t.ts.opts.Logger
	}
	opts.Logger = opts.Logger.With("tenant", t.ID)
	m, err := sagas.NewManager(t.Context(ctx), t.ts.js, store, opts)
	if err != nil {
		return nil, err
	}
	return &Sagas{Manager: m, Tenant: t.ID, Store: store, DLQ: dlq}, nil
}

// Run runs the manager (sagas.Manager.Run) in the tenant's context.
func (s *Sagas) Run(ctx context.Context) error {
	return s.Manager.Run(platform.WithTenant(ctx, s.Tenant))
}

// Start starts an instance (sagas.Manager.Start) in the tenant's context.
func (s *Sagas) Start(ctx context.Context, sagaType, key string, data any) (sagas.Instance, error) {
	return s.Manager.Start(platform.WithTenant(ctx, s.Tenant), sagaType, key, data)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
