package platform

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// SnapshotPolicy says when Save takes a snapshot. The zero value snapshots
// every 100 events. Repository.Snapshot takes one on demand.
type SnapshotPolicy struct {
	// EveryEvents takes a snapshot whenever a save crosses a multiple of
	// this version. 0 means 100; -1 turns count-based snapshots off.
	EveryEvents int
	// Interval takes a snapshot on a save when the loaded snapshot is older
	// than this, or when there was none. 0 turns time-based snapshots off.
	Interval time.Duration
}

// RepositoryOptions configure a Repository. The zero value works: no
// snapshots, three retries in Update.
type RepositoryOptions struct {
	Snapshots      SnapshotStore // nil: no snapshots
	SnapshotPolicy SnapshotPolicy
	SnapshotCodec  Codec // nil: Msgpack
	// UpdateRetries is how often Update reloads and retries after a
	// concurrency conflict. 0 means 3; -1 means never.
	UpdateRetries int
	Logger        *slog.Logger // nil: slog.Default()
}

// Repository loads and saves aggregates of one type.
type Repository[T Aggregate] struct {
	store  EventStore
	newAgg func() T
	opts   RepositoryOptions

	// snapshotSlots bounds background snapshot writes: each holds a slot
	// while it runs, so holding them all means none is running.
	snapshotSlots chan struct{}
}

