package platform_test

import (
	"context"
	"iter"
	"testing"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/platform/storetest"
)

// memoryMaxEventSize keeps the oversized-event checks cheap.
const memoryMaxEventSize = 64 << 10

func TestMemoryEventStore(t *testing.T) {
	storetest.TestEventStore(t, func(t *testing.T) storetest.Harness {
		reg := platform.NewRegistry()
		return storetest.Harness{
			Store:        platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg, MaxEventSize: memoryMaxEventSize}),
			Registry:     reg,
			MaxEventSize: memoryMaxEventSize,
		}
	})
}

func TestMemoryEventStoreJSON(t *testing.T) {
	storetest.TestEventStore(t, func(t *testing.T) storetest.Harness {
		reg := platform.NewRegistry()
		return storetest.Harness{
			Store:        platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg, Codec: platform.JSON, MaxEventSize: memoryMaxEventSize}),
			Registry:     reg,
			MaxEventSize: memoryMaxEventSize,
			Rounds:       20, // the codec does not matter to concurrency
		}
	})
}

func TestMemoryEventStoreDefaultLimit(t *testing.T) {
	// The zero MaxEventSize is 1 MiB, which the harness assumes when it is 0.
	storetest.TestEventStore(t, func(t *testing.T) storetest.Harness {
		reg := platform.NewRegistry()
		return storetest.Harness{Store: platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg}), Registry: reg, Rounds: 5}
	})
}

func TestMemorySnapshotStore(t *testing.T) {
	storetest.TestSnapshotStore(t, func(t *testing.T) platform.SnapshotStore { return platform.NewMemorySnapshotStore() })
}

func TestMemoryCheckpointStore(t *testing.T) {
	storetest.TestCheckpointStore(t, func(t *testing.T) platform.CheckpointStore { return platform.NewMemoryCheckpointStore() })
}

// TestMemoryEventStoreRegistryView runs the suite with Reopen, which the
// memory store cannot offer, emulated by registryView, so that the subtest
// needing it runs before the JetStream store provides the real thing.
func TestMemoryEventStoreRegistryView(t *testing.T) {
	storetest.TestEventStore(t, func(t *testing.T) storetest.Harness {
		reg := platform.NewRegistry()
		store := platform.NewMemoryEventStore(platform.MemoryOptions{Registry: reg, MaxEventSize: memoryMaxEventSize})
		return storetest.Harness{
			Store:        store,
			Registry:     reg,
			MaxEventSize: memoryMaxEventSize,
			Rounds:       5,
			Reopen: func(t *testing.T, reg *platform.Registry) platform.EventStore {
				return &registryView{EventStore: store, reg: reg}
			},
		}
	})
}

// registryView reads a memory store's events as a store sharing its data
// but decoding with reg would: each event is encoded again and decoded
// with reg, failing like a store's decode does.
type registryView struct {
	platform.EventStore
	reg *platform.Registry
}

func (v *registryView) view(seq iter.Seq2[platform.Envelope, error]) iter.Seq2[platform.Envelope, error] {
	return func(yield func(platform.Envelope, error) bool) {
		for e, err := range seq {
			if err == nil {
				var data []byte
				if data, err = platform.Msgpack.Marshal(e.Event); err == nil {
					e.Event, err = v.reg.Decode(platform.Msgpack, e.Type, data)
				}
				if err != nil {
					err = platform.Errorf(platform.CodeOf(err), "read %s version %d at position %d: %w", e.Stream, e.Version, e.Position, err)
				}
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

func (v *registryView) Read(ctx context.Context, stream platform.StreamID, after platform.Revision) iter.Seq2[platform.Envelope, error] {
	return v.view(v.EventStore.Read(ctx, stream, after))
}

func (v *registryView) ReadAll(ctx context.Context, after uint64) iter.Seq2[platform.Envelope, error] {
	return v.view(v.EventStore.ReadAll(ctx, after))
}
