package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/lexigram/events/bridges/bridgeconfig"
	"github.com/lexigram/events/config"
	"github.com/lexigram/events/embedded"
	"github.com/lexigram/events/handlers/durable"
	lxjs "github.com/lexigram/events/jetstream"
	"github.com/lexigram/events/kvsnapshot"
	"github.com/lexigram/events/platform"
)

func serveCommand() *cobra.Command {
	var configPath, natsURL, httpAddr string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start the node: NATS (embedded unless --nats-url), the event store, /healthz and /metrics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				configPath = os.Getenv(config.ConfigFileEnv)
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			if natsURL != "" {
				cfg.NATS.URLs = []string{natsURL}
			}
			if httpAddr != "" {
				cfg.HTTP.Addr = httpAddr
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, cfg.Logging.NewLogger(cmd.ErrOrStderr()))
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (default $"+config.ConfigFileEnv+")")
	cmd.Flags().StringVar(&natsURL, "nats-url", "", "connect to this NATS server instead of starting the embedded one")
	cmd.Flags().StringVar(&httpAddr, "http-addr", "", "listen address for /healthz and /metrics (default 127.0.0.1:8080)")
	return cmd
}

// serve runs the node until ctx ends, then stops it in reverse order.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	slog.SetDefault(log)
	n, err := openNode(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer n.close(log)
	bs, err := bridgeconfig.Start(ctx, n.js, cfg.Bridges, bridgeconfig.Options{Store: cfg.Store, Logger: log})
	if err != nil {
		return err
	}
	defer stopBridges(bs, log) // before NATS closes

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStreamCollector(n.store, n.nc), newConsumerCollector(n.stream, n.dlq))
	reg.MustRegister(bs.Collectors()...)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", healthzWithBridges(n.healthz, bs))

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr %s: %w: free the port or choose another with --http-addr", cfg.HTTP.Addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving health and metrics", "url", "http://"+ln.Addr().String(), "paths", "/healthz /metrics",
		"durability", n.store.Durability().String(), "durability_level", n.store.Durability().Level())
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case <-ctx.Done():
		log.Info("stopping")
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	return nil
}

// node is what serve runs: the NATS connection (and the embedded server
// when there is one) and the stores on it.
type node struct {
	server      *embedded.Server // nil when connected to an external NATS
	nc          *nats.Conn
	js          jetstream.JetStream
	store       *lxjs.EventStore
	snapshots   *kvsnapshot.SnapshotStore
	checkpoints *kvsnapshot.CheckpointStore
	dlq         *durable.DLQ
	stream      jetstream.Stream
}

func openNode(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *node, err error) {
	n := &node{} // not the result: a failed open returns nil, and this closes what it had opened
	defer func() {
		if err != nil {
			n.close(log)
		}
	}()
	if n.server, n.nc, err = openNATS(ctx, cfg, log); err != nil {
		return nil, err
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		return nil, err
	}
	if n.store, err = openStore(ctx, n.js, cfg, log, nodeDurability(cfg, n.server)); err != nil {
		return nil, err
	}
	storage := storageOf(cfg)
	if n.stream, err = n.js.Stream(ctx, n.store.StreamName()); err != nil {
		return nil, err
	}
	if n.dlq, err = durable.OpenDLQ(ctx, n.js, n.store, durable.DLQOptions{Replicas: cfg.Store.Replicas, Storage: storage}); err != nil {
		return nil, err
	}
	if n.snapshots, err = kvsnapshot.NewSnapshotStore(ctx, n.js, kvsnapshot.SnapshotOptions{
		Bucket: cfg.Snapshots.Bucket, Replicas: cfg.Store.Replicas, Storage: storage,
	}); err != nil {
		return nil, err
	}
	if n.checkpoints, err = kvsnapshot.NewCheckpointStore(ctx, n.js, kvsnapshot.CheckpointOptions{
		Bucket: cfg.Snapshots.CheckpointBucket, Replicas: cfg.Store.Replicas, Storage: storage,
	}); err != nil {
		return nil, err
	}
	return n, nil
}

// openStore opens the event store the configuration describes; more
// changes the options (the node's durability, nodeDurability).
func openStore(ctx context.Context, js jetstream.JetStream, cfg config.Config, log *slog.Logger, more ...func(*lxjs.Options)) (*lxjs.EventStore, error) {
	codec, err := platform.CodecByName(cfg.Store.Codec)
	if err != nil {
		return nil, err
	}
	o := lxjs.Options{
		Stream: cfg.Store.Stream, SubjectPrefix: cfg.Store.SubjectPrefix, Replicas: cfg.Store.Replicas,
		Storage: storageOf(cfg), MaxAge: cfg.Store.MaxAge, MaxBytes: max(cfg.Store.MaxBytes, 0),
		DuplicateWindow: cfg.Store.DuplicateWindow, Codec: codec, Logger: log,
		GroupCommit: lxjs.GroupCommit{Enabled: cfg.GroupCommit()},
	}
	for _, f := range more {
		f(&o)
	}
	return lxjs.New(ctx, js, o)
}

func storageOf(cfg config.Config) jetstream.StorageType {
	if cfg.Store.Storage == "memory" {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

func (n *node) close(log *slog.Logger) {
	if n.nc != nil {
		if err := n.nc.Drain(); err != nil {
			n.nc.Close()
		}
	}
	if n.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.server.Shutdown(ctx); err != nil {
			log.Warn("embedded NATS shutdown", "err", err)
		}
	}
}

// healthz answers 200 when NATS is connected, JetStream answers and the
// stream's durability meets store.require_durability (writeHealth).
func (n *node) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if st := n.nc.Status(); st != nats.CONNECTED {
		http.Error(w, "nats: "+st.String(), http.StatusServiceUnavailable)
		return
	}
	if _, err := n.js.AccountInfo(ctx); err != nil {
		http.Error(w, "jetstream: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	n.writeHealth(ctx, w, r)
}
