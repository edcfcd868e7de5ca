package jetstream

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/platform"
)

// durabilityState is the durability in force and, when it is below
// Options.RequireDurability, the error appends return. Appends load it
// with one atomic read: it is never computed on the append path.
type durabilityState struct {
	d       platform.Durability
	refusal error
}

// Durability is what the store's appends survive, as last read (by New
// or RefreshDurability).
func (s *EventStore) Durability() platform.Durability { return s.dur.Load().d }

// RefreshDurability reads the stream's configuration again (one request;
// the servers' VARZ too when the stream's servers changed to ones whose
// sync setting is unknown) and recomputes the durability. Below
// Options.RequireDurability it returns the platform.CodeDurability error
// that appends return from then on, until a refresh finds the stream
// back at the level. The node's /healthz calls it, so lowering the
// stream's replicas under a running node is noticed at its next probe.
func (s *EventStore) RefreshDurability(ctx context.Context) (platform.Durability, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return s.Durability(), platform.Errorf(platform.CodeStoreUnavailable, "stream %s info: %w", s.opts.Stream, err)
	}
	s.durMu.Lock()
	defer s.durMu.Unlock()
	if peers := peersOf(info); info.Config.Storage == jetstream.FileStorage && s.syncs.needs(peers) {
		s.syncs = s.readSyncs(ctx, peers)
	}
	st := s.setDurability(StreamDurability(info, s.syncs))
	return st.d, st.refusal
}

// openDurability reads the servers' sync setting and computes the
// durability when the store opens; it returns the refusal, if any.
func (s *EventStore) openDurability(ctx context.Context, info *jetstream.StreamInfo) error {
	s.durMu.Lock()
	defer s.durMu.Unlock()
	if info.Config.Storage == jetstream.FileStorage {
		s.syncs = s.readSyncs(ctx, peersOf(info))
	}
	return s.setDurability(StreamDurability(info, s.syncs)).refusal
}

// readSyncs is the servers' sync setting: the caller's, or VARZ's.
func (s *EventStore) readSyncs(ctx context.Context, peers []string) SyncSettings {
	if s.opts.ServerSync != nil {
		return SyncFor(*s.opts.ServerSync)
	}
	nc := s.opts.SystemConn
	if nc == nil {
		nc = s.js.Conn()
	}
	return ReadSyncSettings(ctx, nc, peers...)
}

func (s *EventStore) setDurability(d platform.Durability) *durabilityState {
	st := &durabilityState{d: d}
	if !d.Meets(s.opts.RequireDurability) {
		st.refusal = durabilityError(s.opts.Stream, d, s.opts.RequireDurability)
	}
	s.dur.Store(st)
	return st
}

// peersOf names the servers holding the stream, sorted; nil while its
// cluster information is incomplete (a stream just created may have no
// leader yet).
func peersOf(info *jetstream.StreamInfo) []string {
	c := info.Cluster
	if c == nil || c.Leader == "" {
		return nil
	}
	peers := []string{c.Leader}
	for _, p := range c.Replicas {
		if p != nil {
			peers = append(peers, p.Name)
		}
	}
	if len(peers) < max(info.Config.Replicas, 1) {
		return nil
	}
	slices.Sort(peers)
	return peers
}

// StreamDurability is the durability of a stream with the servers'
// sync settings: the weakest setting among the servers holding it (all
// the servers that answered, while its cluster information is
// incomplete). A server whose setting is unknown makes it unknown.
func StreamDurability(info *jetstream.StreamInfo, syncs SyncSettings) platform.Durability {
	cfg := info.Config
	d := platform.Durability{Storage: "file", Replicas: max(cfg.Replicas, 1), PersistAsync: cfg.PersistMode == jetstream.AsyncPersistMode}
	if cfg.Storage == jetstream.MemoryStorage {
		d.Storage = "memory"
		return d
	}
	if syncs.all != nil {
		d.Sync, d.SyncInterval, d.Source = mode(*syncs.all), syncs.all.Interval, syncs.all.Source
		return d
	}
	peers := peersOf(info)
	if peers == nil {
		if !syncs.complete {
			d.Sync, d.Source = platform.SyncUnknown, orNotRead(syncs.problem)
			return d
		}
		peers = slices.Sorted(maps.Keys(syncs.servers))
	}
	d.Sync, d.Source = platform.SyncAlways, "VARZ of "+strings.Join(peers, ", ")
	periodic, unreported := false, false
	for _, p := range peers {
		ss, ok := syncs.Of(p)
		switch {
		case !ok:
			d.Sync, d.SyncInterval, d.Source = platform.SyncUnknown, 0, orNotRead(syncs.problem)
			return d
		case !ss.Always:
			// The weakest server decides: the longest interval, or none
			// known if one does not report its own.
			periodic = true
			unreported = unreported || ss.Interval <= 0
			d.SyncInterval = max(d.SyncInterval, ss.Interval)
		}
	}
	if periodic {
		d.Sync = platform.SyncPeriodic
		if unreported {
			d.SyncInterval = 0
		}
	}
	return d
}

func mode(ss ServerSync) platform.SyncMode {
	if ss.Always {
		return platform.SyncAlways
	}
	return platform.SyncPeriodic
}

func orNotRead(problem string) string {
	if problem == "" {
		return "not read"
	}
	return problem
}

// durabilityError is the refusal: what is in force, what was required,
// and how to get there.
func durabilityError(stream string, d platform.Durability, required platform.DurabilityLevel) error {
	var fixes []string
	switch {
	case d.Storage == "memory":
		fixes = append(fixes, `keep the events on disk: store.storage: file (storage cannot change: with a new store.stream)`)
	case d.PersistAsync:
		fixes = append(fixes, "clear the stream's persist_mode: async")
	default:
		if d.Sync == platform.SyncUnknown {
			fixes = append(fixes, fmt.Sprintf("let the store verify the servers' sync setting (%s): import %s from the system account into this account (response_type: stream), or give it a system-account connection (jetstream.Options.SystemConn)",
				d.Source, varzSubject))
		}
		if d.Sync != platform.SyncAlways {
			fixes = append(fixes, "fsync every write: jetstream { sync_interval: always } on every server holding the stream (nats.embedded.fsync_interval: 0 for the embedded server)")
		}
		if required == platform.DurabilityReplicated && d.Replicas < 3 {
			fixes = append(fixes, "run 3 replicas: store.replicas: 3, on a cluster of at least 3 servers")
		}
	}
	fixes = append(fixes, fmt.Sprintf("or accept this: store.require_durability: %s", d.Level()))
	return platform.Errorf(platform.CodeDurability, "stream %s: store.require_durability is %s, but the durability in force is %s (level %s): %s",
		stream, required, d, d.Level(), strings.Join(fixes, "; "))
}
