package bridgeconfig

import (
	"context"

	"github.com/lexigram/events/bridges"
	"github.com/lexigram/events/platform"
)

// DeadLetters reads and discards the dead letters of every bridge that
// uses the default dead-letter stream, those of other processes too.
func (s *Set) DeadLetters() *bridges.DeadLetterQueue {
	return bridges.NewDeadLetterQueue(s.js)
}

// Replay moves a dead letter again through the bridge it came through
// (Outbound.Replay, Inbound.Replay), which must be one of this set's: a
// bridge run by another process replays its dead letters there.
func (s *Set) Replay(ctx context.Context, seq uint64) error {
	dl, err := s.DeadLetters().Get(ctx, seq)
	if err != nil {
		return err
	}
	for _, r := range s.running {
		if r.cfg.Name != dl.Bridge {
			continue
		}
		if r.out != nil {
			return r.out.Replay(ctx, dl)
		}
		return r.in.Replay(ctx, dl)
	}
	return platform.Errorf(platform.CodeBridgeDelivery, "bridge dead letter %d is of bridge %q, which this node does not run: replay it from the process that runs that bridge, or discard it", seq, dl.Bridge)
}

// Runs reports whether bridge is one of this set's running bridges, so
// that its dead letters can be replayed here.
func (s *Set) Runs(bridge string) bool {
	for _, r := range s.running {
		if r.cfg.Name == bridge {
			return true
		}
	}
	return false
}
