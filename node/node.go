package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/encryption"
	"github.com/lexigram/events/handlers"
	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
	"github.com/lexigram/events/projections"
	"github.com/lexigram/events/sagas"
)

// Options configure Open. The zero value works.
type Options struct {
	// Registry names the application's events, commands and queries.
	// nil: platform.DefaultRegistry.
	Registry *platform.Registry
	// Logger is the node's logger. nil: the configuration's logging
	// section, writing to standard error.
	Logger *slog.Logger
	// ShutdownTimeout bounds how long Run waits, once its context ends,
	// for the work under way to finish before it closes NATS anyway.
	// 0: 30s.
	ShutdownTimeout time.Duration
	// Services is what saga steps get as Context.Services.
	Services any
}

// Node is the platform assembled from a configuration; see the package
// documentation for its phases. Its methods are safe for concurrent use.
type Node struct {
	cfg  config.Config
	opts Options
	log  *slog.Logger

	server      *embedded.Server // nil when connected to an external NATS
	nc          *nats.Conn
	js          jetstream.JetStream
	store       *lxjs.EventStore
	keys        *encryption.Keyring // nil unless the encryption section names master keys
	snapshots   *kvsnapshot.SnapshotStore
	checkpoints *kvsnapshot.CheckpointStore
	dlq         *durable.DLQ
	remote      *handlers.Remote
	commands    *handlers.CommandBus
	queries     *handlers.QueryBus
	events      *handlers.EventBus
	projections *projections.Manager

	mu       sync.Mutex
	running  bool
	durables []durableSpec
	sagas    *sagas.Manager // made by the first AddSaga
	closed   bool
	tempDir  string            // OpenInMemory's, removed on close
	bridges  *bridgeconfig.Set // started by Run
	ready    chan struct{}     // closed when Run has started everything
}

type durableSpec struct {
	name    string
	handler func(context.Context, platform.Envelope) error
	opts    durable.Options
}

// Open boots a node from cfg (see the package documentation). On error
// nothing is left open.
func Open(ctx context.Context, cfg config.Config, opts Options) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Registry == nil {
		opts.Registry = platform.DefaultRegistry
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = cfg.Logging.NewLogger(os.Stderr)
	}
	n := &Node{cfg: cfg, opts: opts, log: log, ready: make(chan struct{})}
	defer func() {
		if err != nil {
			n.closeNATS()
		}
	}()
	if n.server, n.nc, err = OpenNATS(ctx, cfg, log); err != nil {
		return nil, err
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		return nil, err
	}
	withRegistry := func(o *lxjs.Options) { o.Registry = opts.Registry }
	if n.store, err = OpenStore(ctx, n.js, cfg, log, Durability(cfg, n.server), withRegistry); err != nil {
		return nil, err
	}
	if n.keys, err = OpenKeyring(ctx, n.js, cfg, cfg.Encryption, opts.Registry, n.store, log); err != nil {
		return nil, err
	}
	storage := Storage(cfg)
	if n.dlq, err = durable.OpenDLQ(ctx, n.js, n.store, durable.DLQOptions{Replicas: cfg.Store.Replicas, Storage: storage}); err != nil {
		return nil, err
	}
	snapOpts := kvsnapshot.SnapshotOptions{Bucket: cfg.Snapshots.Bucket, Replicas: cfg.Store.Replicas, Storage: storage}
	if n.keys != nil {
		snapOpts.Sealer = n.keys // snapshots hold what the events do
	}
	if n.snapshots, err = kvsnapshot.NewSnapshotStore(ctx, n.js, snapOpts); err != nil {
		return nil, err
	}
	if n.checkpoints, err = kvsnapshot.NewCheckpointStore(ctx, n.js, kvsnapshot.CheckpointOptions{
		Bucket: cfg.Snapshots.CheckpointBucket, Replicas: cfg.Store.Replicas, Storage: storage,
	}); err != nil {
		return nil, err
	}
	if n.remote, err = handlers.NewRemote(n.nc, handlers.RemoteOptions{Logger: log}); err != nil {
		return nil, fmt.Errorf("serve commands and queries over NATS: %w", err)
	}
	busOpts := handlers.Options{Registry: opts.Registry, Remote: n.remote, Logger: log}
	n.commands, n.queries = handlers.NewCommandBus(busOpts), handlers.NewQueryBus(busOpts)
	evOpts := EventOptions(cfg.Events)
	evOpts.Registry, evOpts.Logger = opts.Registry, log
	n.events = handlers.NewEventBus(evOpts)
	leases, err := projections.NewKVLeases(ctx, n.js, projections.KVLeaseOptions{
		TTL: cfg.Projections.LeaseTTL, Replicas: cfg.Store.Replicas, Storage: storage, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	pOpts := ProjectionOptions(cfg.Projections)
	pOpts.Checkpoints, pOpts.Leases, pOpts.Logger = n.checkpoints, leases, log
	if n.projections, err = projections.New(n.store, pOpts); err != nil {
		return nil, err
	}
	log.Info("node open", "store", n.store.StreamName(), "durability", n.store.Durability().String(), "durability_level", n.store.Durability().Level())
	return n, nil
}

// Config is the configuration the node was opened with.
func (n *Node) Config() config.Config { return n.cfg }

// Logger is the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// Conn is the node's NATS connection.
func (n *Node) Conn() *nats.Conn { return n.nc }

// JetStream is the node's JetStream context.
func (n *Node) JetStream() jetstream.JetStream { return n.js }

// Server is the embedded server, nil when the node connected to an
// external one.
func (n *Node) Server() *embedded.Server { return n.server }

// Store is the event store.
func (n *Node) Store() *lxjs.EventStore { return n.store }

// Keys is the key ring of payload encryption (Forget, Rewrap), nil when
// the configuration names no master keys.
func (n *Node) Keys() *encryption.Keyring { return n.keys }

// Snapshots is the snapshot store, for repositories
// (platform.RepositoryOptions).
func (n *Node) Snapshots() *kvsnapshot.SnapshotStore { return n.snapshots }

// Checkpoints is the projections' checkpoint store.
func (n *Node) Checkpoints() *kvsnapshot.CheckpointStore { return n.checkpoints }

// DLQ is the durable handlers' dead-letter queue.
func (n *Node) DLQ() *durable.DLQ { return n.dlq }

// Commands is the command bus: handlers registered on it serve commands
// from this process and, over NATS, from any other.
func (n *Node) Commands() *handlers.CommandBus { return n.commands }

// Queries is the query bus, served like Commands.
func (n *Node) Queries() *handlers.QueryBus { return n.queries }

// Events is the in-process event bus, fed from the store by Run with the
// events appended after it starts.
func (n *Node) Events() *handlers.EventBus { return n.events }

// Projections is the projection manager, for status and rebuilds.
func (n *Node) Projections() *projections.Manager { return n.projections }

// Sagas is the saga manager, nil until AddSaga.
func (n *Node) Sagas() *sagas.Manager {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sagas
}

// Ready is closed once Run has started everything registered and the
// bridges.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Bridges is the running bridges of the configuration, nil before Run
// started them or when the configuration has none.
func (n *Node) Bridges() *bridgeconfig.Set {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.bridges
}

// errRunning refuses a registration after Run started.
var errRunning = platform.Errorf(platform.CodeInvalidArgument, "node: register before Run: the node is running")

// Handle registers a durable event handler (handlers/durable), started
// by Run: its name is its consumer's, shared by every process that
// registers it. opts.DLQ defaults to the node's.
func (n *Node) Handle(name string, handler func(context.Context, platform.Envelope) error, opts durable.Options) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		return errRunning
	}
	if handler == nil {
		return platform.Errorf(platform.CodeInvalidArgument, "node: durable handler %q is nil", name)
	}
	for _, d := range n.durables {
		if d.name == name {
			return platform.Errorf(platform.CodeInvalidArgument, "node: durable handler %q is registered twice: give each its own name", name)
		}
	}
	if opts.DLQ == nil {
		opts.DLQ = n.dlq
	}
	if opts.Logger == nil {
		opts.Logger = n.log
	}
	n.durables = append(n.durables, durableSpec{name: name, handler: handler, opts: opts})
	return nil
}

