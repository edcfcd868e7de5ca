package node_test

import (
	"testing"
	"time"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/node"
)

func TestOptionsFromConfig(t *testing.T) {
	e := node.EventOptions(config.Default().Events)
	if e.MaxConcurrentHandlers != 16 || e.HandlerTimeout != 30*time.Second || e.Sequential || e.StopOnError {
		t.Errorf("default event bus options %+v", e)
	}
	if e := node.EventOptions(config.Events{MaxConcurrentHandlers: 2}); e.HandlerTimeout >= 0 || !e.Sequential || !e.StopOnError {
		t.Errorf("handler_timeout 0 must mean none, parallel_dispatch and continue_on_error false must mean Sequential and StopOnError: %+v", e)
	}
	p := node.ProjectionOptions(config.Default().Projections)
	if p.CheckpointInterval != 1000 || p.BatchSize != 100 || p.RebuildBatchSize != 1000 || p.Sequential {
		t.Errorf("default projection options %+v", p)
	}
	if p := node.SnapshotPolicy(config.Default().Snapshots); p.EveryEvents != 100 || p.Interval != 0 {
		t.Errorf("default policy %+v, want every 100 events", p)
	}
	if p := node.SnapshotPolicy(config.Snapshots{EveryEvents: 0, Interval: time.Minute}); p.EveryEvents != -1 || p.Interval != time.Minute {
		t.Errorf("every_events 0 must turn count-based snapshots off, got %+v", p)
	}
}
