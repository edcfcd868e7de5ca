package projections

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// EventSource is the store's global order, as projections read it:
// jetstream.EventStore and platform.MemoryEventStore both are one.
type EventSource interface {
	// ReadAll yields every event after the position up to the head when
	// the call starts.
	ReadAll(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error]
	// Subscribe yields every event after the position, then each new one,
	// until ctx ends.
	Subscribe(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error]
}

// streamState is how jetstream.EventStore tells its head.
type streamState interface {
	State(ctx context.Context) (lxjs.State, error)
}

// Options configure a Manager. The zero value works for projections with a
// BatchHandler; Handler projections need Checkpoints.
type Options struct {
	// Checkpoints keeps Handler projections' positions, e.g. a
	// kvsnapshot.CheckpointStore. BatchHandler projections keep their own.
	Checkpoints platform.CheckpointStore
	// Leases decide which process applies a projection's events when it
	// runs in several (NewKVLeases). nil: this process is the only one.
	Leases Leases
	// CheckpointInterval is how many events a projection reads between two
	// checkpoint saves (checkpoint_interval). Default 1000. A BatchHandler
	// stores its position with every batch that holds events of its
	// types, and after this many events of other types.
	CheckpointInterval int
	// BatchSize is the most events applied in one step (batch_size): one
	// transaction of a BatchHandler. Default 100.
	BatchSize int
	// RebuildBatchSize is BatchSize during a rebuild (rebuild_batch_size).
	// Default 1000.
	RebuildBatchSize int
	// Sequential applies one batch at a time across all projections
	// (enable_parallel_projections: false), for handlers that share
	// something that is not safe for concurrent use. By default
	// projections run in parallel.
	Sequential bool
	Logger     *slog.Logger // default slog.Default()
}

// Manager runs projections: each reads the store's global order from its
// checkpoint, catches up, then follows new events, in its own goroutine.
// A projection that fails stops alone, in state FAULTED; one that meets
// the store or the server unavailable (a transient error) waits, with a
// backoff to 30s, and tries again from its checkpoint instead.
type Manager struct {
	src    EventSource
	opts   Options
	log    *slog.Logger
	leases Leases
	seq    sync.Mutex    // with Options.Sequential: held while a batch applies
	seen   atomic.Uint64 // the highest position read: the head when the store cannot tell

	mu    sync.Mutex
	projs map[string]*projection
	order []string
}

// New returns a Manager reading src.
func New(src EventSource, opts Options) (*Manager, error) {
	if src == nil {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "projections: the event source is nil: pass the event store")
	}
	if opts.CheckpointInterval < 0 || opts.BatchSize < 0 || opts.RebuildBatchSize < 0 {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "projections: checkpoint interval %d, batch size %d, rebuild batch size %d: use positive numbers, or 0 for the defaults",
			opts.CheckpointInterval, opts.BatchSize, opts.RebuildBatchSize)
	}
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = 1000
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = 100
	}
	if opts.RebuildBatchSize == 0 {
		opts.RebuildBatchSize = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m := &Manager{src: src, opts: opts, log: opts.Logger, leases: opts.Leases, projs: map[string]*projection{}}
	if m.leases == nil {
		m.leases = soloLeases{}
	}
	return m, nil
}

