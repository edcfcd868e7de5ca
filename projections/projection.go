package projections

import (
	"context"
	"fmt"

	"github.com/lexigram/events/platform"
)

// State is where a projection is in its life. The names are the seed's.
type State string

// States, in the order a projection normally goes through them.
const (
	Stopped    State = "STOPPED"     // not started, or stopped
	Running    State = "RUNNING"     // started: waiting for the lease or loading its checkpoint
	CatchingUp State = "CATCHING_UP" // reading history towards the head of the store
	Live       State = "LIVE"        // caught up; applying new events as they are stored
	Faulted    State = "FAULTED"     // stopped by an error that is not transient, kept in Status.Err; Start resumes it
	Rebuilding State = "REBUILDING"  // a full replay into a new generation runs while the old one serves
)

// Generation numbers the builds of one read model: 1 for the first, one
// more for each rebuild. A handler writes into the generation it is given,
// so a rebuild can fill generation n+1 while readers still read n.
type Generation uint64

// Handler applies events to a read model, one at a time, in global order.
//
// Delivery is at least once: the manager saves the position in a
// platform.CheckpointStore every Options.CheckpointInterval events and on
// Stop, and after a crash it resumes from the last saved position, so the
// events applied since then are handed over again. Handle must therefore be
// idempotent: an upsert keyed by the aggregate, a set, or a write that
// records e.Position and ignores older ones. For exactly-once effect keep
// the position with the rows instead: see [BatchHandler] and pgmodel.
//
// An error stops the projection in state FAULTED. Events before e stay
// applied; Start retries from e.
type Handler interface {
	Handle(ctx context.Context, gen Generation, e platform.Envelope) error
}

// HandlerFunc is a Handler made of a function.
type HandlerFunc func(ctx context.Context, gen Generation, e platform.Envelope) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, gen Generation, e platform.Envelope) error {
	return f(ctx, gen, e)
}

// Batch is what a BatchHandler applies in one atomic step: Events, then
// the stored position moved from From to To.
type Batch struct {
	From uint64 // the position the store must still hold; otherwise apply nothing
	To   uint64 // the position to store with the events
	// Events are the events of the projection's types with a position in
	// (From, To], in order; empty when only the position moves (events of
	// other types or holes). The slice is reused after ApplyBatch
	// returns: keep the envelopes, not the slice.
	Events []platform.Envelope
}

// BatchHandler applies events in batches and keeps its own position,
// written in the same transaction as the read model's rows, so every
// event takes effect exactly once even across crashes and overlapping
// instances. The manager uses it instead of the CheckpointStore.
type BatchHandler interface {
	// Position returns the last position stored for gen; 0 when none.
	Position(ctx context.Context, gen Generation) (uint64, error)
	// ApplyBatch applies b all or nothing. If the stored position is not
	// b.From, another instance moved it: apply nothing and return an error
	// matching platform.ErrCheckpointConflict.
	ApplyBatch(ctx context.Context, gen Generation, b Batch) error
}

// Generational is implemented by read models that can be rebuilt while
// they serve: each generation is a separate copy (tables, a key prefix),
// and the model itself records which one readers see, so that readers and
// the manager always agree.
type Generational interface {
	// Active returns the generation readers see; 0 when none exists yet.
	Active(ctx context.Context) (Generation, error)
	// Prepare makes an empty copy for gen, replacing any left over from an
	// abandoned rebuild, with position 0.
	Prepare(ctx context.Context, gen Generation) error
	// Activate makes readers see gen from now on, atomically, and records
	// it as the active generation. It must be idempotent: the manager calls
	// it again when it starts, to finish a swap a crash interrupted.
	Activate(ctx context.Context, gen Generation) error
	// Drop removes a generation that is no longer active.
	Drop(ctx context.Context, gen Generation) error
}

// Projection is one read model the manager runs.
type Projection struct {
	// Name identifies the projection across processes: its checkpoint and
	// its lease are named after it. Letters, digits, '-' and '_'.
	Name string
	// EventTypes are the registered event type names it handles; empty
	// means every type. Events of other types still move its position.
	EventTypes []string
	// Exactly one of Handler and Batch is set.
	Handler Handler
	Batch   BatchHandler
	// SkipUndecodable moves the projection past an event that does not
	// decode (its type or schema version is not registered in this
	// process, or its body is corrupt), logged and counted in
	// Status.Skipped, instead of stopping it in state FAULTED, which the
	// zero value does.
	SkipUndecodable bool
}

func (p Projection) validate() error {
	if p.Name == "" || len(p.Name) > 100 {
		return platform.Errorf(platform.CodeInvalidArgument, "projection name %q: use 1 to 100 letters, digits, '-' or '_'", p.Name)
	}
	for _, c := range []byte(p.Name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return platform.Errorf(platform.CodeInvalidArgument, "projection name %q has %q: use letters, digits, '-' or '_'", p.Name, c)
		}
	}
	if (p.Handler == nil) == (p.Batch == nil) {
		return platform.Errorf(platform.CodeInvalidArgument, "projection %q: set exactly one of Handler and Batch", p.Name)
	}
	return nil
}

// generational returns the projection's generation hooks, if it has them.
func (p Projection) generational() Generational {
	if g, ok := p.Batch.(Generational); ok {
		return g
	}
	if g, ok := p.Handler.(Generational); ok {
		return g
	}
	return nil
}

// checkpointName is the projection's key in the CheckpointStore for one
// generation.
func checkpointName(name string, gen Generation) string {
	return fmt.Sprintf("projection.%s.g%d", name, gen)
}