// NewRepository returns a repository that keeps aggregates made by newAgg
// in store.
func NewRepository[T Aggregate](store EventStore, newAgg func() T, opts RepositoryOptions) *Repository[T] {
	if opts.SnapshotCodec == nil {
		opts.SnapshotCodec = Msgpack
	}
	if opts.SnapshotPolicy.EveryEvents == 0 {
		opts.SnapshotPolicy.EveryEvents = 100
	}
	if opts.UpdateRetries == 0 {
		opts.UpdateRetries = 3
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Repository[T]{store: store, newAgg: newAgg, opts: opts, snapshotSlots: make(chan struct{}, 64)}
}

func (r *Repository[T]) streamID(a T, id string) StreamID {
	return StreamID{Type: a.AggregateType(), ID: id}
}

// Load rebuilds the aggregate: its latest usable snapshot, then only the
// events after it, read from the store starting at the snapshot's
// position. An aggregate with no events is ErrStreamNotFound.
func (r *Repository[T]) Load(ctx context.Context, id string) (T, error) {
	var zero T
	stream := r.streamID(r.newAgg(), id)
	if err := stream.Validate(); err != nil {
		return zero, err
	}
	a := r.fromSnapshot(ctx, stream)
	for e, err := range r.store.Read(ctx, stream, a.root().persisted) {
		if err != nil {
			return zero, err
		}
		if v := a.root().version; e.Version > v+1 {
			return zero, Errorf(CodeCorruptEvent, "load %s: the stored history resumes at version %d after version %d: the events between were truncated and no usable snapshot covers them",
				stream, e.Version, v)
		}
		applyStored(a, &e)
	}
	if a.root().version == 0 {
		return zero, Errorf(CodeStreamNotFound, "%s has no events: create it first", stream)
	}
	return a, nil
}

// fromSnapshot returns a new aggregate, restored from its latest snapshot
// if there is a usable one. Snapshots are an optimisation: any problem
// with one means a full replay, never a failed load.
func (r *Repository[T]) fromSnapshot(ctx context.Context, stream StreamID) T {
	a := r.newAgg()
	a.root().SetID(stream.ID)
	sn, ok := any(a).(Snapshotter)
	if !ok || r.opts.Snapshots == nil {
		return a
	}
	snap, found, err := r.opts.Snapshots.LoadSnapshot(ctx, stream)
	switch {
	case err != nil:
		r.opts.Logger.WarnContext(ctx, "snapshot unreadable, replaying events", "stream", stream, "err", err)
		return a
	case !found:
		return a
	}
	codec, err := CodecByName(snap.Codec)
	switch {
	case err != nil:
	case snap.SchemaVersion == sn.SnapshotSchemaVersion():
		err = codec.Unmarshal(snap.State, sn.SnapshotState())
	default:
		up, ok := any(a).(SnapshotUpcaster)
		used := false
		if ok {
			used, err = up.UpcastSnapshot(snap.SchemaVersion, codec, snap.State)
		}
		if !used && err == nil {
			r.opts.Logger.DebugContext(ctx, "snapshot schema changed, replaying events", "stream", stream,
				"snapshot_schema", snap.SchemaVersion, "current_schema", sn.SnapshotSchemaVersion())
			a = r.newAgg() // a declining upcaster may have half-filled the state
			a.root().SetID(stream.ID)
			return a
		}
	}
	if err != nil {
		r.opts.Logger.WarnContext(ctx, "snapshot undecodable, replaying events", "stream", stream, "err", err)
		a = r.newAgg() // the failed decode may have half-filled the state
		a.root().SetID(stream.ID)
		return a
	}
	a.root().restore(snap.Revision)
	a.root().snapshotAt = snap.Time
	return a
}

// Save appends the aggregate's pending events, expecting the revision it
// was loaded at, and clears them. A conflict is a *ConcurrencyError and
// leaves the pending events in place.
func (r *Repository[T]) Save(ctx context.Context, a T) (AppendResult, error) {
	root := a.root()
	if len(root.pending) == 0 {
		return AppendResult{}, nil
	}
	stream := r.streamID(a, root.id)
	res, err := r.store.Append(ctx, stream, ExactRevision(root.persisted), root.pending)
	if err != nil {
		return AppendResult{}, err
	}
	root.markSaved(res)
	if r.snapshotDue(root, res) {
		r.snapshotInBackground(ctx, a, stream)
	}
	return res, nil
}

// Update loads the aggregate (a new one if it has no events), applies fn
// and saves. On a concurrency conflict it reloads and calls fn again, up to
// UpdateRetries times. fn must be free of side effects other than raising
// events, since it may run more than once.
func (r *Repository[T]) Update(ctx context.Context, id string, fn func(T) error) (T, AppendResult, error) {
	for attempt := 0; ; attempt++ {
		a, err := r.Load(ctx, id)
		if errors.Is(err, ErrStreamNotFound) {
			a, err = r.newAgg(), nil
			a.root().SetID(id)
		}
		if err != nil {
			var zero T
			return zero, AppendResult{}, err
		}
		if err := fn(a); err != nil {
			var zero T
			return zero, AppendResult{}, err
		}
		res, err := r.Save(ctx, a)
		if errors.Is(err, ErrConcurrency) && attempt < r.opts.UpdateRetries {
			continue
		}
		return a, res, err
	}
}

// Delete removes the aggregate's events and its snapshot.
func (r *Repository[T]) Delete(ctx context.Context, id string) error {
	stream := r.streamID(r.newAgg(), id)
	if r.opts.Snapshots != nil {
		if err := r.Flush(ctx); err != nil { // a write in flight would outlive the delete
			return err
		}
		if err := r.opts.Snapshots.DeleteSnapshot(ctx, stream); err != nil {
			return err
		}
	}
	return r.store.Delete(ctx, stream)
}

// Snapshot stores a snapshot of the aggregate's saved state now. It fails
// if the aggregate has unsaved events or cannot be snapshotted.
func (r *Repository[T]) Snapshot(ctx context.Context, a T) error {
	snap, err := r.takeSnapshot(a)
	if err != nil {
		return err
	}
	return r.opts.Snapshots.SaveSnapshot(ctx, snap)
}

// Compact snapshots the aggregate and then removes the events the
// snapshot covers from the store, like the seed's compact().
func (r *Repository[T]) Compact(ctx context.Context, a T) error {
	snap, err := r.takeSnapshot(a)
	if err != nil {
		return err
	}
	if err := r.opts.Snapshots.SaveSnapshot(ctx, snap); err != nil {
		return err
	}
	stored, ok, err := r.opts.Snapshots.LoadSnapshot(ctx, snap.Stream)
	if err != nil {
		return err
	}
	if ok && stored.Revision.Version == snap.Revision.Version && stored.SchemaVersion != snap.SchemaVersion {
		// An unusable snapshot of another schema holds the version: replace it.
		if err := r.opts.Snapshots.DeleteSnapshot(ctx, snap.Stream); err != nil {
			return err
		}
		if err := r.opts.Snapshots.SaveSnapshot(ctx, snap); err != nil {
			return err
		}
		if stored, ok, err = r.opts.Snapshots.LoadSnapshot(ctx, snap.Stream); err != nil {
			return err
		}
	}
	if !ok || stored.SchemaVersion != snap.SchemaVersion || stored.Revision.Version < snap.Revision.Version {
		return Errorf(CodeInvalidArgument, "compact %s: the snapshot store does not hold a usable snapshot at version %d: nothing truncated",
			snap.Stream, snap.Revision.Version)
	}
	return r.store.Truncate(ctx, snap.Stream, snap.Revision)
}

// Flush waits for background snapshot writes to finish.
func (r *Repository[T]) Flush(ctx context.Context) error {
	held := 0
	defer func() {
		for range held {
			<-r.snapshotSlots
		}
	}()
	for held < cap(r.snapshotSlots) {
		select {
		case r.snapshotSlots <- struct{}{}:
			held++
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (r *Repository[T]) takeSnapshot(a T) (Snapshot, error) {
	root := a.root()
	stream := r.streamID(a, root.id)
	sn, ok := any(a).(Snapshotter)
	switch {
	case r.opts.Snapshots == nil:
		return Snapshot{}, Errorf(CodeInvalidArgument, "snapshot %s: the repository has no snapshot store: set RepositoryOptions.Snapshots", stream)
	case !ok:
		return Snapshot{}, Errorf(CodeInvalidArgument, "snapshot %s: %T does not implement platform.Snapshotter", stream, a)
	case len(root.pending) > 0:
		return Snapshot{}, Errorf(CodeInvalidArgument, "snapshot %s: %d events are not saved yet: save first", stream, len(root.pending))
	case root.persisted.Version == 0:
		return Snapshot{}, Errorf(CodeInvalidArgument, "snapshot %s: it has no saved events", stream)
	}
	state, err := r.opts.SnapshotCodec.Marshal(sn.SnapshotState())
	if err != nil {
		return Snapshot{}, Errorf(CodeInvalidArgument, "snapshot %s: encode state with %s: %w", stream, r.opts.SnapshotCodec.Name(), err)
	}
	return Snapshot{
		Stream:        stream,
		Revision:      root.persisted,
		SchemaVersion: sn.SnapshotSchemaVersion(),
		Codec:         r.opts.SnapshotCodec.Name(),
		State:         state,
		Time:          time.Now().UTC(),
	}, nil
}

func (r *Repository[T]) snapshotDue(root *AggregateRoot, res AppendResult) bool {
	if r.opts.Snapshots == nil {
		return false
	}
	p := r.opts.SnapshotPolicy
	if n := uint64(p.EveryEvents); p.EveryEvents > 0 && res.LastVersion/n > (res.FirstVersion-1)/n {
		return true
	}
	return p.Interval > 0 && time.Since(root.snapshotAt) >= p.Interval
}

// snapshotInBackground encodes the state now, while it matches the saved
// revision, and writes it without holding up the caller. A failed or
// skipped write costs only a longer replay later, so it is logged, never
// returned.
func (r *Repository[T]) snapshotInBackground(ctx context.Context, a T, stream StreamID) {
	if _, ok := any(a).(Snapshotter); !ok {
		return
	}
	snap, err := r.takeSnapshot(a)
	if err != nil {
		r.opts.Logger.WarnContext(ctx, "snapshot skipped", "stream", stream, "err", err)
		return
	}
	select {
	case r.snapshotSlots <- struct{}{}:
	default:
		r.opts.Logger.DebugContext(ctx, "snapshot skipped: too many snapshot writes in flight", "stream", stream)
		return
	}
	a.root().snapshotAt = snap.Time
	go func() {
		defer func() { <-r.snapshotSlots }()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.opts.Snapshots.SaveSnapshot(wctx, snap); err != nil {
			r.opts.Logger.WarnContext(wctx, "snapshot write failed", "stream", stream, "version", snap.Revision.Version, "err", err)
		}
	}()
}
