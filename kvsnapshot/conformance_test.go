package kvsnapshot

import (
	"testing"

	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/platform/storetest"
)

func TestSnapshotStoreConformance(t *testing.T) {
	storetest.TestSnapshotStore(t, func(t *testing.T) platform.SnapshotStore {
		s, _ := newSnapshotStore(t, SnapshotOptions{})
		return s
	})
}

func TestCheckpointStoreConformance(t *testing.T) {
	storetest.TestCheckpointStore(t, func(t *testing.T) platform.CheckpointStore {
		return newCheckpointStore(t)
	})
}
