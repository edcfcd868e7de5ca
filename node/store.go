package node

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/platform"
)

// OpenStore opens the event store the configuration describes; more
// changes the options (a node's durability: Durability).
func OpenStore(ctx context.Context, js jetstream.JetStream, cfg config.Config, log *slog.Logger, more ...func(*lxjs.Options)) (*lxjs.EventStore, error) {
	codec, err := platform.CodecByName(cfg.Store.Codec)
	if err != nil {
		return nil, err
	}
	o := lxjs.Options{
		Stream: cfg.Store.Stream, SubjectPrefix: cfg.Store.SubjectPrefix, Replicas: cfg.Store.Replicas,
		Storage: Storage(cfg), MaxAge: cfg.Store.MaxAge, MaxBytes: max(cfg.Store.MaxBytes, 0),
		DuplicateWindow: cfg.Store.DuplicateWindow, Codec: codec, Logger: log,
		GroupCommit: lxjs.GroupCommit{Enabled: cfg.GroupCommit()},
	}
	for _, f := range more {
		f(&o)
	}
	return lxjs.New(ctx, js, o)
}

// Durability has a node's store hold to store.require_durability, and
// tells it the embedded server's sync setting (srv nil: an external
// server, whose setting the store asks for itself).
func Durability(cfg config.Config, srv *embedded.Server) func(*lxjs.Options) {
	return func(o *lxjs.Options) {
		o.RequireDurability = platform.DurabilityLevel(cfg.Store.RequireDurability)
		if srv == nil {
			return
		}
		if c := srv.NATS().JetStreamConfig(); c != nil {
			o.ServerSync = &lxjs.ServerSync{Always: c.SyncAlways, Interval: c.SyncInterval, Source: "embedded server"}
		}
	}
}

// Storage is the JetStream storage of store.storage.
func Storage(cfg config.Config) jetstream.StorageType {
	if cfg.Store.Storage == "memory" {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}
