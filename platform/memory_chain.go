package platform

import (
	"cmp"
	"context"
	"iter"
	"slices"
)

// ReadChain yields the aggregate's stored events as the hash chain sees
// them (see ChainReader), oldest first.
func (s *MemoryEventStore) ReadChain(ctx context.Context, stream StreamID) iter.Seq2[StoredEvent, error] {
	return func(yield func(StoredEvent, error) bool) {
		if err := stream.Validate(); err != nil {
			yield(StoredEvent{}, err)
			return
		}
		s.mu.RLock()
		var stored []StoredEvent
		if st := s.streams[stream]; st != nil {
			for _, p := range st.index {
				i, found := slices.BinarySearchFunc(s.log, p, func(m memEvent, p uint64) int { return cmp.Compare(m.env.Position, p) })
				if !found {
					continue
				}
				m := s.log[i]
				stored = append(stored, StoredEvent{
					Position: m.env.Position, Version: m.env.Version, ID: m.env.ID, Type: m.env.Type,
					SchemaVersion: m.env.SchemaVersion, Prev: m.prev, Chained: true, Body: slices.Clone(m.body),
				})
			}
		}
		s.mu.RUnlock()
		for _, e := range stored {
			if err := ctx.Err(); err != nil {
				yield(StoredEvent{}, err)
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}
