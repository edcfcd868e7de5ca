package sagas

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/lexigram/events/platform"
)

// MemoryStore is a Store in memory, for unit tests of code that runs
// sagas. It keeps every instance as the JSON record KVStore keeps, so an
// instance goes in and comes out as a copy (nothing it returns shares
// Data or History with what it was given), what does not encode fails
// here as it would there, and what comes back, times included, is what a
// real store gives back. It applies KVStore's rules on names; its
// revisions start at 1 and grow by 1.
type MemoryStore struct {
	mu      sync.Mutex
	records map[string]memoryRecord // by instance ID
}

type memoryRecord struct {
	data     []byte
	revision uint64
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{records: map[string]memoryRecord{}}
}

// Create stores in unless an instance of its type has its key.
func (s *MemoryStore) Create(_ context.Context, in Instance) (Instance, bool, error) {
	if err := CheckNew(in); err != nil {
		return Instance{}, false, err
	}
	data, err := encodeStored(in)
	if err != nil {
		return Instance{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[in.ID]; ok {
		stored, err := s.record(in.ID)
		return stored, false, err
	}
	s.records[in.ID] = memoryRecord{data: data, revision: 1}
	stored, err := s.record(in.ID)
	return stored, true, err
}

// Load returns the instance with the ID.
func (s *MemoryStore) Load(_ context.Context, id string) (Instance, error) {
	if err := CheckID(id); err != nil {
		return Instance{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.record(id)
}

// FindByKey returns the instance of the type with the association key.
func (s *MemoryStore) FindByKey(_ context.Context, sagaType, key string) (Instance, error) {
	if err := CheckType(sagaType); err != nil {
		return Instance{}, err
	}
	if err := CheckKey(sagaType, key); err != nil {
		return Instance{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := InstanceID(sagaType, key)
	if _, ok := s.records[id]; !ok {
		return Instance{}, platform.Errorf(platform.CodeSagaNotFound,
			"sagas: memory store: no saga instance of type %q has association key %q: start one, or check the type and the key", sagaType, key)
	}
	return s.record(id)
}

// Save writes in over the stored instance if that is still at
// in.Revision.
func (s *MemoryStore) Save(_ context.Context, in Instance) (uint64, error) {
	if err := CheckID(in.ID); err != nil {
		return 0, err
	}
	data, err := encodeStored(in)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.records[in.ID]
	if !ok {
		return 0, platform.Errorf(platform.CodeSagaNotFound,
			"sagas: memory store: save saga instance %s: no instance has that ID: Create it first", in.ID)
	}
	if cur.revision != in.Revision {
		return 0, platform.Errorf(platform.CodeSagaConflict,
			"sagas: memory store: save saga instance %s at revision %d: the store holds revision %d: another caller saved it since; load it and decide again",
			in.ID, in.Revision, cur.revision)
	}
	s.records[in.ID] = memoryRecord{data: data, revision: cur.revision + 1}
	return cur.revision + 1, nil
}

// List returns the matching instances in ID order.
func (s *MemoryStore) List(_ context.Context, q Query) ([]Instance, error) {
	if err := validateStoredQuery(q); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.records))
	for id := range s.records {
		if id > q.After {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return page(q, ids, func(id string) (Instance, bool, error) {
		in, err := s.record(id)
		return in, err == nil, err
	})
}

// record decodes the record of id; s.mu is held.
func (s *MemoryStore) record(id string) (Instance, error) {
	rec, ok := s.records[id]
	if !ok {
		return Instance{}, platform.Errorf(platform.CodeSagaNotFound, "sagas: memory store: no saga instance has ID %q: check the ID", id)
	}
	in, err := decodeStored(id, rec.data)
	if err != nil {
		// Unreachable unless encoding/json cannot read what it wrote.
		return Instance{}, &CorruptError{ID: id, Type: storedType(rec.data), Revision: rec.revision,
			Err: fmt.Errorf("memory store: %w", err)}
	}
	in.Revision = rec.revision
	return in, nil
}
