package handlers

import (
	"context"
	"maps"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/lexigram/events/platform"
)

// Tracked is an aggregate a unit of work can save: any aggregate that
// embeds platform.AggregateRoot.
type Tracked interface {
	platform.Aggregate
	ID() string
	Pending() []platform.Envelope
	PullEvents() []platform.Envelope
}

// UnitOfWork collects the aggregates one command handler loads or creates.
// The Transaction middleware saves those with new events when the handler
// returns nil, and drops their new events otherwise. Each aggregate's save
// is atomic; a command that changes several aggregates saves them one after
// another, so a failure on the second leaves the first saved. Keep to one
// aggregate per command where that matters.
type UnitOfWork struct {
	ctx     context.Context // the handler's context is the unit of work itself: one allocation for both
	mu      sync.Mutex
	closed  bool
	entries []tracked
}

type tracked struct {
	agg  Tracked
	save func(ctx context.Context) (platform.AppendResult, error)
}

type uowKey struct{}

// The unit of work is the context its handler runs with.
type uowContext struct{ *UnitOfWork }

func (u uowContext) Deadline() (time.Time, bool) { return u.ctx.Deadline() }
func (u uowContext) Done() <-chan struct{}       { return u.ctx.Done() }
func (u uowContext) Err() error                  { return u.ctx.Err() }
func (u uowContext) Value(k any) any {
	if k == (uowKey{}) {
		return u.UnitOfWork
	}
	return u.ctx.Value(k)
}

// CurrentUnitOfWork returns the unit of work of the command running with
// ctx, or nil outside the Transaction middleware.
func CurrentUnitOfWork(ctx context.Context) *UnitOfWork {
	u, _ := ctx.Value(uowKey{}).(*UnitOfWork)
	return u
}

var errNoUnitOfWork = platform.Errorf(platform.CodeInvalidArgument,
	"no unit of work in the context: run the command handler with the Transaction middleware (in the defaults), or save the aggregate with its repository yourself")

// Load loads an aggregate with repo and tracks it, so the Transaction
// middleware saves it when the handler succeeds. Call it in command
// handlers instead of repo.Load: a retried command then starts from a
// fresh load.
func Load[T Tracked](ctx context.Context, repo *platform.Repository[T], id string) (T, error) {
	u := CurrentUnitOfWork(ctx)
	if u == nil {
		var zero T
		return zero, errNoUnitOfWork
	}
	a, err := repo.Load(ctx, id)
	if err != nil {
		return a, err
	}
	return a, u.add(a, saver(repo, a))
}

// Track adds an aggregate, typically a new one, to the unit of work.
// Tracking the same aggregate twice is harmless.
func Track[T Tracked](ctx context.Context, repo *platform.Repository[T], agg T) error {
	u := CurrentUnitOfWork(ctx)
	if u == nil {
		return errNoUnitOfWork
	}
	return u.add(agg, saver(repo, agg))
}

func saver[T Tracked](repo *platform.Repository[T], agg T) func(context.Context) (platform.AppendResult, error) {
	return func(ctx context.Context) (platform.AppendResult, error) { return repo.Save(ctx, agg) }
}

func (u *UnitOfWork) add(agg Tracked, save func(context.Context) (platform.AppendResult, error)) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return platform.Errorf(platform.CodeInvalidArgument,
			"track %s %q: the command's unit of work is already closed (the handler returned, or ran past its timeout): track aggregates before returning", agg.AggregateType(), agg.ID())
	}
	for _, e := range u.entries {
		if Tracked(e.agg) == agg {
			return nil
		}
	}
	u.entries = append(u.entries, tracked{agg: agg, save: save})
	return nil
}

// close stops further tracking and returns what was tracked.
func (u *UnitOfWork) close() []tracked {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	return u.entries
}

// commit saves every tracked aggregate with pending events, in the order
// they were tracked, and builds the command's result.
func commit(ctx context.Context, reg *platform.Registry, entries []tracked) (CommandResult, error) {
	var res CommandResult
	var trace propagation.MapCarrier
	if oteltrace.SpanContextFromContext(ctx).IsValid() {
		trace = propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, trace)
	}
	for i, e := range entries {
		events := e.agg.Pending()
		if len(events) == 0 {
			continue
		}
		if trace != nil { // the event bus continues the command's trace from here
			for j := range events {
				md := maps.Clone(events[j].Metadata)
				if md == nil {
					md = make(map[string]string, len(trace))
				}
				maps.Copy(md, trace)
				events[j].Metadata = md
			}
		}
		ar, err := e.save(ctx)
		if err != nil {
			discard(entries[i:])
			return res, err
		}
		stream := platform.StreamID{Type: e.agg.AggregateType(), ID: e.agg.ID()}
		contiguous := ar.LastPosition-ar.FirstPosition == uint64(len(events)-1)
		for j := range events {
			ev := events[j]
			// The store completed its own copies; complete ours the same way.
			if et, err := reg.TypeOf(ev.Event); err == nil {
				ev.Type, ev.SchemaVersion = et.Name, et.SchemaVersion
			}
			if ev.CorrelationID == "" {
				ev.CorrelationID = platform.CorrelationID(ctx)
			}
			if ev.CausationID == "" {
				ev.CausationID = platform.CausationID(ctx)
			}
			ev.Stream = stream
			ev.Version = ar.FirstVersion + uint64(j)
			if contiguous {
				ev.Position = ar.FirstPosition + uint64(j)
			}
			res.Events = append(res.Events, ev)
		}
		res.Aggregate, res.Version, res.Position = stream, ar.LastVersion, ar.LastPosition
		res.Changes = append(res.Changes, Change{Aggregate: stream, Result: ar})
	}
	return res, nil
}

func discard(entries []tracked) {
	for _, e := range entries {
		e.agg.PullEvents()
	}
}

// Transaction runs each command handler in a unit of work (see Load and
// Track) and saves the aggregates it changed when it returns nil; on an
// error it saves nothing and drops their new events. The events carry the
// command's ID as their causation ID and its correlation ID. It applies to
// commands only.
//
// Put Retry outside Transaction (the default order does), so that a retry
// after a concurrency conflict runs the handler again in a fresh unit of
// work that reloads the aggregates.
func Transaction() Middleware {
	return Middleware{Name: "transaction", Command: func(next CommandHandlerFunc) CommandHandlerFunc {
		return func(ctx context.Context, cmd Message) (CommandResult, error) {
			u := &UnitOfWork{ctx: ctx}
			res, err := next(uowContext{u}, cmd)
			entries := u.close()
			if err != nil {
				discard(entries)
				return res, err
			}
			if len(entries) == 0 {
				return res, nil
			}
			reg := platform.DefaultRegistry
			if d, ok := ctx.Value(messageKey).(*dispatch); ok && d.o != nil {
				reg = d.o.Registry
			}
			saved, err := commit(commandContext(ctx, cmd), reg, entries)
			if err != nil {
				return saved, err
			}
			return saved, nil
		}
	}}
}

// commandContext makes the store stamp the events with the command's ID
// as causation and its correlation ID, unless ctx already carries them.
func commandContext(ctx context.Context, cmd Message) context.Context {
	if cmd.ID != "" && platform.CausationID(ctx) != cmd.ID {
		ctx = platform.WithCausationID(ctx, cmd.ID)
	}
	if cmd.CorrelationID != "" && platform.CorrelationID(ctx) != cmd.CorrelationID {
		ctx = platform.WithCorrelationID(ctx, cmd.CorrelationID)
	}
	return ctx
}
