package sagas

import (
	"context"
	"time"
)

// Start stores an instance and sends its start message without waiting
// for the server (sendStart). A process that dies before the server has
// the message, or a server that keeps refusing it, leaves an instance that
// nothing moves on: created, its start lease run out, and no message.
// Every AckWait, the sweep finds such instances and sends them on.

// windowed is a Store that can find the instances never saved since their
// Create, among those created in a window of its positions, without
// reading the others (KVStore: its bucket's revisions). Other stores are
// asked with List for their STARTED instances (pgstore has an index for
// it; MemoryStore is in memory).
type windowed interface {
	position(ctx context.Context) (uint64, error)
	unsavedCreates(ctx context.Context, after, upTo uint64) ([]string, error)
}

// sweepPosition is where the sweep of a windowed store starts: 0 (all of
// it) if the store cannot say.
func (m *Manager) sweepPosition(ctx context.Context) uint64 {
	w, ok := m.store.(windowed)
	if !ok {
		return 0
	}
	pos, err := w.position(ctx)
	if err != nil {
		m.log.WarnContext(ctx, "sagas: the start sweep could not read the store's position; its first windows read the store from its start", "error", err)
	}
	return pos
}

// sweepStarts runs until ctx ends. With a windowed store each tick reads
// the window before the last: what was created at least one AckWait ago,
// since the window read at the tick before, from position from.
func (m *Manager) sweepStarts(ctx context.Context, from uint64) {
	w, isWindowed := m.store.(windowed)
	scanned, next := from, from // (scanned, next] is due at the next tick
	tick := time.NewTicker(m.opts.AckWait)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !isWindowed {
			m.sweepListed(ctx)
			continue
		}
		upTo, err := w.position(ctx)
		if err != nil {
			continue // the same windows at the next tick
		}
		ids, err := w.unsavedCreates(ctx, scanned, next)
		if err != nil {
			m.log.WarnContext(ctx, "sagas: the start sweep could not read the store; it tries again at its next tick", "error", err)
			continue
		}
		for _, id := range ids {
			if in, err := m.store.Load(ctx, id); err == nil {
				// Created before the last tick, its lease ends about now:
				// if a little later, the move waits for it.
				m.sendOnIfStranded(ctx, in, true)
			}
		}
		scanned, next = next, upTo
	}
}

// sweepListed is the sweep of a store without windows.
func (m *Manager) sweepListed(ctx context.Context) {
	err := m.eachListed(ctx, []State{Started}, func(in Instance) error {
		m.sendOnIfStranded(ctx, in, false)
		return nil
	})
	if err != nil {
		m.log.WarnContext(ctx, "sagas: the start sweep could not list the STARTED instances; it tries again at its next tick", "error", err)
	}
}

// sendOnIfStranded sends on an instance still at the start lease Start
// gave it, once that lease has run out (or before, if leased: the move
// then waits for the lease, as any move of an instance another holds).
func (m *Manager) sendOnIfStranded(ctx context.Context, in Instance, leased bool) {
	if in.State != Started || in.Owner != startLease || m.kindOf(in.Type) == nil || (!leased && m.now().Before(in.LeaseUntil)) {
		return
	}
	m.log.InfoContext(ctx, "sagas: an instance was created and never moved on (its start message never reached the server: its process died, or the server refused it); sending it on", "id", in.ID, "type", in.Type, "created", in.Created)
	if err := m.kick(ctx, in, "resume"); err != nil {
		m.log.WarnContext(ctx, "sagas: send a stranded instance on; the next sweep or a manager's start tries again", "id", in.ID, "error", err)
	}
}