// AddProjection registers a projection, started by Run.
func (n *Node) AddProjection(p projections.Projection) error {
	n.mu.Lock()
	running := n.running
	n.mu.Unlock()
	if running {
		return errRunning
	}
	return n.projections.Register(p)
}

// AddSaga registers a saga type; the first one opens the saga manager
// (its work stream and the instances' bucket). Its steps send commands
// on Commands.
func (n *Node) AddSaga(ctx context.Context, t sagas.SagaType) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		return errRunning
	}
	if n.sagas == nil {
		store, err := sagas.NewKVStore(ctx, n.js, sagas.KVOptions{Replicas: n.cfg.Store.Replicas, Storage: Storage(n.cfg)})
		if err != nil {
			return err
		}
		m, err := sagas.NewManager(ctx, n.js, store, sagas.Options{
			Replicas: n.cfg.Store.Replicas, Storage: Storage(n.cfg), Commands: n.commands, Services: n.opts.Services,
			Events: n.store, DLQ: n.dlq, Logger: n.log,
		})
		if err != nil {
			return err
		}
		n.sagas = m
	}
	return n.sagas.Register(t)
}

// Close closes a node that is not running: the NATS connection, then
// the embedded server. Run closes the node itself when it returns.
func (n *Node) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running {
		return errors.New("node: Close while Run runs: end Run's context instead")
	}
	n.closeNATS()
	return nil
}

// closeNATS closes what Open opened, once.
func (n *Node) closeNATS() {
	if n.closed {
		return
	}
	n.closed = true
	if n.remote != nil {
		_ = n.remote.Close()
	}
	if n.keys != nil {
		_ = n.keys.Close()
	}
	if n.nc != nil && !n.nc.IsClosed() {
		// Drain lets the acks and replies already sent reach the server
		// before the connection closes.
		closed := n.nc.StatusChanged(nats.CLOSED)
		if err := n.nc.Drain(); err != nil {
			n.nc.Close()
		}
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			n.nc.Close()
		}
		n.nc.RemoveStatusListener(closed)
	}
	if n.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.server.Shutdown(ctx); err != nil {
			n.log.Warn("embedded NATS shutdown", "err", err)
		}
	}
	if n.tempDir != "" {
		_ = os.RemoveAll(n.tempDir)
	}
}
