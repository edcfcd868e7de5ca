package projections

import (
	"context"

	"github.com/lexigram/events/platform"
)

// sink is where one generation's events go and where its position is kept.
// The follower is the same for both kinds of handler; what differs is where
// the position lives and so how often an event takes effect: kvSink
// (sink_kv.go) for a Handler, at least once, and txSink (sink_tx.go) for a
// BatchHandler, exactly once.
type sink interface {
	load(ctx context.Context) (uint64, error)
	position() uint64
	// apply hands events (those of the projection's types among read
	// events) to the handler and moves the position to to.
	apply(ctx context.Context, events []platform.Envelope, read int, to uint64) error
	flush(ctx context.Context) error
	reset(ctx context.Context) error
}

func (p *projection) newSink(gen Generation) sink {
	if p.def.Batch != nil {
		return &txSink{b: p.def.Batch, gen: gen, interval: p.m.opts.CheckpointInterval}
	}
	return &kvSink{store: p.m.opts.Checkpoints, h: p.def.Handler, gen: gen, name: checkpointName(p.def.Name, gen), interval: p.m.opts.CheckpointInterval}
}