// Register adds a projection, stopped.
func (m *Manager) Register(p Projection) error {
	if err := p.validate(); err != nil {
		return err
	}
	if p.Handler != nil && m.opts.Checkpoints == nil {
		return platform.Errorf(platform.CodeInvalidArgument, "projection %q has a Handler but Options.Checkpoints is nil: give the manager a checkpoint store (kvsnapshot.NewCheckpointStore)", p.Name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.projs[p.Name]; dup {
		return platform.Errorf(platform.CodeDuplicateHandler, "projection %q is registered already: give each projection its own name", p.Name)
	}
	pr := &projection{m: m, def: p, gens: p.generational(), state: Stopped, ctl: make(chan *rebuildReq)}
	if len(p.EventTypes) > 0 {
		pr.types = map[string]struct{}{}
		for _, t := range p.EventTypes {
			pr.types[t] = struct{}{}
		}
	}
	m.projs[p.Name] = pr
	m.order = append(m.order, p.Name)
	return nil
}

// Names lists the registered projections in registration order.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.order)
}

func (m *Manager) get(name string) (*projection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.projs[name]
	if !ok {
		return nil, platform.Errorf(platform.CodeInvalidArgument, "projection %q is not registered: register it first (registered: %q)", name, m.order)
	}
	return p, nil
}

// Start starts the named projection, or every registered one when names is
// empty; a running one is left alone and a FAULTED one is started again
// from its checkpoint. Each runs until Stop or until ctx ends. Ending ctx
// is an abrupt stop, like a crash: no last checkpoint, no lease handed
// over. Call Stop for a clean one.
func (m *Manager) Start(ctx context.Context, names ...string) error {
	ps, err := m.pick(names)
	if err != nil {
		return err
	}
	for _, p := range ps {
		p.start(ctx)
	}
	return nil
}

// Stop stops the named projections (every one when names is empty) after
// the batch in hand, saves their checkpoints and releases their leases, so
// another process takes over at once. It returns when they have stopped
// or ctx ends.
func (m *Manager) Stop(ctx context.Context, names ...string) error {
	ps, err := m.pick(names)
	if err != nil {
		return err
	}
	for _, p := range ps {
		p.stop()
	}
	var errs []error
	for _, p := range ps {
		if err := p.wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop projection %q: %w", p.def.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) pick(names []string) ([]*projection, error) {
	if len(names) == 0 {
		names = m.Names()
	}
	ps := make([]*projection, 0, len(names))
	for _, n := range names {
		p, err := m.get(n)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// Status is a projection's state and progress, as seen by this process.
type Status struct {
	Name  string
	State State
	// Err is the cause when FAULTED; in RUNNING, the transient error
	// (the store or the server unavailable) it waits out before trying
	// again, until it applies again.
	Err error
	// Active is true while this process holds the projection's lease and
	// applies its events; a started projection that is not active stands
	// by in state RUNNING.
	Active     bool
	Generation Generation // the generation readers see
	Position   uint64     // the last position applied here
	Head       uint64     // the store's last position
	Lag        uint64     // Head - Position: positions, not events (deleted events leave holes)
	// EventsPerSecond is the rate events were read at lately (10 s).
	EventsPerSecond float64
	Read            uint64    // events read since this process started it
	Skipped         uint64    // events that did not decode, skipped since this process started it (SkipUndecodable)
	Rebuild         *Progress // the rebuild in progress or the last one; nil if none
}

// Progress is a rebuild's progress.
type Progress struct {
	Generation Generation // the generation being built
	Started    time.Time
	Position   uint64 // the position it reached
	Done       uint64 // events replayed
	// Total is Done plus the events still to replay, when the store tells
	// how many it holds (jetstream.EventStore); 0 when unknown.
	Total           uint64
	EventsPerSecond float64
	Remaining       time.Duration // estimated time to catch up; 0 when unknown
	Finished        time.Time     // zero while it runs
	Err             error         // why it was abandoned
}

// Status returns the named projection's status.
func (m *Manager) Status(ctx context.Context, name string) (Status, error) {
	p, err := m.get(name)
	if err != nil {
		return Status{}, err
	}
	h := m.head(ctx)
	return p.status(h, time.Now()), nil
}

// Statuses returns every projection's status, in registration order.
func (m *Manager) Statuses(ctx context.Context) []Status {
	ps, _ := m.pick(nil)
	h := m.head(ctx)
	now := time.Now()
	out := make([]Status, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.status(h, now))
	}
	return out
}

type head struct {
	last, events uint64
	counted      bool // events is the stream's event count
}

// head reads the store's head; a store that cannot tell gets the highest
// position any projection read.
func (m *Manager) head(ctx context.Context) head {
	seen := m.seen.Load()
	if s, ok := m.src.(streamState); ok {
		st, err := s.State(ctx)
		if err == nil {
			return head{last: max(st.LastPosition, seen), events: st.Events, counted: true}
		}
		m.log.DebugContext(ctx, "projections: cannot read the store's head", "err", err)
	}
	return head{last: seen}
}

func (m *Manager) saw(pos uint64) {
	for {
		cur := m.seen.Load()
		if pos <= cur || m.seen.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// WaitFor returns once the projection has applied position (the
// LastPosition of a command's append), so that a query after a command
// sees the command's effect. It returns at once when the projection is
// FAULTED, and otherwise with an error wrapping ctx's at its deadline. On a
// process that stands by it follows the active process's announced
// progress when the Leases carry it (KVLeases do, over core NATS); with
// other Leases it can only time out there.
func (m *Manager) WaitFor(ctx context.Context, name string, position uint64) error {
	p, err := m.get(name)
	if err != nil {
		return err
	}
	for {
		pos, wake := p.applied.wait()
		if pos >= position {
			return nil
		}
		p.mu.Lock()
		state, cause, active := p.state, p.err, p.active
		p.mu.Unlock()
		if state == Faulted {
			return platform.Errorf(platform.CodeProjectionBuild, "wait for projection %q to apply position %d: it is FAULTED at position %d: %w: fix the cause and start it again",
				name, position, pos, cause)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			hint := ""
			if !active {
				hint = " and this process does not apply it (another holds its lease, or it is stopped)"
			}
			return fmt.Errorf("wait for projection %q to apply position %d: it is at %d (%s)%s: %w", name, position, pos, state, hint, ctx.Err())
		}
	}
}

// Rebuild replays the whole store into a new generation of the projection
// while the current one keeps serving, and makes readers see the new one
// once it has caught up (Generational.Activate); it returns the new
// generation at once. Progress shows in Status.Rebuild, the metrics and
// the log. The projection must be Generational and active in this process.
func (m *Manager) Rebuild(ctx context.Context, name string) (Generation, error) {
	p, err := m.get(name)
	if err != nil {
		return 0, err
	}
	if p.gens == nil {
		return 0, platform.Errorf(platform.CodeInvalidArgument, "rebuild projection %q: its handler is not Generational, so a new copy cannot be built next to the serving one: implement Generational (pgmodel does)", name)
	}
	p.mu.Lock()
	active := p.active
	p.mu.Unlock()
	if !active {
		return 0, platform.Errorf(platform.CodeNotLeader, "rebuild projection %q: this process does not apply it (state %s): call Rebuild where it is active", name, p.status(head{}, time.Now()).State)
	}
	req := &rebuildReq{reply: make(chan rebuildReply, 1)}
	select {
	case p.ctl <- req:
	case <-ctx.Done():
		return 0, fmt.Errorf("rebuild projection %q: %w", name, ctx.Err())
	}
	select {
	case r := <-req.reply:
		return r.gen, r.err
	case <-ctx.Done():
		return 0, fmt.Errorf("rebuild projection %q: %w", name, ctx.Err())
	}
}
