package platform

import (
	"cmp"
	"context"
	"errors"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryOptions configure the in-memory stores. The zero value works.
type MemoryOptions struct {
	Registry     *Registry // nil: DefaultRegistry
	Codec        Codec     // nil: Msgpack
	MaxEventSize int       // largest encoded event body; 0: 1 MiB, the NATS default
}

// MemoryEventStore is an EventStore in process memory, for unit tests of
// domain code. It encodes and decodes every event like the JetStream store,
// so an unregistered type or an event that does not encode fails here too.
type MemoryEventStore struct {
	opts MemoryOptions

	mu      sync.RWMutex
	log     []memEvent // in position order, with deleted entries removed
	streams map[StreamID]*memStream
	head    uint64 // last position handed out
	// appended is closed and replaced by every append: Subscribe waits on it.
	appended chan struct{}
}

type memEvent struct {
	env  Envelope // Event left nil: decoded on read
	body []byte
	prev string // the previous event's ChainHash (chain.go)
}

type memStream struct {
	version uint64   // last version appended, kept across truncation
	first   uint64   // first version still stored
	index   []uint64 // positions of the stored versions, oldest first
	hash    string   // ChainHash of the last event appended, kept across truncation
}

// memoryDurability is the durability of every MemoryEventStore append:
// in memory only, lost with the process.
var memoryDurability = Durability{Storage: "memory", Replicas: 1, Source: "in-process memory store"}

// Durability is what every append survives: "in memory only".
func (s *MemoryEventStore) Durability() Durability { return memoryDurability }

// NewMemoryEventStore returns an empty in-memory event store.
func NewMemoryEventStore(opts MemoryOptions) *MemoryEventStore {
	if opts.Registry == nil {
		opts.Registry = DefaultRegistry
	}
	if opts.Codec == nil {
		opts.Codec = Msgpack
	}
	if opts.MaxEventSize == 0 {
		opts.MaxEventSize = 1 << 20
	}
	return &MemoryEventStore{opts: opts, streams: map[StreamID]*memStream{}, appended: make(chan struct{})}
}

func (s *MemoryEventStore) Append(ctx context.Context, stream StreamID, expected ExpectedVersion, events []Envelope) (AppendResult, error) {
	events = slices.Clone(events)
	bodies, err := Prepare(ctx, s.opts.Registry, s.opts.Codec, stream, events)
	if err != nil {
		return AppendResult{}, err
	}
	for i, b := range bodies {
		if len(b) > s.opts.MaxEventSize {
			return AppendResult{}, Errorf(CodeInvalidArgument, "append to %s: event %d (%s) is %d bytes encoded: the limit is %d",
				stream, i+1, events[i].Type, len(b), s.opts.MaxEventSize)
		}
	}
	if err := ctx.Err(); err != nil {
		return AppendResult{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[stream]
	var current uint64
	if st != nil {
		current = st.version
	}
	if want, check := expected.Expected(); check && want != current {
		return AppendResult{}, &ConcurrencyError{Stream: stream, Expected: expected, Actual: current}
	}
	if st == nil {
		st = &memStream{first: 1}
		s.streams[stream] = st
	}
	now := time.Now().UTC()
	res := AppendResult{FirstVersion: current + 1, FirstPosition: s.head + 1, Durability: memoryDurability}
	for i := range events {
		s.head++
		st.version++
		e := events[i]
		e.Version, e.Position, e.Time, e.Event = st.version, s.head, now, nil
		e.Metadata = maps.Clone(e.Metadata)
		prev := st.hash
		st.hash = ChainHash(prev, e.ID, e.Type, e.SchemaVersion, e.Version, bodies[i])
		s.log = append(s.log, memEvent{env: e, body: bodies[i], prev: prev})
		st.index = append(st.index, s.head)
	}
	res.LastVersion, res.LastPosition = st.version, s.head
	close(s.appended)
	s.appended = make(chan struct{})
	return res, nil
}

func (s *MemoryEventStore) Read(ctx context.Context, stream StreamID, after Revision) iter.Seq2[Envelope, error] {
	return func(yield func(Envelope, error) bool) {
		if err := stream.Validate(); err != nil {
			yield(Envelope{}, err)
			return
		}
		s.mu.RLock()
		var positions []uint64
		if st := s.streams[stream]; st != nil && after.Version < st.version {
			from := max(after.Version+1, st.first)
			positions = slices.Clone(st.index[from-st.first:])
		}
		s.mu.RUnlock()
		var buf []Envelope
		for _, p := range positions {
			m, ok := s.at(p)
			if !ok {
				continue // deleted since we looked
			}
			var err error
			if buf, err = s.decode(ctx, m, buf[:0]); err != nil {
				if !yield(Envelope{}, err) || !IsDecodeError(err) {
					return
				}
				continue
			}
			for _, e := range buf {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}

func (s *MemoryEventStore) ReadAll(ctx context.Context, after uint64) iter.Seq2[Envelope, error] {
	return func(yield func(Envelope, error) bool) {
		s.mu.RLock()
		end := s.head
		s.mu.RUnlock()
		var buf []Envelope
		for next := after + 1; next <= end; {
			s.mu.RLock()
			i, _ := slices.BinarySearchFunc(s.log, next, func(m memEvent, p uint64) int { return cmp.Compare(m.env.Position, p) })
			if i == len(s.log) || s.log[i].env.Position > end {
				s.mu.RUnlock()
				return
			}
			m := s.log[i]
			s.mu.RUnlock()
			next = m.env.Position + 1
			var err error
			if buf, err = s.decode(ctx, m, buf[:0]); err != nil {
				if !yield(Envelope{}, err) || !IsDecodeError(err) {
					return
				}
				continue
			}
			for _, e := range buf {
				if !yield(e, nil) {
					return
				}
			}
		}
	}
}

// Subscribe yields every event after position after in position order,
// then each new event as it is appended, until ctx ends (its error is the
// last thing yielded) or the caller stops.
func (s *MemoryEventStore) Subscribe(ctx context.Context, after uint64) iter.Seq2[Envelope, error] {
	return func(yield func(Envelope, error) bool) {
		for {
			s.mu.RLock()
			wake, head := s.appended, s.head
			s.mu.RUnlock()
			for e, err := range s.ReadAll(ctx, after) {
				var de *DecodeError
				if !yield(e, err) || err != nil && !errors.As(err, &de) {
					return
				}
				if after = e.Position; de != nil {
					after = de.Position // skipped by the caller
				}
			}
			// Every position up to head was yielded or deleted.
			after = max(after, head)
			select {
			case <-wake:
			case <-ctx.Done():
				yield(Envelope{}, ctx.Err())
				return
			}
		}
	}
}

// at returns the stored event at position p, or ok == false if it is gone.
func (s *MemoryEventStore) at(p uint64) (memEvent, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, found := slices.BinarySearchFunc(s.log, p, func(m memEvent, p uint64) int { return cmp.Compare(m.env.Position, p) })
	if !found {
		return memEvent{}, false
	}
	return s.log[i], true
}

// decode appends the envelopes the stored event reads as to out: one, or
// the several or none its upcasters make of it.
func (s *MemoryEventStore) decode(ctx context.Context, m memEvent, out []Envelope) ([]Envelope, error) {
	if err := ctx.Err(); err != nil {
		return out, err
	}
	e := m.env
	e.Metadata = maps.Clone(e.Metadata)
	return s.opts.Registry.DecodeEnvelopeContext(ctx, s.opts.Codec, &e, m.body, out)
}

func (s *MemoryEventStore) Delete(ctx context.Context, stream StreamID) error {
	if err := stream.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[stream]
	if st == nil {
		return nil
	}
	s.remove(st.index)
	delete(s.streams, stream)
	return nil
}

func (s *MemoryEventStore) Truncate(ctx context.Context, stream StreamID, through Revision) error {
	if err := stream.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[stream]
	if st == nil || through.Version < st.first {
		return nil
	}
	if through.Version > st.version {
		return Errorf(CodeInvalidArgument, "truncate %s through version %d: the aggregate is at version %d: truncate only what is stored",
			stream, through.Version, st.version)
	}
	// The last event always stays: it carries the aggregate's version.
	through.Version = min(through.Version, st.version-1)
	if through.Version < st.first {
		return nil
	}
	n := through.Version - st.first + 1
	s.remove(st.index[:n])
	st.index = slices.Clone(st.index[n:])
	st.first = through.Version + 1
	return nil
}

// remove deletes the given positions (ascending) from the log.
func (s *MemoryEventStore) remove(positions []uint64) {
	gone := make(map[uint64]struct{}, len(positions))
	for _, p := range positions {
		gone[p] = struct{}{}
	}
	s.log = slices.DeleteFunc(s.log, func(m memEvent) bool {
		_, ok := gone[m.env.Position]
		return ok
	})
}

// MemorySnapshotStore is a SnapshotStore in process memory.
type MemorySnapshotStore struct {
	mu    sync.Mutex
	snaps map[StreamID]Snapshot
}

// NewMemorySnapshotStore returns an empty in-memory snapshot store.
func NewMemorySnapshotStore() *MemorySnapshotStore {
	return &MemorySnapshotStore{snaps: map[StreamID]Snapshot{}}
}

func (s *MemorySnapshotStore) SaveSnapshot(ctx context.Context, snap Snapshot) error {
	if err := snap.Stream.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.snaps[snap.Stream]; ok && old.Revision.Version >= snap.Revision.Version {
		return nil
	}
	snap.State = slices.Clone(snap.State)
	s.snaps[snap.Stream] = snap
	return nil
}

func (s *MemorySnapshotStore) LoadSnapshot(ctx context.Context, stream StreamID) (Snapshot, bool, error) {
	if err := stream.Validate(); err != nil {
		return Snapshot{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, ok := s.snaps[stream]
	snap.State = slices.Clone(snap.State)
	return snap, ok, nil
}

func (s *MemorySnapshotStore) DeleteSnapshot(ctx context.Context, stream StreamID) error {
	if err := stream.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.snaps, stream)
	return nil
}

// MemoryCheckpointStore is a CheckpointStore in process memory.
type MemoryCheckpointStore struct {
	mu  sync.Mutex
	cps map[string]Checkpoint
}

// NewMemoryCheckpointStore returns an empty in-memory checkpoint store.
func NewMemoryCheckpointStore() *MemoryCheckpointStore {
	return &MemoryCheckpointStore{cps: map[string]Checkpoint{}}
}

func (s *MemoryCheckpointStore) LoadCheckpoint(ctx context.Context, name string) (Checkpoint, error) {
	if err := ValidateCheckpointName(name); err != nil {
		return Checkpoint{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cp, ok := s.cps[name]; ok {
		return cp, nil
	}
	return Checkpoint{Name: name}, nil
}

func (s *MemoryCheckpointStore) SaveCheckpoint(ctx context.Context, cp Checkpoint) (Checkpoint, error) {
	if err := ValidateCheckpointName(cp.Name); err != nil {
		return Checkpoint{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.cps[cp.Name]; cur.Revision != cp.Revision {
		return Checkpoint{}, Errorf(CodeCheckpointConflict, "checkpoint %q is at revision %d, not %d: another instance moved it; reload it",
			cp.Name, cur.Revision, cp.Revision)
	}
	cp.Revision++
	s.cps[cp.Name] = cp
	return cp, nil
}

// ValidateCheckpointName checks a checkpoint name: 1 to 128 letters,
// digits, '-', '_' or '.', with dots only between other characters; it
// becomes a KV key.
func ValidateCheckpointName(name string) error {
	if name == "" || len(name) > 128 || name[0] == '.' || name[len(name)-1] == '.' || strings.Contains(name, "..") {
		return Errorf(CodeInvalidArgument, "checkpoint name %q: use 1 to 128 letters, digits, '-', '_' or '.', with dots only between other characters", name)
	}
	for _, c := range []byte(name) {
		if !isNameByte(c) && c != '.' {
			return Errorf(CodeInvalidArgument, "checkpoint name %q has %q: use letters, digits, '-', '_' or '.'", name, c)
		}
	}
	return nil
}
