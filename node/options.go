package node

import (
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
)

// The subsystems' options from the configuration's plain data. Where the
// file's zero and the subsystem's zero differ, they are translated here
// rather than copied.

// EventOptions are the event bus options of the events section; the
// caller adds the registry, logger, metrics and the rest.
func EventOptions(e config.Events) handlers.EventOptions {
	timeout := e.HandlerTimeout
	if timeout == 0 {
		timeout = -1 // the file's 0 is "none"; the bus's 0 is "the default"
	}
	return handlers.EventOptions{
		MaxConcurrentHandlers: e.MaxConcurrentHandlers,
		HandlerTimeout:        timeout,
		Sequential:            !e.ParallelDispatch,
		StopOnError:           !e.ContinueOnError,
	}
}

// ProjectionOptions are the projection manager options of the
// projections section; the caller adds the checkpoint store, the leases
// and the logger.
func ProjectionOptions(p config.Projections) projections.Options {
	return projections.Options{
		CheckpointInterval: p.CheckpointInterval,
		BatchSize:          p.BatchSize,
		RebuildBatchSize:   p.RebuildBatchSize,
		Sequential:         !p.EnableParallelProjections,
	}
}

// SnapshotPolicy is the repository snapshot policy of the snapshots
// section (platform.RepositoryOptions): the file's every_events 0 turns
// count-based snapshots off, where the platform's 0 means its default.
func SnapshotPolicy(s config.Snapshots) platform.SnapshotPolicy {
	p := platform.SnapshotPolicy{EveryEvents: s.EveryEvents, Interval: s.Interval}
	if s.EveryEvents == 0 {
		p.EveryEvents = -1
	}
	return p
}
