package node

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/encryption"
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

// OpenKeyring opens the key ring enc describes (the encryption section)
// on the store's server and makes it the sealer of reg, so that every
// store on reg seals and opens event payloads; events is where Forget
// appends SubjectForgotten. It returns nil when encryption is off. Pass
// the ring to kvsnapshot.SnapshotOptions.Sealer to seal snapshots too.
func OpenKeyring(ctx context.Context, js jetstream.JetStream, cfg config.Config, enc config.Encryption, reg *platform.Registry, events platform.EventStore, log *slog.Logger) (*encryption.Keyring, error) {
	if !enc.Enabled() {
		return nil, nil
	}
	if err := enc.Validate(); err != nil {
		return nil, err
	}
	var keys encryption.KeyProvider
	var err error
	if enc.KeyFile != "" {
		keys, err = encryption.FileKeys(enc.KeyFile)
	} else {
		keys, err = encryption.EnvKeys(enc.KeyEnv)
	}
	if err != nil {
		return nil, err
	}
	o := encryption.Options{
		Bucket: enc.Bucket, Replicas: cfg.Store.Replicas, Storage: Storage(cfg),
		Registry: reg, Events: events, Logger: log, Modes: map[string]encryption.Mode{},
	}
	if enc.Mode == "whole" {
		o.Mode = encryption.ModeWhole
	}
	for _, t := range enc.WholeTypes {
		o.Modes[t] = encryption.ModeWhole
	}
	for _, t := range enc.PlainTypes {
		o.Modes[t] = encryption.ModeNone
	}
	return encryption.Open(ctx, js, keys, o)
}
