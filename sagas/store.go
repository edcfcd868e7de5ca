package sagas

import (
	"context"
	"fmt"

	"github.com/lexigram/events/platform"
)

// Store keeps saga instances. Three implement it: KVStore (the default,
// on a JetStream key-value bucket), pgstore.Store (PostgreSQL) and
// MemoryStore (for unit tests); sagatest.Run is the conformance suite all
// pass. Every method is safe for concurrent use.
//
// Errors: platform.ErrSagaNotFound when nothing has the ID or key,
// platform.ErrSagaConflict when Save finds another revision stored, and a
// *CorruptError (matching platform.ErrCorruptSaga) when a stored record
// cannot be decoded.
type Store interface {
	// Create stores in, a new instance, and returns it with its
	// revision and created true; when an instance of in.Type already has
	// in.Key it stores nothing and returns that one with created false.
	Create(ctx context.Context, in Instance) (stored Instance, created bool, err error)
	// Load returns the instance with the ID.
	Load(ctx context.Context, id string) (Instance, error)
	// FindByKey returns the instance of the type with the association
	// key, without reading the others.
	FindByKey(ctx context.Context, sagaType, key string) (Instance, error)
	// Save writes in over the stored instance if that is still at
	// in.Revision, and returns the new revision.
	Save(ctx context.Context, in Instance) (revision uint64, err error)
	// List returns up to q.Limit instances (all when 0) matching q, in
	// ascending ID order, starting after q.After. A record that cannot be
	// decoded comes back as its CorruptError's Parked instance.
	List(ctx context.Context, q Query) ([]Instance, error)
}

// Query selects instances for List. Zero fields match everything.
type Query struct {
	Type   string
	States []State
	After  string // an instance ID: list those after it, for paging
	Limit  int
}

// CorruptError reports a stored instance that cannot be decoded. It
// carries what the store could tell of it, so that the manager can park
// it (Save over Revision) and operators can find it.
type CorruptError struct {
	ID       string
	Type     string // "" when the store cannot tell
	Revision uint64
	Err      error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s: saga instance %s (type %q, revision %d) cannot be decoded: %v: fix or delete the record, or abort the instance",
		platform.CodeCorruptSaga, e.ID, e.Type, e.Revision, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

func (e *CorruptError) Is(target error) bool { return target == platform.ErrCorruptSaga }

func (e *CorruptError) ErrorCode() platform.Code { return platform.CodeCorruptSaga }

// Parked returns what List reports for the corrupt record: an instance
// parked with the decoding error, so that operators see it.
func (e *CorruptError) Parked() Instance {
	return Instance{ID: e.ID, Type: e.Type, State: Parked, Error: e.Error(), Revision: e.Revision}
}
